// libFuzzer target for the .npz reader (a zip of .npy arrays, read with
// libzip): any file either loads or raises autoprec::UserError, never
// crashes or reads out of bounds.
#include <cstddef>
#include <cstdint>

#include "data/npy.h"
#include "file_fuzz.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    autoprec::data::read_npz(write_fuzz_file(data, size, "x.npz"));
  } catch (const autoprec::UserError&) {
  }
  return 0;
}
