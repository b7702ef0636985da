#include "search/journal.h"

#include <sqlite3.h>

#include <filesystem>
#include <stdexcept>

#include "util/error.h"

namespace autoprec::search {
namespace {

constexpr const char* kJournalFormat = "autoprec-journal";
constexpr int kJournalVersion = 1;
constexpr const char* kNow = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

[[noreturn]] void sql_fail(sqlite3* db, const std::string& path, const std::string& what) {
  fail("journal {}: {}: {}", path, what, db ? sqlite3_errmsg(db) : "out of memory");
}

// A prepared statement; columns and parameters are 1-based for bind, 0-based for column.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& path, const std::string& sql) : db_(db), path_(path) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) sql_fail(db, path, "preparing a query");
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
  Statement& bind(int i, double v) { return check(sqlite3_bind_double(stmt_, i, v)); }
  Statement& bind(int i, const std::string& v) {
    return check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  Statement& bind_blob(int i, const std::string& v) {
    return check(sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }

  // True while a row is available.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    if (rc == SQLITE_CONSTRAINT) throw InternalError(std::string("journal constraint: ") + sqlite3_errmsg(db_));
    sql_fail(db_, path_, "query failed");
  }
  void run() {
    while (step()) {
    }
  }

  int64_t integer(int c) const { return sqlite3_column_int64(stmt_, c); }
  double real(int c) const { return sqlite3_column_double(stmt_, c); }
  std::string text(int c) const {
    const unsigned char* p = sqlite3_column_text(stmt_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, c)))
             : std::string();
  }
  std::string blob(int c) const {
    const void* p = sqlite3_column_blob(stmt_, c);
    return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, c)))
             : std::string();
  }

 private:
  Statement& check(int rc) {
    if (rc != SQLITE_OK) sql_fail(db_, path_, "binding a value");
    return *this;
  }
  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const std::string& path, const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    std::string m = message ? message : sqlite3_errmsg(db);
    sqlite3_free(message);
    fail("journal {}: {}", path, m);
  }
}

// BEGIN IMMEDIATE ... COMMIT; rolls back when destroyed uncommitted.
class Transaction {
 public:
  Transaction(sqlite3* db, const std::string& path) : db_(db), path_(path) { exec(db, path, "BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    exec(db_, path_, "COMMIT");
    done_ = true;
  }

 private:
  sqlite3* db_;
  const std::string& path_;
  bool done_ = false;
};

const char* kSchema = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE run(id INTEGER PRIMARY KEY CHECK (id = 1), config TEXT NOT NULL, seed INTEGER NOT NULL,
                 created TEXT NOT NULL);
CREATE TABLE evaluations(id INTEGER PRIMARY KEY AUTOINCREMENT, episode INTEGER NOT NULL,
                         config_key TEXT NOT NULL UNIQUE, precision TEXT NOT NULL, metrics TEXT NOT NULL,
                         accuracy REAL, feasible INTEGER NOT NULL, seconds REAL NOT NULL, created TEXT NOT NULL);
CREATE TABLE checkpoints(episode INTEGER PRIMARY KEY, data BLOB NOT NULL, created TEXT NOT NULL);
CREATE TABLE front(kind TEXT NOT NULL CHECK (kind IN ('best', 'pareto')),
                   evaluation_id INTEGER NOT NULL REFERENCES evaluations(id), PRIMARY KEY(kind, evaluation_id));
)sql";

// A JSON column of the journal; a damaged value is the user's file, not a bug.
nlohmann::json parse_column(const std::string& text, const std::string& path, const char* what) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    fail("journal {} is damaged: its {} is not JSON; start a new output directory", path, what);
  }
}

const char* kEvaluationColumns =
    "id, episode, config_key, precision, metrics, accuracy, feasible, seconds, created";

EvaluationRecord read_evaluation(const Statement& s, const std::string& path) {
  EvaluationRecord r;
  r.id = s.integer(0);
  r.episode = s.integer(1);
  r.config_key = s.text(2);
  r.precision = s.text(3);
  r.metrics = parse_column(s.text(4), path, "evaluation metrics");
  r.accuracy = s.real(5);
  r.feasible = s.integer(6) != 0;
  r.seconds = s.real(7);
  r.created = s.text(8);
  return r;
}

std::string short_json(const nlohmann::json& j) {
  std::string s = j.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

}  // namespace

Journal::Journal(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

Journal::Journal(Journal&& other) noexcept : db_(other.db_), path_(std::move(other.path_)) { other.db_ = nullptr; }

Journal& Journal::operator=(Journal&& other) noexcept {
  if (this != &other) {
    sqlite3_close(db_);
    db_ = other.db_;
    path_ = std::move(other.path_);
    other.db_ = nullptr;
  }
  return *this;
}

Journal::~Journal() { sqlite3_close(db_); }

Journal Journal::open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("journal: cannot create directory {}: {}", dir, ec.message());
  std::string path = (std::filesystem::path(dir) / "journal.sqlite").string();
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  Journal journal(raw, path);  // owns raw from here on, even on failure
  if (rc != SQLITE_OK) sql_fail(raw, path, "cannot open");
  sqlite3_busy_timeout(raw, 10000);
  sqlite3_extended_result_codes(raw, 0);

  // The first read of the file: a file that is not SQLite fails here.
  int tables = 0;
  {
    sqlite3_stmt* stmt = nullptr;
    rc = sqlite3_prepare_v2(raw, "SELECT count(*) FROM sqlite_master", -1, &stmt, nullptr);
    if (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) tables = sqlite3_column_int(stmt, 0);
    rc = rc == SQLITE_OK ? sqlite3_errcode(raw) : rc;
    sqlite3_finalize(stmt);
    if (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT) {
      fail("{} is not an autoprec journal (not an SQLite database); choose another output directory", path);
    }
    if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) sql_fail(raw, path, "cannot read");
  }
  exec(raw, path, "PRAGMA journal_mode=WAL");
  exec(raw, path, "PRAGMA synchronous=FULL");
  exec(raw, path, "PRAGMA foreign_keys=ON");

  if (tables == 0) {
    Transaction t(raw, journal.path_);
    exec(raw, path, kSchema);
    Statement(raw, journal.path_, "INSERT INTO meta(key, value) VALUES ('format', ?1), ('version', ?2)")
        .bind(1, std::string(kJournalFormat))
        .bind(2, std::to_string(kJournalVersion))
        .run();
    t.commit();
    return journal;
  }
  std::string format, version;
  {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(raw, "SELECT key, value FROM meta WHERE key IN ('format', 'version')", -1, &stmt,
                           nullptr) != SQLITE_OK) {
      sqlite3_finalize(stmt);
      fail("{} is an SQLite database but not an autoprec journal (no meta table); choose another output directory",
           path);
    }
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      std::string key = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      std::string value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1));
      (key == "format" ? format : version) = value;
    }
    sqlite3_finalize(stmt);
  }
  if (format != kJournalFormat) {
    fail("{} is an SQLite database but not an autoprec journal (format '{}'); choose another output directory", path,
         format);
  }
  if (version != std::to_string(kJournalVersion)) {
    fail("{} is an autoprec journal of format version {}; this autoprec reads version {}", path, version, kJournalVersion);
  }
  return journal;
}

void Journal::record_run_config(const nlohmann::json& config, uint64_t seed) {
  Transaction t(db_, path_);
  Statement query(db_, path_, "SELECT config, seed FROM run WHERE id = 1");
  if (query.step()) {
    nlohmann::json old = parse_column(query.text(0), path_, "run configuration");
    uint64_t old_seed = static_cast<uint64_t>(query.integer(1));
    if (old != config) {
      std::string key = "(the whole configuration)";
      std::string before = short_json(old), after = short_json(config);
      if (old.is_object() && config.is_object()) {
        for (const auto& [k, v] : old.items()) {
          if (!config.contains(k) || config[k] != v) {
            key = k;
            before = short_json(v);
            after = config.contains(k) ? short_json(config[k]) : "absent";
            break;
          }
        }
        if (key == "(the whole configuration)") {
          for (const auto& [k, v] : config.items()) {
            if (!old.contains(k)) {
              key = k;
              before = "absent";
              after = short_json(v);
              break;
            }
          }
        }
      }
      fail("journal {} was written by a different run: key '{}' was {}, now {}; resume with the same configuration "
           "or start a new output directory",
           path_, key, before, after);
    }
    if (old_seed != seed) {
      fail("journal {} was written by a different run: seed was {}, now {}; resume with the same seed or start a new "
           "output directory",
           path_, old_seed, seed);
    }
    return;
  }
  Statement(db_, path_, std::string("INSERT INTO run(id, config, seed, created) VALUES (1, ?1, ?2, ") + kNow + ")")
      .bind(1, config.dump())
      .bind(2, static_cast<int64_t>(seed))
      .run();
  t.commit();
}

std::optional<RunRecord> Journal::run_config() const {
  Statement s(db_, path_, "SELECT config, seed, created FROM run WHERE id = 1");
  if (!s.step()) return std::nullopt;
  RunRecord r;
  r.config = parse_column(s.text(0), path_, "run configuration");
  r.seed = static_cast<uint64_t>(s.integer(1));
  r.created = s.text(2);
  return r;
}

std::optional<EvaluationRecord> Journal::find_evaluation(const std::string& config_key) const {
  Statement s(db_, path_, std::string("SELECT ") + kEvaluationColumns + " FROM evaluations WHERE config_key = ?1");
  s.bind(1, config_key);
  if (!s.step()) return std::nullopt;
  return read_evaluation(s, path_);
}

int64_t Journal::record_evaluation(const EvaluationRecord& record) {
  Transaction t(db_, path_);
  Statement(db_, path_,
            std::string("INSERT INTO evaluations(episode, config_key, precision, metrics, accuracy, feasible, "
                        "seconds, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ") +
                kNow + ")")
      .bind(1, record.episode)
      .bind(2, record.config_key)
      .bind(3, record.precision)
      .bind(4, record.metrics.dump())
      .bind(5, record.accuracy)
      .bind(6, static_cast<int64_t>(record.feasible ? 1 : 0))
      .bind(7, record.seconds)
      .run();
  int64_t id = sqlite3_last_insert_rowid(db_);
  t.commit();
  return id;
}

std::vector<EvaluationRecord> Journal::evaluations() const {
  Statement s(db_, path_, std::string("SELECT ") + kEvaluationColumns + " FROM evaluations ORDER BY id");
  std::vector<EvaluationRecord> out;
  while (s.step()) out.push_back(read_evaluation(s, path_));
  return out;
}

int64_t Journal::evaluation_count() const {
  Statement s(db_, path_, "SELECT count(*) FROM evaluations");
  s.step();
  return s.integer(0);
}

void Journal::save_checkpoint(int64_t episode, const std::string& data, int keep) {
  if (keep < 1) throw InternalError("save_checkpoint: keep must be at least 1");
  Transaction t(db_, path_);
  Statement(db_, path_,
            std::string("INSERT OR REPLACE INTO checkpoints(episode, data, created) VALUES (?1, ?2, ") + kNow + ")")
      .bind(1, episode)
      .bind_blob(2, data)
      .run();
  Statement(db_, path_,
            "DELETE FROM checkpoints WHERE episode NOT IN (SELECT episode FROM checkpoints ORDER BY episode DESC "
            "LIMIT ?1)")
      .bind(1, static_cast<int64_t>(keep))
      .run();
  t.commit();
}

std::optional<Checkpoint> Journal::latest_checkpoint() const {
  Statement s(db_, path_, "SELECT episode, data FROM checkpoints ORDER BY episode DESC LIMIT 1");
  if (!s.step()) return std::nullopt;
  return Checkpoint{s.integer(0), s.blob(1)};
}

void Journal::set_fronts(std::optional<int64_t> best_id, const std::vector<int64_t>& pareto_ids) {
  Transaction t(db_, path_);
  exec(db_, path_, "DELETE FROM front");
  auto insert = [&](const char* kind, int64_t id) {
    Statement(db_, path_, "INSERT INTO front(kind, evaluation_id) VALUES (?1, ?2)")
        .bind(1, std::string(kind))
        .bind(2, id)
        .run();
  };
  if (best_id) insert("best", *best_id);
  for (int64_t id : pareto_ids) insert("pareto", id);
  t.commit();
}

std::optional<EvaluationRecord> Journal::best() const {
  Statement s(db_, path_,
              std::string("SELECT ") + kEvaluationColumns +
                  " FROM evaluations WHERE id IN (SELECT evaluation_id FROM front WHERE kind = 'best')");
  if (!s.step()) return std::nullopt;
  return read_evaluation(s, path_);
}

std::vector<EvaluationRecord> Journal::pareto() const {
  Statement s(db_, path_,
              std::string("SELECT ") + kEvaluationColumns +
                  " FROM evaluations WHERE id IN (SELECT evaluation_id FROM front WHERE kind = 'pareto') ORDER BY id");
  std::vector<EvaluationRecord> out;
  while (s.step()) out.push_back(read_evaluation(s, path_));
  return out;
}

}  // namespace autoprec::search
