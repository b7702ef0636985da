// Fine-tuning a quantized network with knowledge distillation from the FP32
// network it came from.
//
// The student is a quant::QuantizedModel: its float weights and biases (the
// graph's BatchNorm is already folded into them) are trained through the
// fake quantizers (straight-through estimator); with learnable scales (LSQ)
// the quantizers' step sizes are trained too. The teacher is an
// exec::Executor of the float graph, run in evaluation mode.
//
// Two modes:
//  - short (options.steps > 0): exactly `steps` optimizer steps over a fixed
//    subset, in a seeded shuffled order (wrapping around). The search calls
//    this once per candidate; with a TeacherCache the teacher's logits for
//    the subset are computed once and every candidate reuses them, so a step
//    costs one student forward+backward only.
//  - full (options.epochs > 0): whole epochs over the training set, the
//    validation accuracy after each epoch, and the parameters of the best
//    epoch restored at the end.
//
// Determinism: for a fixed seed, dataset and thread count the result is
// bit-identical run to run (batch order and augmentation come from
// std::mt19937_64 streams seeded with options.seed).
//
// Divergence: a non-finite loss stops training with a TrainingDiverged error
// naming the step; the student is left at its last good parameters (the best
// epoch so far in full mode, the starting point otherwise).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "data/dataset.h"
#include "eval/metric.h"
#include "exec/executor.h"
#include "quant/quantized_model.h"
#include "train/distill.h"
#include "util/error.h"

namespace autoprec::train {

enum class OptimizerKind { Sgd, AdamW };        // yaml/cli: sgd | adamw
enum class Schedule { Cosine, Step, Constant };  // yaml/cli: cosine | step | constant
enum class ActivationRanges { Freeze, Recalibrate };  // yaml/cli: freeze | recalibrate

OptimizerKind parse_optimizer(const std::string& name);  // UserError on an unknown name
Schedule parse_schedule(const std::string& name);
ActivationRanges parse_activation_ranges(const std::string& name);
const char* to_string(OptimizerKind kind);
const char* to_string(Schedule schedule);
const char* to_string(ActivationRanges ranges);

struct FinetuneOptions {
  int64_t steps = 0;   // short mode: optimizer steps (exactly one of steps/epochs > 0)
  int64_t epochs = 0;  // full mode
  int64_t batch_size = 128;
  OptimizerKind optimizer = OptimizerKind::Sgd;
  // Defaults measured on resnet20_fmnist (docs/finetune.md).
  double learning_rate = 0.01;   // peak learning rate
  double momentum = 0.9;         // SGD only
  double weight_decay = 1e-4;    // on weights only (not biases or scales); AdamW: decoupled
  Schedule schedule = Schedule::Cosine;  // over all steps of the run
  double step_gamma = 0.1;       // Step: lr multiplied by gamma every step_size steps
  int64_t step_size = 0;         // Step: 0 = a third of the run
  // Augmentation of training images (not used with a TeacherCache, whose
  // logits belong to the unmodified images).
  int64_t crop_padding = 0;      // random crop after padding by this many pixels; 0 = off
  bool horizontal_flip = false;  // off by default: wrong for digits and many other data
  DistillOptions distill;
  bool learnable_scales = false;  // LSQ: train the quantizers' step sizes
  ActivationRanges activation_ranges = ActivationRanges::Freeze;
  // Weight scales: false keeps the calibrated scales fixed while the weights
  // train (weights outside the range get no gradient, as the straight-through
  // mask says); true recomputes min/max scales after every step, as PyTorch's
  // QAT observers do. Measured on resnet20_fmnist in docs/finetune.md.
  bool refresh_weight_scales = false;
  // How validation scores an epoch (full mode); the best epoch is the one
  // with the best score. Label-free metrics compare with the teacher.
  eval::Metric metric = eval::Metric::Top1;
  uint64_t seed = 0;
  bool quiet = false;  // no progress line
};

// One epoch of a full fine-tune (or the whole short run).
struct EpochLog {
  int64_t epoch = 0;        // 1-based
  int64_t steps = 0;        // optimizer steps so far
  double loss = 0;          // mean training loss over the epoch
  double train_top1 = 0;    // fraction correct on the (augmented) training batches; -1 without labels
  bool validated = false;   // a validation set was scored after this epoch
  double validation_score = 0;  // options.metric on the validation set (metric.h units)
  double learning_rate = 0;     // at the end of the epoch
  double seconds = 0;           // wall time of the epoch's training steps
};

struct FinetuneResult {
  std::vector<EpochLog> epochs;
  int64_t steps = 0;
  double seconds = 0;            // training wall time (excludes validation)
  double images_per_second = 0;  // training images per second
  double best_validation_score = 0;  // options.metric of the best epoch; meaningful when best_epoch > 0
  int64_t best_epoch = 0;        // 0 when there was no validation
};

// Training stopped on a non-finite loss.
class TrainingDiverged : public UserError {
 public:
  TrainingDiverged(int64_t step, double loss);
  int64_t step() const { return step_; }

 private:
  int64_t step_;
};

// The teacher's logits for a fixed set of examples, computed once.
class TeacherCache {
 public:
  // inputs: every graph input, [N, ...] each (data::Dataset::inputs). Runs
  // `teacher` in evaluation mode.
  TeacherCache(const exec::Executor& teacher, const std::vector<at::Tensor>& inputs, int64_t batch_size = 256);
  const at::Tensor& logits() const { return logits_; }  // float32 [N, classes]
  int64_t size() const { return logits_.size(0); }

 private:
  at::Tensor logits_;
};

// Called after every epoch (full mode) with its log and whether it is the
// best so far; a checkpoint writer hooks in here.
using EpochCallback = std::function<void(const EpochLog&, bool improved)>;

// Fine-tunes `student` in place. `train` supplies inputs and labels (labels
// are unused when distill.alpha == 1; without labels the loss is pure
// distillation, alpha taken as 1); `validation` (may be nullptr) is
// evaluated after each epoch in full mode; `cache`, in short mode, must hold
// the teacher's logits of exactly `train.inputs()`. Leaves the student in
// evaluation mode with refreshed weight scales. UserError on invalid options
// or data; TrainingDiverged on a non-finite loss.
FinetuneResult finetune(quant::QuantizedModel& student, const exec::Executor& teacher, const data::Dataset& train,
                        const data::Dataset* validation, const FinetuneOptions& options,
                        const TeacherCache* cache = nullptr, const EpochCallback& on_epoch = {});

// The initializers fine-tuning trains: weights and biases of Conv, Gemm and
// MatMul (and an Add right after a MatMul), normalisation scales and shifts,
// and PRelu slopes; floating point only.
std::vector<std::string> trainable_initializers(const graph::Graph& graph);

}  // namespace autoprec::train
