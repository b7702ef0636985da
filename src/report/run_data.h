// What a search run directory holds, read for the report: the journal
// (always), and whatever else the run got to write. A run that was
// interrupted, not deployed or infeasible still loads; `missing` says in
// words what is absent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "search/journal.h"

namespace autoprec::report {

struct RunData {
  std::string dir;    // as given
  std::string label;  // the directory's name, for legends
  nlohmann::json config;  // the journal's run configuration
  uint64_t seed = 0;
  std::string created;    // when the run started (UTC ISO 8601)
  std::vector<search::EvaluationRecord> evaluations;  // id order
  std::optional<int64_t> best_id;
  std::vector<int64_t> pareto_ids;
  nlohmann::json result;       // DIR/result.json; null when absent
  nlohmann::json sensitivity;  // DIR/sensitivity.json; null when absent
  nlohmann::json outcomes;     // DIR/outcomes.json; null when absent
  nlohmann::json deploy;       // DIR/bundle/deploy.json; null when absent
  std::string model_path;      // DIR/model.onnx when present, else the run's source model when it exists, else ""
  std::vector<std::string> missing;  // one sentence per absent part
};

// Reads DIR. UserError when DIR is not a search run directory (no
// journal.sqlite, or a file that is not a journal) or a JSON file in it is
// corrupt. Never writes to DIR.
RunData load_run(const std::string& dir);

}  // namespace autoprec::report
