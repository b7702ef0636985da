// search: the reinforcement-learning precision search and its baselines.
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "eval/metric.h"
#include "data/dataset.h"
#include "deploy/verify.h"
#include "search/run_config.h"
#include "runtime/runner.h"
#include "search/searcher.h"
#include "target/constraints.h"
#include "target/measure.h"
#include "target/profile.h"
#include "util/file.h"
#include "util/error.h"

namespace autoprec::cli {
namespace {

struct SearchCliOptions {
  std::string config;
  std::string model, data, target, agent, metric, metric_command, out, resume;
  std::vector<std::string> constraints;
  int64_t episodes = 0;
  int64_t seed = -1;
  bool json = false;
};

void print_search_summary(const nlohmann::json& result);

// On a measured target (cpu-ort, command), the search met its latency bounds
// on the sum of per-layer measurements. The deployed file is timed whole, the
// way the target measures, and checked against the same bounds, a bound
// relative to fp32 or int8 against that reference timed whole: a warning,
// not an error, when fusion across layers or layout changes make the whole
// model slower than its parts (docs/targets.md).
nlohmann::json check_deployed_latency(const nlohmann::json& result, const std::string& onnx_path) {
  const std::string spec = result.value("target_spec", result["target"].get<std::string>());
  target::Profile profile = target::load_target(spec);
  if (!profile.measured()) return nullptr;
  // measure_model_file times one-input models; a model with several inputs is timed by deploy only.
  if (deploy::read_input_names(onnx_path).size() != 1) return nullptr;
  at::Tensor one = data::take(data::load_dataset(result["data"].get<std::string>(), data::Split::Test), 1).images.contiguous();
  target::ModelLatency measured = target::measure_model_file(profile, onnx_path, one);
  std::optional<target::ModelLatency> fp32, int8;
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& c : result["constraints"]) {
    if (c.value("metric", "") != "latency") continue;
    double bound = c["bound"].get<double>();
    nlohmann::json check = {{"constraint", c["constraint"]}, {"per_layer_sum_ms", c["value"]}, {"measured_ms", measured.ms}};
    target::Constraint parsed = target::parse_constraint(c["constraint"].get<std::string>());
    if (parsed.reference == target::Reference::Fp32) {
      // Whole file against whole file: the FP32 model timed the same way.
      if (!fp32) fp32 = target::measure_model_file(profile, result["model"].get<std::string>(), one);
      check["per_layer_bound_ms"] = bound;
      check["fp32_measured_ms"] = fp32->ms;
      check["measured_ratio"] = measured.ms / fp32->ms;
      bound = parsed.value * fp32->ms;
    } else if (parsed.reference == target::Reference::Int8 && profile.format == quant::QuantForm::Int) {
      // Whole against whole: uniform W8A8 exported and timed the same way.
      if (!int8) int8 = target::measure_integer_model(profile, target::load_model_info(result["model"].get<std::string>()), 8, 8);
      check["per_layer_bound_ms"] = bound;
      check["int8_measured_ms"] = int8->ms;
      check["measured_ratio"] = measured.ms / int8->ms;
      bound = parsed.value * int8->ms;
    }
    const bool holds = measured.ms <= bound;
    check["bound_ms"] = bound;
    check["holds"] = holds;
    checks.push_back(check);
    if (!holds) {
      spdlog::warn("the deployed model takes {:.4f} ms on {} measured whole, above the bound {:.4f} ms of '{}' that "
                   "its per-layer sum ({:.4f} ms) meets; see docs/targets.md on fusion across layers",
                   measured.ms, profile.name, bound, c["constraint"].get<std::string>(), c["value"].get<double>());
    }
  }
  return {{"target", profile.name},
          {"timing", profile.cost_model.kernel_timing ? "kernels" : "wall"},
          {"measured_ms", measured.ms},
          {"wall_ms", measured.wall_ms},
          {"constraints", checks}};
}

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
    const std::string spec = result.value("target_spec", result.value("target", std::string()));
    if (!spec.empty() && target::load_target(spec).native_runtime) d.runtime = "native";
    bundle = deploy_bundle(d);
    result["deploy"] = {{"bundle", d.out},
                        {"report", d.out + "/deploy.json"},
                        {"verified", bundle["verification"]["passed"]},
                        {"runtime", bundle["verification"]["runtime"]},
                        {"runtime_top1", bundle["verification"].value("runtime_top1", nlohmann::json())},
                        {"ort_top1", bundle["verification"].value("ort_top1", nlohmann::json())},
                        {"ort_agreement", bundle["verification"]["top1_agreement"]},
                        {"onnx_bytes", bundle["size"]["onnx_bytes"]},
                        {"quantized_ms", bundle["latency"]["quantized_ms"]},
                        {"fp32_ms", bundle["latency"]["fp32_ms"]}};
    nlohmann::json on_target = check_deployed_latency(result, bundle["onnx"].get<std::string>());
    if (!on_target.is_null()) result["deploy"]["target_latency"] = on_target;
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
  if (!o.metric.empty()) config.metric = o.metric;
  if (!o.metric_command.empty()) config.metric_command = o.metric_command;
  if (!o.out.empty()) config.out = o.out;
  if (!o.constraints.empty()) {
    if (!config.constraints.empty() && o.resume.empty()) {
      spdlog::info("--constraint replaces the {} constraint(s) of {}", config.constraints.size(), o.config);
    }
    config.constraints = o.constraints;
  }
  if (o.episodes > 0) config.episodes = o.episodes;
  if (o.seed >= 0) config.seed = static_cast<uint64_t>(o.seed);
  search::SearchOptions options;
  options.quiet = o.json;
  if (!o.resume.empty()) {
    std::vector<std::string> ignored;
    auto note = [&](bool given, const char* flag) {
      if (given) ignored.emplace_back(flag);
    };
    note(!o.config.empty(), "--config");
    note(!o.model.empty(), "--model");
    note(!o.data.empty(), "--data");
    note(!o.target.empty(), "--target");
    note(!o.agent.empty(), "--agent");
    note(!o.metric.empty(), "--metric");
    note(!o.metric_command.empty(), "--metric-command");
    note(!o.constraints.empty(), "--constraint");
    note(o.episodes > 0, "--episodes");
    note(o.seed >= 0, "--seed");
    if (!ignored.empty()) {
      spdlog::warn("--resume continues the run as its journal configured it; ignoring {}", fmt::join(ignored, ", "));
    }
    options.resume = true;
    config.out = o.resume;
  }
  nlohmann::json result = search::run_search(config, options);
  if (result.is_null()) return 0;  // a worker rank of an MPI job: rank 0 reports
  nlohmann::json bundle = deploy_result(result, o.json);
  const std::string run_dir = std::filesystem::path(result["outputs"]["best"].get<std::string>()).parent_path().string();
  if (o.json) {
    print_json(result);
  } else {
    print_search_summary(result);
    if (!bundle.is_null()) {
      fmt::print("\n");
      print_deploy_summary(bundle);
      if (result["deploy"].contains("target_latency")) {
        const auto& t = result["deploy"]["target_latency"];
        fmt::print("measured whole on {} ({} timing): {:.4f} ms\n", t["target"].get<std::string>(),
                   t["timing"].get<std::string>(), t["measured_ms"].get<double>());
        for (const auto& c : t["constraints"]) {
          fmt::print("  {} {} when measured whole (per-layer sum {:.4f} ms)\n", c["holds"].get<bool>() ? "meets" : "VIOLATES",
                     c["constraint"].get<std::string>(), c["per_layer_sum_ms"].get<double>());
        }
      }
    }
  }
  write_search_report(run_dir, o.json);
  if (!bundle.is_null() && !bundle["verification"]["passed"].get<bool>()) {
    return check_failed(fmt::format("the search result does not verify in ONNX Runtime; see {}",
                                    result["deploy"]["report"].get<std::string>()));
  }
  if (result.contains("infeasible")) {
    return check_failed("no configuration met every constraint (the best effort is written): " +
                        result["infeasible"].get<std::string>());
  }
  return 0;
}

void print_search_summary(const nlohmann::json& result) {
  const auto& costs = result["final"]["costs"];
  const eval::Metric metric = eval::parse_metric(result.value("metric", "top1"), "result metric");
  fmt::print("{} {}: FP32 {}, searched configuration {} ({} agent, {} evaluations, {:.0f} s)\n",
             result.value("evaluated_on", "test"), eval::describe(metric),
             eval::format_score(metric, result["fp32"]["test_score"].get<double>()),
             eval::format_score(metric, result["final"]["test_score"].get<double>()), result["agent"].get<std::string>(),
             result["evaluations"].get<int64_t>(), result["search_seconds"].get<double>());
  if (metric != eval::Metric::Top1 && result["final"].contains("test_top1"))
    fmt::print("top-1 with the labels: FP32 {:.2f}%, searched configuration {:.2f}%\n",
               100 * result["fp32"]["test_top1"].get<double>(), 100 * result["final"]["test_top1"].get<double>());
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
  cmd->add_option("--data", o.data, "Dataset (idx:DIR, npy:INPUTS.npy,LABELS.npy or npy:INPUTS.npy without labels)");
  cmd->add_option("--target", o.target, "Target profile: built-in name or YAML path (default generic)");
  cmd->add_option("--constraint", o.constraints, "METRIC<=VALUE, e.g. weight_memory<=0.125*fp32 (repeatable)");
  std::string agents;
  for (const auto& a : search::agent_descriptions()) agents += fmt::format("\n  {}: {}", a.name, a.summary);
  cmd->add_option("--agent", o.agent, "Search agent (default ddpg):" + agents);
  cmd->add_option("--episodes", o.episodes, "Episodes (ddpg, random)")->check(kPositive);
  cmd->add_option("--metric", o.metric,
                  "How candidates are scored: top1, agreement, kl, sqnr or command (default: top1 with labels, "
                  "agreement without)");
  cmd->add_option("--metric-command", o.metric_command,
                  "With --metric command: a shell command given each candidate's ONNX file as its last argument; it "
                  "prints one number, higher is better");
  cmd->add_option("--seed", o.seed, "Seed of every random choice (default 0)")->check(kNonNegative);
  cmd->add_option("--out", o.out, "Output directory");
  cmd->add_option("--resume", o.resume, "Continue the interrupted search in this directory");
  cmd->add_flag("--json", o.json, "Print result.json as one JSON object");
  cmd->callback([&runner] { runner = [] { return run_search_command(o); }; });
}

}  // namespace autoprec::cli
