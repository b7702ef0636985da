// export: the ONNX QDQ file of a precision configuration.
#include <ATen/ATen.h>

#include <filesystem>
#include <iostream>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "deploy/qdq_export.h"
#include "deploy/native_export.h"
#include "deploy/native_runner.h"
#include "deploy/verify.h"
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

// ---- pack ------------------------------------------------------------------
struct PackCliOptions {
  std::string model;  // an integer export
  std::string out;    // the packed native file
  bool json = false;
};

int run_pack(const PackCliOptions& o) {
  native::ModelSpec spec = deploy::read_native_spec(o.model);
  auto model = deploy::compile_native_model(spec, o.model);  // every refusal before anything is written
  deploy::save_native_model(spec, o.out);
  const auto file_bytes = static_cast<int64_t>(std::filesystem::file_size(o.out));
  json layers = json::array();
  int integer = 0;
  for (const native::LayerInfo& l : model->layers()) {
    layers.push_back({{"name", l.name}, {"kernel", l.kernel}, {"weight_bits", l.weight_bits}, {"weight_bytes", l.weight_bytes}});
    integer += l.kernel != "float";
  }
  if (o.json) {
    print_json({{"model", o.model}, {"out", o.out}, {"file_bytes", file_bytes}, {"weight_bytes", model->weight_bytes()},
                {"operators", model->spec().ops.size()}, {"layers", layers}});
    return 0;
  }
  fmt::print("{:<40} {:>5} {:>16} {:>10}\n", "layer", "bits", "kernel", "bytes");
  for (const native::LayerInfo& l : model->layers())
    fmt::print("{:<40} {:>5} {:>16} {:>10}\n", l.name, l.weight_bits, l.kernel, l.weight_bytes);
  fmt::print("wrote {} ({} operators, {} of {} layers on integers): {} weight bytes in memory, file {}\n", o.out,
             model->spec().ops.size(), integer, model->layers().size(), model->weight_bytes(),
             human_bits(8.0 * static_cast<double>(file_bytes)));
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
  std::string runtime = "onnxruntime";
  bool json = false;
};

// The CLI's verify options as a deploy::VerifyRequest over the data they name.
json verify_export(const VerifyCliOptions& o) {
  deploy::VerifyRequest request;
  request.model = o.model;
  request.source = o.source;
  if (!o.precision.empty()) request.config = quant::load_precision_config(o.precision);
  request.runtime_threads = o.runtime_threads;
  request.batch = o.batch;
  request.tolerance_points = o.tolerance_points;
  request.quiet = o.json;
  request.runtime = deploy::parse_verify_runtime(o.runtime);
  deploy::read_metadata(o.model);  // a file that is not ONNX is named before the data is read
  std::string why;
  if (request.runtime == deploy::VerifyRuntime::OnnxRuntime && !runtime::ort_available(&why)) {
    fail("ONNX Runtime is not available: {}", why);
  }
  if (request.runtime == deploy::VerifyRuntime::Native) deploy::native_model_from_file(o.model);  // refused before the data
  data::Dataset d = data::load_dataset(o.data.spec, data::parse_split(o.split), o.data.preprocess(),
                                       deploy::read_input_names(o.model));
  if (o.limit > 0) d = data::take(d, o.limit);
  return deploy::to_json(deploy::verify_export(request, d));
}

int run_verify(const VerifyCliOptions& o) {
  json r = verify_export(o);
  const std::string runtime = r["runtime"] == "native" ? "the native runtime" : "ONNX Runtime";
  if (o.json) {
    print_json(r);
  } else {
    if (r.contains("runtime_top1"))
      fmt::print("{} top-1 {:.2f}%, simulation {:.2f}% ({} examples): gap {:.2f} points (tolerance {:.2f})\n",
                 r["runtime"] == "native" ? "Native runtime" : "ONNX Runtime", 100 * r["runtime_top1"].get<double>(),
                 100 * r["simulated_top1"].get<double>(), r["examples"].get<int64_t>(), r["gap_points"].get<double>(),
                 r["tolerance_points"].get<double>());
    else
      fmt::print("{} examples without labels: agreement with FP32 {:.2f}% in {}, {:.2f}% simulated: gap {:.2f} "
                 "points (tolerance {:.2f})\n",
                 r["examples"].get<int64_t>(), 100 * r["runtime_agreement_with_fp32"].get<double>(), runtime,
                 100 * r["simulated_agreement_with_fp32"].get<double>(), r["gap_points"].get<double>(),
                 r["tolerance_points"].get<double>());
    fmt::print("predictions agree on {:.2f}% of images; largest logit difference {:.4f}\n",
               100 * r["top1_agreement"].get<double>(), r["max_logit_difference"].get<double>());
    if (r.contains("native_weight_bytes"))
      fmt::print("weights in memory: {} bytes, packed at their bit-widths\n", r["native_weight_bytes"].get<int64_t>());
  }
  if (!r["passed"].get<bool>() && !r.contains("runtime_top1")) {
    return check_failed(fmt::format("verification failed: agreement with FP32 {:.2f}% in {} vs {:.2f}% simulated "
                                    "differ by {:.2f} points (> {:.2f})",
                                    100 * r["runtime_agreement_with_fp32"].get<double>(), runtime,
                                    100 * r["simulated_agreement_with_fp32"].get<double>(), r["gap_points"].get<double>(),
                                    r["tolerance_points"].get<double>()));
  }
  if (!r["passed"].get<bool>()) {
    return check_failed(fmt::format("verification failed: {} top-1 {:.2f}% vs simulation {:.2f}% differ by {:.2f} points (> {:.2f})",
                                    runtime, 100 * r["runtime_top1"].get<double>(), 100 * r["simulated_top1"].get<double>(),
                                    r["gap_points"].get<double>(), r["tolerance_points"].get<double>()));
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
  const deploy::VerifyRuntime runtime = !o.runtime.empty() ? deploy::parse_verify_runtime(o.runtime)
                                        : profile && profile->native_runtime ? deploy::VerifyRuntime::Native
                                                                             : deploy::VerifyRuntime::OnnxRuntime;
  {
    // Refuse what the target or the form cannot run before the output directory exists.
    quant::PrecisionConfig config = load_config(o.quant, profile ? &*profile : nullptr);
    auto layers = quant::find_quantizable_layers(*graph, config.options.quantize_activation_matmul);
    auto precision = quant::resolve(config, quant::layer_names(layers));
    if (profile) target::require_allowed(*profile, layers, precision, config.options.weight_granularity);
    if (config.options.format == quant::QuantForm::Int) quant::plan_integer_form(*graph, layers, precision);
    if (runtime == deploy::VerifyRuntime::Native && config.options.format != quant::QuantForm::Int) {
      fail("the native runtime runs the integer form; deploy with --format int (or a target whose format is int)");
    }
  }
  prepare_output_dir(o.out);
  auto quantized = build_quantized(graph, o.model, o.quant, &o.data, profile ? &*profile : nullptr);
  data::Dataset test = o.data.load(data::Split::Test, *graph);
  std::vector<at::Tensor> one = data::take(test, 1).inputs();
  for (at::Tensor& t : one) t = t.contiguous();
  if (o.limit > 0) test = data::take(test, o.limit);
  deploy::BundleRequest request;
  request.model = o.model;
  request.out = o.out;
  request.runtime_threads = o.runtime_threads;
  request.repeats = o.repeats;
  request.quiet = o.json;
  request.runtime = runtime;
  deploy::BundleReport report = deploy::write_bundle(*quantized, request, test, one, o.quant.precision);
  return deploy::to_json(report, request, o.quant.precision);
}

void print_deploy_summary(const json& bundle) {
  const json& verification = bundle["verification"];
  const auto bytes = bundle["size"]["onnx_bytes"].get<double>(), fp32_bytes = bundle["size"]["fp32_onnx_bytes"].get<double>();
  const std::string out = std::filesystem::path(bundle["onnx"].get<std::string>()).parent_path().string();
  const bool native = verification.value("runtime", "") == "native";
  const std::string runtime = native ? "native runtime" : "ONNX Runtime";
  const std::string verdict = verification["passed"].get<bool>() ? "verified" : "MISMATCH";
  if (verification.contains("runtime_top1"))
    fmt::print("{} top-1 {:.2f}% vs simulation {:.2f}% ({})\n", native ? "Native runtime" : "ONNX Runtime",
               100 * verification["runtime_top1"].get<double>(), 100 * verification["simulated_top1"].get<double>(), verdict);
  else
    fmt::print("agreement with FP32: {} {:.2f}% vs simulation {:.2f}% ({})\n", runtime,
               100 * verification["runtime_agreement_with_fp32"].get<double>(),
               100 * verification["simulated_agreement_with_fp32"].get<double>(), verdict);
  fmt::print("file {} vs FP32 {} (theoretical weight memory {})\n", human_bits(8.0 * bytes), human_bits(8.0 * fp32_bytes),
             human_bits(8.0 * bundle["size"]["theoretical_weight_bytes"].get<double>()));
  if (bundle.contains("native"))
    fmt::print("native runtime: weights {} in memory, packed file {}\n",
               human_bits(8.0 * bundle["native"]["weight_bytes"].get<double>()),
               human_bits(8.0 * bundle["native"]["file_bytes"].get<double>()));
  fmt::print("latency (batch 1, {} thread(s)): {:.3f} ms on the {} vs FP32 {:.3f} ms in ONNX Runtime\n",
             bundle["latency"]["threads"].get<int>(), bundle["latency"]["quantized_ms"].get<double>(), runtime,
             bundle["latency"]["fp32_ms"].get<double>());
  fmt::print("bundle in {}: model.onnx{}, precision.yaml, deploy.json\n", out, native ? ", model.apn" : "");
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

  static PackCliOptions pack;
  cmd = app.add_subcommand("pack", "Convert an integer export (--format int) into the native runtime's packed file");
  cmd->add_option("model", pack.model, "Integer ONNX export (autoprec export --format int)")->required();
  cmd->add_option("--out", pack.out, "Packed model file (.apn) for `run --runtime native` and applications")->required();
  cmd->add_flag("--json", pack.json, "Print what was written as one JSON object");
  cmd->callback([&runner] { runner = [] { return run_pack(pack); }; });

  cmd = app.add_subcommand("native-runner",
                           "Serve the runner protocol (docs/targets.md) on the native runtime, for targets that measure "
                           "on it (cpu-native)");
  cmd->callback([&runner] { runner = [] { return deploy::serve_native_runner(std::cin, std::cout); }; });

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
  cmd->add_option("--runtime-threads", v.runtime_threads, "ONNX Runtime intra-op threads (default: its own); native: threads per layer (default 1)");
  cmd->add_option("--runtime", v.runtime,
                  "onnxruntime (default) or native: autoprec's own low-bit runtime, for integer exports (--format int)");
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
  cmd->add_option("--runtime-threads", d.runtime_threads, "Runtime threads for the verification and latency measurement (default 1)");
  cmd->add_option("--repeats", d.repeats, "Timed runs per model (default 50)")->check(kPositive);
  cmd->add_option("--runtime", d.runtime,
                  "onnxruntime or native (autoprec's own runtime: also writes model.apn, verifies and times on it; "
                  "needs --format int); default: the target's `runtime`, else onnxruntime");
  cmd->add_flag("--json", d.json, "Print deploy.json");
  cmd->callback([&runner] { runner = [] { return run_deploy(d); }; });
}


}  // namespace autoprec::cli
