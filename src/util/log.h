// Logging and progress reporting. Logs go to stderr so that `--json` output
// on stdout stays a single JSON object.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <spdlog/spdlog.h>

namespace autoprec {

// Sets up the stderr logger; `verbosity` 0 = warnings, 1 = info, 2 = debug.
void init_logging(int verbosity);

// One line for the user on stderr at the default verbosity (not a warning):
// a decision made for them, e.g. "validation: 30 of 150 training examples (20%)".
// Silent when logging is off (MPI worker ranks).
void notice(const std::string& message);

// A progress line for long work: redrawn in place on a terminal (with rate
// and ETA), a plain line every ~10% otherwise, nothing when quiet.
class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit, bool quiet = false);
  // Advances by `done` units; `status` is appended (e.g. "loss 0.31").
  void advance(int64_t done, const std::string& status = "");
  // Moves to `done` of `total` units: for callbacks that report absolute
  // progress and learn the total only once work starts (total fixed then).
  void update(int64_t done, int64_t total);
  void finish(const std::string& status = "");

 private:
  void draw(bool final, const std::string& status);

  std::string label_;
  std::string unit_;
  int64_t total_;
  int64_t current_ = 0;
  int last_decile_ = -1;
  bool quiet_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace autoprec
