// libFuzzer target for the run configuration reader: any text either parses
// or raises autoprec::UserError; what parses survives the journal's JSON form.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "search/run_config.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto config = autoprec::search::parse_run_config(std::string(reinterpret_cast<const char*>(data), size),
                                                           "fuzz.yaml");
    const auto json = autoprec::search::to_json(config);
    if (autoprec::search::to_json(autoprec::search::from_json(json)) != json) std::abort();
    autoprec::search::validate(config);
  } catch (const autoprec::UserError&) {
  }
  return 0;
}
