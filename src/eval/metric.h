// How a model is scored: the metric every scoring command shares (eval,
// sensitivity, finetune's validation, the search's staged and full scores).
//
//   top1       fraction of examples whose top-1 class is the label (needs labels)
//   agreement  fraction of examples whose top-1 class is the FP32 model's
//   kl         mean KL(softmax(fp32) || softmax(model)) per example, in nats
//   sqnr       10·log10(Σ fp32² / Σ (fp32 − model)²) over all outputs, in dB;
//              outputs identical to the FP32 model's score kMaxSqnrDb
//   command    the user's program scores the exported model file
//              (deploy/command_metric.h); higher is better. Not computed
//              here: whoever scores with it calls deploy::score_with_command.
//
// top1, agreement and kl read class scores [N, C] from the first output; sqnr
// takes an output of any shape [N, ...]. Higher is better except for kl.
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace autoprec::eval {

enum class Metric { Top1, Agreement, Kl, Sqnr, Command };

// The score of outputs identical to the reference (the cap of sqnr), in dB.
constexpr double kMaxSqnrDb = 200.0;

const char* to_string(Metric metric);
// "top1" | "agreement" | "kl" | "sqnr" | "command"; UserError naming `what` (e.g. "--metric") otherwise.
Metric parse_metric(const std::string& name, const std::string& what = "--metric");
std::vector<std::string> metric_names();

bool needs_labels(Metric metric);
bool needs_reference(Metric metric);  // every metric but top1 compares with the FP32 model
bool higher_is_better(Metric metric);

// The score of the FP32 model itself: `fp32_top1` for top1, 1 for agreement,
// 0 for kl, kMaxSqnrDb for sqnr; `fp32_top1` (the command's FP32 score) for command.
double reference_score(Metric metric, double fp32_top1);

// A number that orders scores (higher is better): the score, or −score for kl.
double utility(Metric metric, double score);

// The score on a common scale where 1 means "as good as FP32" and the reward's
// accuracy term is 100·(fidelity(score) − fidelity(fp32 score)): top1 and
// agreement (and command) themselves, 1 − kl for kl, 1 − 10^(−dB/10) (one minus the noise
// fraction of the output energy) for sqnr.
double reward_scale(Metric metric, double score);
// The score of a useless model, where reward_scale is 0: 0 for top1,
// agreement and command, 1 nat for kl, 0 dB for sqnr. What a configuration
// whose evaluation failed is journaled with.
double floor_score(Metric metric);

// "91.20%" (top1, agreement), "0.0123 nats" (kl), "32.1 dB" (sqnr).
std::string format_score(Metric metric, double score);
// "top-1", "agreement with FP32", "KL to FP32", "SQNR to FP32": for labels and titles.
std::string describe(Metric metric);

// Accumulates one metric over batches.
class MetricAccumulator {
 public:
  explicit MetricAccumulator(Metric metric) : metric_(metric) {}
  // outputs: the model's first output [B, ...] (float); reference: the FP32
  // model's output on the same examples (undefined for top1); labels: int64
  // [B] (undefined when the data has none; top1 then is an InternalError:
  // callers check needs_labels first). UserError when the shapes do not fit
  // the metric (e.g. agreement on outputs that are not [B, C] class scores).
  void add(const at::Tensor& outputs, const at::Tensor& reference, const at::Tensor& labels);
  double value() const;  // the score so far; 0 before any example
  int64_t examples() const { return examples_; }

 private:
  Metric metric_;
  int64_t examples_ = 0;
  double sum_ = 0;         // correct / agreeing examples, or summed KL
  double signal_ = 0;      // sqnr: Σ reference²
  double noise_ = 0;       // sqnr: Σ (reference − outputs)²
};

}  // namespace autoprec::eval
