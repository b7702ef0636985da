// Writing files so that a crash or a full disk never leaves a half-written one.
#pragma once

#include <string>

namespace autoprec {

// Writes `bytes` to `path` + ".tmp", flushes and fsyncs it, then renames it
// over `path`. On failure removes the temporary file and throws UserError
// naming `what` (e.g. "npy file") and the reason.
void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& what = "file");

}  // namespace autoprec
