// report: the self-contained HTML page of one or more search runs.
#include <filesystem>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "report/report.h"
#include "util/log.h"

namespace autoprec::cli {
namespace {

struct ReportCliOptions {
  std::vector<std::string> runs;
  std::string out;
  bool json = false;
};

std::string human_size(int64_t bytes) {
  return bytes >= 1 << 20 ? fmt::format("{:.2f} MiB", static_cast<double>(bytes) / (1 << 20))
                          : fmt::format("{:.1f} KiB", static_cast<double>(bytes) / 1024);
}

int run_report(const ReportCliOptions& o) {
  std::string out = o.out;
  if (out.empty()) out = o.runs.size() == 1 ? (std::filesystem::path(o.runs[0]) / "report.html").string() : "report.html";
  report::ReportSummary s = report::write_report(o.runs, out);
  if (o.json) {
    print_json(report::to_json(s));
    return 0;
  }
  fmt::print("report: {} ({}, {} run{}, {} evaluations, {} plots)\n", s.path, human_size(s.bytes), s.runs,
             s.runs == 1 ? "" : "s", s.evaluations, s.plots);
  for (const auto& m : s.missing) fmt::print("  missing: {}\n", m);
  return 0;
}

}  // namespace

void register_report_commands(CLI::App& app, Runner& runner) {
  static ReportCliOptions o;
  CLI::App* cmd = app.add_subcommand(
      "report", "Write a self-contained HTML report of search runs: plots, per-layer choices and reasons, constraints, deployment");
  cmd->add_option("runs", o.runs, "Search run directories (autoprec search --out DIR); several share one front and one table")
      ->required();
  cmd->add_option("--out", o.out, "HTML file to write (default: RUN_DIR/report.html for one run, ./report.html for several)");
  cmd->add_flag("--json", o.json, "Print what was written as JSON");
  cmd->callback([&runner] { runner = [] { return run_report(o); }; });
}

// The report at the end of a search: a failure to write it is a warning, the search's results stand.
void write_search_report(const std::string& run_dir, bool quiet) {
  try {
    report::ReportSummary s = report::write_report({run_dir}, (std::filesystem::path(run_dir) / "report.html").string());
    if (!quiet) fmt::print("report: {} ({})\n", s.path, human_size(s.bytes));
  } catch (const std::exception& e) {
    spdlog::warn("the report was not written: {}", e.what());
  }
}

}  // namespace autoprec::cli
