// Whole-model latency of an exported (QDQ) model on a measured target: the
// number the per-layer table only approximates by a sum, because a whole
// model keeps layouts between layers, fuses activations and pays the runtime's
// per-inference overhead once.
#pragma once

#include <optional>
#include <string>

#include <ATen/core/Tensor.h>

#include "target/profile.h"

namespace autoprec::deploy {

struct ModelLatency {
  double ms = 0;        // by the profile's timing: summed kernel times (kernels) or wall time (wall)
  double wall_ms = 0;   // median wall time of one inference as the runner sees it
  std::optional<double> kernel_ms;  // median summed kernel time, when the runner reports it
};

// Times `onnx_path` with batch-1 input `input` through the runner of
// `profile` (cpu-ort: ONNX Runtime; command: the profile's runner), with its
// threads, warm-up, repeats, timeout and timing. UserError when the profile
// does not measure (not cpu-ort or command) or the runner fails.
ModelLatency measure_model_latency(const target::Profile& profile, const std::string& onnx_path, const at::Tensor& input);

}  // namespace autoprec::deploy
