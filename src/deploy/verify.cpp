#include "deploy/verify.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "cost/metrics.h"
#include "eval/evaluate.h"
#include "exec/model.h"
#include "exec/summary.h"
#include "runtime/runner.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"

namespace autoprec::deploy {

std::map<std::string, std::string> read_metadata(const std::string& path) {
  onnx::ModelProto model;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {}", path);
  if (!model.ParseFromIstream(&in)) fail("{} is not an ONNX model", path);
  std::map<std::string, std::string> out;
  for (const auto& p : model.metadata_props()) out[p.key()] = p.value();
  return out;
}

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
  std::string why;
  if (!runtime::ort_available(&why)) fail("ONNX Runtime is not available: {}", why);
  auto graph = exec::load_model(r.source);
  quant::QuantizedModel simulation(graph, config, r.source);
  if (!simulation.calibrated()) fail("the precision configuration holds no calibrated ranges; pass the one written with the export");
  runtime::RunnerOptions ro;
  ro.threads = request.runtime_threads;
  runtime::OnnxRunner runner(ro);
  runner.load(request.model);
  const std::string input = runner.inputs().at(0).name;
  const std::string output = runner.outputs().at(0).name;

  // Without labels the FP32 model's predictions stand in for them: the runtime
  // and the simulation are each scored by their agreement with FP32.
  std::unique_ptr<exec::Executor> fp32;
  if (!data.labelled()) fp32 = std::make_unique<exec::Executor>(graph, r.source);
  int64_t ort_correct = 0, sim_correct = 0, agree = 0;
  Progress progress("verify", data.size(), "examples", request.quiet);
  for (int64_t start = 0; start < data.size(); start += request.batch) {
    int64_t n = std::min(request.batch, data.size() - start);
    at::Tensor x = data.images.narrow(0, start, n).contiguous();
    at::Tensor sim = simulation.executor().run({x}).at(0);  // first: it names a wrong input shape plainly
    at::Tensor ort = runner.run({{input, x}}).at(output).to(at::kFloat);
    if (ort.sizes() != sim.sizes()) fail("ONNX Runtime returned logits of another shape than the simulation");
    at::Tensor y = data.labelled() ? data.labels.narrow(0, start, n) : fp32->run({x}).at(0).argmax(1);
    ort_correct += eval::count_correct(ort, y, 1);
    sim_correct += eval::count_correct(sim, y, 1);
    agree += ort.argmax(1).eq(sim.argmax(1)).sum().item<int64_t>();
    r.max_logit_difference = std::max(r.max_logit_difference, (ort - sim).abs().max().item<double>());
    progress.advance(n);
  }
  progress.finish();
  const auto examples = static_cast<double>(data.size());
  r.examples = data.size();
  r.ort_top1 = static_cast<double>(ort_correct) / examples;
  r.simulated_top1 = static_cast<double>(sim_correct) / examples;
  r.top1_agreement = static_cast<double>(agree) / examples;
  r.labelled = data.labelled();
  r.gap_points = 100 * std::abs(r.ort_top1 - r.simulated_top1);
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
          {"runtime", "onnxruntime-node"},
          {"labelled", r.labelled},
          {"gap_points", r.gap_points},
          {"tolerance_points", r.tolerance_points},
          {"requested_tolerance_points", r.requested_tolerance_points},
          {"top1_agreement", r.top1_agreement},
          {"max_logit_difference", r.max_logit_difference},
          {"passed", r.passed}};
  if (r.labelled) j.update({{"ort_top1", r.ort_top1}, {"simulated_top1", r.simulated_top1}});
  else j.update({{"ort_agreement_with_fp32", r.ort_top1}, {"simulated_agreement_with_fp32", r.simulated_top1}});
  return j;
}

BundleReport write_bundle(const quant::QuantizedModel& quantized, const BundleRequest& request, const data::Dataset& test,
                          const at::Tensor& one, const std::string& precision_path) {
  BundleReport b;
  ExportOptions options;
  options.source_model = request.model;
  b.exported = export_qdq(quantized, options);
  b.onnx = request.out + "/model.onnx";
  save_qdq(b.exported.model, b.onnx);
  quant::PrecisionConfig calibrated = quantized.calibrated_config();
  quant::save_precision_config(calibrated, request.out + "/precision.yaml");

  VerifyRequest v;
  v.model = b.onnx;
  v.source = request.model;
  v.config = calibrated;
  v.quiet = request.quiet;
  b.verification = verify_export(v, test);

  runtime::RunnerOptions ro;
  ro.threads = request.runtime_threads;
  runtime::OnnxRunner runner(ro);
  runner.load(b.onnx);
  b.quantized_ms = runner.time({{runner.inputs().at(0).name, one}}, 10, request.repeats).median_ms;
  runner.load(request.model);
  b.fp32_ms = runner.time({{runner.inputs().at(0).name, one}}, 10, request.repeats).median_ms;

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
                      {"latency", {{"runtime", "onnxruntime-node"}, {"threads", request.runtime_threads}, {"batch", 1},
                                   {"repeats", request.repeats}, {"quantized_ms", b.quantized_ms}, {"fp32_ms", b.fp32_ms},
                                   {"speedup", b.fp32_ms / b.quantized_ms}}}};
  if (b.exported.format == quant::QuantForm::Int) j["float_islands"] = b.exported.float_nodes;
  return j;
}

}  // namespace autoprec::deploy
