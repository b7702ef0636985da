// Scores and throughput of a model on a dataset.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "eval/metric.h"
#include "exec/executor.h"

namespace autoprec::eval {

struct EvalResult {
  int64_t examples = 0;
  bool labelled = false;  // the data has labels: top1 and top5 are meaningful
  double top1 = 0;  // fraction in [0, 1]
  double top5 = 0;  // fraction in [0, 1]; top-k with k = min(5, classes)
  Metric metric = Metric::Top1;
  double score = 0;  // the metric's value (metric.h)
  double seconds = 0;            // wall time of the forward passes
  double images_per_second = 0;  // examples / seconds
  // Per example in dataset order, 1 when its top-1 prediction is its label;
  // filled only with EvalOptions::keep_outcomes on labelled data (bootstrap
  // intervals, paired comparisons of two models on the same examples).
  std::vector<uint8_t> top1_correct;
};

struct EvalOptions {
  int64_t batch_size = 256;
  bool quiet = false;  // no progress line
  bool keep_outcomes = false;  // fill EvalResult::top1_correct
  Metric metric = Metric::Top1;
  // The FP32 model's first output on the whole dataset, in dataset order
  // (outputs_of); required by every metric but top1.
  at::Tensor reference_outputs;
};

// Runs `executor` (first input: the data's inputs, first output: the scored
// output, logits [N, classes] for top1/agreement/kl) over `dataset` in
// batches. top1/top5 are computed whenever the data has labels and the output
// is [N, classes]. UserError when the metric needs labels the data does not
// have, or the output does not fit the metric or the labels.
EvalResult evaluate(const exec::Executor& executor, const data::Dataset& dataset, const EvalOptions& options = {});

// evaluate() with options.reference_outputs computed from `reference` (the
// FP32 model) when the metric needs them.
EvalResult evaluate_against(const exec::Executor& executor, const exec::Executor& reference,
                            const data::Dataset& dataset, EvalOptions options);

// The first output of `executor` on every example of `dataset`, in order
// ([N, ...], float32; no progress line).
at::Tensor outputs_of(const exec::Executor& executor, const data::Dataset& dataset, int64_t batch_size = 256);

// Refuses (UserError, before any work) a metric that needs labels on a
// dataset without them, naming the dataset and the label-free metrics.
void check_metric_fits(Metric metric, const data::Dataset& dataset);
// UserError unless `dataset` feeds every input of `graph`: as many inputs,
// each named as the graph's input when the data names them (npz:).
// Dtypes and shapes are checked when the model runs (exec::Executor::run).
void check_inputs_fit(const graph::Graph& graph, const data::Dataset& dataset);

// Number of correct predictions in `logits` [N, C] for `labels` [N] at top-k.
int64_t count_correct(const at::Tensor& logits, const at::Tensor& labels, int64_t k);

}  // namespace autoprec::eval
