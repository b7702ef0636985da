#include "eval/evaluate.h"

#include <ATen/ATen.h>

#include <chrono>

#include "util/error.h"
#include "util/log.h"

namespace autoprec::eval {

int64_t count_correct(const at::Tensor& logits, const at::Tensor& labels, int64_t k) {
  k = std::min<int64_t>(k, logits.size(1));
  at::Tensor top = std::get<1>(logits.topk(k, 1));
  return top.eq(labels.reshape({-1, 1})).any(1).sum().item<int64_t>();
}

EvalResult evaluate(const exec::Executor& executor, const data::Dataset& dataset, const EvalOptions& options) {
  const graph::Graph& g = executor.graph();
  if (g.inputs.size() != 1) fail("evaluation needs a model with one input; this one has {}", g.inputs.size());
  data::BatchLoader loader(dataset, options.batch_size, false, 0);
  Progress progress("eval", dataset.size(), "images", options.quiet);
  EvalResult result;
  int64_t correct1 = 0;
  int64_t correct5 = 0;
  double seconds = 0;
  for (int64_t b = 0; b < loader.num_batches(); ++b) {
    data::BatchLoader::Batch batch = loader.batch(b);
    auto start = std::chrono::steady_clock::now();
    at::Tensor logits = executor.run({batch.images})[0];
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (logits.dim() != 2 || logits.size(0) != batch.images.size(0)) {
      fail("the model's output has shape {}, expected [batch, classes] logits", c10::str(logits.sizes()));
    }
    int64_t max_label = batch.labels.max().item<int64_t>();
    if (max_label >= logits.size(1)) {
      fail("dataset {} has label {} but the model predicts only {} classes", dataset.source, max_label, logits.size(1));
    }
    correct1 += count_correct(logits, batch.labels, 1);
    if (options.keep_outcomes) {
      at::Tensor hit = std::get<1>(logits.topk(1, 1)).reshape({-1}).eq(batch.labels.reshape({-1})).to(at::kByte).contiguous();
      const uint8_t* h = hit.data_ptr<uint8_t>();
      result.top1_correct.insert(result.top1_correct.end(), h, h + hit.numel());
    }
    correct5 += count_correct(logits, batch.labels, 5);
    result.examples += batch.images.size(0);
    progress.advance(batch.images.size(0),
                     fmt::format("top-1 {:.2f}%", 100.0 * static_cast<double>(correct1) / static_cast<double>(result.examples)));
  }
  result.top1 = result.examples ? static_cast<double>(correct1) / static_cast<double>(result.examples) : 0;
  result.top5 = result.examples ? static_cast<double>(correct5) / static_cast<double>(result.examples) : 0;
  result.seconds = seconds;
  result.images_per_second = seconds > 0 ? static_cast<double>(result.examples) / seconds : 0;
  progress.finish(fmt::format("top-1 {:.2f}%", 100 * result.top1));
  return result;
}

}  // namespace autoprec::eval
