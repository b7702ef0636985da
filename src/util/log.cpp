#include "util/log.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace autoprec {

void init_logging(int verbosity) {
  auto logger = spdlog::stderr_color_mt("autoprec");
  logger->set_pattern("[%H:%M:%S] %^%l%$ %v");
  logger->set_level(verbosity >= 2  ? spdlog::level::debug
                    : verbosity == 1 ? spdlog::level::info
                    : verbosity == 0 ? spdlog::level::warn
                                     : spdlog::level::off);
  spdlog::set_default_logger(logger);
}

void notice(const std::string& message) {
  if (spdlog::default_logger()->level() == spdlog::level::off) return;
  fmt::print(stderr, "{}\n", message);
}

Progress::Progress(std::string label, int64_t total, std::string unit, bool quiet)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      quiet_(quiet),
      terminal_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void Progress::update(int64_t done, int64_t total) {
  if (total_ <= 0) {
    total_ = total;
    start_ = last_draw_ = std::chrono::steady_clock::now();  // the rate counts from the first report
  }
  advance(done - current_);
}

void Progress::advance(int64_t done, const std::string& status) {
  current_ += done;
  if (quiet_) return;
  auto now = std::chrono::steady_clock::now();
  if (terminal_) {
    if (now - last_draw_ > std::chrono::milliseconds(100) || current_ >= total_) {
      last_draw_ = now;
      draw(false, status);
    }
  } else {
    int decile = total_ > 0 ? static_cast<int>(10 * current_ / total_) : 10;
    if (decile != last_decile_ && decile < 10) {
      last_decile_ = decile;
      draw(false, status);
    }
  }
}

void Progress::finish(const std::string& status) {
  if (!quiet_) draw(true, status);
}

namespace {

// "120 images/s", "2.5 steps/s", or "30.0 s each" below one unit per second.
std::string rate_text(double rate, const std::string& unit) {
  if (rate >= 10) return fmt::format("{:.0f} {}/s", rate, unit);
  if (rate >= 1) return fmt::format("{:.1f} {}/s", rate, unit);
  if (rate > 0) return fmt::format("{:.1f} s each", 1.0 / rate);
  return fmt::format("0 {}/s", unit);
}

}  // namespace

void Progress::draw(bool final, const std::string& status) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = elapsed > 0 ? static_cast<double>(current_) / elapsed : 0;
  double eta = rate > 0 ? static_cast<double>(total_ - current_) / rate : 0;
  int percent = total_ > 0 ? static_cast<int>(100 * current_ / total_) : 100;
  std::string line = final ? fmt::format("{}: {} {} in {:.1f}s ({}){}{}", label_, current_, unit_, elapsed,
                                         rate_text(rate, unit_), status.empty() ? "" : "  ", status)
                           : elapsed < 1.0  // too early for a meaningful rate
                               ? fmt::format("{}: {:3d}% {}/{} {}{}{}", label_, percent, current_, total_, unit_,
                                             status.empty() ? "" : "  ", status)
                               : fmt::format("{}: {:3d}% {}/{} {}  {}  ETA {:.0f}s{}{}", label_, percent, current_,
                                             total_, unit_, rate_text(rate, unit_), eta, status.empty() ? "" : "  ",
                                             status);
  if (terminal_) {
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace autoprec
