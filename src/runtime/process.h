// Running a program once: a user's scorer (the `command` metric) or any tool
// whose whole output is wanted, with a time limit.
#pragma once

#include <string>
#include <vector>

namespace autoprec::runtime {

struct CommandResult {
  int exit_code = -1;        // the exit status, or -1 when killed by a signal
  std::string signal;        // the signal's name when killed ("SIGSEGV"), else empty
  bool timed_out = false;    // killed after `timeout_s`
  std::string out;           // everything it wrote to stdout (at most 1 MiB kept)
  std::string err_tail;      // the last 4 KiB of its stderr
};

// Runs argv (argv[0] looked up in PATH) with stdin closed, waits at most
// `timeout_s` seconds (then kills it with SIGKILL, its process group
// included). UserError when the program cannot be started.
CommandResult run_command(const std::vector<std::string>& argv, double timeout_s);

// The last non-empty line of `text` (trimmed), or "".
std::string last_line(const std::string& text);

}  // namespace autoprec::runtime
