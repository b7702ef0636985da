// Classification accuracy and throughput of a model on a dataset.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "exec/executor.h"

namespace autoprec::eval {

struct EvalResult {
  int64_t examples = 0;
  double top1 = 0;  // fraction in [0, 1]
  double top5 = 0;  // fraction in [0, 1]; top-k with k = min(5, classes)
  double seconds = 0;            // wall time of the forward passes
  double images_per_second = 0;  // examples / seconds
  // Per example in dataset order, 1 when its top-1 prediction is its label;
  // filled only with EvalOptions::keep_outcomes (bootstrap intervals, paired
  // comparisons of two models on the same examples).
  std::vector<uint8_t> top1_correct;
};

struct EvalOptions {
  int64_t batch_size = 256;
  bool quiet = false;  // no progress line
  bool keep_outcomes = false;  // fill EvalResult::top1_correct
};

// Runs `executor` (first input: images, first output: logits [N, classes])
// over `dataset` in batches. UserError when the model's input shape does not
// match the images or the output is not [N, classes].
EvalResult evaluate(const exec::Executor& executor, const data::Dataset& dataset, const EvalOptions& options = {});

// Number of correct predictions in `logits` [N, C] for `labels` [N] at top-k.
int64_t count_correct(const at::Tensor& logits, const at::Tensor& labels, int64_t k);

}  // namespace autoprec::eval
