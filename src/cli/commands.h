// The autoprec subcommands. Each registers its options on the CLI11 app and
// runs when selected; each returns the process exit code.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace autoprec::cli {

struct GlobalOptions {
  int verbosity = 0;
  int threads = 0;  // 0: one per core
};

using Runner = std::function<int()>;

// Registers every subcommand on `app`; the selected one's runner is stored in `runner`.
void register_commands(CLI::App& app, const GlobalOptions& global, Runner& runner);

}  // namespace autoprec::cli
