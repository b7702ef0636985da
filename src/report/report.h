// `autoprec report`: one self-contained HTML page (scripts, styles and data
// inlined; no request leaves it) for one or more search run directories:
//   - accuracy against each constrained cost for every evaluated
//     configuration, with the Pareto front, the budget, the selected point
//     and the uniform-precision configurations the runs evaluated;
//   - search progress (accuracy per evaluation, best so far, staged-only
//     candidates marked);
//   - the selected configuration's bits per layer with each layer's share of
//     weight memory and BOPs, its sensitivity and the reason for its bits;
//   - predicted (per-layer sum) against measured whole-file latency, and the
//     summed sensitivity of every evaluated configuration against its
//     validation accuracy with Spearman's rank correlation;
//   - the run configuration, FP32 and result test accuracy with 95%
//     bootstrap intervals, constraints with value, bound and slack, and the
//     deployment verification.
// Every string from a model, a configuration or a journal is escaped.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "report/run_data.h"

namespace autoprec::report {

// Why one layer of the selected configuration has its bits.
struct LayerChoice {
  std::string layer;
  std::string op;
  int weight_bits = 32;
  int activation_bits = 32;
  int64_t weights = 0;               // weight elements; 0 when the model is not found
  double weight_memory_share = 0;    // of the quantizable layers' weight bits, in [0, 1]
  double bops_share = 0;             // of the quantizable layers' BOPs, in [0, 1]
  double sensitivity = -1;           // KL to FP32 at the lowest weight bits measured; -1 when unknown
  int sensitivity_rank = 0;          // 1 = most sensitive; 0 when unknown
  std::string reason;                // one phrase
};

// The per-layer analysis of `run`'s selected configuration (the result's, or
// the journal's best when the run has not finished), in graph order. Empty
// when the run has no selected configuration.
std::vector<LayerChoice> explain_layers(const RunData& run);

struct ReportOptions {
  int bootstrap_resamples = 2000;
};

// The page for `runs` (at least one).
std::string render_report(const std::vector<RunData>& runs, const ReportOptions& options = {});

struct ReportSummary {
  std::string path;
  int64_t bytes = 0;
  int64_t runs = 0;
  int64_t evaluations = 0;  // over all runs
  int64_t plots = 0;
  std::vector<std::string> missing;  // "RUN: sentence", what the page says is missing
};

// Loads `dirs` (load_run), renders and writes `out` atomically. UserError
// for a directory that is not a run directory, before anything is written,
// and when the build has no plotting library (scripts/setup installs it).
ReportSummary write_report(const std::vector<std::string>& dirs, const std::string& out,
                           const ReportOptions& options = {});

nlohmann::json to_json(const ReportSummary& summary);

// Text safe inside HTML element content and attribute values.
std::string html_escape(const std::string& text);
// JSON text safe inside a <script> element (no "</", "<!--", "]]>").
std::string script_safe_json(const nlohmann::json& value);

}  // namespace autoprec::report
