#include "deploy/model_latency.h"

#include <fmt/format.h>

#include "runtime/runner.h"
#include "util/error.h"

namespace autoprec::deploy {

ModelLatency measure_model_latency(const target::Profile& profile, const std::string& onnx_path, const at::Tensor& input) {
  if (!profile.measured()) {
    fail("target {} does not measure (cost model {})", profile.name, target::to_string(profile.cost_model.type));
  }
  const target::CostModelSpec& spec = profile.cost_model;
  runtime::RunnerOptions options;
  options.threads = spec.threads;
  options.timeout_s = spec.timeout_s;
  options.profile_kernels = spec.kernel_timing;
  if (spec.type == target::CostModelType::Command) {
    options.command = spec.command;
    options.what = fmt::format("runner of target {}", profile.name);
  }
  runtime::OnnxRunner runner(options);
  runner.load(onnx_path);
  runtime::TimeResult t = runner.time({{runner.inputs().at(0).name, input}}, spec.warmup, spec.repeats);
  ModelLatency latency;
  latency.wall_ms = t.median_ms;
  latency.kernel_ms = t.kernel_median_ms;
  latency.ms = spec.kernel_timing && t.kernel_median_ms ? *t.kernel_median_ms : t.median_ms;
  return latency;
}

}  // namespace autoprec::deploy
