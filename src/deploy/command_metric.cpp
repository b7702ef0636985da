#include "deploy/command_metric.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "deploy/qdq_export.h"
#include "runtime/process.h"
#include "util/error.h"
#include "util/text.h"

namespace autoprec::deploy {

double run_metric_command(const CommandMetric& metric, const std::string& model_path) {
  if (metric.command.empty()) fail("the command metric needs a command (--metric-command or metric_command)");
  if (!(metric.timeout_s > 0)) fail("metric command timeout must be > 0 seconds, got {}", metric.timeout_s);
  const std::string who = fmt::format("metric command {}", quote(metric.command));
  runtime::CommandResult r =
      runtime::run_command({"/bin/sh", "-c", metric.command + " \"$1\"", "autoprec-metric", model_path}, metric.timeout_s);
  const std::string err = runtime::last_line(r.err_tail);
  const std::string said = err.empty() ? "" : fmt::format(" (its last stderr line: {})", quote(err));
  if (r.timed_out) fail("{} did not finish within {} s on {}; raise metric_timeout or make it faster", who, metric.timeout_s, model_path);
  if (!r.signal.empty()) fail("{} was killed by {}{}", who, r.signal, said);
  if (r.exit_code != 0) fail("{} exited with status {}{}", who, r.exit_code, said);
  const std::string line = runtime::last_line(r.out);
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception&) {
    value = nullptr;
  }
  if (!value.is_number() || !std::isfinite(value.get<double>()))
    fail("{} must print one number as its last line, printed {}", who, line.empty() ? "nothing" : quote(line));
  return value.get<double>();
}

double score_with_command(const quant::QuantizedModel& model, const std::string& source_model,
                          const CommandMetric& metric) {
  ExportOptions options;
  options.source_model = source_model;
  QdqExport exported = export_qdq(model, options);
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::temp_directory_path(ec);
  const std::string path =
      (dir / fmt::format("autoprec-metric-{}-{}.onnx", static_cast<long>(getpid()), reinterpret_cast<uintptr_t>(&model)))
          .string();
  save_qdq(exported.model, path);
  try {
    const double value = run_metric_command(metric, path);
    std::filesystem::remove(path, ec);
    return value;
  } catch (...) {
    std::filesystem::remove(path, ec);
    throw;
  }
}

}  // namespace autoprec::deploy
