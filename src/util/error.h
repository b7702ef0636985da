// User-facing errors.
//
// autoprec separates two kinds of failure (as Abseil's Status and PyTorch's
// TORCH_CHECK vs TORCH_INTERNAL_ASSERT do): a problem with the user's input
// (a corrupt model, an unsupported operator, a malformed file) is reported as
// a UserError whose message is one line a user can act on; anything else is a
// bug. The CLI prints UserError::what() as its single error line and exits 2.
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

}  // namespace autoprec
