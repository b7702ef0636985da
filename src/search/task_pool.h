// Where a search's candidate evaluations run: in this process (LocalPool) or
// on the worker ranks of an MPI job (MpiPool, rank 0 only; the workers run
// serve_tasks()). A task and its result are JSON objects; a task is a pure
// function of itself and the run's seeded data, so the results do not depend
// on where or in which order the tasks ran. Protocol: docs/search.md,
// "Distributed search".
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace autoprec::search {

using TaskFunction = std::function<nlohmann::json(const nlohmann::json& task)>;

class TaskPool {
 public:
  virtual ~TaskPool() = default;
  // Results in task order. A task that throws on a worker comes back as
  // {"error": message, "user_error": bool}; run() rethrows the first one.
  virtual std::vector<nlohmann::json> run(const std::vector<nlohmann::json>& tasks) = 0;
  virtual int workers() const = 0;
};

class LocalPool : public TaskPool {
 public:
  explicit LocalPool(TaskFunction fn) : fn_(std::move(fn)) {}
  std::vector<nlohmann::json> run(const std::vector<nlohmann::json>& tasks) override;
  int workers() const override { return 1; }

 private:
  TaskFunction fn_;
};

// Fault handling of an MpiPool under `mpirun --enable-recovery`: each task
// handed to a worker is a lease of `timeout_s` seconds; a worker silent past
// its lease is taken as lost (never given work again, a late answer is
// dropped) and its task goes to another worker. A task lost `max_attempts`
// times, or lost with no worker left, is a UserError naming it; what was
// journaled before stays, and --resume continues.
struct Leases {
  bool enabled = false;
  double timeout_s = 3600;
  int max_attempts = 3;
};

// Rank 0 of an MPI job with at least one worker: hands each free worker the
// next task (dynamic scheduling) and collects the results. The destructor
// tells every worker to stop.
class MpiPool : public TaskPool {
 public:
  explicit MpiPool(Leases leases = {});
  ~MpiPool() override;
  std::vector<nlohmann::json> run(const std::vector<nlohmann::json>& tasks) override;
  int workers() const override;  // the workers not lost

 private:
  std::vector<nlohmann::json> run_with_leases(const std::vector<nlohmann::json>& tasks);
  Leases leases_;
  std::set<int> lost_;  // worker ranks taken as lost
};

// The coordinator's scoring of new candidates (keys in episode order): their
// staged scores in `pool`; staging decided here in episode order (a
// candidate is fine-tuned when staging is off or its staged score is within
// `margin` of the best so far, `best_staged`, which this updates; scores
// are compared as utilities: the score, or −score unless `higher_is_better`,
// and `best_staged` holds a utility, −infinity before any); the
// promising ones' short fine-tune and validation in `pool`. The same for any
// pool, worker count or completion order.
struct CandidateScore {
  double staged = 0;       // the run's metric on the staged subset
  double accuracy = 0;     // the metric on the validation set after the short fine-tune; `staged` when not promising
  bool promising = false;  // fine-tuned
  double seconds = 0;      // the tasks' time, summed
};
std::vector<CandidateScore> score_candidates(TaskPool& pool, const std::vector<std::string>& keys, bool staging,
                                             double margin, double& best_staged, bool higher_is_better = true);

// Message tags.
inline constexpr int kTagHello = 10;   // worker -> 0: {"fingerprint": ..} or {"error": ..}
inline constexpr int kTagTask = 11;    // 0 -> worker: {"id": i, "task": {...}} or {"stop": true}
inline constexpr int kTagResult = 12;  // worker -> 0: {"id": i, "result": {...}}

// A worker's loop: answers tasks with fn until rank 0 says stop.
void serve_tasks(const TaskFunction& fn);

// Rank 0: every worker's hello; UserError naming the first worker whose
// fingerprint differs from `expected` or whose set-up failed.
void check_workers(const std::string& expected);
// A worker: its hello (set-up succeeded with `fingerprint`, or failed with `error`).
void send_hello(const std::string& fingerprint, const std::string& error = "");

}  // namespace autoprec::search
