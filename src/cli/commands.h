// The autoprec subcommands. Each registers its options on the CLI11 app; the
// selected one's runner is stored in `runner` and returns the exit code.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace autoprec::cli {

using Runner = std::function<int()>;

// Number validators with plain messages ("--batch: must be at least 1, got 0").
extern const CLI::Validator kPositive;     // >= 1 for integers, > 0 for reals
extern const CLI::Validator kNonNegative;  // >= 0

// inspect, run, eval.
void register_model_commands(CLI::App& app, Runner& runner);
// quantize, sensitivity.
void register_quant_commands(CLI::App& app, Runner& runner);
// targets, cost, profile.
void register_target_commands(CLI::App& app, Runner& runner);

// finetune.
void register_train_commands(CLI::App& app, Runner& runner);

// search.
void register_search_commands(CLI::App& app, Runner& runner);

// export.
void register_deploy_commands(CLI::App& app, Runner& runner);

// report.
void register_report_commands(CLI::App& app, Runner& runner);
// schema
void register_schema_commands(CLI::App& app, Runner& runner);
// Writes RUN_DIR/report.html; a failure is logged as a warning, never thrown.
void write_search_report(const std::string& run_dir, bool quiet);

}  // namespace autoprec::cli
