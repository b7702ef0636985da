#include "search/simulated_pool.h"
#include "util/error.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <queue>
#include <random>
#include <stdexcept>

namespace autoprec::search {

using nlohmann::json;

SimulatedPool::SimulatedPool(int workers, Surrogate surrogate) : workers_(workers), surrogate_(std::move(surrogate)) {
  if (workers < 1) throw InternalError("SimulatedPool needs at least one worker");
}

std::vector<json> SimulatedPool::run(const std::vector<json>& tasks, const OnResult& on_result) {
  // Events in virtual time: a free worker takes the next queued task; the
  // earliest running task finishes, its result is delivered in task order
  // (which may queue more), and its worker is free again.
  using Finish = std::pair<double, size_t>;  // (time, task)
  std::priority_queue<Finish, std::vector<Finish>, std::greater<Finish>> running;
  std::map<size_t, json> started;  // results of the running tasks
  OrderedTasks run(tasks, on_result);
  int idle = workers_;
  double now = clock_;
  while (run.has_queued() || !running.empty()) {
    while (idle > 0 && run.has_queued()) {
      const size_t i = run.next_task();
      auto [result, seconds] = surrogate_(run.task(i));
      result["seconds"] = seconds;
      started[i] = std::move(result);
      busy_ += seconds;
      running.push({now + seconds, i});
      --idle;
    }
    const auto [end, i] = running.top();
    running.pop();
    now = end;
    ++idle;
    json result = std::move(started.at(i));
    started.erase(i);
    run.complete(i, std::move(result));
  }
  clock_ = now;
  return run.results();
}

ScalingResult simulate_search(const std::vector<EvaluationRecord>& journal, int64_t episodes, int64_t batch,
                              int workers, double staged_margin, double coordinator_seconds, uint64_t seed) {
  if (journal.empty() || episodes < 1 || batch < 1 || workers < 1) {
    throw InternalError("simulate_search needs a journal and positive counts");
  }
  std::vector<double> staged_times, finetuned_times;
  for (const auto& r : journal) {
    (r.metrics.value("finetuned", true) ? finetuned_times : staged_times).push_back(r.seconds);
  }
  const double staged_mean =
      staged_times.empty() ? 0 : std::accumulate(staged_times.begin(), staged_times.end(), 0.0) / staged_times.size();
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, journal.size() - 1);
  // Each simulated candidate is a drawn journal record; tasks name it by index.
  std::vector<size_t> drawn;
  auto surrogate = [&](const json& task) -> std::pair<json, double> {
    const EvaluationRecord& r = journal[drawn.at(std::stoul(task.at("key").get<std::string>()))];
    const std::string kind = task.at("kind").get<std::string>();
    const double staged_seconds = staged_times.empty() ? 0 : staged_mean;
    if (kind == "staged") return {{{"cheap", r.metrics.value("cheap_top1", r.accuracy)}}, staged_seconds};
    const double full_seconds = std::max(0.0, r.seconds - (r.metrics.value("finetuned", true) ? staged_seconds : 0));
    if (kind == "full") return {{{"accuracy", r.accuracy}}, full_seconds};
    return {{{"cheap", r.metrics.value("cheap_top1", r.accuracy)}, {"accuracy", r.accuracy}}, r.seconds};
  };
  SimulatedPool pool(workers, surrogate);
  ScalingResult out;
  out.workers = workers;
  out.batch = batch;
  out.episodes = episodes;
  double best_staged = -1;
  for (int64_t begin = 0; begin < episodes; begin += batch) {
    const int64_t end = std::min(episodes, begin + batch);
    std::vector<std::string> keys;
    for (int64_t e = begin; e < end; ++e) {
      keys.push_back(std::to_string(drawn.size()));
      drawn.push_back(pick(rng));
    }
    pool.advance(coordinator_seconds * static_cast<double>(end - begin));
    for (const auto& s : score_candidates(pool, keys, !staged_times.empty(), staged_margin, best_staged)) {
      out.finetuned += s.promising;
    }
  }
  out.makespan_seconds = pool.clock();
  out.utilisation = pool.utilisation();
  return out;
}

}  // namespace autoprec::search
