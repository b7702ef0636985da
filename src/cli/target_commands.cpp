// targets, cost and profile.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "deploy/qdq_export.h"
#include "exec/summary.h"
#include "target/constraints.h"
#include "target/cost_model.h"
#include "target/measure.h"
#include "target/profile.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"

namespace autoprec::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string optional_number(const std::optional<double>& v, const char* format = "{:.4g}") {
  return v ? fmt::format(fmt::runtime(format), *v) : "-";
}

// ---- targets -------------------------------------------------------------
struct TargetsOptions {
  bool json = false;
};

int run_targets(const TargetsOptions& o) {
  std::vector<std::string> names = target::builtin_target_names();
  if (names.empty()) fail("no target profiles in {} (set AUTOPREC_TARGETS_DIR)", target::builtin_targets_dir());
  json list = json::array();
  std::vector<target::Profile> profiles;
  for (const auto& name : names) {
    target::Profile p = target::load_target(name);
    list.push_back({{"name", p.name},
                    {"description", p.description},
                    {"cost_model", target::to_string(p.cost_model.type)},
                    {"latency", p.has_latency()},
                    {"energy", p.has_energy()},
                    {"format", quant::to_string(p.format)},
                    {"path", p.origin}});
    profiles.push_back(p);
  }
  if (o.json) {
    print_json({{"targets_dir", target::builtin_targets_dir()}, {"cpu_features", target::cpu_features().text()}, {"targets", list}});
    return 0;
  }
  fmt::print("{:<12} {:<10} {:<8} {:<7} {:<7} {}\n", "target", "model", "latency", "energy", "format", "description");
  for (const auto& p : profiles) {
    fmt::print("{:<12} {:<10} {:<8} {:<7} {:<7} {}\n", p.name, target::to_string(p.cost_model.type),
               p.has_latency() ? "yes" : "-", p.has_energy() ? "yes" : "-", quant::to_string(p.format), p.description);
  }
  fmt::print("\nprofiles in {}; a --target may also be a profile .yaml path\n", target::builtin_targets_dir());
  fmt::print("this CPU: {}{}\n", target::cpu_features().text(), target::cpu_features().vnni() ? "" : " (no VNNI)");
  return 0;
}

// ---- cost ----------------------------------------------------------------
struct CostOptions {
  std::string model;
  QuantOptionsCli quant;
  DataOptions data;  // optional: calibrates the whole-model export of a measured target
  std::string target;
  std::string table;
  std::string cache;
  std::vector<std::string> constraints;
  bool layers_only = false;
  bool json = false;
};

json layer_json(const target::TargetLayerCost& c) {
  json j = {{"name", c.bits.name},
            {"op", c.bits.op},
            {"weight_bits", c.bits.weight_bits},
            {"activation_bits", c.bits.activation_bits},
            {"macs", c.bits.macs},
            {"weight_memory_bits", c.bits.weight_memory_bits},
            {"bops", c.bits.bops},
            {"supported", c.allowed}};
  if (c.latency_ms) j["latency_ms"] = *c.latency_ms;
  if (c.energy_mj) j["energy_mj"] = *c.energy_mj;
  if (!c.allowed) j["unsupported_reason"] = c.why_not;
  return j;
}

json total_json(const target::TargetCosts& c) {
  json t = {{"weight_bits", c.bits.weight_memory_bits},
            {"weight_memory_bits", c.bits.weight_memory_bits},
            {"fp32_weight_memory_bits", c.bits.fp32_weight_memory_bits},
            {"weight_memory_fraction_of_fp32", c.bits.weight_memory_bits / c.bits.fp32_weight_memory_bits},
            {"bops", c.bits.bops},
            {"macs", c.bits.macs}};
  if (c.latency_ms) t["latency_ms"] = *c.latency_ms;
  if (c.energy_mj) t["energy_mj"] = *c.energy_mj;
  return t;
}

// The profile with --table swapped in as its cost model (a measured table
// serves as a lut).
target::Profile with_table(target::Profile p, const std::string& table) {
  if (table.empty()) return p;
  if (!fs::exists(table)) fail("cost table {} does not exist", table);
  p.cost_model.type = target::CostModelType::Lut;
  p.cost_model.table = table;
  return p;
}

// On a measured target: the configuration exported as QDQ and timed whole
// through the target's runner, and the FP32 model the same way. Activation
// ranges come from the config, else from --data, else from a synthetic
// uniform [0, 1) batch: latency does not depend on the range values.
json measure_whole_model(const CostOptions& o, const target::Profile& profile, const target::ModelInfo& model,
                         const quant::PrecisionConfig& config) {
  quant::QuantizedModel quantized(model.graph, config, o.model);
  std::string ranges = "precision config";
  std::vector<int64_t> input_shape = model.summary.input_shape;  // batch 1
  at::Generator gen = at::detail::createCPUGenerator(o.quant.seed);
  if (!quantized.calibrated()) {
    if (!o.data.spec.empty()) {
      data::Dataset calib = calibration_set(o.data, *model.graph, o.quant.calib, o.quant.seed);
      spdlog::info("calibrating the export on {} training examples (seed {})", calib.size(), o.quant.seed);
      quantized.calibrate(calib.inputs());
      ranges = "calibrated on --data";
    } else {
      std::vector<int64_t> batch_shape = input_shape;
      batch_shape[0] = 32;
      spdlog::info("activation ranges from 32 synthetic uniform [0, 1) inputs (seed {}): latency does not depend on them",
                   o.quant.seed);
      quantized.calibrate(at::rand(batch_shape, gen, at::kFloat));
      ranges = "synthetic input";
    }
  }
  deploy::ExportOptions options;
  options.source_model = o.model;
  deploy::QdqExport exported = deploy::export_qdq(quantized, options);
  TemporaryFile file(".onnx");
  deploy::save_qdq(exported.model, file.path());

  at::Tensor input = at::rand(input_shape, gen, at::kFloat);
  spdlog::info("timing the whole model on {} ({} warm-up, median of {})", profile.name, profile.cost_model.warmup,
               profile.cost_model.repeats);
  target::ModelLatency q = target::measure_model_file(profile, file.path(), input);
  target::ModelLatency fp32 = target::measure_model_file(profile, o.model, input);
  auto latency_json = [](const target::ModelLatency& l) {
    json j = {{"latency_ms", l.ms}, {"wall_ms", l.wall_ms}};
    if (l.kernel_ms) j["kernel_ms"] = *l.kernel_ms;
    return j;
  };
  return {{"export", "qdq"},
          {"opset", exported.opset},
          {"activation_ranges", ranges},
          {"timing", profile.cost_model.kernel_timing ? "kernels" : "wall"},
          {"threads", profile.cost_model.threads},
          {"repeats", profile.cost_model.repeats},
          {"quantized", latency_json(q)},
          {"fp32", latency_json(fp32)}};
}

// 0, or kExitCheckFailed naming the first constraint that fails.
int constraints_failed(const std::vector<target::ConstraintResult>& results) {
  for (const auto& r : results) {
    if (!r.holds) {
      return check_failed(fmt::format("constraint '{}' fails: {} against a bound of {}", r.constraint.text,
                                      target::format_metric(r.constraint.metric, r.value),
                                      target::format_metric(r.constraint.metric, r.bound)));
    }
  }
  return 0;
}

int run_cost(const CostOptions& o) {
  target::Profile profile = with_table(target::load_target(o.target), o.table);
  std::vector<target::Constraint> constraints;
  for (const auto& text : o.constraints) constraints.push_back(target::parse_constraint(text));
  quant::PrecisionConfig config = load_config(o.quant, &profile);
  target::ModelInfo model = target::load_model_info(o.model, config.options.quantize_activation_matmul);
  std::vector<std::string> names = quant::layer_names(model.layers);
  auto precision = quant::resolve(config, names);
  auto granularity = config.options.weight_granularity;
  auto source = target::make_source(profile, model, o.cache);
  target::TargetCosts costs = target::evaluate(profile, model, precision, granularity, source.get());

  std::vector<target::ConstraintResult> results;
  if (!constraints.empty()) {
    auto uniform = [&](int bits) {
      return quant::resolve(quant::uniform(bits, bits), names);
    };
    bool relative = false;
    for (const auto& c : constraints) relative |= c.reference != target::Reference::Absolute;
    target::TargetCosts fp32, int8;
    if (relative) {
      fp32 = target::evaluate_reference(profile, model, uniform(32), granularity, source.get());
      int8 = target::evaluate_reference(profile, model, uniform(8), granularity, source.get());
    }
    for (const auto& c : constraints) {
      if (target::is_score_metric(c.metric)) {
        fail("{}: constraint '{}': `cost` does not measure accuracy (use eval or search)", c.origin, c.text);
      }
    }
    results = target::check(target::resolve(constraints, profile, fp32, int8), costs, std::nullopt, std::nullopt);
  }
  json whole_model;
  bool time_whole_model = profile.measured() && !o.layers_only;
  if (time_whole_model) {
    try {
      deploy::check_exportable(*model.graph, o.model);
    } catch (const UserError& e) {
      spdlog::warn("the whole model is not timed (per-layer costs only): {}", e.what());
      time_whole_model = false;
    }
  }
  if (time_whole_model) whole_model = measure_whole_model(o, profile, model, config);

  if (o.json) {
    json layers = json::array();
    for (const auto& l : costs.layers) layers.push_back(layer_json(l));
    json j = {{"model", o.model},
              {"precision", o.quant.precision},
              {"target", profile.name},
              {"cost_model", target::to_string(profile.cost_model.type)},
              {"total", total_json(costs)},
              {"layers", layers}};
    if (!whole_model.is_null()) {
      j["total"]["model_latency_ms"] = whole_model["quantized"]["latency_ms"];
      j["whole_model"] = whole_model;
    }
    if (!results.empty()) {
      json cs = json::array();
      for (const auto& r : results) {
        cs.push_back({{"constraint", r.constraint.text}, {"holds", r.holds}, {"value", r.value}, {"bound", r.bound},
                      {"slack", r.slack}});
      }
      j["constraints"] = cs;
    }
    print_json(j);
    return constraints_failed(results);
  }
  size_t width = 5;
  for (const auto& l : costs.layers) width = std::max(width, l.bits.name.size());
  width = std::min<size_t>(width, 36);
  fmt::print("{} on {} ({} cost model)\n\n", o.model, profile.name, target::to_string(profile.cost_model.type));
  fmt::print("{:<{}} {:<6} {:>3} {:>3} {:>11} {:>9} {:>11} {:>11}\n", "layer", width, "op", "W", "A", "weights", "BOPs",
             "latency ms", "energy mJ");
  for (const auto& l : costs.layers) {
    std::string name = l.bits.name.size() > width ? ".." + l.bits.name.substr(l.bits.name.size() - width + 2) : l.bits.name;
    fmt::print("{:<{}} {:<6} {:>3} {:>3} {:>11} {:>9} {:>11} {:>11}{}\n", name, width, l.bits.op, l.bits.weight_bits,
               l.bits.activation_bits, human_bits(l.bits.weight_memory_bits), human_count(l.bits.bops),
               optional_number(l.latency_ms), optional_number(l.energy_mj), l.allowed ? "" : "  (unsupported: " + l.why_not + ")");
  }
  fmt::print("{:<{}} {:<6} {:>3} {:>3} {:>11} {:>9} {:>11} {:>11}\n", "total", width, "", "", "",
             human_bits(costs.bits.weight_memory_bits), human_count(costs.bits.bops), optional_number(costs.latency_ms), optional_number(costs.energy_mj));
  fmt::print("\nweight memory {} ({:.1f}% of FP32)\n", human_bits(costs.bits.weight_memory_bits),
             100 * costs.bits.weight_memory_bits / costs.bits.fp32_weight_memory_bits);
  if (!whole_model.is_null()) {
    fmt::print("whole model measured on {} (QDQ export, {} timing): {:.4f} ms vs FP32 {:.4f} ms; sum of the layers {} ms\n",
               profile.name, whole_model["timing"].get<std::string>(), whole_model["quantized"]["latency_ms"].get<double>(),
               whole_model["fp32"]["latency_ms"].get<double>(), optional_number(costs.latency_ms));
  }
  for (const auto& r : results) {
    fmt::print("constraint {:<28} {}  value {}  bound {}  slack {}\n", r.constraint.text, r.holds ? "holds " : "FAILS ",
               target::format_metric(r.constraint.metric, r.value), target::format_metric(r.constraint.metric, r.bound),
               target::format_metric(r.constraint.metric, r.slack));
  }
  return constraints_failed(results);
}

// ---- profile -------------------------------------------------------------
struct ProfileOptions {
  std::string model;
  std::string target;
  std::string out;
  std::string cache;
  std::vector<int> weight_bits;
  std::vector<int> activation_bits;
  bool json = false;
};

int run_profile(const ProfileOptions& o) {
  target::Profile profile = target::load_target(o.target);
  if (profile.cost_model.type == target::CostModelType::Generic) {
    fail("target {} has no latency or energy model to tabulate (cost model generic)", profile.name);
  }
  std::set<int> only_w(o.weight_bits.begin(), o.weight_bits.end()), only_a(o.activation_bits.begin(), o.activation_bits.end());
  target::ModelInfo model = target::load_model_info(o.model);
  std::string parent = fs::path(o.out).parent_path().string();
  prepare_output_dir(parent.empty() ? "." : parent);
  std::string cache = o.cache.empty() ? o.out + ".cache.csv" : o.cache;
  auto source = target::make_source(profile, model, profile.measured() ? cache : "");

  size_t total = 0;
  for (const auto& d : model.descs) total += target::supported_pairs(profile, d.op, only_w, only_a).size();
  Progress progress("profile", static_cast<int64_t>(total), "entries", o.json);
  auto rows = target::build_table(profile, model, *source, only_w, only_a, [&](size_t, size_t) { progress.advance(1); });
  progress.finish();
  target::write_table(o.out, rows);
  auto* measured = dynamic_cast<target::MeasuredSource*>(source.get());
  json j = {{"model", o.model}, {"target", profile.name}, {"cost_model", target::to_string(profile.cost_model.type)},
            {"table", o.out},   {"rows", rows.size()},   {"layers", model.layers.size()}};
  if (measured) {
    j["cache"] = cache;
    j["measured"] = measured->measured();
    j["from_cache"] = measured->cached();
  }
  if (o.json) {
    print_json(j);
    return 0;
  }
  fmt::print("wrote {} ({} rows: {} layers x supported bit-width pairs)\n", o.out, rows.size(), model.layers.size());
  if (measured) {
    fmt::print("{} measurements, {} from the cache {}\n", measured->measured(), measured->cached(), cache);
  }
  return 0;
}

}  // namespace

void register_target_commands(CLI::App& app, Runner& runner) {
  static TargetsOptions targets;
  CLI::App* cmd = app.add_subcommand("targets", "List the built-in target device profiles");
  cmd->add_flag("--json", targets.json, "Print one JSON object");
  cmd->callback([&runner] { runner = [] { return run_targets(targets); }; });

  static CostOptions cost;
  cmd = app.add_subcommand("cost", "Per-layer and total costs of a precision configuration on a target");
  cmd->add_option("model", cost.model, "ONNX model")->required();
  add_quant_options(cmd, cost.quant);
  cmd->get_option("--precision")->required()->description("Precision configuration (YAML)");
  add_data_options(cmd, cost.data, false);
  cmd->get_option("--data")->description(
      "Dataset calibrating the whole-model export on a measured target when the config holds no ranges "
      "(default: synthetic input; latency does not depend on the ranges)");
  cmd->add_option("--target", cost.target, "Built-in target name or profile .yaml")->required();
  cmd->add_option("--table", cost.table, "Use this per-layer cost table (from `profile`) for latency and energy");
  cmd->add_option("--cache", cost.cache, "Measurement cache for measured targets (default ~/.cache/autoprec/TARGET.csv)");
  cmd->add_option("--constraint", cost.constraints, "Check a constraint, e.g. \"weight_memory<=0.125*fp32\" (repeatable)");
  cmd->add_flag("--layers-only", cost.layers_only,
                "On a measured target, skip timing the whole exported model (per-layer costs only)");
  cmd->add_flag("--json", cost.json, "Print one JSON object");
  cmd->callback([&runner] { runner = [] { return run_cost(cost); }; });

  static ProfileOptions profile;
  cmd = app.add_subcommand("profile", "Measure or compute the per-layer cost table of a model on a target");
  cmd->add_option("model", profile.model, "ONNX model")->required();
  cmd->add_option("--target", profile.target, "Built-in target name or profile .yaml")->required();
  cmd->add_option("--out", profile.out, "Output CSV (layer,weight_bits,activation_bits,latency_ms,energy_mj)")->required();
  cmd->add_option("--cache", profile.cache, "Measurement cache (default OUT.cache.csv); reruns resume from it");
  cmd->add_option("--weight-bits", profile.weight_bits, "Only these weight bit-widths (default: all the target supports)")
      ->delimiter(',');
  cmd->add_option("--activation-bits", profile.activation_bits, "Only these activation bit-widths")->delimiter(',');
  cmd->add_flag("--json", profile.json, "Print one JSON object (no progress line)");
  cmd->callback([&runner] { runner = [] { return run_profile(profile); }; });
}

}  // namespace autoprec::cli
