#include "util/file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "util/error.h"

namespace autoprec {

void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& what) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("cannot write {} {}: {}", what, tmp, std::strerror(errno));
  errno = 0;
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = ok && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  int saved_errno = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!saved_errno) saved_errno = errno ? errno : EIO;
  if (!ok) {
    std::remove(tmp.c_str());
    fail("cannot write {} {}: {}", what, tmp, std::strerror(saved_errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    saved_errno = errno;
    std::remove(tmp.c_str());
    fail("cannot write {} {}: renaming {} failed: {}", what, path, tmp, std::strerror(saved_errno));
  }
}

TemporaryFile::TemporaryFile(const std::string& suffix) {
  std::string templ = (std::filesystem::temp_directory_path() / ("autoprec_XXXXXX" + suffix)).string();
  int fd = mkstemps(templ.data(), static_cast<int>(suffix.size()));
  if (fd < 0) fail("cannot create a temporary file in {}: {}", std::filesystem::temp_directory_path().string(), std::strerror(errno));
  ::close(fd);
  path_ = templ;
}

TemporaryFile::~TemporaryFile() { std::remove(path_.c_str()); }

}  // namespace autoprec
