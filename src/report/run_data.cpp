#include "report/run_data.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace autoprec::report {
namespace fs = std::filesystem;
namespace {

nlohmann::json read_json_if_present(const fs::path& path) {
  if (!fs::exists(path)) return nullptr;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    fail("{} is not valid JSON ({}); the run directory is damaged", path.string(), e.what());
  }
}

}  // namespace

RunData load_run(const std::string& dir) {
  const fs::path root(dir);
  if (!fs::is_directory(root)) fail("{} is not a directory; give a search run directory (its --out)", dir);
  if (!fs::exists(root / "journal.sqlite")) {
    fail("{} is not a search run directory: it has no journal.sqlite (autoprec search --out DIR writes one)", dir);
  }
  RunData run;
  run.dir = dir;
  run.label = fs::weakly_canonical(root).filename().string();
  {
    search::Journal journal = search::Journal::open(dir);
    auto rc = journal.run_config();
    if (!rc) fail("{} is not a search run directory: its journal has no run configuration", dir);
    run.config = rc->config;
    run.seed = rc->seed;
    run.created = rc->created;
    run.evaluations = journal.evaluations();
    if (auto best = journal.best()) run.best_id = best->id;
    for (const auto& p : journal.pareto()) run.pareto_ids.push_back(p.id);
  }
  run.result = read_json_if_present(root / "result.json");
  run.sensitivity = read_json_if_present(root / "sensitivity.json");
  run.outcomes = read_json_if_present(root / "outcomes.json");
  run.deploy = read_json_if_present(root / "bundle" / "deploy.json");
  if (fs::exists(root / "model.onnx")) {
    run.model_path = (root / "model.onnx").string();
  } else if (run.config.contains("model") && run.config["model"].is_string() &&
             fs::exists(run.config["model"].get<std::string>())) {
    run.model_path = run.config["model"].get<std::string>();
  }
  if (run.evaluations.empty()) run.missing.push_back("The journal has no evaluated configuration yet.");
  if (run.result.is_null()) {
    run.missing.push_back(
        "The search has not finished (no result.json): shown are the evaluations journaled so far; the final "
        "fine-tune, test accuracy, constraints and deployment are missing. autoprec search --resume " + dir +
        " continues it.");
  } else if (!run.result.contains("deploy") || !run.result["deploy"].contains("bundle")) {
    std::string why = "the run configuration says deploy: false";
    if (run.result.contains("deploy") && run.result["deploy"].contains("skipped")) {
      why = run.result["deploy"]["skipped"].get<std::string>();
    }
    run.missing.push_back("The result was not deployed (" + why + "): no runtime accuracy, file size or latency.");
  }
  if (run.sensitivity.is_null()) {
    run.missing.push_back("No sensitivity table (sensitivity.json): per-layer sensitivity and reasons are missing.");
  }
  if (!run.result.is_null() && run.outcomes.is_null()) {
    run.missing.push_back("No per-example test outcomes (outcomes.json): accuracies are shown without intervals.");
  }
  if (run.model_path.empty()) run.missing.push_back("The model file is not found: per-layer cost shares are missing.");
  return run;
}

}  // namespace autoprec::report
