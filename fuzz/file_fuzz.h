// Writes a fuzz input to a per-process scratch file, for readers that take a path.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

inline std::string write_fuzz_file(const uint8_t* data, size_t size, const std::string& name) {
  const std::string path = "/tmp/autoprec-fuzz-" + std::to_string(getpid()) + "-" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}
