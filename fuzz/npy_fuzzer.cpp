// libFuzzer target for the .npy reader: any file either loads or raises
// autoprec::UserError, never crashes or reads out of bounds.
#include <cstddef>
#include <cstdint>

#include "data/npy.h"
#include "file_fuzz.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    autoprec::data::read_npy(write_fuzz_file(data, size, "x.npy"));
  } catch (const autoprec::UserError&) {
  }
  return 0;
}
