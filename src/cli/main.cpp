// autoprec command-line entry point: parses the command line, runs one
// subcommand, and turns every failure into one line on stderr.
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "util/error.h"
#include "util/log.h"

int main(int argc, char** argv) {
  CLI::App app{"autoprec: learns per-layer precision for neural networks under device constraints"};
  app.set_version_flag("--version", "autoprec 0.1.0");
  app.require_subcommand(1);
  int verbosity = 0;
  int threads = 0;
  app.add_flag("-v,--verbose", verbosity, "More log output on stderr (repeatable)");
  app.add_option("--threads", threads, "Compute threads (default: one per core)")->check(CLI::NonNegativeNumber);
  autoprec::cli::Runner runner;
  autoprec::cli::register_model_commands(app, runner);
  autoprec::cli::register_quant_commands(app, runner);
  autoprec::cli::register_train_commands(app, runner);
  autoprec::cli::register_search_commands(app, runner);
  autoprec::cli::register_target_commands(app, runner);
  autoprec::cli::register_deploy_commands(app, runner);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    autoprec::init_logging(verbosity);
    if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(threads);
    spdlog::info("using {} compute thread(s)", threads);
    return runner();
  } catch (const autoprec::UserError& e) {
    std::fprintf(stderr, "autoprec: error: %s\n", e.what());
    return 2;
  } catch (const c10::Error& e) {
    std::string message = e.what_without_backtrace();
    std::fprintf(stderr, "autoprec: internal error: %s\n", message.substr(0, message.find('\n')).c_str());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "autoprec: internal error: %s\n", e.what());
    return 3;
  }
}
