// The run journal: one SQLite database per search run, DIR/journal.sqlite,
// recording the run configuration, every evaluated precision configuration
// with its metrics and timings, agent checkpoints, and the current best and
// Pareto sets. It is what makes a search resumable after any interruption
// (kill -9 included): the database runs in WAL mode with synchronous=FULL and
// every write is one transaction, so a write is either entirely on disk or
// absent, and a configuration whose evaluation was recorded is never
// evaluated again (find_evaluation()).
//
// Schema (format "autoprec-journal", version 1; docs/search.md):
//   meta(key TEXT PRIMARY KEY, value TEXT)              format, version
//   run(id = 1, config TEXT json, seed INTEGER, created TEXT)
//   evaluations(id INTEGER PRIMARY KEY AUTOINCREMENT, episode INTEGER,
//               config_key TEXT UNIQUE, precision TEXT (YAML), metrics TEXT
//               (json), accuracy REAL, feasible INTEGER 0/1, seconds REAL,
//               created TEXT)
//   checkpoints(episode INTEGER PRIMARY KEY, data BLOB, created TEXT)
//   front(kind TEXT 'best'|'pareto', evaluation_id INTEGER, PRIMARY KEY both)
// `created` is UTC ISO 8601 with milliseconds ("2024-05-01T12:00:00.123Z").
//
// One process writes a journal at a time (a second writer waits up to 10 s
// for the lock, then fails); readers may look at any time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

struct sqlite3;

namespace autoprec::search {

struct EvaluationRecord {
  int64_t id = 0;           // assigned by record_evaluation (1, 2, ... in recording order)
  int64_t episode = 0;      // search episode that produced the configuration
  std::string config_key;   // search/config_key.h; unique within the journal
  std::string precision;    // the precision configuration, YAML text (quant::to_yaml)
  nlohmann::json metrics = nlohmann::json::object();  // every measured metric and cost
  double accuracy = 0;      // the accuracy the search ranks by (fraction in [0,1])
  bool feasible = false;    // meets every hard constraint
  double seconds = 0;       // wall time the evaluation took
  std::string created;      // set by the journal
};

struct RunRecord {
  nlohmann::json config;  // the run configuration as recorded
  uint64_t seed = 0;
  std::string created;
};

struct Checkpoint {
  int64_t episode = 0;  // the episode the checkpoint was taken after
  std::string data;     // opaque bytes (e.g. DdpgAgent::save_bytes())
};

class Journal {
 public:
  // Opens DIR/journal.sqlite, creating DIR and the database when absent.
  // UserError when the file exists but is not an SQLite database, is an
  // SQLite database without the journal's schema, has a newer format
  // version, or cannot be opened or written.
  static Journal open(const std::string& dir);

  Journal(Journal&& other) noexcept;
  Journal& operator=(Journal&& other) noexcept;
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;
  ~Journal();

  const std::string& path() const { return path_; }

  // First call on a fresh journal stores `config` (any JSON; pass the keys
  // that must match for a resume to make sense) and `seed`. On a journal that
  // already has a run configuration, does nothing when both are equal and
  // throws UserError naming the first differing top-level key otherwise
  // ("... was written by a different run: key 'episodes' was 600, now 300").
  void record_run_config(const nlohmann::json& config, uint64_t seed);
  std::optional<RunRecord> run_config() const;

  // The evaluation recorded under `config_key`, if any.
  std::optional<EvaluationRecord> find_evaluation(const std::string& config_key) const;

  // Stores `record` (its id and created are ignored) and returns the new id.
  // std::logic_error if its config_key is already recorded: the caller must
  // check find_evaluation() first, a configuration is never evaluated twice.
  int64_t record_evaluation(const EvaluationRecord& record);

  // Every recorded evaluation, in id order.
  std::vector<EvaluationRecord> evaluations() const;
  int64_t evaluation_count() const;

  // Stores `data` as the checkpoint after `episode` (replacing one of the
  // same episode) and removes all but the newest `keep` checkpoints (keep >= 1).
  void save_checkpoint(int64_t episode, const std::string& data, int keep = 2);
  // The checkpoint with the highest episode, if any.
  std::optional<Checkpoint> latest_checkpoint() const;

  // Replaces the best and Pareto sets in one transaction. Every id must be a
  // recorded evaluation (std::logic_error otherwise).
  void set_fronts(std::optional<int64_t> best_id, const std::vector<int64_t>& pareto_ids);
  std::optional<EvaluationRecord> best() const;
  std::vector<EvaluationRecord> pareto() const;  // in id order

 private:
  Journal(sqlite3* db, std::string path);
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace autoprec::search
