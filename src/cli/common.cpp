#include "cli/common.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "cli/commands.h"

#include "cost/metrics.h"
#include "eval/evaluate.h"
#include "exec/summary.h"
#include "util/log.h"
#include "util/error.h"

namespace autoprec::cli {

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

std::string shape_text(const std::vector<int64_t>& shape) {
  return shape.empty() ? "-" : fmt::format("{}", fmt::join(shape, "x"));
}

std::string human_count(double n) {
  if (n >= 1e12) return fmt::format("{:.2f}T", n / 1e12);
  if (n >= 1e9) return fmt::format("{:.2f}G", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.2f}M", n / 1e6);
  if (n >= 1e3) return fmt::format("{:.1f}K", n / 1e3);
  return fmt::format("{:.0f}", n);
}

std::string human_bits(double bits) {
  double bytes = bits / 8;
  if (bytes >= 1024.0 * 1024.0) return fmt::format("{:.2f} MiB", bytes / (1024.0 * 1024.0));
  if (bytes >= 1024.0) return fmt::format("{:.1f} KiB", bytes / 1024.0);
  return fmt::format("{:.0f} B", bytes);
}

void add_data_options(CLI::App* cmd, DataOptions& o, bool required) {
  auto* opt = cmd->add_option("--data", o.spec, "Dataset: idx:DIR, npy:INPUTS.npy,LABELS.npy, npy:INPUTS.npy (no labels) or npz:FILE.npz (one array per model input, optional labels)");
  if (required) opt->required();
  cmd->add_option("--scale", o.scale, "Pixel multiplier (default: 1/255 for 8-bit images, 1 for float)");
  cmd->add_option("--mean", o.mean, "Per-channel mean subtracted after scaling")->delimiter(',');
  cmd->add_option("--std", o.std, "Per-channel standard deviation divided after the mean")->delimiter(',');
}

void add_metric_option(CLI::App* cmd, std::string& metric) {
  cmd->add_option("--metric", metric,
                  "How to score: top1 (labels), agreement (top-1 agreement with FP32), kl (mean KL to the FP32 "
                  "outputs, nats), sqnr (output SQNR, dB) or command (eval and search: --metric-command scores the "
                  "model file); default: top1 with labels, agreement without");
}

void add_metric_command_options(CLI::App* cmd, deploy::CommandMetric& command) {
  cmd->add_option("--metric-command", command.command,
                  "With --metric command: a shell command scoring a model; it gets the ONNX file's path as its last "
                  "argument and prints one number, higher is better");
  cmd->add_option("--metric-timeout", command.timeout_s, "Seconds the metric command may take per model (default 600)")
      ->check(CLI::PositiveNumber);
}

eval::Metric resolve_metric(const std::string& name, const data::Dataset& data, bool command_allowed) {
  if (name.empty()) {
    if (data.labelled()) return eval::Metric::Top1;
    notice(fmt::format("metric: agreement with FP32 ({} has no labels; --metric kl or sqnr also need none)", data.source));
    return eval::Metric::Agreement;
  }
  eval::Metric metric = eval::parse_metric(name, "--metric");
  if (metric == eval::Metric::Command && !command_allowed)
    fail("--metric command scores whole model files, which eval and search do; here use top1, agreement, kl or sqnr");
  eval::check_metric_fits(metric, data);
  return metric;
}

void add_quant_options(CLI::App* cmd, QuantOptionsCli& o) {
  cmd->add_option("--precision", o.precision, "Precision configuration (YAML); default: FP32");
  cmd->add_option("--calib", o.calib, "Calibration examples from the training split (default 512)")->check(kPositive);
  cmd->add_option("--seed", o.seed, "Seed choosing the calibration examples (default 0)");
  cmd->add_option("--format", o.format,
                  "Where activations are quantized: int (every tensor an integer kernel reads or writes, int32 "
                  "biases: the form ONNX Runtime runs on integer kernels) or qdq (layer inputs only); default: the "
                  "config's options.format, else qdq")
      ->check(CLI::IsMember({"int", "qdq"}));
}

void add_target_option(CLI::App* cmd, QuantOptionsCli& o) {
  cmd->add_option("--target", o.target,
                  "Target profile (built-in name or .yaml): simulate its form (format) and refuse bits it does not run");
}

quant::PrecisionConfig load_config(const QuantOptionsCli& options, const target::Profile* target) {
  std::optional<target::Profile> named;
  if (!target && !options.target.empty()) {
    named = target::load_target(options.target);
    target = &*named;
  }
  quant::PrecisionConfig config = quant::load_precision_config(options.precision);
  std::optional<quant::QuantForm> form;
  if (!options.format.empty()) form = quant::parse_quant_form(options.format, "--format");
  else if (target) form = target->format;
  if (form) {
    if (*form != config.options.format) {
      // Ranges calibrated for the other form do not describe this one.
      config.calibration.clear();
      config.tensor_ranges.clear();
      config.options.format = *form;
    }
  }
  return config;
}

int check_failed(const std::string& message) {
  std::fprintf(stderr, "autoprec: error: %s\n", message.c_str());
  return kExitCheckFailed;
}

void prepare_output_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) fail("cannot create output directory {}", dir);
  std::string probe = dir + "/.autoprec-write-test";
  {
    std::ofstream out(probe);
    if (!out || !(out << "x") || !out.flush()) {
      std::remove(probe.c_str());
      fail("output directory {} is not writable", dir);
    }
  }
  std::remove(probe.c_str());
}

data::Preprocess DataOptions::preprocess() const {
  data::Preprocess p;
  p.scale = scale;
  p.mean = mean;
  p.std = std;
  return p;
}

data::Dataset DataOptions::load(data::Split split, const graph::Graph& graph) const {
  data::Dataset d = data::load_dataset(spec, split, preprocess(), graph.input_names());
  eval::check_inputs_fit(graph, d);
  return d;
}

nlohmann::json costs_json(const cost::CostSummary& c) {
  using nlohmann::json;
  json layers = json::array();
  for (const auto& l : c.layers) {
    layers.push_back({{"name", l.name},
                      {"op", l.op},
                      {"weight_bits", l.weight_bits},
                      {"activation_bits", l.activation_bits},
                      {"macs", l.macs},
                      {"weight_memory_bits", l.weight_memory_bits},
                      {"bops", l.bops},
                      {"activation_memory_bits", l.activation_bits_in}});
  }
  return {{"total",
           {{"weight_memory_bits", c.weight_memory_bits},
            {"fp32_weight_memory_bits", c.fp32_weight_memory_bits},
            {"weight_memory_fraction_of_fp32", c.weight_memory_bits / c.fp32_weight_memory_bits},
            {"bops", c.bops},
            {"macs", c.macs},
            {"peak_activation_memory_bits", c.peak_activation_bits}}},
          {"layers", layers}};
}

nlohmann::json costs_json(const quant::QuantizedModel& model, quant::Granularity granularity) {
  exec::ModelSummary summary = exec::summarize(model.executor());
  return costs_json(cost::compute_costs(model.executor().graph(), summary, model.layers(), model.precision(), granularity));
}

data::Dataset calibration_set(const DataOptions& data, const graph::Graph& graph, int64_t n, uint64_t seed) {
  data::Dataset train = data.load(data::Split::Train, graph);
  if (n <= 0) fail("--calib must be positive");
  if (n >= train.size()) return train;
  return data::split_train_validation(train, n, seed).validation;
}

std::unique_ptr<quant::QuantizedModel> build_quantized(std::shared_ptr<const graph::Graph> graph, const std::string& origin,
                                                       const QuantOptionsCli& options, const DataOptions* data,
                                                       const target::Profile* target) {
  std::optional<target::Profile> named;
  if (!target && !options.target.empty()) {
    named = target::load_target(options.target);
    target = &*named;
  }
  quant::PrecisionConfig config = load_config(options, target);
  if (target) {
    auto layers = quant::find_quantizable_layers(*graph, config.options.quantize_activation_matmul);
    target::require_allowed(*target, layers, quant::resolve(config, quant::layer_names(layers)),
                            config.options.weight_granularity);
  }
  auto model = std::make_unique<quant::QuantizedModel>(graph, config, origin);
  if (!model->calibrated()) {
    if (!data) fail("{} holds no calibrated ranges; pass --data to calibrate (or write one with `autoprec quantize`)", options.precision);
    data::Dataset calib = calibration_set(*data, *graph, options.calib, options.seed);
    spdlog::info("calibrating on {} training examples (seed {})", calib.size(), options.seed);
    model->calibrate(calib.inputs());
  }
  return model;
}

}  // namespace autoprec::cli
