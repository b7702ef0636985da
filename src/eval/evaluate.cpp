#include "eval/evaluate.h"

#include <ATen/ATen.h>

#include <chrono>

#include <fmt/ranges.h>

#include "util/error.h"
#include "util/log.h"

namespace autoprec::eval {

int64_t count_correct(const at::Tensor& logits, const at::Tensor& labels, int64_t k) {
  k = std::min<int64_t>(k, logits.size(1));
  at::Tensor top = std::get<1>(logits.topk(k, 1));
  return top.eq(labels.reshape({-1, 1})).any(1).sum().item<int64_t>();
}

void check_metric_fits(Metric metric, const data::Dataset& dataset) {
  if (needs_labels(metric) && !dataset.labelled())
    fail("metric {} needs labels, and dataset {} has none; use a label-free metric (agreement, kl or sqnr)",
         to_string(metric), dataset.source);
}

void check_inputs_fit(const graph::Graph& graph, const data::Dataset& dataset) {
  std::vector<std::string> names;
  for (const graph::ValueInfo& v : graph.inputs) names.push_back(v.name);
  const size_t given = 1 + dataset.more_inputs.size();
  if (names.size() != given) {
    fail("the model takes {} input(s) [{}] and dataset {} gives {}; {}", names.size(), fmt::join(names, ", "),
         dataset.source, given,
         names.size() > 1 ? "give one array per input, named as the input, in an npz:FILE.npz" : "give one input array");
  }
  if (!dataset.input_names.empty() && dataset.input_names != names) {
    fail("dataset {} feeds the inputs [{}] but the model takes [{}]", dataset.source, fmt::join(dataset.input_names, ", "),
         fmt::join(names, ", "));
  }
}

at::Tensor outputs_of(const exec::Executor& executor, const data::Dataset& dataset, int64_t batch_size) {
  data::BatchLoader loader(dataset, batch_size, false, 0);
  std::vector<at::Tensor> parts;
  for (int64_t b = 0; b < loader.num_batches(); ++b) parts.push_back(executor.run(loader.batch(b).inputs)[0]);
  return at::cat(parts);
}

EvalResult evaluate_against(const exec::Executor& executor, const exec::Executor& reference,
                            const data::Dataset& dataset, EvalOptions options) {
  check_metric_fits(options.metric, dataset);
  if (needs_reference(options.metric) && !options.reference_outputs.defined())
    options.reference_outputs = outputs_of(reference, dataset, options.batch_size);
  return evaluate(executor, dataset, options);
}

EvalResult evaluate(const exec::Executor& executor, const data::Dataset& dataset, const EvalOptions& options) {
  const graph::Graph& g = executor.graph();
  check_inputs_fit(g, dataset);
  check_metric_fits(options.metric, dataset);
  if (needs_reference(options.metric)) {
    AUTOPREC_CHECK(options.reference_outputs.defined() && options.reference_outputs.size(0) == dataset.size(),
                   "metric {} needs the FP32 outputs of all {} examples", to_string(options.metric), dataset.size());
  }
  data::BatchLoader loader(dataset, options.batch_size, false, 0);
  Progress progress("eval", dataset.size(), "examples", options.quiet);
  EvalResult result;
  result.metric = options.metric;
  result.labelled = dataset.labelled();
  MetricAccumulator metric(options.metric);
  int64_t correct1 = 0;
  int64_t correct5 = 0;
  double seconds = 0;
  auto status = [&] { return fmt::format("{} {}", describe(options.metric), format_score(options.metric, metric.value())); };
  for (int64_t b = 0; b < loader.num_batches(); ++b) {
    data::BatchLoader::Batch batch = loader.batch(b);
    const int64_t n = batch.images.size(0);
    auto start = std::chrono::steady_clock::now();
    at::Tensor outputs = executor.run(batch.inputs)[0];
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (outputs.dim() == 0 || outputs.size(0) != n) {
      fail("the model's output has shape {}, expected the batch of {} first", c10::str(outputs.sizes()), n);
    }
    const bool class_scores = outputs.dim() == 2;
    if (!class_scores) result.labelled = false;  // labels of something else than the output: only the metric counts
    if (batch.labels.defined() && class_scores) {
      int64_t max_label = batch.labels.max().item<int64_t>();
      if (max_label >= outputs.size(1)) {
        fail("dataset {} has label {} but the model predicts only {} classes", dataset.source, max_label,
             outputs.size(1));
      }
      correct1 += count_correct(outputs, batch.labels, 1);
      correct5 += count_correct(outputs, batch.labels, 5);
      if (options.keep_outcomes) {
        at::Tensor hit =
            std::get<1>(outputs.topk(1, 1)).reshape({-1}).eq(batch.labels.reshape({-1})).to(at::kByte).contiguous();
        const uint8_t* h = hit.data_ptr<uint8_t>();
        result.top1_correct.insert(result.top1_correct.end(), h, h + hit.numel());
      }
    }
    at::Tensor reference = needs_reference(options.metric)
                               ? options.reference_outputs.narrow(0, b * options.batch_size, n)
                               : at::Tensor();
    metric.add(outputs, reference, batch.labels);
    result.examples += n;
    progress.advance(n, status());
  }
  const double examples = static_cast<double>(result.examples);
  result.top1 = result.examples ? static_cast<double>(correct1) / examples : 0;
  result.top5 = result.examples ? static_cast<double>(correct5) / examples : 0;
  result.score = metric.value();
  result.seconds = seconds;
  result.images_per_second = seconds > 0 ? examples / seconds : 0;
  progress.finish(status());
  return result;
}

}  // namespace autoprec::eval
