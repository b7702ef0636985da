#include "search/task_pool.h"

#include <deque>
#include <stdexcept>

#include "util/error.h"
#include "util/mpi.h"

namespace autoprec::search {

using nlohmann::json;

namespace {

[[noreturn]] void rethrow(const json& result) {
  const std::string what = result.at("error").get<std::string>();
  if (result.value("user_error", false)) throw UserError(what);
  throw std::runtime_error(what);
}

json run_one(const TaskFunction& fn, const json& task) {
  try {
    return fn(task);
  } catch (const UserError& e) {
    return {{"error", e.what()}, {"user_error", true}};
  } catch (const std::exception& e) {
    return {{"error", e.what()}, {"user_error", false}};
  }
}

}  // namespace

std::vector<json> LocalPool::run(const std::vector<json>& tasks) {
  std::vector<json> results;
  for (const auto& t : tasks) {
    results.push_back(run_one(fn_, t));
    if (results.back().contains("error")) rethrow(results.back());
  }
  return results;
}

MpiPool::MpiPool() {
  if (mpi::size() < 2) throw std::logic_error("MpiPool needs an MPI job with workers");
}

MpiPool::~MpiPool() {
  for (int r = 1; r < mpi::size(); ++r) mpi::send(r, kTagTask, json{{"stop", true}}.dump());
}

int MpiPool::workers() const { return mpi::size() - 1; }

std::vector<json> MpiPool::run(const std::vector<json>& tasks) {
  std::vector<json> results(tasks.size());
  std::deque<int> idle;
  for (int r = 1; r < mpi::size(); ++r) idle.push_back(r);
  size_t next = 0, done = 0;
  while (done < tasks.size()) {
    while (next < tasks.size() && !idle.empty()) {
      mpi::send(idle.front(), kTagTask, json{{"id", next}, {"task", tasks[next]}}.dump());
      idle.pop_front();
      ++next;
    }
    int source = 0;
    json message = json::parse(mpi::recv_from_any(kTagResult, &source));
    results[message.at("id").get<size_t>()] = message.at("result");
    idle.push_back(source);
    ++done;
  }
  for (const auto& r : results) {
    if (r.contains("error")) rethrow(r);
  }
  return results;
}

void serve_tasks(const TaskFunction& fn) {
  for (;;) {
    json message = json::parse(mpi::recv(0, kTagTask));
    if (message.value("stop", false)) return;
    json result = run_one(fn, message.at("task"));
    mpi::send(0, kTagResult, json{{"id", message.at("id")}, {"result", result}}.dump());
  }
}

void check_workers(const std::string& expected) {
  std::string first_error;
  for (int i = 1; i < mpi::size(); ++i) {
    int source = 0;
    json hello = json::parse(mpi::recv_from_any(kTagHello, &source));
    if (!first_error.empty()) continue;
    if (hello.contains("error")) {
      first_error = fmt::format("worker rank {} could not set up the search: {}", source, hello["error"].get<std::string>());
    } else if (hello.value("fingerprint", "") != expected) {
      first_error = fmt::format("worker rank {} has a different model, data or binary than rank 0 ({} against {}); "
                                "every rank must see the same files and run the same autoprec",
                                source, hello.value("fingerprint", ""), expected);
    }
  }
  if (!first_error.empty()) fail("{}", first_error);
}

void send_hello(const std::string& fingerprint, const std::string& error) {
  mpi::send(0, kTagHello, (error.empty() ? json{{"fingerprint", fingerprint}} : json{{"error", error}}).dump());
}

}  // namespace autoprec::search
