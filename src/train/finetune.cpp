#include "train/finetune.h"

#include "graph/op_traits.h"

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <chrono>
#include <cmath>
#include <random>
#include <set>

#include "eval/evaluate.h"
#include "util/log.h"

namespace autoprec::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void validate(const FinetuneOptions& o, const data::Dataset& train, const TeacherCache* cache) {
  if ((o.steps > 0) == (o.epochs > 0)) fail("give either a number of steps or a number of epochs (exactly one, > 0)");
  if (o.steps < 0 || o.epochs < 0) fail("steps and epochs must not be negative");
  if (o.batch_size < 1) fail("batch size must be >= 1, got {}", o.batch_size);
  if (!(o.learning_rate > 0) || !std::isfinite(o.learning_rate)) fail("learning rate must be > 0, got {}", o.learning_rate);
  if (o.momentum < 0 || o.momentum >= 1) fail("momentum must be in [0, 1), got {}", o.momentum);
  if (o.weight_decay < 0) fail("weight decay must be >= 0, got {}", o.weight_decay);
  if (o.step_gamma <= 0 || o.step_gamma > 1) fail("step schedule gamma must be in (0, 1], got {}", o.step_gamma);
  if (o.crop_padding < 0) fail("crop padding must be >= 0, got {}", o.crop_padding);
  if (train.size() == 0) fail("the training set is empty");
  if ((o.crop_padding > 0 || o.horizontal_flip) && train.images.dim() != 4)
    fail("crop padding and flips apply to images [N, C, H, W]; the inputs have shape {}", c10::str(train.images.sizes()));
  if (cache != nullptr) {
    if (o.epochs > 0) fail("a teacher-logit cache is for short fine-tunes (steps), not epochs");
    if (cache->size() != train.size()) {
      fail("the teacher cache holds {} examples but the training subset has {}", cache->size(), train.size());
    }
  }
}

double learning_rate_at(const FinetuneOptions& o, int64_t step, int64_t total_steps) {
  switch (o.schedule) {
    case Schedule::Constant:
      return o.learning_rate;
    case Schedule::Step: {
      int64_t size = o.step_size > 0 ? o.step_size : std::max<int64_t>(1, total_steps / 3);
      return o.learning_rate * std::pow(o.step_gamma, static_cast<double>(step / size));
    }
    case Schedule::Cosine:
      break;
  }
  const double pi = 3.14159265358979323846;
  return 0.5 * o.learning_rate * (1 + std::cos(pi * static_cast<double>(step) / static_cast<double>(total_steps)));
}

// Random crop after padding with the batch's minimum (the background of
// digit- and clothing-like images), and optional horizontal flips.
at::Tensor augment(const at::Tensor& images, const FinetuneOptions& o, std::mt19937_64& rng) {
  if (o.crop_padding == 0 && !o.horizontal_flip) return images;
  at::Tensor out = images.contiguous().clone();
  const int64_t n = images.size(0), h = images.size(2), w = images.size(3);
  if (o.crop_padding > 0) {
    const int64_t p = o.crop_padding;
    at::Tensor padded = at::constant_pad_nd(images, {p, p, p, p}, images.min().item<double>());
    std::uniform_int_distribution<int64_t> offset(0, 2 * p);
    for (int64_t i = 0; i < n; ++i) {
      int64_t dy = offset(rng), dx = offset(rng);
      out[i].copy_(padded[i].narrow(1, dy, h).narrow(2, dx, w));
    }
  }
  if (o.horizontal_flip) {
    std::bernoulli_distribution flip(0.5);
    for (int64_t i = 0; i < n; ++i) {
      if (flip(rng)) out[i].copy_(out[i].flip({2}));
    }
  }
  return out;
}

// Parameters whose values fine-tuning may change, for checkpoints in memory.
struct State {
  std::map<std::string, at::Tensor> tensors;

  static State capture(const std::map<std::string, at::Tensor>& live) {
    State s;
    for (const auto& [name, t] : live) s.tensors[name] = t.detach().clone();
    return s;
  }
  void restore(std::map<std::string, at::Tensor>& live) const {
    at::NoGradGuard no_grad;
    for (auto& [name, t] : live) t.copy_(tensors.at(name));
  }
};

bool is_decayed_weight(const graph::Graph& graph, const std::string& name) {
  for (const graph::Node* node : graph.consumers(name)) {
    const std::string& op = node->op_type;
    const graph::WeightedOpTraits* traits = graph::weighted_op(*node);
    if (traits != nullptr && (traits->bias_input < 0 || (node->inputs.size() > static_cast<size_t>(traits->weight_input) &&
                                                      node->inputs[traits->weight_input] == name))) {
      return true;
    }
    if (op == "ConvTranspose" && node->inputs.size() > 1 && node->inputs[1] == name) return true;
  }
  return false;
}

}  // namespace

OptimizerKind parse_optimizer(const std::string& name) {
  if (name == "sgd") return OptimizerKind::Sgd;
  if (name == "adamw") return OptimizerKind::AdamW;
  fail("unknown optimizer '{}'; valid: sgd, adamw", name);
}
Schedule parse_schedule(const std::string& name) {
  if (name == "cosine") return Schedule::Cosine;
  if (name == "step") return Schedule::Step;
  if (name == "constant") return Schedule::Constant;
  fail("unknown learning-rate schedule '{}'; valid: cosine, step, constant", name);
}
ActivationRanges parse_activation_ranges(const std::string& name) {
  if (name == "freeze") return ActivationRanges::Freeze;
  if (name == "recalibrate") return ActivationRanges::Recalibrate;
  fail("unknown activation-range mode '{}'; valid: freeze, recalibrate", name);
}
const char* to_string(OptimizerKind kind) { return kind == OptimizerKind::Sgd ? "sgd" : "adamw"; }
const char* to_string(Schedule schedule) {
  return schedule == Schedule::Cosine ? "cosine" : schedule == Schedule::Step ? "step" : "constant";
}
const char* to_string(ActivationRanges ranges) {
  return ranges == ActivationRanges::Freeze ? "freeze" : "recalibrate";
}

TrainingDiverged::TrainingDiverged(int64_t step, double loss)
    : UserError(fmt::format("fine-tuning diverged at step {} (loss {}); lower the learning rate", step, loss)),
      step_(step) {}

TeacherCache::TeacherCache(const exec::Executor& teacher, const std::vector<at::Tensor>& inputs, int64_t batch_size) {
  if (teacher.training()) fail("the teacher must run in evaluation mode");
  std::vector<at::Tensor> parts;
  const int64_t n = inputs.empty() ? 0 : inputs.front().size(0);
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t count = std::min(batch_size, n - start);
    std::vector<at::Tensor> batch;
    for (const at::Tensor& x : inputs) batch.push_back(x.narrow(0, start, count));
    parts.push_back(teacher.run(batch).at(0));
  }
  logits_ = at::cat(parts).clone();  // a normal tensor: usable in autograd outside inference mode
}

std::vector<std::string> trainable_initializers(const graph::Graph& graph) {
  std::set<std::string> names;
  auto add = [&](const std::string& value) {
    auto it = graph.initializers.find(value);
    if (it != graph.initializers.end() && it->second.is_floating_point()) names.insert(value);
  };
  for (const graph::Node& node : graph.nodes) {
    const std::string& op = node.op_type;
    if (const graph::WeightedOpTraits* traits = graph::weighted_op(node)) {
      // The weight and bias; a MatMul without bias input trains whichever operand is an initializer.
      for (size_t i = 0; i < node.inputs.size(); ++i) {
        const int index = static_cast<int>(i);
        if (traits->bias_input < 0 || index == traits->weight_input || index == traits->bias_input) add(node.inputs[i]);
      }
    } else if (op == "ConvTranspose") {
      for (size_t i = 1; i < node.inputs.size() && i < 3; ++i) add(node.inputs[i]);
    } else if (op == "Add") {
      const graph::Node* a = graph.producer(node.inputs[0]);
      const graph::Node* b = node.inputs.size() > 1 ? graph.producer(node.inputs[1]) : nullptr;
      if ((a != nullptr && a->op_type == "MatMul") || (b != nullptr && b->op_type == "MatMul")) {
        for (const std::string& input : node.inputs) add(input);
      }
    } else if (op == "BatchNormalization" || op == "LayerNormalization" || op == "InstanceNormalization") {
      for (size_t i = 1; i < node.inputs.size() && i < 3; ++i) add(node.inputs[i]);
    } else if (op == "PRelu") {
      add(node.inputs.at(1));
    }
  }
  return {names.begin(), names.end()};
}

FinetuneResult finetune(quant::QuantizedModel& student, const exec::Executor& teacher, const data::Dataset& train,
                        const data::Dataset* validation, const FinetuneOptions& options, const TeacherCache* cache,
                        const EpochCallback& on_epoch) {
  validate(options, train, cache);
  if (!student.calibrated()) fail("calibrate the quantized model before fine-tuning it");
  exec::Executor& executor = student.executor();
  const graph::Graph& graph = executor.graph();

  // The student gets its own copy of every trained tensor, so the teacher
  // (which may share the graph's initializers) stays the FP32 network.
  std::map<std::string, at::Tensor> live;
  std::vector<at::Tensor> decayed, not_decayed;
  for (const std::string& name : trainable_initializers(graph)) {
    at::Tensor& p = executor.parameters().at(name);
    p = p.detach().clone().requires_grad_(true);
    live[name] = p;
    (is_decayed_weight(graph, name) ? decayed : not_decayed).push_back(p);
  }
  if (options.learnable_scales) {
    int index = 0;
    for (at::Tensor& scale : student.enable_learnable_scales()) {
      live[fmt::format("#scale{}", index++)] = scale;
      not_decayed.push_back(scale);
    }
  }
  if (options.refresh_weight_scales) student.refresh_weight_scales();
  const bool refresh_each_step =
      options.refresh_weight_scales && student.config().options.weight_clipping == quant::RangeMethod::MinMax;

  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (options.optimizer == OptimizerKind::Sgd) {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decayed, std::make_unique<torch::optim::SGDOptions>(
                                     torch::optim::SGDOptions(options.learning_rate)
                                         .momentum(options.momentum)
                                         .weight_decay(options.weight_decay)));
    groups.emplace_back(not_decayed, std::make_unique<torch::optim::SGDOptions>(
                                         torch::optim::SGDOptions(options.learning_rate).momentum(options.momentum)));
    optimizer = std::make_unique<torch::optim::SGD>(groups, torch::optim::SGDOptions(options.learning_rate));
  } else {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decayed, std::make_unique<torch::optim::AdamWOptions>(
                                     torch::optim::AdamWOptions(options.learning_rate).weight_decay(options.weight_decay)));
    groups.emplace_back(not_decayed, std::make_unique<torch::optim::AdamWOptions>(
                                         torch::optim::AdamWOptions(options.learning_rate).weight_decay(0)));
    optimizer = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(options.learning_rate));
  }
  auto set_learning_rate = [&](double lr) {
    for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
  };

  data::BatchLoader loader(train, options.batch_size, /*shuffle=*/true, options.seed);
  const int64_t batches = loader.num_batches();
  const int64_t total_steps = options.steps > 0 ? options.steps : options.epochs * batches;
  const int64_t epochs = options.epochs > 0 ? options.epochs : (options.steps + batches - 1) / batches;
  std::mt19937_64 augment_rng(options.seed ^ 0x5DEECE66DULL);

  DistillOptions distill = options.distill;
  if (!train.labelled()) distill.alpha = 1;  // no labels: pure distillation
  at::Tensor validation_reference;
  if (validation != nullptr && options.epochs > 0) {
    eval::check_metric_fits(options.metric, *validation);
    if (eval::needs_reference(options.metric)) validation_reference = eval::outputs_of(teacher, *validation);
  }

  FinetuneResult result;
  State good = State::capture(live);
  Progress progress("fine-tune", total_steps, "steps", options.quiet);
  int64_t step = 0;
  double last_lr = options.learning_rate;
  int64_t images_seen = 0;

  for (int64_t epoch = 0; epoch < epochs && step < total_steps; ++epoch) {
    loader.start_epoch(epoch);
    executor.set_training(true);
    auto epoch_start = Clock::now();
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    for (int64_t b = 0; b < batches && step < total_steps; ++b) {
      at::Tensor indices = loader.batch_indices(b);
      std::vector<at::Tensor> inputs = train.inputs_at(indices);
      at::Tensor labels = train.labels.defined() ? train.labels.index_select(0, indices) : at::Tensor();
      at::Tensor teacher_logits;
      if (cache != nullptr) {
        teacher_logits = cache->logits().index_select(0, indices);
      } else {
        inputs.front() = augment(inputs.front(), options, augment_rng);  // crops and flips: the image input
        teacher_logits = teacher.run(inputs).at(0).clone();
      }
      last_lr = learning_rate_at(options, step, total_steps);
      set_learning_rate(last_lr);
      at::Tensor logits = executor.run(inputs).at(0);
      at::Tensor loss = distillation_loss(logits, teacher_logits, labels, distill);
      double loss_value = loss.item<double>();
      ++step;
      if (!std::isfinite(loss_value)) {
        good.restore(live);
        executor.set_training(false);
        if (options.refresh_weight_scales) student.refresh_weight_scales();
        progress.finish("diverged");
        throw TrainingDiverged(step, loss_value);
      }
      optimizer->zero_grad();
      loss.backward();
      optimizer->step();
      if (refresh_each_step) student.refresh_weight_scales();

      loss_sum += loss_value * static_cast<double>(inputs.front().size(0));
      if (labels.defined()) correct += eval::count_correct(logits.detach(), labels, 1);
      seen += inputs.front().size(0);
      progress.advance(1, fmt::format("epoch {}/{} loss {:.4f}{}", epoch + 1, epochs, loss_sum / static_cast<double>(seen),
                                      labels.defined() ? fmt::format(" acc {:.1f}%", 100.0 * static_cast<double>(correct) /
                                                                                        static_cast<double>(seen))
                                                       : std::string()));
    }
    executor.set_training(false);
    if (options.refresh_weight_scales && !refresh_each_step) student.refresh_weight_scales();
    images_seen += seen;

    EpochLog log;
    log.epoch = epoch + 1;
    log.steps = step;
    log.loss = loss_sum / static_cast<double>(std::max<int64_t>(seen, 1));
    log.train_top1 = train.labels.defined() ? static_cast<double>(correct) / static_cast<double>(seen) : -1;
    log.learning_rate = last_lr;
    log.seconds = seconds_since(epoch_start);
    result.seconds += log.seconds;
    bool improved = false;
    if (validation != nullptr && options.epochs > 0) {
      eval::EvalOptions eval_options;
      eval_options.quiet = true;
      eval_options.metric = options.metric;
      eval_options.reference_outputs = validation_reference;
      log.validated = true;
      log.validation_score = eval::evaluate(executor, *validation, eval_options).score;
      improved = result.best_epoch == 0 || eval::utility(options.metric, log.validation_score) >
                                               eval::utility(options.metric, result.best_validation_score);
      if (improved) {
        result.best_validation_score = log.validation_score;
        result.best_epoch = log.epoch;
        good = State::capture(live);
      }
    } else {
      good = State::capture(live);
    }
    result.epochs.push_back(log);
    if (on_epoch) on_epoch(log, improved);
  }
  progress.finish(fmt::format("loss {:.4f}", result.epochs.empty() ? 0.0 : result.epochs.back().loss));
  result.steps = step;
  result.images_per_second = result.seconds > 0 ? static_cast<double>(images_seen) / result.seconds : 0;

  if (validation != nullptr && options.epochs > 0 && result.best_epoch != static_cast<int64_t>(result.epochs.size())) {
    good.restore(live);
  }
  {
    at::NoGradGuard no_grad;
    for (auto& [name, t] : live) t.requires_grad_(false);
  }
  if (options.refresh_weight_scales) student.refresh_weight_scales();
  if (options.activation_ranges == ActivationRanges::Recalibrate && !options.learnable_scales) {
    const int64_t samples = std::min<int64_t>(512, train.size());
    student.calibrate(train.inputs(0, samples));
  }
  return result;
}

}  // namespace autoprec::train
