// libFuzzer target for the IDX reader (raw and gzip): any file either loads
// or raises autoprec::UserError.
#include <cstddef>
#include <cstdint>

#include "data/idx.h"
#include "file_fuzz.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    autoprec::data::read_idx(write_fuzz_file(data, size, gzip ? "images-idx3-ubyte.gz" : "images-idx3-ubyte"));
  } catch (const autoprec::UserError&) {
  }
  return 0;
}
