#include "deploy/verify.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <fmt/ranges.h>
#include <fstream>
#include <set>

#include "cost/metrics.h"
#include "deploy/native_export.h"
#include "eval/evaluate.h"
#include "exec/model.h"
#include "exec/summary.h"
#include "runtime/runner.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"

namespace autoprec::deploy {

namespace {
onnx::ModelProto read_model_proto(const std::string& path) {
  onnx::ModelProto model;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {}", path);
  if (!model.ParseFromIstream(&in)) fail("{} is not an ONNX model", path);
  return model;
}
}  // namespace

std::map<std::string, std::string> read_metadata(const std::string& path) {
  const onnx::ModelProto model = read_model_proto(path);
  std::map<std::string, std::string> out;
  for (const auto& p : model.metadata_props()) out[p.key()] = p.value();
  return out;
}

std::vector<std::string> read_input_names(const std::string& path) {
  const onnx::ModelProto model = read_model_proto(path);
  std::set<std::string> initializers;
  for (const auto& t : model.graph().initializer()) initializers.insert(t.name());
  std::vector<std::string> names;
  for (const auto& v : model.graph().input()) {
    if (!initializers.count(v.name())) names.push_back(v.name());
  }
  return names;
}

const char* to_string(VerifyRuntime runtime) {
  return runtime == VerifyRuntime::Native ? "native" : "onnxruntime-node";
}

VerifyRuntime parse_verify_runtime(const std::string& name) {
  if (name == "onnxruntime" || name == "ort" || name == "onnxruntime-node") return VerifyRuntime::OnnxRuntime;
  if (name == "native") return VerifyRuntime::Native;
  fail("unknown runtime '{}': onnxruntime or native", name);
}

namespace {

// The model on the runtime a verification names, batch in, logits out.
class VerifiedRuntime {
 public:
  explicit VerifiedRuntime(const VerifyRequest& request) : runtime_(request.runtime), path_(request.model) {
    if (runtime_ == VerifyRuntime::Native) {
      native_ = load_native_model(request.model, std::max(1, request.runtime_threads));
      return;
    }
    std::string why;
    if (!runtime::ort_available(&why)) fail("ONNX Runtime is not available: {}", why);
    runtime::RunnerOptions ro;
    ro.threads = request.runtime_threads;
    ort_ = std::make_unique<runtime::OnnxRunner>(ro);
    ort_->load(request.model);
    output_ = ort_->outputs().at(0).name;
  }

  // One batch of every model input, xs[i] feeding the input names[i]; logits out.
  at::Tensor run(const std::vector<at::Tensor>& xs, const std::vector<std::string>& names) {
    if (ort_) {
      std::map<std::string, at::Tensor> named;
      for (size_t i = 0; i < xs.size() && i < names.size(); ++i) named[names[i]] = xs[i];
      return ort_->run(named).at(output_).to(at::kFloat);
    }
    if (xs.size() != 1) fail("{}: the native runtime runs models with one input; this data gives {}", path_, xs.size());
    const at::Tensor& x = xs.front();
    const auto& shape = native_->spec().input_shape;
    if (x.dim() != static_cast<int64_t>(shape.size()) + 1 ||
        !std::equal(shape.begin(), shape.end(), x.sizes().begin() + 1)) {
      fail("{}: the data's examples are [{}] but the native model takes [{}]", path_, fmt::join(x.sizes().slice(1), ", "),
           fmt::join(shape, ", "));
    }
    at::Tensor in = x.to(at::kFloat).contiguous();
    auto outputs = native_->run(in.data_ptr<float>(), in.size(0));
    native::Model::Output& o = outputs.at(0);
    return at::from_blob(o.values.data(), o.shape, at::kFloat).clone();
  }

  int64_t native_weight_bytes() const { return native_ ? native_->weight_bytes() : 0; }

 private:
  VerifyRuntime runtime_;
  std::string path_;
  std::unique_ptr<native::Model> native_;
  std::unique_ptr<runtime::OnnxRunner> ort_;
  std::string output_;
};

}  // namespace

VerifyReport verify_export(const VerifyRequest& request, const data::Dataset& data) {
  auto meta = read_metadata(request.model);
  VerifyReport r;
  r.model = request.model;
  r.source = request.source;
  if (r.source.empty()) {
    auto it = meta.find("autoprec.source_model");
    if (it == meta.end()) fail("{} names no source model (metadata autoprec.source_model); pass --source", request.model);
    r.source = it->second;
  }
  quant::PrecisionConfig config;
  if (request.config) {
    config = *request.config;
  } else {
    auto it = meta.find("autoprec.precision_config");
    if (it == meta.end()) fail("{} holds no precision configuration (metadata); pass --precision", request.model);
    config = quant::parse_precision_config(it->second, request.model + " metadata");
  }
  r.runtime = request.runtime;
  auto graph = exec::load_model(r.source);
  eval::check_inputs_fit(*graph, data);
  const std::vector<std::string> input_names = graph->input_names();
  quant::QuantizedModel simulation(graph, config, r.source);
  if (!simulation.calibrated()) fail("the precision configuration holds no calibrated ranges; pass the one written with the export");
  VerifiedRuntime runner(request);
  r.native_weight_bytes = runner.native_weight_bytes();

  // Without labels the FP32 model's predictions stand in for them: the runtime
  // and the simulation are each scored by their agreement with FP32.
  std::unique_ptr<exec::Executor> fp32;
  if (!data.labelled()) fp32 = std::make_unique<exec::Executor>(graph, r.source);
  int64_t ort_correct = 0, sim_correct = 0, agree = 0;
  Progress progress("verify", data.size(), "examples", request.quiet);
  for (int64_t start = 0; start < data.size(); start += request.batch) {
    int64_t n = std::min(request.batch, data.size() - start);
    std::vector<at::Tensor> x = data.inputs(start, n);
    for (at::Tensor& t : x) t = t.contiguous();
    at::Tensor sim = simulation.executor().run(x).at(0);  // first: it names a wrong input shape plainly
    at::Tensor ort = runner.run(x, input_names);
    if (ort.sizes() != sim.sizes()) fail("{} returned logits of another shape than the simulation", to_string(request.runtime));
    at::Tensor y = data.labelled() ? data.labels.narrow(0, start, n) : fp32->run(x).at(0).argmax(1);
    ort_correct += eval::count_correct(ort, y, 1);
    sim_correct += eval::count_correct(sim, y, 1);
    agree += ort.argmax(1).eq(sim.argmax(1)).sum().item<int64_t>();
    r.max_logit_difference = std::max(r.max_logit_difference, (ort - sim).abs().max().item<double>());
    progress.advance(n);
  }
  progress.finish();
  const auto examples = static_cast<double>(data.size());
  r.examples = data.size();
  r.runtime_top1 = static_cast<double>(ort_correct) / examples;
  r.simulated_top1 = static_cast<double>(sim_correct) / examples;
  r.top1_agreement = static_cast<double>(agree) / examples;
  r.labelled = data.labelled();
  r.gap_points = 100 * std::abs(r.runtime_top1 - r.simulated_top1);
  r.requested_tolerance_points = request.tolerance_points;
  // A tolerance finer than one image cannot be judged on these images.
  r.tolerance_points = std::max(request.tolerance_points, 100.0 / examples);
  r.passed = r.gap_points <= r.tolerance_points + 1e-9;  // 1e-9: the gap is a difference of rounded ratios
  return r;
}

nlohmann::json to_json(const VerifyReport& r) {
  nlohmann::json j = {{"model", r.model},
          {"source", r.source},
          {"examples", r.examples},
          {"runtime", to_string(r.runtime)},
          {"labelled", r.labelled},
          {"gap_points", r.gap_points},
          {"tolerance_points", r.tolerance_points},
          {"requested_tolerance_points", r.requested_tolerance_points},
          {"top1_agreement", r.top1_agreement},
          {"max_logit_difference", r.max_logit_difference},
          {"passed", r.passed}};
  if (r.labelled) j.update({{"runtime_top1", r.runtime_top1}, {"simulated_top1", r.simulated_top1}});
  else j.update({{"runtime_agreement_with_fp32", r.runtime_top1}, {"simulated_agreement_with_fp32", r.simulated_top1}});
  if (r.runtime == VerifyRuntime::OnnxRuntime) {  // the names earlier releases wrote
    if (r.labelled) j["ort_top1"] = r.runtime_top1;
    else j["ort_agreement_with_fp32"] = r.runtime_top1;
  } else {
    j["native_weight_bytes"] = r.native_weight_bytes;
  }
  return j;
}

namespace {

// Median wall time of one batch-1 inference of `one` on the native runtime, ms.
double time_native(native::Model& model, const at::Tensor& one, int warmup, int repeats) {
  at::Tensor x = one.to(at::kFloat).contiguous();
  std::vector<double> ms;
  for (int i = 0; i < warmup + repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    model.run(x.data_ptr<float>(), x.size(0));
    if (i >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

BundleReport write_bundle(const quant::QuantizedModel& quantized, const BundleRequest& request, const data::Dataset& test,
                          const std::vector<at::Tensor>& one, const std::string& precision_path) {
  BundleReport b;
  ExportOptions options;
  options.source_model = request.model;
  const bool native = request.runtime == VerifyRuntime::Native;
  if (native && quantized.format() != quant::QuantForm::Int) {
    fail("the native runtime runs the integer form; deploy with --format int (or a target whose format is int)");
  }
  b.exported = export_qdq(quantized, options);
  b.onnx = request.out + "/model.onnx";
  std::unique_ptr<native::Model> native_model;
  native::ModelSpec native_spec;
  if (native) {
    native_spec = native_model_from_onnx(b.exported.model, b.onnx);  // refused before anything is written
    native_model = compile_native_model(native_spec, b.onnx, std::max(1, request.runtime_threads));
  }
  save_qdq(b.exported.model, b.onnx);
  if (native) {
    b.native_file = request.out + "/model.apn";
    save_native_model(native_spec, b.native_file);
    b.native_weight_bytes = native_model->weight_bytes();
  }
  quant::PrecisionConfig calibrated = quantized.calibrated_config();
  quant::save_precision_config(calibrated, request.out + "/precision.yaml");

  VerifyRequest v;
  v.model = b.onnx;
  v.source = request.model;
  v.config = calibrated;
  v.quiet = request.quiet;
  v.runtime = request.runtime;
  b.verification = verify_export(v, test);

  runtime::RunnerOptions ro;
  ro.threads = request.runtime_threads;
  runtime::OnnxRunner runner(ro);
  const std::vector<std::string> input_names = quantized.executor().graph().input_names();
  auto named = [&] {
    std::map<std::string, at::Tensor> inputs;
    for (size_t i = 0; i < one.size() && i < input_names.size(); ++i) inputs[input_names[i]] = one[i];
    return inputs;
  };
  if (native) {
    b.quantized_ms = time_native(*native_model, one.at(0), 10, request.repeats);
  } else {
    runner.load(b.onnx);
    b.quantized_ms = runner.time(named(), 10, request.repeats).median_ms;
  }
  runner.load(request.model);
  b.fp32_ms = runner.time(named(), 10, request.repeats).median_ms;

  const graph::Graph& g = quantized.executor().graph();
  exec::Executor fp32(std::make_shared<graph::Graph>(g), request.model);
  cost::CostSummary costs = cost::compute_costs(g, exec::summarize(fp32), quantized.layers(), quantized.precision(),
                                                calibrated.options.weight_granularity);
  b.onnx_bytes = static_cast<int64_t>(std::filesystem::file_size(b.onnx));
  b.fp32_onnx_bytes = static_cast<int64_t>(std::filesystem::file_size(request.model));
  b.theoretical_weight_bytes = static_cast<int64_t>(costs.weight_memory_bits / 8);
  b.fp32_weight_bytes = static_cast<int64_t>(costs.fp32_weight_memory_bits / 8);
  write_file_atomically(request.out + "/deploy.json", to_json(b, request, precision_path).dump(2) + "\n",
                        "deployment report");
  return b;
}

nlohmann::json to_json(const BundleReport& b, const BundleRequest& request, const std::string& precision_path) {
  nlohmann::json j = {{"model", request.model},
                      {"precision", precision_path},
                      {"onnx", b.onnx},
                      {"format", quant::to_string(b.exported.format)},
                      {"opset", b.exported.opset},
                      {"verification", to_json(b.verification)},
                      {"size", {{"onnx_bytes", b.onnx_bytes}, {"fp32_onnx_bytes", b.fp32_onnx_bytes},
                                {"theoretical_weight_bytes", b.theoretical_weight_bytes},
                                {"fp32_weight_bytes", b.fp32_weight_bytes}}},
                      {"latency", {{"runtime", to_string(request.runtime)}, {"fp32_runtime", "onnxruntime-node"},
                                   {"threads", request.runtime_threads},
                                   {"batch", 1}, {"repeats", request.repeats}, {"quantized_ms", b.quantized_ms},
                                   {"fp32_ms", b.fp32_ms}, {"speedup", b.fp32_ms / b.quantized_ms}}}};
  if (!b.native_file.empty()) {
    j["native"] = {{"file", b.native_file}, {"weight_bytes", b.native_weight_bytes},
                   {"file_bytes", static_cast<int64_t>(std::filesystem::file_size(b.native_file))}};
  }
  if (b.exported.format == quant::QuantForm::Int) j["float_islands"] = b.exported.float_nodes;
  return j;
}

}  // namespace autoprec::deploy
