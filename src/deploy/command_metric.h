// The `command` metric: the user's own scorer. autoprec writes the model it
// scores as an ONNX file (the QDQ export of the calibrated simulation, in
// the configuration's form: what ONNX Runtime would run; the FP32 model is
// passed as the original file) and runs
//
//   /bin/sh -c 'COMMAND "$1"' autoprec-metric MODEL.onnx
//
// i.e. COMMAND with the model's path appended as its last argument. The
// last non-empty line of its stdout must be one JSON number, higher is
// better (print the negative of an error). Its stderr is the user's (the
// last line is quoted when it fails). docs/cli.md, "Metrics".
#pragma once

#include <string>

#include "quant/quantized_model.h"

namespace autoprec::deploy {

struct CommandMetric {
  std::string command;     // a shell command line
  double timeout_s = 600;  // per model scored
};

// Runs the command on `model_path` and returns its number. UserError, one
// line naming the command, when it cannot start, exits non-zero or by a
// signal, does not finish within the timeout, or prints no number.
double run_metric_command(const CommandMetric& metric, const std::string& model_path);

// Exports `model` (built from `source_model`) to a temporary file, scores it
// with run_metric_command and removes the file.
double score_with_command(const quant::QuantizedModel& model, const std::string& source_model,
                          const CommandMetric& metric);

}  // namespace autoprec::deploy
