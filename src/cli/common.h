// Helpers shared by the command implementations.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "deploy/command_metric.h"
#include "eval/metric.h"
#include "exec/executor.h"
#include "graph/ir.h"
#include "quant/config.h"
#include "cost/metrics.h"
#include "quant/quantized_model.h"
#include "target/profile.h"
#include "util/file.h"

namespace autoprec::cli {

// Prints one JSON object on stdout.
void print_json(const nlohmann::json& j);
std::string shape_text(const std::vector<int64_t>& shape);
std::string human_count(double n);
std::string human_bits(double bits);  // "12.3 KiB"

// Options every command that reads a dataset shares.
struct DataOptions {
  std::string spec;
  double scale = -1;
  std::vector<float> mean;
  std::vector<float> std;
  data::Preprocess preprocess() const;
  // The `split` of `spec`, preprocessed, its inputs in the order of
  // `graph`'s (npz:) and checked to feed every one (eval::check_inputs_fit).
  data::Dataset load(data::Split split, const graph::Graph& graph) const;
};

// Options of commands that build the quantized network.
struct QuantOptionsCli {
  std::string precision;     // config path; empty: FP32
  int64_t calib = 512;       // calibration examples from the training split
  uint64_t seed = 0;         // which examples
  std::string format;        // --format int|qdq; empty: the config's (options.format)
  std::string target;        // --target of run/eval/quantize/finetune: its form and precisions
};

void add_data_options(CLI::App* cmd, DataOptions& o, bool required);
// --metric top1|agreement|kl|sqnr into `metric` (empty: resolve_metric's default).
void add_metric_option(CLI::App* cmd, std::string& metric);
// The metric `name` names; empty: top1 on labelled data, agreement (with a
// notice) on data without labels. UserError when the metric needs labels the
// data does not have.
// `command_allowed`: the command scores whole model files, which only eval
// and search do; elsewhere it is a UserError.
eval::Metric resolve_metric(const std::string& name, const data::Dataset& data, bool command_allowed = false);
// --metric-command CMD and --metric-timeout S (the command metric).
void add_metric_command_options(CLI::App* cmd, deploy::CommandMetric& command);
void add_quant_options(CLI::App* cmd, QuantOptionsCli& o);
// --target for commands that have no target of their own (run, eval,
// quantize, finetune): build_quantized() then follows its form and refuses
// bits it does not run.
void add_target_option(CLI::App* cmd, QuantOptionsCli& o);

// Creates `dir` if needed and checks that it is writable (UserError otherwise),
// before any long work starts.
void prepare_output_dir(const std::string& dir);

// Exit codes: 0 success; 1 a check the user asked for failed (a constraint,
// the verification of an export, a search with no feasible configuration),
// after everything was written and printed; 2 bad input; 3 internal error.
constexpr int kExitCheckFailed = 1;
// Prints "autoprec: error: MESSAGE" on stderr; returns kExitCheckFailed.
int check_failed(const std::string& message);

// Costs as JSON: {"total": {...}, "layers": [...]}.
nlohmann::json costs_json(const cost::CostSummary& costs);
nlohmann::json costs_json(const quant::QuantizedModel& model, quant::Granularity granularity);

// Calibration examples: `n` examples drawn with `seed` from the training split of `data`.
data::Dataset calibration_set(const DataOptions& data, const graph::Graph& graph, int64_t n, uint64_t seed);

// The config at `options.precision` in the form --format names, else the
// target's (profile `format`), else its own options.format. Ranges
// calibrated for another form are dropped.
quant::PrecisionConfig load_config(const QuantOptionsCli& options, const target::Profile* target = nullptr);

// Loads the config at `options.precision` (load_config), builds the quantized network and,
// unless the config already holds calibrated ranges, calibrates it on the
// training split of `data` (UserError when neither is available).
// With `target`, the form is the target's (load_config) and a layer whose
// bits the target does not run is a UserError before calibration.
std::unique_ptr<quant::QuantizedModel> build_quantized(std::shared_ptr<const graph::Graph> graph, const std::string& origin,
                                                       const QuantOptionsCli& options, const DataOptions* data,
                                                       const target::Profile* target = nullptr);

// `autoprec deploy` (also run at the end of `autoprec search`).
struct DeployCliOptions {
  std::string model;  // float model (FP32 or fine-tuned)
  DataOptions data;
  QuantOptionsCli quant;
  std::string target;  // profile whose form and precisions the export follows (empty: none)
  std::string out;  // bundle directory
  int64_t limit = 0;
  int runtime_threads = 1;
  int repeats = 50;
  std::string runtime;  // onnxruntime | native; empty: the target's (runtime:), else onnxruntime
  bool json = false;  // also: no progress output
};
// Exports the configuration to OUT/model.onnx (+ OUT/precision.yaml), verifies
// it in ONNX Runtime against the simulation on the test split, times both it
// and the FP32 model at batch 1, and writes OUT/deploy.json, which it returns.
// UserError when ONNX Runtime is unavailable; a failed verification is
// reported in the JSON ("verification.passed"), not thrown.
nlohmann::json deploy_bundle(const DeployCliOptions& options);
// The human-readable lines of a deploy.json.
void print_deploy_summary(const nlohmann::json& bundle);

}  // namespace autoprec::cli
