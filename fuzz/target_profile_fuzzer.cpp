// libFuzzer target for the target profile reader: any text either parses or
// raises autoprec::UserError, never crashes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "target/profile.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    autoprec::target::parse_profile(std::string(reinterpret_cast<const char*>(data), size), "/fuzz/profile.yaml");
  } catch (const autoprec::UserError&) {
  }
  return 0;
}
