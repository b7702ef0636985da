// The coordinator's scaling by simulation (docs/search.md, "Distributed
// search"): score_candidates over SimulatedPool with task times and results
// drawn from a real run's journal, for 1 to 1024 workers at a fixed batch
// and at batch = workers and 4 x workers. Prints a markdown table.
// Usage: search_scaling RUN_DIR [EPISODES=600] [COORDINATOR_SECONDS_PER_EPISODE=0.05] [SEED=0]
#include <algorithm>
#include <cstdio>
#include <vector>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "search/journal.h"
#include "search/simulated_pool.h"

int main(int argc, char** argv) {
  using namespace autoprec::search;
  if (argc < 2) {
    std::fprintf(stderr, "usage: search_scaling RUN_DIR [EPISODES] [COORDINATOR_SECONDS] [SEED]\n");
    return 2;
  }
  const int64_t episodes = argc > 2 ? std::atoll(argv[2]) : 600;
  const double coordinator = argc > 3 ? std::atof(argv[3]) : 0.05;
  const uint64_t seed = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 0;
  Journal journal = Journal::open(argv[1]);
  const auto records = journal.evaluations();
  double margin = 0.03;
  if (auto run = journal.run_config()) margin = run->config.value("staged", nlohmann::json::object()).value("margin", 0.03);
  int64_t finetuned = 0;
  double seconds = 0;
  for (const auto& r : records) {
    finetuned += r.metrics.value("finetuned", true);
    seconds += r.seconds;
  }
  fmt::print("journal {}: {} evaluations ({} fine-tuned), {:.1f} s each on average; {} episodes simulated, "
             "coordinator {:.3f} s per episode, staging margin {}, seed {}\n\n",
             argv[1], records.size(), finetuned, seconds / records.size(), episodes, coordinator, margin, seed);
  fmt::print("| workers | batch K | makespan s | speed-up vs 1 worker | efficiency | worker utilisation |\n");
  fmt::print("|---|---|---|---|---|---|\n");
  const double one = simulate_search(records, episodes, 1, 1, margin, coordinator, seed).makespan_seconds;
  for (int w = 1; w <= 1024; w *= 2) {
    std::vector<int64_t> batches = {16};
    for (int64_t k : {int64_t{w}, int64_t{4} * w}) {
      if (std::find(batches.begin(), batches.end(), k) == batches.end()) batches.push_back(k);
    }
    for (int64_t k : batches) {
      ScalingResult r = simulate_search(records, episodes, k, w, margin, coordinator, seed);
      fmt::print("| {} | {} | {:.0f} | {:.2f} | {:.0f}% | {:.0f}% |\n", w, k, r.makespan_seconds, one / r.makespan_seconds,
                 100 * one / r.makespan_seconds / w, 100 * r.utilisation);
    }
  }
  return 0;
}
