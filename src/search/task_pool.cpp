#include "search/task_pool.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "util/error.h"
#include "util/mpi.h"

namespace autoprec::search {

using nlohmann::json;

namespace {

[[noreturn]] void rethrow(const json& result) {
  const std::string what = result.at("error").get<std::string>();
  if (result.value("user_error", false)) throw UserError(what);
  throw InternalError(what);
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

MpiPool::MpiPool(Leases leases) : leases_(leases) {
  if (mpi::size() < 2) throw InternalError("MpiPool needs an MPI job with workers");
}

MpiPool::~MpiPool() {
  for (int r = 1; r < mpi::size(); ++r) mpi::send(r, kTagTask, json{{"stop", true}}.dump());
}

int MpiPool::workers() const { return mpi::size() - 1 - static_cast<int>(lost_.size()); }

std::vector<json> MpiPool::run_with_leases(const std::vector<json>& tasks) {
  using Clock = std::chrono::steady_clock;
  struct Lease {
    size_t task = 0;
    Clock::time_point deadline;
  };
  std::vector<json> results(tasks.size());
  std::vector<int> attempts(tasks.size(), 0);
  std::deque<size_t> queue;
  for (size_t i = 0; i < tasks.size(); ++i) queue.push_back(i);
  std::deque<int> idle;
  for (int r = 1; r < mpi::size(); ++r) {
    if (!lost_.count(r)) idle.push_back(r);
  }
  std::map<int, Lease> leased;  // worker rank -> its task
  size_t done = 0;
  const auto lease = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(leases_.timeout_s));
  while (done < tasks.size()) {
    while (!queue.empty() && !idle.empty()) {
      const size_t id = queue.front();
      queue.pop_front();
      mpi::send(idle.front(), kTagTask, json{{"id", id}, {"task", tasks[id]}}.dump());
      leased[idle.front()] = {id, Clock::now() + lease};
      idle.pop_front();
    }
    if (leased.empty()) {
      fail("every worker rank was lost ({} of {}); what was journaled is kept: continue with --resume", lost_.size(),
           mpi::size() - 1);
    }
    Clock::time_point first = leased.begin()->second.deadline;
    for (const auto& [rank, l] : leased) first = std::min(first, l.deadline);
    int source = 0;
    const double wait = std::chrono::duration<double>(first - Clock::now()).count();
    if (std::optional<std::string> text = mpi::recv_from_any_within(kTagResult, &source, wait)) {
      json message = json::parse(*text);
      auto it = leased.find(source);
      if (lost_.count(source) || it == leased.end() || it->second.task != message.at("id").get<size_t>()) continue;
      results[it->second.task] = message.at("result");
      leased.erase(it);
      idle.push_back(source);
      ++done;
      continue;
    }
    const auto now = Clock::now();
    for (auto it = leased.begin(); it != leased.end();) {
      if (it->second.deadline > now) {
        ++it;
        continue;
      }
      const size_t id = it->second.task;
      lost_.insert(it->first);
      ++attempts[id];
      spdlog::warn("worker rank {} did not answer within {} s (parallel.worker_timeout): taken as lost, its task {}",
                   it->first, leases_.timeout_s,
                   attempts[id] < leases_.max_attempts ? "goes to another worker" : "has failed too often");
      if (attempts[id] >= leases_.max_attempts) {
        fail("the evaluation of configuration {} was lost with its worker {} time(s) (parallel.max_attempts); what "
             "was journaled is kept: continue with --resume",
             tasks[id].value("key", "?"), attempts[id]);
      }
      queue.push_front(id);
      it = leased.erase(it);
    }
  }
  for (const auto& r : results) {
    if (r.contains("error")) rethrow(r);
  }
  return results;
}

std::vector<json> MpiPool::run(const std::vector<json>& tasks) {
  if (leases_.enabled) return run_with_leases(tasks);
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

std::vector<CandidateScore> score_candidates(TaskPool& pool, const std::vector<std::string>& keys, bool staging,
                                             double margin, double& best_staged, bool higher_is_better) {
  std::vector<CandidateScore> scores(keys.size());
  if (keys.empty()) return scores;
  std::vector<json> tasks;
  for (const auto& key : keys) tasks.push_back({{"kind", staging ? "staged" : "both"}, {"key", key}});
  const std::vector<json> first = pool.run(tasks);
  tasks.clear();
  std::vector<size_t> full_of;
  for (size_t j = 0; j < keys.size(); ++j) {
    CandidateScore& c = scores[j];
    c.staged = first[j].at("cheap").get<double>();
    c.accuracy = staging ? c.staged : first[j].at("accuracy").get<double>();
    c.seconds = first[j].at("seconds").get<double>();
    const double utility = higher_is_better ? c.staged : -c.staged;
    c.promising = !staging || utility >= best_staged - margin;
    best_staged = std::max(best_staged, utility);
    if (staging && c.promising) {
      tasks.push_back({{"kind", "full"}, {"key", keys[j]}});
      full_of.push_back(j);
    }
  }
  if (tasks.empty()) return scores;
  const std::vector<json> second = pool.run(tasks);
  for (size_t t = 0; t < second.size(); ++t) {
    CandidateScore& c = scores[full_of[t]];
    c.accuracy = second[t].at("accuracy").get<double>();
    c.seconds += second[t].at("seconds").get<double>();
  }
  return scores;
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
