// The runner protocol of runtime/runner.h served by the native runtime, so
// that a target with `cost_model: {type: command, command: [autoprec,
// native-runner]}` (targets/cpu-native.yaml) measures layers and whole
// models on it: `autoprec native-runner` reads one JSON request per line.
//   load  {"model": PATH (integer ONNX export or .apn), "threads", "profiling"}
//         -> inputs/outputs [{name, type ("float32"|"uint8"), shape (batch -1)}]
//   run   {"inputs": {NAME: {"file": X.npy} | {"dtype","shape","fill","seed"}}, "outputs_dir"}
//         -> {"outputs": {NAME: FILE}, "ms"}
//   time  {"inputs", "warmup", "repeats"} -> {"median_ms", "times_ms"}; after a
//         load with profiling also "kernel_ms" (median over runs of the summed
//         operator times: no request parsing or copies), "kernel_times_ms",
//         "ops_ms" {operator type: median ms}
//   quit
// Failures answer {"ok": false, "error": one line}. "threads" (default 1; 0
// is 1) spreads each convolution's rows over that many threads; the reply's
// "threads_used" says how many.
#pragma once

#include <iosfwd>

namespace autoprec::deploy {

// Serves requests from `in` until quit or end of input; returns 0.
int serve_native_runner(std::istream& in, std::ostream& out);

}  // namespace autoprec::deploy
