// autoprec command-line entry point: parses the command line, runs one
// subcommand, and turns every failure into one line on stderr.
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <string>
#include <vector>
#include <thread>

#include "cli/commands.h"
#include "util/error.h"
#include "util/log.h"
#include "util/mpi.h"

namespace {

int run(int argc, char** argv) {
  CLI::App app{"autoprec: learns per-layer precision for neural networks under device constraints"};
  app.set_version_flag("--version", "autoprec 0.1.0");
  app.require_subcommand(1);
  app.fallthrough();  // global flags (--threads, -v) may also follow the command
  int verbosity = 0;
  int threads = 0;
  app.add_flag("-v,--verbose", verbosity, "More log output on stderr (repeatable)");
  app.add_option("--threads", threads, "Compute threads (default: one per core)")->check(autoprec::cli::kNonNegative);
  autoprec::cli::Runner runner;
  autoprec::cli::register_model_commands(app, runner);
  autoprec::cli::register_quant_commands(app, runner);
  autoprec::cli::register_train_commands(app, runner);
  autoprec::cli::register_search_commands(app, runner);
  autoprec::cli::register_target_commands(app, runner);
  autoprec::cli::register_deploy_commands(app, runner);
  autoprec::cli::register_report_commands(app, runner);
  autoprec::cli::register_schema_commands(app, runner);

  // `autoprec help [COMMAND]` is --help; an unknown first word is named as such.
  if (argc >= 2 && std::string(argv[1]) == "help") {
    std::vector<std::string> args = {"autoprec"};
    if (argc >= 3) args.emplace_back(argv[2]);
    args.emplace_back("--help");
    std::vector<char*> pointers;
    for (auto& a : args) pointers.push_back(a.data());
    return run(static_cast<int>(pointers.size()), pointers.data());
  }
  if (argc >= 2 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
      known |= sub->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "autoprec: error: unknown command '%s'; commands: %s\n", argv[1], names.c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // One line, like every other error; the command's --help has the details.
    std::string message = e.what();
    message = message.substr(0, message.find('\n'));
    std::string command;
    for (const CLI::App* sub : app.get_subcommands()) command = " " + sub->get_name();
    std::fprintf(stderr, "autoprec: error: %s (see autoprec%s --help)\n", message.c_str(), command.c_str());
    return 2;
  }
  // Under mpirun only `search` is distributed; the other ranks of any other
  // command leave rank 0 to run it alone.
  const bool worker = autoprec::mpi::is_worker();
  std::string command;
  for (const CLI::App* sub : app.get_subcommands()) command = sub->get_name();
  if (worker && command != "search") return 0;
  if (!autoprec::mpi::active() && autoprec::mpi::launched_ranks() > 1 && command == "search") {
    std::fprintf(stderr, "autoprec: error: started by mpirun with %d ranks, but this autoprec was built without MPI "
                         "(install libopenmpi-dev and rebuild; scripts/setup does)\n",
                 autoprec::mpi::launched_ranks());
    return 2;
  }
  try {
    autoprec::init_logging(worker ? -1 : verbosity);
    if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(threads);
    spdlog::info("using {} compute thread(s)", threads);
    return runner();
  } catch (const autoprec::UserError& e) {
    // Rank 0 speaks for the job: a worker's failure reaches it as a task result.
    if (!worker) std::fprintf(stderr, "autoprec: error: %s\n", e.what());
    return 2;
  } catch (const c10::Error& e) {
    std::string message = e.what_without_backtrace();
    if (!worker) std::fprintf(stderr, "autoprec: internal error: %s\n", message.substr(0, message.find('\n')).c_str());
    return 3;
  } catch (const std::exception& e) {
    if (!worker) std::fprintf(stderr, "autoprec: internal error (a bug in autoprec, not in the input): %s\n", e.what());
    return 3;
  }
}

}  // namespace

int main(int argc, char** argv) {
  autoprec::mpi::init_if_launched(&argc, &argv);
  // Workers never write to stdout: `--json` stays one object, rank 0's.
  if (autoprec::mpi::is_worker()) std::freopen("/dev/null", "w", stdout);
  const int code = run(argc, argv);
  autoprec::mpi::finalize();
  return code;
}
