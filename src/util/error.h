// User-facing errors.
//
// autoprec separates two kinds of failure (as Abseil's Status and PyTorch's
// TORCH_CHECK vs TORCH_INTERNAL_ASSERT do): a problem with the user's input
// (a corrupt model, an unsupported operator, a malformed file) is reported as
// a UserError whose message is one line a user can act on; anything else is a
// bug. The CLI prints UserError::what() as its single error line and exits 2.
// Invariants inside autoprec are checked with AUTOPREC_CHECK, which throws
// InternalError; the CLI reports it (and any other exception) as an internal
// error with exit code 3, so exit 3 always means a bug in autoprec.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace autoprec {

class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& message) : std::runtime_error(message) {}
};

// Throws UserError with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw UserError(fmt::format(format, std::forward<Args>(args)...));
}

// A broken invariant: a bug in autoprec, never a problem with the input.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& message) : std::logic_error(message) {}
};

[[noreturn]] inline void internal_error(const char* file, int line, const char* condition, const std::string& message) {
  throw InternalError(fmt::format("{} ({}:{}: {})", message, file, line, condition));
}

}  // namespace autoprec

// AUTOPREC_CHECK(condition, fmt, args...): InternalError with the formatted
// message, the file, line and condition when `condition` is false.
#define AUTOPREC_CHECK(condition, ...)                                                             \
  do {                                                                                             \
    if (!(condition)) ::autoprec::internal_error(__FILE__, __LINE__, #condition, fmt::format(__VA_ARGS__)); \
  } while (false)
