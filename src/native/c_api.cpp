#include "native/c_api.h"

#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "native/model.h"

struct apn_model {
  std::unique_ptr<autoprec::native::Model> model;
  int64_t input_size = 1;
  int64_t output_size = 0;
};

namespace {

thread_local std::string last_error;

template <typename F>
auto guarded(F&& f, decltype(f()) on_error) -> decltype(f()) {
  try {
    last_error.clear();
    return f();
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown error";
  }
  return on_error;
}

}  // namespace

extern "C" {

apn_model* apn_load(const char* path) {
  return guarded(
      [&]() -> apn_model* {
        if (!path) throw std::invalid_argument("apn_load: no path");
        auto m = std::make_unique<apn_model>();
        m->model = std::make_unique<autoprec::native::Model>(autoprec::native::load_model(path));
        if (m->model->input_dtype() != autoprec::native::DType::Float32) {
          throw std::invalid_argument(std::string(path) + ": the C API runs models with a float input");
        }
        for (int64_t d : m->model->spec().input_shape) m->input_size *= d;
        // The output size of one example, from one run on zeros.
        std::vector<float> zeros(static_cast<size_t>(m->input_size), 0.f);
        auto out = m->model->run(zeros.data(), 1);
        m->output_size = out.at(0).dtype == autoprec::native::DType::Float32 ? static_cast<int64_t>(out[0].values.size())
                                                                              : static_cast<int64_t>(out[0].codes.size());
        return m.release();
      },
      nullptr);
}

void apn_free(apn_model* model) { delete model; }

const char* apn_last_error(void) { return last_error.c_str(); }

int apn_input_rank(const apn_model* model) {
  return model ? static_cast<int>(model->model->spec().input_shape.size()) : -1;
}

int64_t apn_input_dim(const apn_model* model, int index) {
  if (!model || index < 0 || index >= apn_input_rank(model)) return -1;
  return model->model->spec().input_shape[static_cast<size_t>(index)];
}

int64_t apn_input_size(const apn_model* model) { return model ? model->input_size : -1; }

int64_t apn_output_size(const apn_model* model) { return model ? model->output_size : -1; }

int64_t apn_run(apn_model* model, const float* input, int64_t batch, float* output, int64_t output_capacity) {
  return guarded(
      [&]() -> int64_t {
        if (!model || !input || !output) throw std::invalid_argument("apn_run: a null argument");
        if (batch < 1) throw std::invalid_argument("apn_run: batch must be positive");
        if (output_capacity < batch * model->output_size) {
          throw std::invalid_argument("apn_run: the output holds " + std::to_string(output_capacity) + " floats, " +
                                      std::to_string(batch * model->output_size) + " are needed");
        }
        auto out = model->model->run(input, batch);
        const auto& o = out.at(0);
        int64_t n = 0;
        if (o.dtype == autoprec::native::DType::Float32) {
          for (float v : o.values) output[n++] = v;
        } else {
          for (uint8_t v : o.codes) output[n++] = static_cast<float>(v);
        }
        return n;
      },
      int64_t{-1});
}

}  // extern "C"
