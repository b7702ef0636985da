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

struct SensitivityMeasurer::State {
  std::shared_ptr<const graph::Graph> graph;
  const data::Dataset& validation;
  QuantOptions options;
  SensitivityTable header;
  at::Tensor reference_logits;
  bool kl_defined = false;
  CalibrationStats stats;
};

SensitivityMeasurer::SensitivityMeasurer(std::shared_ptr<const graph::Graph> graph, const data::Dataset& calibration,
                                         const data::Dataset& validation, const std::vector<int>& bits,
                                         const QuantOptions& options, eval::Metric metric)
    : state_(std::make_unique<State>(State{graph, validation, options, {}, {}, false, {}})) {
  eval::check_metric_fits(metric, validation);
  SensitivityTable& table = state_->header;
  table.metric = metric;
  table.labelled = validation.labelled();
  table.bits = bits;
  table.examples = validation.size();
  table.calibration_examples = calibration.size();
  exec::Executor reference(graph, "model");
  state_->reference_logits = eval::outputs_of(reference, validation);
  const at::Tensor& reference_logits = state_->reference_logits;
  state_->kl_defined = reference_logits.dim() == 2;  // class scores: KL of the softmax outputs
  if (reference_logits.dim() != 2) table.labelled = false;
  if (table.labelled)
    table.fp32_top1 = static_cast<double>(eval::count_correct(reference_logits, validation.labels, 1)) /
                      static_cast<double>(validation.size());
  table.fp32_score = score_of(metric, reference_logits, reference_logits, validation.labels);
  auto layers = find_quantizable_layers(*graph, options.quantize_activation_matmul);
  table.layers = layer_names(layers);
  // Each measurement quantizes one tensor of an otherwise float model, so the
  // float model's activation statistics serve every one of them.
  state_->stats = collect_activation_stats(reference, layers, calibration.inputs());
}

SensitivityMeasurer::~SensitivityMeasurer() = default;

SensitivityTable SensitivityMeasurer::header() const { return state_->header; }

std::vector<SensitivityMeasurer::Job> SensitivityMeasurer::jobs() const {
  std::vector<Job> jobs;
  for (const std::string& layer : state_->header.layers) {
    for (const char* tensor : {"weight", "activation"}) {
      for (int b : state_->header.bits) jobs.push_back({layer, tensor, b});
    }
  }
  return jobs;
}

SensitivityRow SensitivityMeasurer::measure(const Job& job) const {
  const State& st = *state_;
  const SensitivityTable& table = st.header;
  PrecisionConfig config = uniform(32, 32);
  config.options = st.options;
  PartialPrecision p;
  if (job.tensor == "weight") {
    p.weight_bits = job.bits;
  } else if (job.tensor == "activation") {
    p.activation_bits = job.bits;
  } else {
    throw InternalError("sensitivity of tensor '" + job.tensor + "'");
  }
  config.layers.emplace_back(job.layer, p);
  QuantizedModel model(st.graph, config);
  if (!model.calibrated()) model.calibrate(st.stats);
  at::Tensor logits = eval::outputs_of(model.executor(), st.validation);
  const at::Tensor& reference_logits = st.reference_logits;
  SensitivityRow row;
  row.layer = job.layer;
  row.tensor = job.tensor;
  row.bits = job.bits;
  if (table.labelled) {
    row.top1 = static_cast<double>(eval::count_correct(logits, st.validation.labels, 1)) /
               static_cast<double>(st.validation.size());
    row.accuracy_drop = table.fp32_top1 - row.top1;
  }
  // Outputs that are not class scores: the relative noise energy stands in for the KL.
  row.kl = st.kl_defined ? mean_kl(reference_logits, logits)
                         : (logits - reference_logits).to(at::kDouble).square().sum().item<double>() /
                               std::max(1e-300, reference_logits.to(at::kDouble).square().sum().item<double>());
  row.score = score_of(table.metric, logits, reference_logits, st.validation.labels);
  return row;
}

SensitivityTable measure_sensitivity(std::shared_ptr<const graph::Graph> graph, const data::Dataset& calibration,
                                     const data::Dataset& validation, const std::vector<int>& bits,
                                     const QuantOptions& options,
                                     const std::function<void(int64_t, int64_t)>& progress, eval::Metric metric) {
  SensitivityMeasurer measurer(graph, calibration, validation, bits, options, metric);
  SensitivityTable table = measurer.header();
  const std::vector<SensitivityMeasurer::Job> jobs = measurer.jobs();
  for (const auto& job : jobs) {
    table.rows.push_back(measurer.measure(job));
    if (progress) progress(static_cast<int64_t>(table.rows.size()), static_cast<int64_t>(jobs.size()));
  }
  return table;
}

}  // namespace autoprec::quant
