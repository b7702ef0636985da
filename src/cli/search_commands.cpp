// search: the reinforcement-learning precision search and its baselines.
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "search/run_config.h"
#include "runtime/runner.h"
#include "search/searcher.h"
#include "util/file.h"
#include "util/error.h"

namespace autoprec::cli {
namespace {

struct SearchCliOptions {
  std::string config;
  std::string model, data, target, agent, out, resume;
  std::vector<std::string> constraints;
  int64_t episodes = 0;
  int64_t seed = -1;
  bool json = false;
};

void print_search_summary(const nlohmann::json& result);

// The end of a search: `autoprec deploy` of its result into OUT/bundle unless
// the run configuration says `deploy: false`. Records what happened in
// result["deploy"] and result.json; returns deploy.json (null when skipped).
nlohmann::json deploy_result(nlohmann::json& result, bool quiet) {
  if (!result.value("deploy_requested", true)) return nullptr;
  const std::filesystem::path dir = std::filesystem::path(result["outputs"]["best"].get<std::string>()).parent_path();
  nlohmann::json bundle;
  std::string why;
  if (!runtime::ort_available(&why)) {
    spdlog::warn("not deploying the result: ONNX Runtime is not available ({}); scripts/setup installs it", why);
    result["deploy"] = {{"skipped", "ONNX Runtime is not available: " + why}};
  } else {
    DeployCliOptions d;
    d.model = result["outputs"]["model"].get<std::string>();
    d.data.spec = result["data"].get<std::string>();
    d.quant.precision = result["outputs"]["best"].get<std::string>();
    d.out = (dir / "bundle").string();
    d.json = quiet;
    bundle = deploy_bundle(d);
    result["deploy"] = {{"bundle", d.out},
                        {"report", d.out + "/deploy.json"},
                        {"verified", bundle["verification"]["passed"]},
                        {"ort_top1", bundle["verification"]["ort_top1"]},
                        {"onnx_bytes", bundle["size"]["onnx_bytes"]},
                        {"quantized_ms", bundle["latency"]["quantized_ms"]},
                        {"fp32_ms", bundle["latency"]["fp32_ms"]}};
  }
  write_file_atomically((dir / "result.json").string(), result.dump(2) + "\n", "search result");
  return bundle;
}

int run_search_command(const SearchCliOptions& o) {
  search::RunConfig config;
  if (!o.config.empty()) config = search::load_run_config(o.config);
  if (!o.model.empty()) config.model = o.model;
  if (!o.data.empty()) config.data = o.data;
  if (!o.target.empty()) config.target = o.target;
  if (!o.agent.empty()) config.agent = o.agent;
  if (!o.out.empty()) config.out = o.out;
  if (!o.constraints.empty()) config.constraints = o.constraints;
  if (o.episodes > 0) config.episodes = o.episodes;
  if (o.seed >= 0) config.seed = static_cast<uint64_t>(o.seed);
  search::SearchOptions options;
  options.quiet = o.json;
  if (!o.resume.empty()) {
    options.resume = true;
    config.out = o.resume;
  }
  nlohmann::json result = search::run_search(config, options);
  nlohmann::json bundle = deploy_result(result, o.json);
  if (o.json) {
    print_json(result);
  } else {
    print_search_summary(result);
    if (!bundle.is_null()) {
      fmt::print("\n");
      print_deploy_summary(bundle);
    }
  }
  if (!bundle.is_null() && !bundle["verification"]["passed"].get<bool>()) {
    fail("the search result does not verify in ONNX Runtime; see {}", result["deploy"]["report"].get<std::string>());
  }
  return 0;
}

void print_search_summary(const nlohmann::json& result) {
  const auto& costs = result["final"]["costs"];
  fmt::print("test top-1: FP32 {:.2f}%, searched configuration {:.2f}% ({} agent, {} evaluations, {:.0f} s)\n",
             100 * result["fp32"]["test_top1"].get<double>(), 100 * result["final"]["test_top1"].get<double>(),
             result["agent"].get<std::string>(), result["evaluations"].get<int64_t>(),
             result["search_seconds"].get<double>());
  fmt::print("weight memory {} ({:.1f}% of FP32)", human_bits(costs["weight_bits"].get<double>()),
             100 * costs["weight_bits"].get<double>() / costs["fp32_weight_bits"].get<double>());
  if (costs.contains("latency_ms")) fmt::print(", latency {:.4f} ms", costs["latency_ms"].get<double>());
  if (costs.contains("energy_mj")) fmt::print(", energy {:.4f} mJ", costs["energy_mj"].get<double>());
  fmt::print("\n");
  for (const auto& c : result["constraints"]) {
    fmt::print("  {} {}: {}\n", c["holds"].get<bool>() ? "meets" : "VIOLATES", c["constraint"].get<std::string>(),
               c["text"].get<std::string>());
  }
  if (result.contains("infeasible")) fmt::print("no configuration met every constraint: {}\n", result["infeasible"].get<std::string>());
  fmt::print("results in {}: best.yaml, model.onnx, result.json, pareto.json, journal.sqlite{}\n",
             result["outputs"]["best"].get<std::string>().substr(0, result["outputs"]["best"].get<std::string>().size() - 10),
             result.contains("deploy") && result["deploy"].contains("bundle") ? ", bundle/" : "");
}

}  // namespace

void register_search_commands(CLI::App& app, Runner& runner) {
  static SearchCliOptions o;
  CLI::App* cmd = app.add_subcommand("search", "Search per-layer precision under device constraints (RL and baselines)");
  cmd->add_option("--config", o.config, "Run configuration (YAML); flags override it");
  cmd->add_option("--model", o.model, "ONNX model");
  cmd->add_option("--data", o.data, "Dataset (idx:DIR or npy:IMAGES.npy,LABELS.npy)");
  cmd->add_option("--target", o.target, "Target profile: built-in name or YAML path (default generic)");
  cmd->add_option("--constraint", o.constraints, "METRIC<=VALUE, e.g. weight_memory<=0.125*fp32 (repeatable)");
  cmd->add_option("--agent", o.agent, "ddpg (default), ilp, greedy, random or uniform");
  cmd->add_option("--episodes", o.episodes, "Episodes (ddpg, random)")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o.seed, "Seed of every random choice (default 0)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--out", o.out, "Output directory");
  cmd->add_option("--resume", o.resume, "Continue the interrupted search in this directory");
  cmd->add_flag("--json", o.json, "Print result.json as one JSON object");
  cmd->callback([&runner] { runner = [] { return run_search_command(o); }; });
}

}  // namespace autoprec::cli
