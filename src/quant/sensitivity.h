// Per-layer sensitivity to quantization: for every quantizable layer and
// bit-width, quantize only that layer's weights (activations float), then
// only its input activation (weights float), everything else in float, and
// measure the validation score (the chosen metric, eval/metric.h), the
// accuracy drop when the data has labels, and the KL divergence of the
// logits from the float model's. The search and the ILP warm start read this table.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "eval/metric.h"
#include "graph/ir.h"
#include "quant/config.h"

namespace autoprec::quant {

struct SensitivityRow {
  std::string layer;
  std::string tensor;  // "weight" or "activation"
  int bits = 8;
  double top1 = 0;           // validation top-1 with this one tensor quantized (0 without labels)
  double accuracy_drop = 0;  // fp32 top1 - top1 (fraction; 0 without labels)
  double kl = 0;             // mean KL(p_fp32 || p_quantized) over examples, nats
  double score = 0;          // the table's metric with this one tensor quantized
};

struct SensitivityTable {
  eval::Metric metric = eval::Metric::Top1;
  bool labelled = true;     // the validation data has labels: top1 and accuracy_drop are meaningful
  double fp32_top1 = 0;
  double fp32_score = 0;    // the metric of the float model itself
  int64_t examples = 0;
  int64_t calibration_examples = 0;
  std::vector<std::string> layers;  // graph order
  std::vector<int> bits;
  std::vector<SensitivityRow> rows;

  // The row for (layer, tensor, bits); throws std::out_of_range when absent.
  const SensitivityRow& at(const std::string& layer, const std::string& tensor, int bits) const;
};

// One measurement at a time, so that the measurements can run anywhere (the
// distributed search spreads them over its workers): the constructor runs
// the float model once over `validation` and `calibration`; measure() is a
// pure function of its arguments and the constructor's. Every process that
// builds a SensitivityMeasurer from the same inputs measures the same rows.
// It keeps a reference to `validation`, which must outlive it.
class SensitivityMeasurer {
 public:
  struct Job {
    std::string layer;
    std::string tensor;  // "weight" or "activation"
    int bits = 8;
  };
  SensitivityMeasurer(std::shared_ptr<const graph::Graph> graph, const data::Dataset& calibration,
                      const data::Dataset& validation, const std::vector<int>& bits, const QuantOptions& options,
                      eval::Metric metric = eval::Metric::Top1);
  ~SensitivityMeasurer();
  // The table without rows: metric, FP32 scores, sizes, layers, bits.
  SensitivityTable header() const;
  // Every measurement of the table, in its row order (layer, tensor, bits).
  std::vector<Job> jobs() const;
  SensitivityRow measure(const Job& job) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// `calibration` supplies activation ranges, `validation` the accuracy and KL.
// `progress` (may be empty) is called after each measurement with (done, total).
SensitivityTable measure_sensitivity(std::shared_ptr<const graph::Graph> graph, const data::Dataset& calibration,
                                     const data::Dataset& validation, const std::vector<int>& bits,
                                     const QuantOptions& options,
                                     const std::function<void(int64_t, int64_t)>& progress = {},
                                     eval::Metric metric = eval::Metric::Top1);

// Mean KL(softmax(reference) || softmax(logits)) over the rows of [N, C] logits.
double mean_kl(const at::Tensor& reference_logits, const at::Tensor& logits);

}  // namespace autoprec::quant
