#include "eval/metric.h"

#include <ATen/ATen.h>

#include <cmath>

#include <fmt/format.h>

#include "util/error.h"
#include "util/text.h"

namespace autoprec::eval {

const char* to_string(Metric metric) {
  switch (metric) {
    case Metric::Top1: return "top1";
    case Metric::Agreement: return "agreement";
    case Metric::Kl: return "kl";
    case Metric::Sqnr: return "sqnr";
    case Metric::Command: return "command";
  }
  return "?";
}

std::vector<std::string> metric_names() { return {"top1", "agreement", "kl", "sqnr", "command"}; }

Metric parse_metric(const std::string& name, const std::string& what) {
  for (Metric m : {Metric::Top1, Metric::Agreement, Metric::Kl, Metric::Sqnr, Metric::Command})
    if (name == to_string(m)) return m;
  fail("{}: unknown metric {}{}; metrics: {}", what, quote(name), did_you_mean(name, metric_names()),
       list_names(metric_names()));
}

bool needs_labels(Metric metric) { return metric == Metric::Top1; }
bool needs_reference(Metric metric) { return metric != Metric::Top1 && metric != Metric::Command; }
bool higher_is_better(Metric metric) { return metric != Metric::Kl; }

double reference_score(Metric metric, double fp32_top1) {
  switch (metric) {
    case Metric::Top1: return fp32_top1;
    case Metric::Agreement: return 1.0;
    case Metric::Kl: return 0.0;
    case Metric::Sqnr: return kMaxSqnrDb;
    case Metric::Command: return fp32_top1;
  }
  return 0;
}

double utility(Metric metric, double score) { return higher_is_better(metric) ? score : -score; }

double reward_scale(Metric metric, double score) {
  switch (metric) {
    case Metric::Top1:
    case Metric::Agreement:
    case Metric::Command: return score;
    case Metric::Kl: return 1.0 - score;
    case Metric::Sqnr: return 1.0 - std::pow(10.0, -score / 10.0);
  }
  return score;
}

double floor_score(Metric metric) { return metric == Metric::Kl ? 1.0 : 0.0; }

std::string format_score(Metric metric, double score) {
  switch (metric) {
    case Metric::Top1:
    case Metric::Agreement: return fmt::format("{:.2f}%", 100 * score);
    case Metric::Kl: return fmt::format("{:.4g} nats", score);
    case Metric::Sqnr: return fmt::format("{:.1f} dB", score);
    case Metric::Command: return fmt::format("{:.6g}", score);
  }
  return fmt::format("{}", score);
}

std::string describe(Metric metric) {
  switch (metric) {
    case Metric::Top1: return "top-1";
    case Metric::Agreement: return "agreement with FP32";
    case Metric::Kl: return "KL to FP32";
    case Metric::Sqnr: return "SQNR to FP32";
    case Metric::Command: return "metric command score";
  }
  return "?";
}

void MetricAccumulator::add(const at::Tensor& outputs, const at::Tensor& reference, const at::Tensor& labels) {
  AUTOPREC_CHECK(metric_ != Metric::Command, "the command metric scores model files, not outputs");
  const int64_t batch = outputs.dim() > 0 ? outputs.size(0) : 0;
  if (needs_reference(metric_)) {
    AUTOPREC_CHECK(reference.defined(), "metric {} without reference outputs", to_string(metric_));
    if (reference.sizes() != outputs.sizes())
      fail("the model's output has shape {} but the FP32 model's has {}", c10::str(outputs.sizes()),
           c10::str(reference.sizes()));
  }
  if (metric_ != Metric::Sqnr && outputs.dim() != 2)
    fail("metric {} needs class scores [batch, classes] from the first output, which has shape {}; for other "
         "outputs use --metric sqnr",
         to_string(metric_), c10::str(outputs.sizes()));
  switch (metric_) {
    case Metric::Top1: {
      AUTOPREC_CHECK(labels.defined(), "metric top1 without labels");
      at::Tensor predicted = std::get<1>(outputs.topk(1, 1)).reshape({-1});
      sum_ += static_cast<double>(predicted.eq(labels.reshape({-1})).sum().item<int64_t>());
      break;
    }
    case Metric::Agreement:
      sum_ += static_cast<double>(
          std::get<1>(outputs.topk(1, 1)).eq(std::get<1>(reference.topk(1, 1))).sum().item<int64_t>());
      break;
    case Metric::Kl: {
      at::Tensor p_log = at::log_softmax(reference.to(at::kDouble), 1);
      at::Tensor q_log = at::log_softmax(outputs.to(at::kDouble), 1);
      sum_ += (p_log.exp() * (p_log - q_log)).sum().item<double>();
      break;
    }
    case Metric::Sqnr: {
      at::Tensor r = reference.to(at::kDouble);
      signal_ += r.square().sum().item<double>();
      noise_ += (r - outputs.to(at::kDouble)).square().sum().item<double>();
      break;
    }
    case Metric::Command: break;
  }
  examples_ += batch;
}

double MetricAccumulator::value() const {
  if (examples_ == 0) return 0;
  if (metric_ == Metric::Sqnr) {
    if (noise_ <= 0) return kMaxSqnrDb;
    if (signal_ <= 0) return -kMaxSqnrDb;
    return std::min(kMaxSqnrDb, 10.0 * std::log10(signal_ / noise_));
  }
  return sum_ / static_cast<double>(examples_);
}

}  // namespace autoprec::eval
