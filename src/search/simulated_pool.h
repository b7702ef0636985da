// The coordinator's scaling without a cluster: a TaskPool of W virtual
// workers on a virtual clock. A surrogate gives each task's result and
// duration; run() hands the tasks, in order, to the earliest-free worker (what
// MpiPool's dynamic scheduling does; a task added by on_result goes before
// the queued ones) and advances the clock by the batch's makespan. score_candidates() runs over it unchanged.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "search/journal.h"
#include "search/task_pool.h"

namespace autoprec::search {

class SimulatedPool : public TaskPool {
 public:
  // (result, seconds) of a task.
  using Surrogate = std::function<std::pair<nlohmann::json, double>(const nlohmann::json& task)>;
  SimulatedPool(int workers, Surrogate surrogate);
  std::vector<nlohmann::json> run(const std::vector<nlohmann::json>& tasks, const OnResult& on_result = nullptr) override;
  int workers() const override { return workers_; }
  // Time the coordinator spends alone (proposals, learning, costs): every worker waits.
  void advance(double seconds) { clock_ += seconds; }
  double clock() const { return clock_; }              // virtual seconds since the start
  double busy_seconds() const { return busy_; }        // summed task time
  double utilisation() const { return clock_ > 0 ? busy_ / (clock_ * workers_) : 0; }

 private:
  int workers_;
  Surrogate surrogate_;
  double clock_ = 0;
  double busy_ = 0;
};

struct ScalingResult {
  int workers = 0;
  int64_t batch = 0;
  int64_t episodes = 0;
  double makespan_seconds = 0;
  double utilisation = 0;  // of the workers, in [0, 1]
  int64_t finetuned = 0;   // candidates the staging let through
};

// A search of `episodes` episodes in batches of `batch` on `workers` virtual
// workers, with candidates drawn (seeded) from `journal`: a staged task
// takes a staged-only record's seconds, a fine-tune a fine-tuned record's
// seconds minus the mean staged time; staged scores and accuracies are the
// drawn record's. `coordinator_seconds` per episode is rank 0's own work.
// std::invalid_argument for an empty journal or non-positive counts.
ScalingResult simulate_search(const std::vector<EvaluationRecord>& journal, int64_t episodes, int64_t batch,
                              int workers, double staged_margin, double coordinator_seconds, uint64_t seed);

}  // namespace autoprec::search
