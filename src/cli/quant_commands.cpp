// quantize and sensitivity.
#include <ATen/ATen.h>

#include <filesystem>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "cost/metrics.h"
#include "eval/evaluate.h"
#include "exec/model.h"
#include "exec/summary.h"
#include "quant/sensitivity.h"
#include "util/error.h"
#include "util/log.h"

namespace autoprec::cli {
namespace {

using nlohmann::json;

// ---- quantize ------------------------------------------------------------
struct QuantizeOptions {
  std::string model;
  DataOptions data;
  QuantOptionsCli quant;
  std::string out;
  int64_t limit = 0;
  std::string metric;
};

int run_quantize(const QuantizeOptions& o) {
  auto graph = exec::load_model(o.model);
  quant::PrecisionConfig config = load_config(o.quant);
  // Validate everything cheap before anything is written.
  auto layers = quant::find_quantizable_layers(*graph, config.options.quantize_activation_matmul);
  auto precision = quant::resolve(config, quant::layer_names(layers));
  data::Dataset test = o.data.load(data::Split::Test, *graph);
  if (o.limit > 0) test = data::take(test, o.limit);
  const eval::Metric metric = resolve_metric(o.metric, test);
  data::Dataset calib = calibration_set(o.data, *graph, o.quant.calib, o.quant.seed);
  exec::Executor fp32(graph, o.model);
  fp32.run(calib.inputs(0, 1));  // the data fits the model, before anything is written
  fp32.run(test.inputs(0, 1));
  prepare_output_dir(o.out);

  quant::QuantizedModel model(graph, config, o.model);
  model.calibrate(calib.inputs());
  quant::PrecisionConfig calibrated = model.calibrated_config();
  calibrated.calibration_seed = o.quant.seed;
  calibrated.calibration_samples = calib.size();

  eval::EvalOptions eval_options;
  eval_options.metric = metric;
  if (eval::needs_reference(metric)) eval_options.reference_outputs = eval::outputs_of(fp32, test);
  eval::EvalResult fp32_result = eval::evaluate(fp32, test, eval_options);
  eval::EvalResult result = eval::evaluate(model.executor(), test, eval_options);
  exec::ModelSummary summary = exec::summarize(fp32);
  cost::CostSummary costs = cost::compute_costs(*graph, summary, layers, precision, config.options.weight_granularity);

  std::string config_path = o.out + "/precision.yaml";
  quant::save_precision_config(calibrated, config_path);
  json report = {{"model", o.model},
                 {"precision", o.quant.precision},
                 {"calibrated_precision", config_path},
                 {"calibration", {{"examples", calib.size()}, {"seed", o.quant.seed}, {"split", "train"}}},
                 {"metric", eval::to_string(metric)},
                 {"fp32", {{"test_score", fp32_result.score}}},
                 {"quantized", {{"test_score", result.score}}},
                 {"test_examples", result.examples},
                 {"costs", costs_json(costs)}};
  if (result.labelled) {
    report["fp32"].update({{"test_top1", fp32_result.top1}, {"test_top5", fp32_result.top5}});
    report["quantized"].update({{"test_top1", result.top1}, {"test_top5", result.top5}});
  }
  write_file_atomically(o.out + "/quantize.json", report.dump(2) + "\n");
  fmt::print("FP32 {} {}, quantized {} ({} {} examples)\n", eval::describe(metric),
             eval::format_score(metric, fp32_result.score), eval::format_score(metric, result.score), result.examples,
             data::has_test_split(o.data.spec) ? "test" : "");
  fmt::print("weight memory {} ({:.1f}% of FP32), {} BOPs\n", human_bits(costs.weight_memory_bits),
             100 * costs.weight_memory_bits / costs.fp32_weight_memory_bits, human_count(costs.bops));
  fmt::print("wrote {} and {}/quantize.json\n", config_path, o.out);
  return 0;
}

// ---- sensitivity ---------------------------------------------------------
struct SensitivityOptions {
  std::string model;
  DataOptions data;
  std::vector<int> bits = {2, 3, 4, 6, 8};
  int64_t calib = 256;
  int64_t validation = 1000;
  uint64_t seed = 0;
  std::string precision;
  std::string out;
  std::string metric;
  bool json = false;
};

json sensitivity_json(const quant::SensitivityTable& t, const SensitivityOptions& o) {
  json rows = json::array();
  for (const auto& r : t.rows) {
    json row = {{"layer", r.layer}, {"tensor", r.tensor}, {"bits", r.bits}, {"kl", r.kl}, {"score", r.score}};
    if (t.labelled) row.update({{"top1", r.top1}, {"accuracy_drop", r.accuracy_drop}});
    rows.push_back(row);
  }
  json j = {{"model", o.model},      {"data", o.data.spec},     {"seed", o.seed},
            {"metric", eval::to_string(t.metric)}, {"fp32_score", t.fp32_score}, {"validation_examples", t.examples},
            {"calibration_examples", t.calibration_examples}, {"bits", t.bits},
            {"layers", t.layers},    {"rows", rows}};
  if (t.labelled) j["fp32_top1"] = t.fp32_top1;
  return j;
}

int run_sensitivity(const SensitivityOptions& o) {
  for (int b : o.bits) {
    if (b < 2 || b > 8) fail("--bits takes bit-widths from 2 to 8, got {}", b);
  }
  auto graph = exec::load_model(o.model);
  quant::QuantOptions options;
  if (!o.precision.empty()) options = quant::load_precision_config(o.precision).options;
  data::Dataset train = o.data.load(data::Split::Train, *graph);
  if (o.validation + o.calib >= train.size()) {
    fail("--validation {} + --calib {} exceed the {} training examples", o.validation, o.calib, train.size());
  }
  // Validation is carved from the training split; calibration comes from the rest.
  data::TrainValidation split = data::split_train_validation(train, o.validation, o.seed);
  data::Dataset calib = data::split_train_validation(split.train, o.calib, o.seed + 1).validation;
  if (!o.out.empty()) prepare_output_dir(std::filesystem::path(o.out).parent_path().string().empty() ? "." : std::filesystem::path(o.out).parent_path().string());

  const eval::Metric metric = resolve_metric(o.metric, train);
  Progress progress("sensitivity", 0, "measurements", o.json);
  quant::SensitivityTable table = quant::measure_sensitivity(
      graph, calib, split.validation, o.bits, options, [&](int64_t done, int64_t total) { progress.update(done, total); },
      metric);
  progress.finish();
  json j = sensitivity_json(table, o);
  if (!o.out.empty()) write_file_atomically(o.out, j.dump(2) + "\n");
  if (o.json) {
    print_json(j);
    return 0;
  }
  if (table.labelled)
    fmt::print("{}: FP32 validation top-1 {:.2f}% ({} examples from the training split, seed {})\n", o.model,
               100 * table.fp32_top1, table.examples, o.seed);
  else
    fmt::print("{}: {} validation examples from the data (no labels), seed {}\n", o.model, table.examples, o.seed);
  // What a cell shows: the loss in points for fractions, the KL itself, the SQNR itself.
  auto cell = [&](const quant::SensitivityRow& r) {
    switch (metric) {
      case eval::Metric::Top1: return 100 * r.accuracy_drop;
      case eval::Metric::Agreement: return 100 * (table.fp32_score - r.score);
      case eval::Metric::Kl:
      case eval::Metric::Sqnr:
      case eval::Metric::Command: return r.score;
    }
    return r.score;
  };
  const char* what = metric == eval::Metric::Top1        ? "accuracy drop in points"
                     : metric == eval::Metric::Agreement ? "disagreement with FP32 in points"
                     : metric == eval::Metric::Kl        ? "KL to FP32 in nats"
                                                         : "SQNR to FP32 in dB";
  fmt::print("{} when only this tensor is quantized (KL in nats for the lowest bit-width)\n\n", what);
  size_t width = 5;
  for (const auto& l : table.layers) width = std::max(width, l.size());
  width = std::min<size_t>(width, 40);
  std::string header = fmt::format("{:<{}}", "layer", width);
  for (const char* tensor : {"W", "A"}) {
    for (int b : o.bits) header += fmt::format(" {:>6}", fmt::format("{}{}", tensor, b));
  }
  header += fmt::format(" {:>8} {:>8}", fmt::format("KL W{}", o.bits.front()), fmt::format("KL A{}", o.bits.front()));
  fmt::print("{}\n", header);
  for (const auto& layer : table.layers) {
    std::string name = layer.size() > width ? ".." + layer.substr(layer.size() - width + 2) : layer;
    std::string line = fmt::format("{:<{}}", name, width);
    for (const char* tensor : {"weight", "activation"}) {
      for (int b : o.bits) line += fmt::format(" {:>6.2f}", cell(table.at(layer, tensor, b)));
    }
    line += fmt::format(" {:>8.4f} {:>8.4f}", table.at(layer, "weight", o.bits.front()).kl,
                        table.at(layer, "activation", o.bits.front()).kl);
    fmt::print("{}\n", line);
  }
  if (!o.out.empty()) fmt::print("\nwrote {}\n", o.out);
  return 0;
}

}  // namespace

void register_quant_commands(CLI::App& app, Runner& runner) {
  static QuantizeOptions quantize;
  CLI::App* cmd = app.add_subcommand("quantize", "Post-training quantization: calibrate a precision config and write it");
  cmd->add_option("model", quantize.model, "ONNX model")->required();
  add_data_options(cmd, quantize.data, true);
  add_quant_options(cmd, quantize.quant);
  add_target_option(cmd, quantize.quant);
  cmd->get_option("--precision")->required()->description("Precision configuration (YAML)");
  cmd->add_option("--out", quantize.out, "Output directory (precision.yaml, quantize.json)")->required();
  cmd->add_option("--limit", quantize.limit, "Evaluate on the first N test examples only")->check(kNonNegative);
  add_metric_option(cmd, quantize.metric);
  cmd->callback([&runner] { runner = [] { return run_quantize(quantize); }; });

  static SensitivityOptions sensitivity;
  cmd = app.add_subcommand("sensitivity", "Per-layer, per-bit-width score (accuracy drop or a label-free metric) and logit KL");
  cmd->add_option("model", sensitivity.model, "ONNX model")->required();
  add_data_options(cmd, sensitivity.data, true);
  cmd->add_option("--bits", sensitivity.bits, "Bit-widths to measure (default 2,3,4,6,8)")->delimiter(',');
  cmd->add_option("--calib", sensitivity.calib, "Calibration examples (default 256)")->check(kPositive);
  cmd->add_option("--validation", sensitivity.validation, "Validation examples carved from the training split (default 1000)")
      ->check(kPositive);
  cmd->add_option("--seed", sensitivity.seed, "Seed of the validation and calibration draws (default 0)");
  cmd->add_option("--precision", sensitivity.precision, "Take quantizer options (granularity, clipping) from this config");
  cmd->add_option("--out", sensitivity.out, "Also write the JSON table to this file");
  add_metric_option(cmd, sensitivity.metric);
  cmd->add_flag("--json", sensitivity.json, "Print one JSON object");
  cmd->callback([&runner] { runner = [] { return run_sensitivity(sensitivity); }; });
}

}  // namespace autoprec::cli
