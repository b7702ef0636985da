#include "quant/sensitivity.h"
#include "util/error.h"

#include <ATen/ATen.h>

#include <stdexcept>

#include "eval/evaluate.h"
#include "quant/quantized_model.h"

namespace autoprec::quant {
namespace {

double score_of(eval::Metric metric, const at::Tensor& logits, const at::Tensor& reference, const at::Tensor& labels) {
  eval::MetricAccumulator m(metric);
  m.add(logits, eval::needs_reference(metric) ? reference : at::Tensor(), labels);
  return m.value();
}

}  // namespace

double mean_kl(const at::Tensor& reference_logits, const at::Tensor& logits) {
  at::Tensor p_log = at::log_softmax(reference_logits.to(at::kDouble), 1);
  at::Tensor q_log = at::log_softmax(logits.to(at::kDouble), 1);
  return (p_log.exp() * (p_log - q_log)).sum(1).mean().item<double>();
}

const SensitivityRow& SensitivityTable::at(const std::string& layer, const std::string& tensor, int b) const {
  for (const auto& r : rows) {
    if (r.layer == layer && r.tensor == tensor && r.bits == b) return r;
  }
  throw InternalError("no sensitivity row for " + layer + " " + tensor + " " + std::to_string(b));
}

SensitivityTable measure_sensitivity(std::shared_ptr<const graph::Graph> graph, const data::Dataset& calibration,
                                     const data::Dataset& validation, const std::vector<int>& bits,
                                     const QuantOptions& options,
                                     const std::function<void(int64_t, int64_t)>& progress, eval::Metric metric) {
  eval::check_metric_fits(metric, validation);
  SensitivityTable table;
  table.metric = metric;
  table.labelled = validation.labelled();
  table.bits = bits;
  table.examples = validation.size();
  table.calibration_examples = calibration.size();
  exec::Executor reference(graph, "model");
  at::Tensor reference_logits = eval::outputs_of(reference, validation);
  const bool kl_defined = reference_logits.dim() == 2;  // class scores: KL of the softmax outputs
  if (reference_logits.dim() != 2) table.labelled = false;
  if (table.labelled)
    table.fp32_top1 = static_cast<double>(eval::count_correct(reference_logits, validation.labels, 1)) /
                      static_cast<double>(validation.size());
  table.fp32_score = score_of(metric, reference_logits, reference_logits, validation.labels);

  auto layers = find_quantizable_layers(*graph, options.quantize_activation_matmul);
  table.layers = layer_names(layers);
  // Each measurement quantizes one tensor of an otherwise float model, so the
  // float model's activation statistics serve every one of them.
  CalibrationStats stats = collect_activation_stats(reference, layers, calibration.images);
  const int64_t total = static_cast<int64_t>(table.layers.size() * bits.size() * 2);
  int64_t done = 0;
  for (const std::string& layer : table.layers) {
    for (const char* tensor : {"weight", "activation"}) {
      for (int b : bits) {
        PrecisionConfig config = uniform(32, 32);
        config.options = options;
        PartialPrecision p;
        if (std::string(tensor) == "weight") {
          p.weight_bits = b;
        } else {
          p.activation_bits = b;
        }
        config.layers.emplace_back(layer, p);
        QuantizedModel model(graph, config);
        if (!model.calibrated()) model.calibrate(stats);
        at::Tensor logits = eval::outputs_of(model.executor(), validation);
        SensitivityRow row;
        row.layer = layer;
        row.tensor = tensor;
        row.bits = b;
        if (table.labelled) {
          row.top1 = static_cast<double>(eval::count_correct(logits, validation.labels, 1)) /
                     static_cast<double>(validation.size());
          row.accuracy_drop = table.fp32_top1 - row.top1;
        }
        // Outputs that are not class scores: the relative noise energy stands in for the KL.
        row.kl = kl_defined ? mean_kl(reference_logits, logits)
                            : (logits - reference_logits).to(at::kDouble).square().sum().item<double>() /
                                  std::max(1e-300, reference_logits.to(at::kDouble).square().sum().item<double>());
        row.score = score_of(metric, logits, reference_logits, validation.labels);
        table.rows.push_back(row);
        if (progress) progress(++done, total);
      }
    }
  }
  return table;
}

}  // namespace autoprec::quant
