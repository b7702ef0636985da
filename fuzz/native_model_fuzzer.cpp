// libFuzzer target for the native runtime's packed model file (.apn): any
// file either loads (and then runs, when its input is small) or is refused
// with std::runtime_error (the loader) or std::invalid_argument (the
// model's checks), never crashes or reads out of bounds.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "file_fuzz.h"
#include "native/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace autoprec::native;
  try {
    Model model(load_model(write_fuzz_file(data, size, "model.apn")));
    int64_t values = 1;
    for (int64_t d : model.spec().input_shape) values *= d;
    if (values > 4096) return 0;
    if (model.input_dtype() == DType::Uint8) {
      std::vector<uint8_t> x(static_cast<size_t>(values), 7);
      model.run_codes(x.data(), 1);
    } else {
      std::vector<float> x(static_cast<size_t>(values), 0.5f);
      model.run(x.data(), 1);
    }
  } catch (const std::runtime_error&) {
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
