#include "train/distill.h"

#include <ATen/ATen.h>
#include <fmt/ranges.h>

#include "util/error.h"

namespace autoprec::train {

at::Tensor distillation_loss(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                             const at::Tensor& labels, const DistillOptions& options) {
  if (!(options.temperature > 0)) fail("distillation temperature must be > 0, got {}", options.temperature);
  if (!(options.alpha >= 0 && options.alpha <= 1)) fail("distillation alpha must be in [0, 1], got {}", options.alpha);
  if (student_logits.dim() != 2) fail("the model's output must be logits [batch, classes], got rank {}", student_logits.dim());
  at::Tensor loss = at::zeros({}, student_logits.options());
  if (options.alpha > 0) {
    if (!teacher_logits.defined() || teacher_logits.sizes() != student_logits.sizes()) {
      fail("teacher logits [{}] do not match student logits [{}]",
           teacher_logits.defined() ? fmt::format("{}", fmt::join(teacher_logits.sizes(), ", ")) : "",
           fmt::format("{}", fmt::join(student_logits.sizes(), ", ")));
    }
    const double t = options.temperature;
    at::Tensor log_student = at::log_softmax(student_logits / t, 1);
    at::Tensor log_teacher = at::log_softmax(teacher_logits.detach() / t, 1);
    at::Tensor kl = (log_teacher.exp() * (log_teacher - log_student)).sum(1).mean();
    loss = loss + options.alpha * t * t * kl;
  }
  if (options.alpha < 1) {
    if (!labels.defined()) fail("cross-entropy needs labels (set alpha to 1 to train on unlabelled data)");
    loss = loss + (1 - options.alpha) * at::cross_entropy_loss(student_logits, labels);
  }
  return loss;
}

}  // namespace autoprec::train
