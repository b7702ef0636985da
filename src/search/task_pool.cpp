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

OrderedTasks::OrderedTasks(const std::vector<json>& tasks, const OnResult& on_result)
    : tasks_(tasks), on_result_(on_result) {
  results_.resize(tasks_.size());
  done_.assign(tasks_.size(), false);
  for (size_t i = 0; i < tasks_.size(); ++i) queue_.push_back(i);
}

size_t OrderedTasks::next_task() {
  const size_t i = queue_.front();
  queue_.pop_front();
  return i;
}

void OrderedTasks::complete(size_t i, json result) {
  results_[i] = std::move(result);
  done_[i] = true;
  while (delivered_ < results_.size() && done_[delivered_]) {
    const json& r = results_[delivered_];
    if (r.contains("error")) {
      if (!error_) error_ = r;
      queue_.clear();  // nothing more is handed out; the running tasks finish
    } else if (on_result_ && !error_) {
      std::vector<json> added = on_result_(delivered_, r);
      for (size_t k = added.size(); k-- > 0;) queue_.push_front(tasks_.size() + k);
      for (auto& t : added) {
        tasks_.push_back(std::move(t));
        results_.emplace_back();
        done_.push_back(false);
      }
    }
    ++delivered_;
  }
}

std::vector<json> OrderedTasks::results() {
  if (error_) rethrow(*error_);
  return std::move(results_);
}


std::vector<json> LocalPool::run(const std::vector<json>& tasks, const OnResult& on_result) {
  OrderedTasks run(tasks, on_result);
  while (run.has_queued()) {
    const size_t i = run.next_task();
    run.complete(i, run_one(fn_, run.task(i)));
  }
  return run.results();
}

MpiPool::MpiPool(Leases leases) : leases_(leases) {
  if (mpi::size() < 2) throw InternalError("MpiPool needs an MPI job with workers");
}

MpiPool::~MpiPool() {
  const std::string stop = json{{"stop", true}, {"rank_lost", mpi::rank_lost()}}.dump();
  for (int r = 1; r < mpi::size(); ++r) {
    if (!lost_.count(r)) mpi::send(r, kTagTask, stop);
  }
}

int MpiPool::workers() const { return mpi::size() - 1 - static_cast<int>(lost_.size()); }

void MpiPool::check_workers(const std::string& expected) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(leases_.timeout_s));
  std::string first_error;
  std::set<int> silent;
  for (int r = 1; r < mpi::size(); ++r) silent.insert(r);
  while (!silent.empty()) {
    int source = 0;
    std::optional<std::string> text;
    if (leases_.enabled) {
      text = mpi::recv_from_any_within(kTagHello, &source,
                                       std::max(0.0, std::chrono::duration<double>(deadline - Clock::now()).count()));
    } else {
      text = mpi::recv_from_any(kTagHello, &source);
    }
    if (!text) break;
    silent.erase(source);
    if (!first_error.empty()) continue;
    json hello = json::parse(*text);
    if (hello.contains("error")) {
      first_error = fmt::format("worker rank {} could not set up the search: {}", source, hello["error"].get<std::string>());
    } else if (hello.value("fingerprint", "") != expected) {
      first_error = fmt::format("worker rank {} has a different model, data or binary than rank 0 ({} against {}); "
                                "every rank must see the same files and run the same autoprec",
                                source, hello.value("fingerprint", ""), expected);
    }
  }
  if (!first_error.empty()) fail("{}", first_error);
  for (int r : silent) {
    spdlog::warn("worker rank {} did not say hello within {} s (parallel.worker_timeout): taken as lost", r,
                 leases_.timeout_s);
    lost_.insert(r);
    mpi::mark_rank_lost();
  }
  if (workers() == 0) fail("no worker rank set up within {} s (parallel.worker_timeout)", leases_.timeout_s);
}

std::vector<json> MpiPool::run(const std::vector<json>& tasks, const OnResult& on_result) {
  using Clock = std::chrono::steady_clock;
  struct Lease {
    size_t task = 0;
    Clock::time_point deadline;
  };
  OrderedTasks run(tasks, on_result);
  std::vector<int> attempts;
  std::deque<int> idle;
  for (int r = 1; r < mpi::size(); ++r) {
    if (!lost_.count(r)) idle.push_back(r);
  }
  std::map<int, Lease> leased;  // worker rank -> its task
  const auto lease = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(leases_.timeout_s));
  while (run.has_queued() || !leased.empty()) {
    while (run.has_queued() && !idle.empty()) {
      const size_t id = run.next_task();
      mpi::send(idle.front(), kTagTask, json{{"id", id}, {"task", run.task(id)}}.dump());
      leased[idle.front()] = {id, Clock::now() + lease};
      idle.pop_front();
    }
    if (leased.empty()) {
      fail("every worker rank was lost ({} of {}); what was journaled is kept: continue with --resume", lost_.size(),
           mpi::size() - 1);
    }
    int source = 0;
    std::optional<std::string> text;
    if (leases_.enabled) {
      Clock::time_point first = leased.begin()->second.deadline;
      for (const auto& [rank, l] : leased) first = std::min(first, l.deadline);
      text = mpi::recv_from_any_within(kTagResult, &source, std::chrono::duration<double>(first - Clock::now()).count());
    } else {
      text = mpi::recv_from_any(kTagResult, &source);
    }
    if (text) {
      json message = json::parse(*text);
      auto it = leased.find(source);
      if (lost_.count(source) || it == leased.end() || it->second.task != message.at("id").get<size_t>()) continue;
      const size_t id = it->second.task;
      leased.erase(it);
      idle.push_back(source);
      run.complete(id, std::move(message.at("result")));
      continue;
    }
    const auto now = Clock::now();
    for (auto it = leased.begin(); it != leased.end();) {
      if (it->second.deadline > now) {
        ++it;
        continue;
      }
      const size_t id = it->second.task;
      const int rank = it->first;
      it = leased.erase(it);
      lost_.insert(rank);
      mpi::mark_rank_lost();
      if (attempts.size() < run.size()) attempts.resize(run.size(), 0);
      const bool exhausted = ++attempts[id] >= leases_.max_attempts;
      spdlog::warn("worker rank {} did not answer within {} s (parallel.worker_timeout): taken as lost, its task {}",
                   rank, leases_.timeout_s, exhausted ? "is recorded as failed" : "goes to another worker");
      if (!exhausted) {
        run.requeue(id);
        continue;
      }
      const std::string why = fmt::format("its evaluation was lost with its worker {} time(s) (parallel.max_attempts)",
                                          attempts[id]);
      spdlog::warn("configuration {}: {}", run.task(id).value("key", "?"), why);
      run.complete(id, json{{"failed", why}});
    }
  }
  return run.results();
}

std::vector<CandidateScore> score_candidates(TaskPool& pool, const std::vector<std::string>& keys, bool staging,
                                             double margin, double& best_staged, bool higher_is_better) {
  std::vector<CandidateScore> scores(keys.size());
  if (keys.empty()) return scores;
  std::vector<json> tasks;
  for (const auto& key : keys) tasks.push_back({{"kind", staging ? "staged" : "both"}, {"key", key}});
  std::vector<size_t> full_of;  // added task keys.size() + t fine-tunes candidate full_of[t]
  // Results come in task order, so candidate j is staged against the staged scores before it in episode order.
  auto on_result = [&](size_t task, const json& result) -> std::vector<json> {
    CandidateScore& c = scores[task < keys.size() ? task : full_of.at(task - keys.size())];
    c.seconds += result.value("seconds", 0.0);
    if (result.contains("failed")) {
      c.failed = result.at("failed").get<std::string>();
      c.promising = false;
      return {};
    }
    if (task >= keys.size()) {
      c.accuracy = result.at("accuracy").get<double>();
      return {};
    }
    c.staged = result.at("cheap").get<double>();
    c.accuracy = staging ? c.staged : result.at("accuracy").get<double>();
    const double utility = higher_is_better ? c.staged : -c.staged;
    c.promising = !staging || utility >= best_staged - margin;
    best_staged = std::max(best_staged, utility);
    if (!staging || !c.promising) return {};
    full_of.push_back(task);
    return {json{{"kind", "full"}, {"key", keys[task]}}};
  };
  pool.run(tasks, on_result);
  return scores;
}

void serve_tasks(const TaskFunction& fn) {
  for (;;) {
    json message = json::parse(mpi::recv(0, kTagTask));
    if (message.value("stop", false)) {
      if (message.value("rank_lost", false)) mpi::mark_rank_lost();
      return;
    }
    json result = run_one(fn, message.at("task"));
    mpi::send(0, kTagResult, json{{"id", message.at("id")}, {"result", result}}.dump());
  }
}

void send_hello(const std::string& fingerprint, const std::string& error) {
  mpi::send(0, kTagHello, (error.empty() ? json{{"fingerprint", fingerprint}} : json{{"error", error}}).dump());
}

}  // namespace autoprec::search
