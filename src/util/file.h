// Writing files so that a crash or a full disk never leaves a half-written one.
#pragma once

#include <string>

namespace autoprec {

// Writes `bytes` to `path` + ".tmp", flushes and fsyncs it, then renames it
// over `path`. On failure removes the temporary file and throws UserError
// naming `what` (e.g. "npy file") and the reason.
void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& what = "file");

// A fresh, empty file under the system's temporary directory, named
// autoprec_XXXXXX + suffix, removed when this goes out of scope.
class TemporaryFile {
 public:
  explicit TemporaryFile(const std::string& suffix);
  ~TemporaryFile();
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace autoprec
