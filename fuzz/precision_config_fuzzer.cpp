// libFuzzer target for the precision config reader: any text either parses
// or raises autoprec::UserError, and what parses survives to_yaml unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "quant/config.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto config = autoprec::quant::parse_precision_config(std::string(reinterpret_cast<const char*>(data), size),
                                                                "fuzz.yaml");
    if (autoprec::quant::parse_precision_config(autoprec::quant::to_yaml(config), "round-trip.yaml") != config) std::abort();
  } catch (const autoprec::UserError&) {
  }
  return 0;
}
