// export: the ONNX QDQ file of a precision configuration.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "deploy/qdq_export.h"
#include "eval/evaluate.h"
#include "runtime/runner.h"
#include "cost/metrics.h"
#include "exec/model.h"
#include "exec/summary.h"
#include "graph/tensor_proto.h"
#include "util/error.h"
#include "util/log.h"

namespace autoprec::cli {
namespace {

using nlohmann::json;

struct ExportCliOptions {
  std::string model;
  DataOptions data;
  QuantOptionsCli quant;
  std::string target;
  std::string out;
  std::string weight_type = "int8";
  bool json = false;
};

std::string container_name(int32_t type) { return graph::container_type_name(type); }

int run_export(const ExportCliOptions& o) {
  if (o.weight_type != "int8" && o.weight_type != "uint8") {
    fail("--weight-type must be int8 or uint8, not '{}'", o.weight_type);
  }
  std::filesystem::path out(o.out);
  std::filesystem::path parent = out.parent_path().empty() ? std::filesystem::path(".") : out.parent_path();
  if (!std::filesystem::is_directory(parent)) fail("cannot write {}: directory {} does not exist", o.out, parent.string());

  auto graph = exec::load_model(o.model);
  deploy::check_exportable(*graph, o.model);
  std::optional<target::Profile> profile;
  if (!o.target.empty()) profile = target::load_target(o.target);
  auto quantized = build_quantized(graph, o.model, o.quant, o.data.spec.empty() ? nullptr : &o.data,
                                   profile ? &*profile : nullptr);
  deploy::ExportOptions options;
  options.source_model = o.model;
  options.uint8_weights = o.weight_type == "uint8";
  deploy::QdqExport e = deploy::export_qdq(*quantized, options);
  deploy::save_qdq(e.model, o.out);

  auto bytes = static_cast<int64_t>(std::filesystem::file_size(o.out));
  auto source_bytes = static_cast<int64_t>(std::filesystem::file_size(o.model));
  if (o.json) {
    json layers = json::array();
    for (const deploy::LayerExport& l : e.layers) {
      layers.push_back({{"name", l.name},
                        {"weight_bits", l.weight_bits},
                        {"activation_bits", l.activation_bits},
                        {"weight_type", container_name(l.weight_type)},
                        {"activation_type", container_name(l.activation_type)},
                        {"activation_clip", l.activation_clip}});
      if (e.format == quant::QuantForm::Int) {
        layers.back()["integer"] = l.integer;
        layers.back()["integer_bias"] = l.integer_bias;
      }
    }
    json result = {{"model", o.model},
                {"precision", o.quant.precision},
                {"out", o.out},
                {"format", quant::to_string(e.format)},
                {"opset", e.opset},
                {"bytes", bytes},
                {"source_bytes", source_bytes},
                {"quantized_weight_bytes", e.quantized_weight_bytes},
                {"layers", layers}};
    if (e.format == quant::QuantForm::Int) {
      result["integer_nodes"] = e.integer_nodes;
      result["quantized_tensors"] = e.quantized_tensors;
      result["float_islands"] = e.float_nodes;
    }
    print_json(result);
    return 0;
  }
  fmt::print("{:<28} {:>5} {:>7} {:>6} {:>7}\n", "layer", "W", "A", "Wtype", "Atype");
  for (const deploy::LayerExport& l : e.layers) {
    fmt::print("{:<28} {:>5} {:>7} {:>6} {:>7}{}{}\n", l.name, l.weight_bits, l.activation_bits,
               container_name(l.weight_type), container_name(l.activation_type), l.activation_clip ? " +Clip" : "",
               e.format == quant::QuantForm::Int && !l.integer ? " float" : "");
  }
  if (e.format == quant::QuantForm::Int) {
    fmt::print("integer form: {} integer nodes, {} quantized tensors, {} float island node(s){}{}\n", e.integer_nodes,
               e.quantized_tensors, e.float_nodes.size(), e.float_nodes.empty() ? "" : ": ",
               fmt::join(e.float_nodes, ", "));
  }
  fmt::print("wrote {} ({}, opset {}): {} vs {} for {}\n", o.out, e.format == quant::QuantForm::Int ? "integer QDQ" : "QDQ",
             e.opset, human_bits(8.0 * static_cast<double>(bytes)), human_bits(8.0 * static_cast<double>(source_bytes)),
             o.model);
  return 0;
}

// ---- verify ----------------------------------------------------------------
struct VerifyCliOptions {
  std::string model;     // the exported QDQ file
  std::string source;    // float model the simulation runs (default: the file's autoprec.source_model)
  DataOptions data;
  std::string precision; // default: the calibrated config stored in the file
  std::string split = "test";
  int64_t limit = 0;
  int64_t batch = 250;
  int runtime_threads = 0;
  double tolerance_points = 0.1;
  bool json = false;
};

std::map<std::string, std::string> read_metadata(const std::string& path) {
  onnx::ModelProto model;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {}", path);
  if (!model.ParseFromIstream(&in)) fail("{} is not an ONNX model", path);
  std::map<std::string, std::string> out;
  for (const auto& p : model.metadata_props()) out[p.key()] = p.value();
  return out;
}

// Runs the exported model in ONNX Runtime and autoprec's simulation over the
// same images; returns both accuracies, their agreement and the logit gap.
json verify_export(const VerifyCliOptions& o) {
  auto meta = read_metadata(o.model);
  std::string source = o.source;
  if (source.empty()) {
    auto it = meta.find("autoprec.source_model");
    if (it == meta.end()) fail("{} names no source model (metadata autoprec.source_model); pass --source", o.model);
    source = it->second;
  }
  quant::PrecisionConfig config;
  if (!o.precision.empty()) {
    config = quant::load_precision_config(o.precision);
  } else {
    auto it = meta.find("autoprec.precision_config");
    if (it == meta.end()) fail("{} holds no precision configuration (metadata); pass --precision", o.model);
    config = quant::parse_precision_config(it->second, o.model + " metadata");
  }
  std::string why;
  if (!runtime::ort_available(&why)) fail("ONNX Runtime is not available: {}", why);
  data::Dataset d = data::load_dataset(o.data.spec, data::parse_split(o.split), o.data.preprocess());
  if (o.limit > 0) d = data::take(d, o.limit);

  auto graph = exec::load_model(source);
  quant::QuantizedModel simulation(graph, config, source);
  if (!simulation.calibrated()) fail("the precision configuration holds no calibrated ranges; pass the one written with the export");
  runtime::RunnerOptions ro;
  ro.threads = o.runtime_threads;
  runtime::OnnxRunner runner(ro);
  runner.load(o.model);
  const std::string input = runner.inputs().at(0).name;
  const std::string output = runner.outputs().at(0).name;

  int64_t ort_correct = 0, sim_correct = 0, agree = 0;
  double max_diff = 0;
  Progress progress("verify", d.size(), "images", o.json);
  for (int64_t start = 0; start < d.size(); start += o.batch) {
    int64_t n = std::min(o.batch, d.size() - start);
    at::Tensor x = d.images.narrow(0, start, n).contiguous();
    at::Tensor y = d.labels.narrow(0, start, n);
    at::Tensor sim = simulation.executor().run({x}).at(0);  // first: it names a wrong input shape plainly
    at::Tensor ort = runner.run({{input, x}}).at(output).to(at::kFloat);
    if (ort.sizes() != sim.sizes()) fail("ONNX Runtime returned logits of another shape than the simulation");
    ort_correct += eval::count_correct(ort, y, 1);
    sim_correct += eval::count_correct(sim, y, 1);
    agree += ort.argmax(1).eq(sim.argmax(1)).sum().item<int64_t>();
    max_diff = std::max(max_diff, (ort - sim).abs().max().item<double>());
    progress.advance(n);
  }
  progress.finish();
  double examples = static_cast<double>(d.size());
  double ort_top1 = ort_correct / examples, sim_top1 = sim_correct / examples;
  double gap_points = 100 * std::abs(ort_top1 - sim_top1);
  // A tolerance finer than one image cannot be judged on these images.
  const double one_image_points = 100.0 / examples;
  const double tolerance = std::max(o.tolerance_points, one_image_points);
  const bool passed = gap_points <= tolerance + 1e-9;  // 1e-9: the gap is a difference of rounded ratios
  return {{"model", o.model},
          {"source", source},
          {"examples", d.size()},
          {"runtime", "onnxruntime-node"},
          {"ort_top1", ort_top1},
          {"simulated_top1", sim_top1},
          {"gap_points", gap_points},
          {"tolerance_points", tolerance},
          {"requested_tolerance_points", o.tolerance_points},
          {"top1_agreement", agree / examples},
          {"max_logit_difference", max_diff},
          {"passed", passed}};
}

int run_verify(const VerifyCliOptions& o) {
  json r = verify_export(o);
  if (o.json) {
    print_json(r);
  } else {
    fmt::print("ONNX Runtime top-1 {:.2f}%, simulation {:.2f}% ({} images): gap {:.2f} points (tolerance {:.2f})\n",
               100 * r["ort_top1"].get<double>(), 100 * r["simulated_top1"].get<double>(), r["examples"].get<int64_t>(),
               r["gap_points"].get<double>(), r["tolerance_points"].get<double>());
    fmt::print("predictions agree on {:.2f}% of images; largest logit difference {:.4f}\n",
               100 * r["top1_agreement"].get<double>(), r["max_logit_difference"].get<double>());
  }
  if (!r["passed"].get<bool>()) {
    return check_failed(fmt::format(
        "verification failed: ONNX Runtime top-1 {:.2f}% vs simulation {:.2f}% differ by {:.2f} points (> {:.2f})",
        100 * r["ort_top1"].get<double>(), 100 * r["simulated_top1"].get<double>(), r["gap_points"].get<double>(),
        r["tolerance_points"].get<double>()));
  }
  return 0;
}

// ---- deploy ----------------------------------------------------------------
}  // namespace

json deploy_bundle(const DeployCliOptions& o) {
  auto graph = exec::load_model(o.model);
  deploy::check_exportable(*graph, o.model);
  std::string why;
  if (!runtime::ort_available(&why)) fail("ONNX Runtime is not available: {}", why);
  std::optional<target::Profile> profile;
  if (!o.target.empty()) profile = target::load_target(o.target);
  {
    // Refuse what the target cannot run before the output directory exists.
    quant::PrecisionConfig config = load_config(o.quant, profile ? &*profile : nullptr);
    auto layers = quant::find_quantizable_layers(*graph, config.options.quantize_activation_matmul);
    auto precision = quant::resolve(config, quant::layer_names(layers));
    if (profile) target::require_allowed(*profile, layers, precision, config.options.weight_granularity);
    if (config.options.format == quant::QuantForm::Int) quant::plan_integer_form(*graph, layers, precision);
  }
  prepare_output_dir(o.out);
  auto quantized = build_quantized(graph, o.model, o.quant, &o.data, profile ? &*profile : nullptr);
  deploy::ExportOptions options;
  options.source_model = o.model;
  deploy::QdqExport e = deploy::export_qdq(*quantized, options);
  const std::string onnx_path = o.out + "/model.onnx";
  deploy::save_qdq(e.model, onnx_path);
  quant::PrecisionConfig calibrated = quantized->calibrated_config();
  quant::save_precision_config(calibrated, o.out + "/precision.yaml");

  VerifyCliOptions v;
  v.model = onnx_path;
  v.source = o.model;
  v.data = o.data;
  v.precision = o.out + "/precision.yaml";
  v.limit = o.limit;
  v.json = o.json;
  json verification = verify_export(v);

  // Latency of the export against the FP32 model, same runtime, batch 1.
  at::Tensor one = data::take(data::load_dataset(o.data.spec, data::Split::Test, o.data.preprocess()), 1).images.contiguous();
  runtime::RunnerOptions ro;
  ro.threads = o.runtime_threads;
  runtime::OnnxRunner runner(ro);
  runner.load(onnx_path);
  double quantized_ms = runner.time({{runner.inputs().at(0).name, one}}, 10, o.repeats).median_ms;
  runner.load(o.model);
  double fp32_ms = runner.time({{runner.inputs().at(0).name, one}}, 10, o.repeats).median_ms;

  exec::Executor fp32(graph, o.model);
  cost::CostSummary costs = cost::compute_costs(*graph, exec::summarize(fp32), quantized->layers(), quantized->precision(),
                                                calibrated.options.weight_granularity);
  auto bytes = static_cast<int64_t>(std::filesystem::file_size(onnx_path));
  auto fp32_bytes = static_cast<int64_t>(std::filesystem::file_size(o.model));
  json bundle = {{"model", o.model},
                 {"precision", o.quant.precision},
                 {"onnx", onnx_path},
                 {"opset", e.opset},
                 {"verification", verification},
                 {"size", {{"onnx_bytes", bytes}, {"fp32_onnx_bytes", fp32_bytes},
                           {"theoretical_weight_bytes", costs.weight_memory_bits / 8},
                           {"fp32_weight_bytes", costs.fp32_weight_memory_bits / 8}}},
                 {"latency", {{"runtime", "onnxruntime-node"}, {"threads", o.runtime_threads}, {"batch", 1},
                              {"repeats", o.repeats}, {"quantized_ms", quantized_ms}, {"fp32_ms", fp32_ms},
                              {"speedup", fp32_ms / quantized_ms}}}};
  write_file_atomically(o.out + "/deploy.json", bundle.dump(2) + "\n", "deployment report");
  return bundle;
}

void print_deploy_summary(const json& bundle) {
  const json& verification = bundle["verification"];
  const auto bytes = bundle["size"]["onnx_bytes"].get<double>(), fp32_bytes = bundle["size"]["fp32_onnx_bytes"].get<double>();
  const std::string out = std::filesystem::path(bundle["onnx"].get<std::string>()).parent_path().string();
  fmt::print("ONNX Runtime top-1 {:.2f}% vs simulation {:.2f}% ({})\n", 100 * verification["ort_top1"].get<double>(),
             100 * verification["simulated_top1"].get<double>(), verification["passed"].get<bool>() ? "verified" : "MISMATCH");
  fmt::print("file {} vs FP32 {} (theoretical weight memory {})\n", human_bits(8.0 * bytes), human_bits(8.0 * fp32_bytes),
             human_bits(8.0 * bundle["size"]["theoretical_weight_bytes"].get<double>()));
  fmt::print("latency (batch 1, {} thread(s)): {:.3f} ms vs FP32 {:.3f} ms\n", bundle["latency"]["threads"].get<int>(),
             bundle["latency"]["quantized_ms"].get<double>(), bundle["latency"]["fp32_ms"].get<double>());
  fmt::print("bundle in {}: model.onnx, precision.yaml, deploy.json\n", out);
}

namespace {

int run_deploy(const DeployCliOptions& o) {
  json bundle = deploy_bundle(o);
  if (o.json) print_json(bundle);
  else print_deploy_summary(bundle);
  if (!bundle["verification"]["passed"].get<bool>()) return check_failed(fmt::format("verification failed; see {}/deploy.json", o.out));
  return 0;
}

}  // namespace

void register_deploy_commands(CLI::App& app, Runner& runner) {
  static ExportCliOptions o;
  CLI::App* cmd = app.add_subcommand("export", "Write the ONNX QDQ model of a precision configuration");
  cmd->add_option("model", o.model, "ONNX model (FP32, or a fine-tuned model.onnx from `finetune --out DIR`)")->required();
  add_data_options(cmd, o.data, false);
  add_quant_options(cmd, o.quant);
  cmd->get_option("--precision")->required()->description("Precision configuration (YAML)");
  cmd->get_option("--data")->description("Dataset calibrating the ranges when the config holds none: idx:DIR or npy:X,Y");
  cmd->add_option("--out", o.out, "Output ONNX file")->required();
  cmd->add_option("--target", o.target,
                  "Target profile (built-in name or .yaml): the export takes its form and refuses bits it does not run");
  cmd->add_option("--weight-type", o.weight_type,
                  "Container of 5-8-bit weights: int8 (default, zero point 0) or uint8 (zero point 128; avoids "
                  "ONNX Runtime's U8S8 saturation on AVX2 CPUs without VNNI)");
  cmd->add_flag("--json", o.json, "Print what was written as one JSON object");
  cmd->callback([&runner] { runner = [] { return run_export(o); }; });

  static VerifyCliOptions v;
  cmd = app.add_subcommand("verify", "Run an exported model in ONNX Runtime and compare it with the simulation");
  cmd->add_option("model", v.model, "Exported QDQ model (autoprec export)")->required();
  add_data_options(cmd, v.data, true);
  cmd->add_option("--precision", v.precision, "Calibrated precision config (default: the one stored in the file)");
  cmd->add_option("--source", v.source, "Float model the simulation runs (default: the file's source model)");
  cmd->add_option("--split", v.split, "train or test (default test)");
  cmd->add_option("--limit", v.limit, "First N images only")->check(kNonNegative);
  cmd->add_option("--tolerance", v.tolerance_points,
                  "Allowed top-1 gap in points (default 0.1; never finer than one image of those verified)")
      ->check(kNonNegative);
  cmd->add_option("--runtime-threads", v.runtime_threads, "ONNX Runtime intra-op threads (default: its own)");
  cmd->add_flag("--json", v.json, "Print one JSON object");
  cmd->callback([&runner] { runner = [] { return run_verify(v); }; });

  static DeployCliOptions d;
  cmd = app.add_subcommand("deploy", "Export, verify in ONNX Runtime and measure, into a bundle directory");
  cmd->add_option("model", d.model, "ONNX model (FP32, or a fine-tuned model.onnx)")->required();
  add_data_options(cmd, d.data, true);
  add_quant_options(cmd, d.quant);
  cmd->get_option("--precision")->required()->description("Precision configuration (YAML)");
  cmd->add_option("--out", d.out, "Bundle directory (model.onnx, precision.yaml, deploy.json)")->required();
  cmd->add_option("--target", d.target,
                  "Target profile (built-in name or .yaml): the export takes its form and refuses bits it does not run");
  cmd->add_option("--limit", d.limit, "Verify on the first N test images only")->check(kNonNegative);
  cmd->add_option("--runtime-threads", d.runtime_threads, "ONNX Runtime threads for the latency measurement (default 1)");
  cmd->add_option("--repeats", d.repeats, "Timed runs per model (default 50)")->check(kPositive);
  cmd->add_flag("--json", d.json, "Print deploy.json");
  cmd->callback([&runner] { runner = [] { return run_deploy(d); }; });
}


}  // namespace autoprec::cli
