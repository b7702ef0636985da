#include "cli/commands.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <iostream>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/npy.h"
#include "eval/evaluate.h"
#include "eval/inspect.h"
#include "exec/executor.h"
#include "exec/model.h"
#include "util/error.h"
#include "util/log.h"

namespace autoprec::cli {
namespace {

using nlohmann::json;

std::string shape_text(const std::vector<int64_t>& shape) {
  return shape.empty() ? "-" : fmt::format("{}", fmt::join(shape, "x"));
}

std::string human_count(int64_t n) {
  if (n >= 1000000000) return fmt::format("{:.2f}G", static_cast<double>(n) / 1e9);
  if (n >= 1000000) return fmt::format("{:.2f}M", static_cast<double>(n) / 1e6);
  if (n >= 1000) return fmt::format("{:.1f}K", static_cast<double>(n) / 1e3);
  return std::to_string(n);
}

void print_json(const json& j) { std::cout << j.dump(2) << std::endl; }

std::unique_ptr<exec::Executor> open_model(const std::string& path) {
  auto graph = exec::load_model(path);
  return std::make_unique<exec::Executor>(graph, path);
}

// ---- inspect -------------------------------------------------------------
struct InspectOptions {
  std::string model;
  bool json = false;
};

int run_inspect(const InspectOptions& o) {
  exec::SimplifyReport report;
  auto graph = exec::load_model(o.model, &report);
  exec::Executor executor(graph, o.model);
  eval::ModelSummary summary = eval::summarize(executor);
  if (o.json) {
    json layers = json::array();
    for (const auto& l : summary.layers) {
      layers.push_back({{"name", l.name},
                        {"op", l.op},
                        {"input_shape", l.input_shape},
                        {"weight_shape", l.weight_shape},
                        {"output_shape", l.output_shape},
                        {"parameters", l.parameters},
                        {"macs", l.macs},
                        {"quantizable", l.quantizable}});
    }
    print_json({{"model", o.model},
                {"opset", graph->opset},
                {"nodes", graph->nodes.size()},
                {"input_shape", summary.input_shape},
                {"output_shape", summary.output_shape},
                {"layers", layers},
                {"total", {{"parameters", summary.total_parameters}, {"macs", summary.total_macs}}},
                {"simplified",
                 {{"batchnorms_folded", report.batchnorms_folded},
                  {"constants_folded", report.constants_folded},
                  {"identities_removed", report.identities_removed}}}});
    return 0;
  }
  size_t name_width = 4;
  for (const auto& l : summary.layers) name_width = std::max(name_width, l.name.size());
  name_width = std::min<size_t>(name_width, 48);
  fmt::print("{}  (opset {}, {} nodes; folded {} BatchNorm, {} constants)\n", o.model, graph->opset, graph->nodes.size(),
             report.batchnorms_folded, report.constants_folded);
  fmt::print("input {}  output {}\n\n", shape_text(summary.input_shape), shape_text(summary.output_shape));
  fmt::print("{:<{}}  {:<18}  {:<14}  {:<14}  {:<14}  {:>10}  {:>10}\n", "layer", name_width, "op", "input", "weight",
             "output", "params", "MACs");
  for (const auto& l : summary.layers) {
    std::string name = l.name.size() > name_width ? "…" + l.name.substr(l.name.size() - name_width + 1) : l.name;
    fmt::print("{:<{}}  {:<18}  {:<14}  {:<14}  {:<14}  {:>10}  {:>10}\n", name, name_width, l.op,
               shape_text(l.input_shape), shape_text(l.weight_shape), shape_text(l.output_shape), human_count(l.parameters),
               human_count(l.macs));
  }
  fmt::print("\n{} layers with weights, {} parameters, {} MACs per example\n", summary.layers.size(),
             human_count(summary.total_parameters), human_count(summary.total_macs));
  return 0;
}

// ---- run -----------------------------------------------------------------
struct RunOptions {
  std::string model;
  std::string input;
  std::string output;
};

int run_run(const RunOptions& o) {
  auto executor = open_model(o.model);
  if (executor->graph().inputs.size() != 1) {
    fail("{} has {} inputs; `run` supports models with one input", o.model, executor->graph().inputs.size());
  }
  at::Tensor x = data::read_npy(o.input);
  at::Tensor y = executor->run({x})[0];
  data::write_npy(o.output, y.contiguous());
  spdlog::info("wrote {} {} to {}", c10::toString(y.scalar_type()), c10::str(y.sizes()), o.output);
  return 0;
}

// ---- eval ----------------------------------------------------------------
struct EvalCliOptions {
  std::string model;
  std::string data;
  std::string split = "test";
  int64_t limit = 0;
  int64_t batch = 256;
  double scale = -1;
  std::vector<float> mean;
  std::vector<float> std;
  bool json = false;
};

int run_eval(const EvalCliOptions& o) {
  auto executor = open_model(o.model);
  data::Preprocess pre;
  pre.scale = o.scale;
  pre.mean = o.mean;
  pre.std = o.std;
  data::Dataset dataset = data::load_dataset(o.data, data::parse_split(o.split), pre);
  if (o.limit > 0) dataset = data::take(dataset, o.limit);
  eval::EvalOptions options;
  options.batch_size = o.batch;
  options.quiet = o.json;
  eval::EvalResult r = eval::evaluate(*executor, dataset, options);
  if (o.json) {
    print_json({{"model", o.model},
                {"data", o.data},
                {"split", o.split},
                {"examples", r.examples},
                {"top1", r.top1},
                {"top5", r.top5},
                {"seconds", r.seconds},
                {"images_per_second", r.images_per_second},
                {"batch", o.batch},
                {"threads", at::get_num_threads()}});
  } else {
    fmt::print("{} on {} ({} split, {} images)\n", o.model, o.data, o.split, r.examples);
    fmt::print("top-1 {:.2f}%  top-5 {:.2f}%  {:.0f} images/s\n", 100 * r.top1, 100 * r.top5, r.images_per_second);
  }
  return 0;
}

void add_preprocess(CLI::App* cmd, EvalCliOptions& o) {
  cmd->add_option("--scale", o.scale, "Pixel multiplier (default: 1/255 for 8-bit images, 1 for float)");
  cmd->add_option("--mean", o.mean, "Per-channel mean subtracted after scaling")->delimiter(',');
  cmd->add_option("--std", o.std, "Per-channel standard deviation divided after the mean")->delimiter(',');
}

}  // namespace

void register_commands(CLI::App& app, const GlobalOptions& global, Runner& runner) {
  (void)global;
  static InspectOptions inspect;
  CLI::App* cmd = app.add_subcommand("inspect", "Layers with weights: shapes, parameters, MACs");
  cmd->add_option("model", inspect.model, "ONNX model")->required();
  cmd->add_flag("--json", inspect.json, "Print one JSON object");
  cmd->callback([&runner] { runner = [] { return run_inspect(inspect); }; });

  static RunOptions run;
  cmd = app.add_subcommand("run", "FP32 inference on one .npy array");
  cmd->add_option("model", run.model, "ONNX model")->required();
  cmd->add_option("--input", run.input, "Input array (.npy)")->required();
  cmd->add_option("--output", run.output, "Where to write the output array (.npy)")->required();
  cmd->callback([&runner] { runner = [] { return run_run(run); }; });

  static EvalCliOptions eval_options;
  cmd = app.add_subcommand("eval", "Top-1/top-5 accuracy and throughput on a dataset");
  cmd->add_option("model", eval_options.model, "ONNX model")->required();
  cmd->add_option("--data", eval_options.data, "Dataset: idx:DIR or npy:IMAGES.npy,LABELS.npy")->required();
  cmd->add_option("--split", eval_options.split, "train or test (idx datasets)")->check(CLI::IsMember({"train", "test"}));
  cmd->add_option("--limit", eval_options.limit, "Evaluate only the first N examples")->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", eval_options.batch, "Batch size")->check(CLI::PositiveNumber);
  add_preprocess(cmd, eval_options);
  cmd->add_flag("--json", eval_options.json, "Print one JSON object");
  cmd->callback([&runner] { runner = [] { return run_eval(eval_options); }; });
}

}  // namespace autoprec::cli
