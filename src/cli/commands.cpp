// inspect, run and eval.
#include "cli/commands.h"

#include <ATen/ATen.h>

#include <chrono>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/common.h"
#include "cost/metrics.h"
#include "data/npy.h"
#include "deploy/native_export.h"
#include "eval/evaluate.h"
#include "exec/model.h"
#include "exec/summary.h"
#include "util/error.h"
#include "util/log.h"

namespace autoprec::cli {

const CLI::Validator kPositive(
    [](std::string& text) -> std::string {
      double v = 0;
      if (!CLI::detail::lexical_cast(text, v)) return "must be a number, got '" + text + "'";
      return v > 0 ? std::string() : "must be positive, got " + text;
    },
    "POSITIVE");
const CLI::Validator kNonNegative(
    [](std::string& text) -> std::string {
      double v = 0;
      if (!CLI::detail::lexical_cast(text, v)) return "must be a number, got '" + text + "'";
      return v >= 0 ? std::string() : "must be zero or more, got " + text;
    },
    "NON-NEGATIVE");
namespace {

using nlohmann::json;

// ---- inspect -------------------------------------------------------------
struct InspectOptions {
  std::string model;
  std::string precision;
  bool json = false;
};

int run_inspect(const InspectOptions& o) {
  exec::SimplifyReport report;
  auto graph = exec::load_model(o.model, &report);
  exec::Executor executor(graph, o.model);
  exec::ModelSummary summary = exec::summarize(executor);
  std::optional<cost::CostSummary> costs;
  std::map<std::string, const cost::LayerCost*> layer_costs;
  quant::PrecisionConfig config;
  if (!o.precision.empty()) {
    config = quant::load_precision_config(o.precision);
    auto layers = quant::find_quantizable_layers(*graph, config.options.quantize_activation_matmul);
    auto precision = quant::resolve(config, quant::layer_names(layers));
    costs = cost::compute_costs(*graph, summary, layers, precision, config.options.weight_granularity);
    for (const auto& c : costs->layers) layer_costs[c.name] = &c;
  }
  if (o.json) {
    json layers = json::array();
    for (const auto& l : summary.layers) {
      json row = {{"name", l.name},           {"op", l.op},
                  {"input_shape", l.input_shape}, {"weight_shape", l.weight_shape},
                  {"output_shape", l.output_shape}, {"parameters", l.parameters},
                  {"macs", l.macs},           {"quantizable", l.quantizable}};
      auto c = layer_costs.find(l.name);
      if (c != layer_costs.end()) {
        row["weight_bits"] = c->second->weight_bits;
        row["activation_bits"] = c->second->activation_bits;
        row["weight_memory_bits"] = c->second->weight_memory_bits;
        row["bops"] = c->second->bops;
        row["activation_memory_bits"] = c->second->activation_bits_in;
      }
      layers.push_back(row);
    }
    json total = {{"parameters", summary.total_parameters}, {"macs", summary.total_macs}};
    if (costs) {
      total["weight_memory_bits"] = costs->weight_memory_bits;
      total["fp32_weight_memory_bits"] = costs->fp32_weight_memory_bits;
      total["bops"] = costs->bops;
      total["peak_activation_memory_bits"] = costs->peak_activation_bits;
    }
    print_json({{"model", o.model},
                {"opset", graph->opset},
                {"nodes", graph->nodes.size()},
                {"input_shape", summary.input_shape},
                {"output_shape", summary.output_shape},
                {"layers", layers},
                {"total", total},
                {"simplified",
                 {{"batchnorms_folded", report.batchnorms_folded},
                  {"constants_folded", report.constants_folded},
                  {"identities_removed", report.identities_removed}}}});
    return 0;
  }
  size_t name_width = 5;
  for (const auto& l : summary.layers) name_width = std::max(name_width, l.name.size());
  name_width = std::min<size_t>(name_width, 48);
  fmt::print("{}  (opset {}, {} nodes; folded {} BatchNorm, {} constants)\n", o.model, graph->opset, graph->nodes.size(),
             report.batchnorms_folded, report.constants_folded);
  fmt::print("input {}  output {}\n\n", shape_text(summary.input_shape), shape_text(summary.output_shape));
  std::string header = fmt::format("{:<{}}  {:<10}  {:<12}  {:<12}  {:<12}  {:>8}  {:>8}", "layer", name_width, "op",
                                   "input", "weight", "output", "params", "MACs");
  if (costs) header += fmt::format("  {:>3} {:>3}  {:>10}  {:>8}", "W", "A", "weights", "BOPs");
  fmt::print("{}\n", header);
  for (const auto& l : summary.layers) {
    std::string name = l.name.size() > name_width ? ".." + l.name.substr(l.name.size() - name_width + 2) : l.name;
    std::string line = fmt::format("{:<{}}  {:<10}  {:<12}  {:<12}  {:<12}  {:>8}  {:>8}", name, name_width, l.op,
                                   shape_text(l.input_shape), shape_text(l.weight_shape), shape_text(l.output_shape),
                                   human_count(static_cast<double>(l.parameters)), human_count(static_cast<double>(l.macs)));
    auto c = layer_costs.find(l.name);
    if (c != layer_costs.end()) {
      line += fmt::format("  {:>3} {:>3}  {:>10}  {:>8}", c->second->weight_bits, c->second->activation_bits,
                          human_bits(c->second->weight_memory_bits), human_count(c->second->bops));
    }
    fmt::print("{}\n", line);
  }
  fmt::print("\n{} layers with weights, {} parameters, {} MACs per example\n", summary.layers.size(),
             human_count(static_cast<double>(summary.total_parameters)), human_count(static_cast<double>(summary.total_macs)));
  if (costs) {
    fmt::print("weight memory {} ({:.1f}% of FP32 {}), {} BOPs, peak activation {}\n", human_bits(costs->weight_memory_bits),
               100 * costs->weight_memory_bits / costs->fp32_weight_memory_bits, human_bits(costs->fp32_weight_memory_bits),
               human_count(costs->bops), human_bits(costs->peak_activation_bits));
  }
  return 0;
}

// ---- run -----------------------------------------------------------------
struct RunOptions {
  std::string model;
  std::string input;
  std::string output;
  QuantOptionsCli quant;
  DataOptions data;
  std::string runtime;  // "native": the file runs on the native runtime
};

// run --runtime native: an integer export or a packed file, no simulation.
int run_native(const RunOptions& o) {
  if (!o.quant.precision.empty()) fail("--runtime native runs the file as exported; drop --precision");
  auto model = deploy::load_native_model(o.model);
  at::Tensor x = data::read_npy(o.input).to(at::kFloat).contiguous();
  const auto& shape = model->spec().input_shape;
  if (x.dim() != static_cast<int64_t>(shape.size()) + 1 || !std::equal(shape.begin(), shape.end(), x.sizes().begin() + 1)) {
    fail("{} holds {} but {} takes [N, {}]", o.input, c10::str(x.sizes()), o.model, fmt::join(shape, ", "));
  }
  auto outputs = model->run(x.data_ptr<float>(), x.size(0));
  at::Tensor y = at::from_blob(outputs.at(0).values.data(), outputs.at(0).shape, at::kFloat).clone();
  data::write_npy(o.output, y);
  spdlog::info("wrote float {} to {} (native runtime)", c10::str(y.sizes()), o.output);
  return 0;
}

int run_run(const RunOptions& o) {
  if (o.runtime == "native") return run_native(o);
  if (!o.runtime.empty() && o.runtime != "simulation") fail("unknown --runtime '{}': simulation or native", o.runtime);
  auto graph = exec::load_model(o.model);
  const std::vector<std::string> names = graph->input_names();
  std::vector<at::Tensor> inputs;
  const bool npz = o.input.size() >= 4 && o.input.compare(o.input.size() - 4, 4, ".npz") == 0;
  if (!npz) {
    if (names.size() != 1)
      fail("{} takes {} inputs [{}]; pass them as one .npz with an array per input", o.model, names.size(), fmt::join(names, ", "));
    inputs.push_back(data::read_npy(o.input));
  } else {
    // The arrays as they are (no preprocessing, like a .npy), by input name.
    for (auto& [name, t] : data::arrays_for_inputs(data::read_npz(o.input), names, o.input)) inputs.push_back(t);
  }
  std::unique_ptr<quant::QuantizedModel> quantized;
  std::unique_ptr<exec::Executor> fp32;
  if (!o.quant.precision.empty()) {
    quantized = build_quantized(graph, o.model, o.quant, o.data.spec.empty() ? nullptr : &o.data);
  } else {
    fp32 = std::make_unique<exec::Executor>(graph, o.model);
  }
  const exec::Executor& executor = quantized ? quantized->executor() : *fp32;
  at::Tensor y = executor.run(inputs)[0];
  data::write_npy(o.output, y.contiguous());
  spdlog::info("wrote {} {} to {}", c10::toString(y.scalar_type()), c10::str(y.sizes()), o.output);
  return 0;
}

// ---- eval ----------------------------------------------------------------
struct EvalCliOptions {
  std::string model;
  DataOptions data;
  std::string split = "test";
  int64_t limit = 0;
  int64_t batch = 256;
  QuantOptionsCli quant;
  std::string metric;
  deploy::CommandMetric command;
  bool json = false;
};

// eval --metric command: the user's program scores the model file (no data pass here).
int run_eval_command(const EvalCliOptions& o, const std::shared_ptr<graph::Graph>& graph) {
  if (o.command.command.empty()) fail("--metric command needs --metric-command CMD");
  auto start = std::chrono::steady_clock::now();
  double score = 0;
  json j = {{"model", o.model}, {"metric", "command"}, {"metric_command", o.command.command}};
  if (!o.quant.precision.empty()) {
    auto quantized = build_quantized(graph, o.model, o.quant, &o.data);
    score = deploy::score_with_command(*quantized, o.model, o.command);
    j["precision"] = o.quant.precision;
    j["calibration_seed"] = o.quant.seed;
  } else {
    score = deploy::run_metric_command(o.command, o.model);
  }
  j["score"] = score;
  j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.json) print_json(j);
  else fmt::print("{}{}: metric command score {}\n", o.model, o.quant.precision.empty() ? "" : " with " + o.quant.precision,
                  eval::format_score(eval::Metric::Command, score));
  return 0;
}

int run_eval(const EvalCliOptions& o) {
  auto graph = exec::load_model(o.model);
  data::Dataset dataset = o.data.load(data::parse_split(o.split), *graph);
  if (o.limit > 0) dataset = data::take(dataset, o.limit);
  const eval::Metric metric = resolve_metric(o.metric, dataset, true);
  if (metric == eval::Metric::Command) return run_eval_command(o, graph);
  std::unique_ptr<quant::QuantizedModel> quantized;
  std::unique_ptr<exec::Executor> fp32;
  if (!o.quant.precision.empty()) {
    quantized = build_quantized(graph, o.model, o.quant, &o.data);
  } else {
    fp32 = std::make_unique<exec::Executor>(graph, o.model);
  }
  const exec::Executor& executor = quantized ? quantized->executor() : *fp32;
  eval::EvalOptions options;
  options.batch_size = o.batch;
  options.quiet = o.json;
  options.metric = metric;
  // The FP32 model is the reference of the label-free metrics (and scores itself perfectly).
  exec::Executor reference(graph, o.model);
  eval::EvalResult r = eval::evaluate_against(executor, reference, dataset, options);
  if (o.json) {
    json j = {{"model", o.model},
              {"data", o.data.spec},
              {"split", o.split},
              {"examples", r.examples},
              {"metric", eval::to_string(metric)},
              {"score", r.score},
              {"seconds", r.seconds},
              {"images_per_second", r.images_per_second},
              {"batch", o.batch},
              {"threads", at::get_num_threads()}};
    if (r.labelled) {
      j["top1"] = r.top1;
      j["top5"] = r.top5;
    }
    if (quantized) {
      j["precision"] = o.quant.precision;
      j["calibration_seed"] = o.quant.seed;
      j["costs"] = costs_json(*quantized, load_config(o.quant).options.weight_granularity);
    }
    print_json(j);
  } else {
    fmt::print("{}{} on {} ({}{} examples{})\n", o.model, o.quant.precision.empty() ? "" : " with " + o.quant.precision,
               o.data.spec, data::has_test_split(o.data.spec) ? o.split + " split, " : "", r.examples,
               dataset.labelled() ? "" : ", no labels");
    if (r.labelled) fmt::print("top-1 {:.2f}%  top-5 {:.2f}%  ", 100 * r.top1, 100 * r.top5);
    if (metric != eval::Metric::Top1) fmt::print("{} {}  ", eval::describe(metric), eval::format_score(metric, r.score));
    fmt::print("{:.0f} examples/s\n", r.images_per_second);
  }
  return 0;
}

}  // namespace

void register_model_commands(CLI::App& app, Runner& runner) {
  static InspectOptions inspect;
  CLI::App* cmd = app.add_subcommand("inspect", "Layers with weights: shapes, parameters, MACs (and costs with --precision)");
  cmd->add_option("model", inspect.model, "ONNX model")->required();
  cmd->add_option("--precision", inspect.precision, "Precision configuration (YAML): adds bits and costs");
  cmd->add_flag("--json", inspect.json, "Print one JSON object");
  cmd->callback([&runner] { runner = [] { return run_inspect(inspect); }; });

  static RunOptions run;
  cmd = app.add_subcommand("run", "Inference on one .npy array (FP32, or quantized with --precision)");
  cmd->add_option("model", run.model, "ONNX model")->required();
  cmd->add_option("--input", run.input, "Input array (.npy), or one array per model input by name (.npz)")->required();
  cmd->add_option("--output", run.output, "Where to write the output array (.npy)")->required();
  add_quant_options(cmd, run.quant);
  add_target_option(cmd, run.quant);
  add_data_options(cmd, run.data, false);
  cmd->add_option("--runtime", run.runtime,
                  "simulation (default) or native: run an integer export (--format int) or a packed .apn file on "
                  "autoprec's own low-bit runtime");
  cmd->callback([&runner] { runner = [] { return run_run(run); }; });

  static EvalCliOptions eval_options;
  cmd = app.add_subcommand("eval", "Score (top-1/top-5, or a label-free metric against FP32) and throughput (FP32, or "
                                   "quantized with --precision)");
  cmd->add_option("model", eval_options.model, "ONNX model")->required();
  add_data_options(cmd, eval_options.data, true);
  cmd->add_option("--split", eval_options.split, "train or test (idx datasets)")->check(CLI::IsMember({"train", "test"}));
  cmd->add_option("--limit", eval_options.limit, "Evaluate only the first N examples")->check(kNonNegative);
  cmd->add_option("--batch", eval_options.batch, "Batch size")->check(kPositive);
  add_metric_option(cmd, eval_options.metric);
  add_metric_command_options(cmd, eval_options.command);
  add_quant_options(cmd, eval_options.quant);
  add_target_option(cmd, eval_options.quant);
  cmd->add_flag("--json", eval_options.json, "Print one JSON object");
  cmd->callback([&runner] { runner = [] { return run_eval(eval_options); }; });
}

}  // namespace autoprec::cli
