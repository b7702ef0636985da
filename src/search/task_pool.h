// Where a search's candidate evaluations run: in this process (LocalPool) or
// on the worker ranks of an MPI job (MpiPool, rank 0 only; the workers run
// serve_tasks()). A task and its result are JSON objects; a task is a pure
// function of itself and the run's seeded data, so the results do not depend
// on where or in which order the tasks ran. Protocol: docs/search.md,
// "Distributed search".
#pragma once

#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace autoprec::search {

using TaskFunction = std::function<nlohmann::json(const nlohmann::json& task)>;
// Called with each task's result in task order: result i only after results
// 0..i-1, whatever order the tasks finished in. Returns tasks to add; they
// are numbered after every task so far and handed out before the queued ones.
using OnResult = std::function<std::vector<nlohmann::json>(size_t task, const nlohmann::json& result)>;

class TaskPool {
 public:
  virtual ~TaskPool() = default;
  // The results of `tasks` and of every task `on_result` added, in task
  // order. A task that throws comes back as {"error": message, "user_error":
  // bool}: nothing more is handed out, the running tasks finish, and run()
  // rethrows it. Under MpiPool's leases a task lost max_attempts times comes
  // back as {"failed": message} and is delivered like any result.
  virtual std::vector<nlohmann::json> run(const std::vector<nlohmann::json>& tasks,
                                          const OnResult& on_result = nullptr) = 0;
  virtual int workers() const = 0;
};

// What every pool shares: the tasks (growing as on_result adds), the queue of
// tasks not handed out (added ones first), in-order delivery to on_result,
// and the first error. A pool takes next_task() while has_queued(), runs it
// anywhere, and gives its result to complete().
class OrderedTasks {
 public:
  OrderedTasks(const std::vector<nlohmann::json>& tasks, const OnResult& on_result);
  bool has_queued() const { return !queue_.empty(); }
  size_t next_task();
  void requeue(size_t i) { queue_.push_front(i); }  // a task lost with its worker: next out
  const nlohmann::json& task(size_t i) const { return tasks_[i]; }
  size_t size() const { return tasks_.size(); }
  // Stores task i's result and delivers every result now ready in order; an
  // error result empties the queue.
  void complete(size_t i, nlohmann::json result);
  // Every result in task order; rethrows the first error.
  std::vector<nlohmann::json> results();

 private:
  std::vector<nlohmann::json> tasks_;
  const OnResult& on_result_;
  std::vector<nlohmann::json> results_;
  std::vector<bool> done_;
  std::deque<size_t> queue_;
  size_t delivered_ = 0;
  std::optional<nlohmann::json> error_;
};

class LocalPool : public TaskPool {
 public:
  explicit LocalPool(TaskFunction fn) : fn_(std::move(fn)) {}
  std::vector<nlohmann::json> run(const std::vector<nlohmann::json>& tasks, const OnResult& on_result = nullptr) override;
  int workers() const override { return 1; }

 private:
  TaskFunction fn_;
};

// Fault handling of an MpiPool under `mpirun --enable-recovery`: each task
// handed to a worker is a lease of `timeout_s` seconds, and so is the wait
// for a worker's hello; a worker silent past its lease is taken as lost
// (never given work again, a late answer is dropped) and its task goes to
// another worker. A task lost `max_attempts` times comes back as
// {"failed": ...} (the search journals its configuration as failed); a task
// lost with no worker left is a UserError, and --resume continues.
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
  // Every worker's hello: UserError naming the first worker whose
  // fingerprint differs from `expected` or whose set-up failed. Under leases
  // a worker silent for a lease is taken as lost (UserError when all are).
  void check_workers(const std::string& expected);
  std::vector<nlohmann::json> run(const std::vector<nlohmann::json>& tasks, const OnResult& on_result = nullptr) override;
  int workers() const override;  // the workers not lost

 private:
  Leases leases_;
  std::set<int> lost_;  // worker ranks taken as lost
};

// The coordinator's scoring of new candidates (keys in episode order): their
// staged scores in `pool`; staging decided here in episode order (a
// candidate is fine-tuned when staging is off or its staged score is within
// `margin` of the best so far, `best_staged`, which this updates; scores
// are compared as utilities: the score, or −score unless `higher_is_better`,
// and `best_staged` holds a utility, −infinity before any); the
// promising ones' short fine-tune and validation in `pool`, each handed out
// as soon as the staged scores before it are known. The same for any pool,
// worker count or completion order.
struct CandidateScore {
  double staged = 0;       // the run's metric on the staged subset
  double accuracy = 0;     // the metric on the validation set after the short fine-tune; `staged` when not promising
  bool promising = false;  // fine-tuned
  double seconds = 0;      // the tasks' time, summed
  std::string failed;      // why its evaluation failed (leases: lost max_attempts times); empty when it did not
};
std::vector<CandidateScore> score_candidates(TaskPool& pool, const std::vector<std::string>& keys, bool staging,
                                             double margin, double& best_staged, bool higher_is_better = true);

// Message tags.
inline constexpr int kTagHello = 10;   // worker -> 0: {"fingerprint": ..} or {"error": ..}
inline constexpr int kTagTask = 11;    // 0 -> worker: {"id": i, "task": {...}} or {"stop": true}
inline constexpr int kTagResult = 12;  // worker -> 0: {"id": i, "result": {...}}

// A worker's loop: answers tasks with fn until rank 0 says stop.
void serve_tasks(const TaskFunction& fn);

// A worker: its hello (set-up succeeded with `fingerprint`, or failed with `error`).
void send_hello(const std::string& fingerprint, const std::string& error = "");

}  // namespace autoprec::search
