// Knowledge-distillation loss: the FP32 network teaches its quantized copy.
//
//   loss = α · T² · KL(softmax(teacher/T) ‖ softmax(student/T))
//        + (1 − α) · cross_entropy(student, labels)
//
// averaged over the batch (KL summed over classes, then averaged over
// examples). The T² factor keeps the distillation gradient's magnitude
// independent of T (Hinton et al., 2015). With α = 1 labels are not needed,
// so unlabelled data can be used; with α = 0 it is plain cross-entropy.
#pragma once

#include <ATen/core/Tensor.h>

namespace autoprec::train {

struct DistillOptions {
  // Defaults chosen on resnet20_fmnist W3A8 (docs/finetune.md): at the
  // default learning rate 0.01, T = 4 (gradients ~4x larger) diverged to
  // 10% top-1 where T = 1 reached 93.8%.
  double temperature = 1.0;  // T > 0
  double alpha = 0.9;        // in [0, 1]
};

// student_logits, teacher_logits: float32 [B, C]; labels: int64 [B] (may be
// undefined when alpha == 1). Returns a scalar tensor that carries gradients
// to student_logits only. UserError on shape mismatch, missing labels with
// alpha < 1, or out-of-range options.
at::Tensor distillation_loss(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                             const at::Tensor& labels, const DistillOptions& options);

}  // namespace autoprec::train
