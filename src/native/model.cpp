#include "native/model.h"

#include "native/parallel.h"
#include "native/simd_codes.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace autoprec::native {

const char* op_name(OpType type) {
  switch (type) {
    case OpType::Quantize: return "Quantize";
    case OpType::Dequantize: return "Dequantize";
    case OpType::Conv: return "Conv";
    case OpType::Gemm: return "Gemm";
    case OpType::Add: return "Add";
    case OpType::GlobalAveragePool: return "GlobalAveragePool";
    case OpType::MaxPool: return "MaxPool";
    case OpType::Flatten: return "Flatten";
    case OpType::Relu: return "Relu";
    case OpType::Clip: return "Clip";
  }
  return "?";
}

Kernel choose_kernel(int weight_bits, int activation_bits) {
  if (!cpu_has_avx2()) return Kernel::Reference;
  if (const char* force = std::getenv("AUTOPREC_NATIVE_NO_VNNI"); !(force && *force) && cpu_has_avx512_vnni()) {
    return weight_bits == 8 ? Kernel::Vnni : Kernel::VnniPacked;
  }
  if (weight_bits == 8 && activation_bits == 8) return Kernel::MaddubsSplit;
  if (kernel_supports(Kernel::MaddubsPacked, weight_bits, activation_bits)) return Kernel::MaddubsPacked;
  return Kernel::Madd16;
}

namespace {

[[noreturn]] void refuse(const OpSpec& op, const std::string& why) {
  throw std::invalid_argument(std::string("native runtime: ") + op_name(op.type) + " '" + op.name + "': " + why);
}

// A tensor while the model runs: logical dims (NCHW order, batch first) and
// its bytes (NHWC when 4-D).
struct Buffer {
  std::vector<int64_t> dims;
  std::vector<uint8_t> codes;
  std::vector<float> values;
  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
};

uint8_t quantize_value(float x, const QuantGrid& g, int32_t lo, int32_t hi) {
  const float q = std::nearbyint(x / g.scale) + static_cast<float>(g.zero_point);
  return static_cast<uint8_t>(std::clamp(q, static_cast<float>(lo), static_cast<float>(hi)));
}

int32_t top_code(const QuantGrid& g) { return (1 << g.bits) - 1; }

// quantize_value() (lo 0) of the first multiple of 8 of `n` floats: the same
// division and rounding half to even; returns the elements done.
__attribute__((target("avx2"))) int64_t quantize_avx2(const float* x, int64_t n, const QuantGrid& g, int32_t hi,
                                                    uint8_t* y) {
  const __m256 s = _mm256_set1_ps(g.scale);
  const __m256i z = _mm256_set1_epi32(g.zero_point), low = _mm256_setzero_si256(), high = _mm256_set1_epi32(hi);
  int64_t e = 0;
  for (; e + 8 <= n; e += 8) detail::store_codes_avx2(_mm256_div_ps(_mm256_loadu_ps(x + e), s), z, low, high, y + e);
  return e;
}

// y = min(max(x, lo), hi) for the first multiple of 8 of `n` floats.
__attribute__((target("avx2"))) int64_t clamp_avx2(const float* x, int64_t n, float lo, float hi, float* y) {
  const __m256 l = _mm256_set1_ps(lo), h = _mm256_set1_ps(hi);
  int64_t e = 0;
  for (; e + 8 <= n; e += 8) _mm256_storeu_ps(y + e, _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(x + e), l), h));
  return e;
}

// The integer Add for the first multiple of 8 of `n` elements, with the same
// float operations in the same order as quantize_value() of the scalar loop
// (no FMA: the product is rounded before the sum), so that both give the same
// codes; cvtps rounds half to even like nearbyint. Returns the elements done.
__attribute__((target("avx2"))) int64_t add_codes_avx2(const uint8_t* a, const uint8_t* b, int64_t n, const QuantGrid& ga,
                                                     const QuantGrid& gb, const QuantGrid& gy, int32_t lo, int32_t hi,
                                                     uint8_t* y) {
  const __m256i za = _mm256_set1_epi32(ga.zero_point), zb = _mm256_set1_epi32(gb.zero_point);
  const __m256i zy = _mm256_set1_epi32(gy.zero_point), low = _mm256_set1_epi32(lo), high = _mm256_set1_epi32(hi);
  const __m256 sa = _mm256_set1_ps(ga.scale), sb = _mm256_set1_ps(gb.scale), sy = _mm256_set1_ps(gy.scale);
  int64_t e = 0;
  for (; e + 8 <= n; e += 8) {
    const __m256i ia = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a + e)));
    const __m256i ib = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + e)));
    const __m256 fa = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(ia, za)), sa);
    const __m256 fb = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(ib, zb)), sb);
    detail::store_codes_avx2(_mm256_div_ps(_mm256_add_ps(fa, fb), sy), zy, low, high, y + e);
  }
  return e;
}

int32_t clamp_low(const OpSpec& op) { return std::max(op.min_code, 0); }
int32_t clamp_high(const OpSpec& op, const QuantGrid& g) {
  return op.max_code < 0 ? top_code(g) : std::min(op.max_code, top_code(g));
}

// Float convolution of one NHWC image (a float island): direct loops.
void float_conv(const OpSpec& op, const float* x, int64_t h, int64_t w, float* y) {
  const ConvGeometry& g = op.geometry;
  const int64_t oh = g.out_h(h), ow = g.out_w(w), in = g.in_channels / g.groups, per_group = g.out_channels / g.groups;
  for (int64_t r = 0; r < oh; ++r)
    for (int64_t c = 0; c < ow; ++c)
      for (int64_t o = 0; o < g.out_channels; ++o) {
        float acc = op.float_bias.empty() ? 0.f : op.float_bias[o];
        const int64_t first = (o / per_group) * in;
        for (int64_t i = 0; i < g.kernel_h; ++i) {
          const int64_t yi = r * g.stride_h + i - g.pad_top;
          if (yi < 0 || yi >= h) continue;
          for (int64_t j = 0; j < g.kernel_w; ++j) {
            const int64_t xj = c * g.stride_w + j - g.pad_left;
            if (xj < 0 || xj >= w) continue;
            const float* px = x + (yi * w + xj) * g.in_channels + first;
            const float* pw = op.float_weights.data() + (o * in * g.kernel_h + i) * g.kernel_w + j;
            for (int64_t k = 0; k < in; ++k) acc += px[k] * pw[k * g.kernel_h * g.kernel_w];
          }
        }
        y[(r * ow + c) * g.out_channels + o] = acc;
      }
}

template <typename T>
void max_pool(const ConvGeometry& g, int64_t channels, const T* x, int64_t h, int64_t w, T* y) {
  const int64_t oh = g.out_h(h), ow = g.out_w(w);
  for (int64_t r = 0; r < oh; ++r)
    for (int64_t c = 0; c < ow; ++c) {
      T* out = y + (r * ow + c) * channels;
      bool first = true;
      for (int64_t i = 0; i < g.kernel_h; ++i) {
        const int64_t yi = r * g.stride_h + i - g.pad_top;
        if (yi < 0 || yi >= h) continue;
        for (int64_t j = 0; j < g.kernel_w; ++j) {
          const int64_t xj = c * g.stride_w + j - g.pad_left;
          if (xj < 0 || xj >= w) continue;
          const T* in = x + (yi * w + xj) * channels;
          for (int64_t k = 0; k < channels; ++k) out[k] = first ? in[k] : std::max(out[k], in[k]);
          first = false;
        }
      }
    }
}

// NCHW <-> NHWC of `batch` images of c x hw.
template <typename T>
void to_nhwc(const T* x, int64_t batch, int64_t c, int64_t hw, T* y) {
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t p = 0; p < hw; ++p) y[(n * hw + p) * c + k] = x[(n * c + k) * hw + p];
}
template <typename T>
void to_nchw(const T* x, int64_t batch, int64_t c, int64_t hw, T* y) {
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t p = 0; p < hw; ++p) y[(n * c + k) * hw + p] = x[(n * hw + p) * c + k];
}

}  // namespace

struct Model::Impl {
  std::vector<std::unique_ptr<QuantizedConv>> convs;  // per op; null where float or not a layer
  std::vector<std::vector<float>> float_packed;       // per op: a float layer's weights for sgemm (AVX2, groups 1)
  std::vector<float> float_patches;                   // a float layer's im2col
  std::vector<Buffer> buffers;                        // per tensor
  std::unique_ptr<ThreadPool> pool;                   // threads > 1
};

Model::~Model() = default;

int Model::threads() const { return impl_->pool ? impl_->pool->threads() : 1; }

Model::Model(ModelSpec spec, int threads) : spec_(std::move(spec)), impl_(std::make_unique<Impl>()) {
  if (threads < 1) throw std::invalid_argument("native runtime: threads must be at least 1");
  if (threads > 1) impl_->pool = std::make_unique<ThreadPool>(threads);
  const auto tensors = static_cast<int32_t>(spec_.tensors.size());
  std::vector<bool> written(spec_.tensors.size(), false);
  auto check_id = [&](const OpSpec* op, int32_t id) {
    if (id < 0 || id >= tensors) {
      if (op) refuse(*op, "tensor id " + std::to_string(id) + " out of range");
      throw std::invalid_argument("native runtime: graph tensor id " + std::to_string(id) + " out of range");
    }
  };
  if (spec_.inputs.size() != 1) throw std::invalid_argument("native runtime: models with exactly one input are supported");
  if (spec_.outputs.empty()) throw std::invalid_argument("native runtime: the model has no output");
  if (spec_.input_shape.size() != 3 && spec_.input_shape.size() != 1) {
    throw std::invalid_argument("native runtime: the input must be [C, H, W] or [F] per example");
  }
  int64_t input_size = 1;
  for (int64_t d : spec_.input_shape) {
    if (d < 1 || d > (int64_t{1} << 24)) throw std::invalid_argument("native runtime: the input shape needs sizes of 1 to 2^24");
    input_size *= d;
    if (input_size > (int64_t{1} << 28)) throw std::invalid_argument("native runtime: the input has more than 2^28 values");
  }
  for (int32_t id : spec_.inputs) {
    check_id(nullptr, id);
    written[id] = true;
  }
  for (const TensorSpec& t : spec_.tensors) {
    if (t.dtype == DType::Uint8 && (t.grid.bits < 1 || t.grid.bits > 8 || !(t.grid.scale > 0) ||
                                    t.grid.zero_point < 0 || t.grid.zero_point > top_code(t.grid))) {
      throw std::invalid_argument("native runtime: tensor '" + t.name + "' has an invalid grid");
    }
  }
  impl_->convs.resize(spec_.ops.size());
  for (size_t i = 0; i < spec_.ops.size(); ++i) {
    const OpSpec& op = spec_.ops[i];
    const size_t arity = op.type == OpType::Add ? 2 : 1;
    if (op.inputs.size() != arity || op.outputs.size() != 1) refuse(op, "wrong number of inputs or outputs");
    for (int32_t id : op.inputs) {
      check_id(&op, id);
      if (!written[id]) refuse(op, "reads '" + spec_.tensors[id].name + "' before it is written");
    }
    check_id(&op, op.outputs[0]);
    if (written[op.outputs[0]]) refuse(op, "writes '" + spec_.tensors[op.outputs[0]].name + "' a second time");
    written[op.outputs[0]] = true;
    const DType in = spec_.tensors[op.inputs[0]].dtype, out = spec_.tensors[op.outputs[0]].dtype;
    const bool same = op.inputs.size() < 2 || spec_.tensors[op.inputs[1]].dtype == in;
    if (op.type == OpType::Conv || op.type == OpType::Gemm || op.type == OpType::MaxPool) {
      // Windows as real models have them; this also bounds every buffer by the input's size.
      const ConvGeometry& g = op.geometry;
      const int64_t kmax = int64_t{1} << 12;
      if (g.kernel_h < 1 || g.kernel_w < 1 || g.kernel_h > kmax || g.kernel_w > kmax || g.stride_h < 1 || g.stride_w < 1 ||
          g.stride_h > kmax || g.stride_w > kmax || g.pad_top < 0 || g.pad_left < 0 || g.pad_bottom < 0 ||
          g.pad_right < 0 || g.pad_top >= g.kernel_h || g.pad_bottom >= g.kernel_h || g.pad_left >= g.kernel_w ||
          g.pad_right >= g.kernel_w) {
        refuse(op, "kernel and strides must be 1 to 4096 and each pad smaller than the kernel");
      }
    }
    switch (op.type) {
      case OpType::Quantize:
        if (in != DType::Float32 || out != DType::Uint8) refuse(op, "needs a float input and a uint8 output");
        break;
      case OpType::Dequantize:
        if (in != DType::Uint8 || out != DType::Float32) refuse(op, "needs a uint8 input and a float output");
        break;
      case OpType::Add:
      case OpType::GlobalAveragePool:
        if (!same || in != out) refuse(op, "needs inputs and output of one type");
        break;
      case OpType::MaxPool:
      case OpType::Flatten:
        if (in != out) refuse(op, "needs input and output of one type");
        if (in == DType::Uint8) {
          const QuantGrid &a = spec_.tensors[op.inputs[0]].grid, &b = spec_.tensors[op.outputs[0]].grid;
          if (a.scale != b.scale || a.zero_point != b.zero_point || a.bits != b.bits) {
            refuse(op, "a uint8 output must share its input's grid");
          }
        }
        break;
      case OpType::Relu:
      case OpType::Clip:
        if (in != DType::Float32 || out != DType::Float32) refuse(op, "runs on floats only");
        break;
      case OpType::Conv:
      case OpType::Gemm: {
        const ConvGeometry& g = op.geometry;
        if (op.type == OpType::Gemm && (g.kernel_h != 1 || g.kernel_w != 1 || g.groups != 1)) {
          refuse(op, "a Gemm is a 1x1 product without groups");
        }
        if (in == DType::Float32) {
          if (out != DType::Float32) refuse(op, "a float layer writes a float output");
          if (g.in_channels < 1 || g.out_channels < 1 || g.groups < 1 || g.in_channels % g.groups ||
              g.out_channels % g.groups) {
            refuse(op, "channels must be positive and divisible by the groups");
          }
          const int64_t size = g.out_channels * (g.in_channels / g.groups) * g.kernel_h * g.kernel_w;
          if (static_cast<int64_t>(op.float_weights.size()) != size ||
              (!op.float_bias.empty() && static_cast<int64_t>(op.float_bias.size()) != g.out_channels)) {
            refuse(op, "float weights or bias of the wrong size");
          }
          if (g.groups == 1 && cpu_has_avx2()) {
            // Patch-major (kh, kw, c) rows, the order the NHWC im2col writes.
            const int64_t k = g.in_channels * g.kernel_h * g.kernel_w;
            std::vector<float> rows(op.float_weights.size());
            for (int64_t o = 0; o < g.out_channels; ++o)
              for (int64_t c = 0; c < g.in_channels; ++c)
                for (int64_t a = 0; a < g.kernel_h * g.kernel_w; ++a)
                  rows[o * k + a * g.in_channels + c] = op.float_weights[(o * g.in_channels + c) * g.kernel_h * g.kernel_w + a];
            impl_->float_packed.resize(spec_.ops.size());
            impl_->float_packed[i] = pack_sgemm_weights(rows.data(), g.out_channels, k);
          }
          layers_.push_back({op.name, "float", 32, static_cast<int64_t>(op.float_weights.size() * sizeof(float))});
          break;
        }
        if (op.weight_bits < 1 || op.weight_bits > 8) refuse(op, "integer weights need 1-8 bits");
        ConvParams p;
        p.geometry = g;
        p.weights = op.codes;
        p.weight_bits = op.weight_bits;
        p.weight_scales = op.weight_scales;
        p.bias = op.int_bias;
        p.input = spec_.tensors[op.inputs[0]].grid;
        p.output = out == DType::Uint8 ? spec_.tensors[op.outputs[0]].grid : QuantGrid{};
        p.min_code = op.min_code;
        p.max_code = op.max_code;
        const Kernel kernel = choose_kernel(op.weight_bits, p.input.bits);
        try {
          impl_->convs[i] = std::make_unique<QuantizedConv>(std::move(p), kernel);
        } catch (const std::invalid_argument& e) {
          refuse(op, e.what());
        }
        layers_.push_back({op.name, g.depthwise() ? "depthwise" : kernel_name(kernel), op.weight_bits,
                           impl_->convs[i]->weight_bytes()});
        spec_.ops[i].codes = {};  // packed now; no second copy in memory
        spec_.ops[i].codes.shrink_to_fit();
        break;
      }
    }
  }
  for (int32_t id : spec_.outputs) {
    check_id(nullptr, id);
    if (!written[id]) throw std::invalid_argument("native runtime: output '" + spec_.tensors[id].name + "' is never written");
  }
  impl_->buffers.resize(spec_.tensors.size());
}

void Model::set_profiling(bool on) {
  profiling_ = on;
  op_seconds_.assign(spec_.ops.size(), 0.0);
}

int64_t Model::weight_bytes() const {
  int64_t total = 0;
  for (const LayerInfo& l : layers_) total += l.weight_bytes;
  return total;
}

std::vector<Model::Output> Model::run(const float* input, int64_t batch) {
  if (input_dtype() != DType::Float32) throw std::invalid_argument("native runtime: the model takes uint8 codes (run_codes)");
  return run_all(input, batch);
}

std::vector<Model::Output> Model::run_codes(const uint8_t* input, int64_t batch) {
  if (input_dtype() != DType::Uint8) throw std::invalid_argument("native runtime: the model takes floats (run)");
  return run_all(input, batch);
}

std::vector<Model::Output> Model::run_all(const void* input, int64_t batch) {
  if (batch < 1) throw std::invalid_argument("native runtime: batch must be positive");
  std::vector<Buffer>& buf = impl_->buffers;
  {
    Buffer& b = buf[spec_.inputs[0]];
    b.dims = {batch};
    b.dims.insert(b.dims.end(), spec_.input_shape.begin(), spec_.input_shape.end());
    const bool four = b.dims.size() == 4;
    if (input_dtype() == DType::Uint8) {
      const auto* in = static_cast<const uint8_t*>(input);
      b.codes.resize(b.count());
      if (four) to_nhwc(in, batch, b.dims[1], b.dims[2] * b.dims[3], b.codes.data());
      else std::copy(in, in + b.count(), b.codes.begin());
    } else {
      const auto* in = static_cast<const float*>(input);
      b.values.resize(b.count());
      if (four) to_nhwc(in, batch, b.dims[1], b.dims[2] * b.dims[3], b.values.data());
      else std::copy(in, in + b.count(), b.values.begin());
    }
  }
  for (size_t i = 0; i < spec_.ops.size(); ++i) {
    const auto start = profiling_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    run_op(i);
    if (profiling_) op_seconds_[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return collect_outputs();
}

void Model::run_op(size_t i) {
  std::vector<Buffer>& buf = impl_->buffers;
  {
    const OpSpec& op = spec_.ops[i];
    const Buffer& x = buf[op.inputs[0]];
    Buffer& y = buf[op.outputs[0]];
    const TensorSpec& xt = spec_.tensors[op.inputs[0]];
    const TensorSpec& yt = spec_.tensors[op.outputs[0]];
    const bool codes = xt.dtype == DType::Uint8;
    const int64_t n = x.dims[0];
    auto size_output = [&](std::vector<int64_t> dims) {
      y.dims = std::move(dims);
      if (yt.dtype == DType::Uint8) y.codes.resize(y.count());
      else y.values.resize(y.count());
    };
    switch (op.type) {
      case OpType::Quantize: {
        size_output(x.dims);
        const int32_t hi = top_code(yt.grid);
        const int64_t done = cpu_has_avx2() ? quantize_avx2(x.values.data(), x.count(), yt.grid, hi, y.codes.data()) : 0;
        for (int64_t e = done; e < x.count(); ++e) y.codes[e] = quantize_value(x.values[e], yt.grid, 0, hi);
        break;
      }
      case OpType::Dequantize: {
        size_output(x.dims);
        for (int64_t e = 0; e < x.count(); ++e) {
          y.values[e] = static_cast<float>(static_cast<int32_t>(x.codes[e]) - xt.grid.zero_point) * xt.grid.scale;
        }
        break;
      }
      case OpType::Conv:
      case OpType::Gemm: {
        const ConvGeometry& g = op.geometry;
        const bool conv = op.type == OpType::Conv;
        if ((conv && x.dims.size() != 4) || (!conv && x.dims.size() != 2) || x.dims[1] != g.in_channels) {
          refuse(op, "input of another shape than its weights expect");
        }
        const int64_t h = conv ? x.dims[2] : n, w = conv ? x.dims[3] : 1;
        const int64_t oh = g.out_h(h), ow = g.out_w(w);
        if (oh < 1 || ow < 1) refuse(op, "the input is smaller than the kernel");
        size_output(conv ? std::vector<int64_t>{n, g.out_channels, oh, ow} : std::vector<int64_t>{n, g.out_channels});
        const int64_t images = conv ? n : 1, in_size = h * w * g.in_channels, out_size = oh * ow * g.out_channels;
        const bool fast_float = !codes && i < impl_->float_packed.size() && !impl_->float_packed[i].empty();
        if (fast_float) {
          const int64_t k = g.in_channels * g.kernel_h * g.kernel_w;
          for (int64_t m = 0; m < images; ++m) {
            const float* a = x.values.data() + m * in_size;
            if (conv) {
              std::vector<float>& patches = impl_->float_patches;
              patches.resize(static_cast<size_t>(oh * ow * k));
              const int64_t span = g.kernel_w * g.in_channels;  // one kernel row: contiguous in NHWC
              for (int64_t r = 0; r < oh; ++r)
                for (int64_t c = 0; c < ow; ++c) {
                  const int64_t x0 = c * g.stride_w - g.pad_left;
                  const bool inside = x0 >= 0 && x0 + g.kernel_w <= w;
                  for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
                    float* to = patches.data() + (r * ow + c) * k + ki * span;
                    const int64_t yi = r * g.stride_h + ki - g.pad_top;
                    if (yi < 0 || yi >= h) {
                      std::fill(to, to + span, 0.f);
                    } else if (inside) {
                      std::memcpy(to, a + (yi * w + x0) * g.in_channels, sizeof(float) * static_cast<size_t>(span));
                    } else {
                      for (int64_t kj = 0; kj < g.kernel_w; ++kj, to += g.in_channels) {
                        const int64_t xj = x0 + kj;
                        if (xj < 0 || xj >= w) std::fill(to, to + g.in_channels, 0.f);
                        else std::copy(a + (yi * w + xj) * g.in_channels, a + (yi * w + xj + 1) * g.in_channels, to);
                      }
                    }
                  }
                }
              a = patches.data();
            }
            const int64_t rows = conv ? oh * ow : n;
            float* out = y.values.data() + m * out_size;
            sgemm_baseline(a, rows, impl_->float_packed[i], g.out_channels, k, out);
            if (!op.float_bias.empty())
              for (int64_t p = 0; p < rows; ++p)
                for (int64_t o = 0; o < g.out_channels; ++o) out[p * g.out_channels + o] += op.float_bias[o];
          }
          break;
        }
        for (int64_t m = 0; m < images; ++m) {
          if (!codes) {
            if (conv) {
              float_conv(op, x.values.data() + m * in_size, h, w, y.values.data() + m * out_size);
            } else {
              for (int64_t r = 0; r < n; ++r)
                for (int64_t o = 0; o < g.out_channels; ++o) {
                  float acc = op.float_bias.empty() ? 0.f : op.float_bias[o];
                  const float* a = x.values.data() + r * g.in_channels;
                  const float* wt = op.float_weights.data() + o * g.in_channels;
                  for (int64_t k = 0; k < g.in_channels; ++k) acc += a[k] * wt[k];
                  y.values[r * g.out_channels + o] = acc;
                }
            }
          } else if (yt.dtype == DType::Uint8) {
            impl_->convs[i]->run(x.codes.data() + m * in_size, h, w, y.codes.data() + m * out_size, impl_->pool.get());
          } else {
            impl_->convs[i]->run_float(x.codes.data() + m * in_size, h, w, y.values.data() + m * out_size,
                                       impl_->pool.get());
          }
        }
        break;
      }
      case OpType::Add: {
        const Buffer& b = buf[op.inputs[1]];
        if (b.dims != x.dims) refuse(op, "inputs of different shapes (broadcasting is not supported)");
        size_output(x.dims);
        if (codes) {
          const QuantGrid &ga = xt.grid, &gb = spec_.tensors[op.inputs[1]].grid;
          const int32_t lo = clamp_low(op), hi = clamp_high(op, yt.grid);
          const int64_t done = cpu_has_avx2() ? add_codes_avx2(x.codes.data(), b.codes.data(), x.count(), ga, gb, yt.grid,
                                                               lo, hi, y.codes.data())
                                              : 0;
          for (int64_t e = done; e < x.count(); ++e) {
            const float v = static_cast<float>(static_cast<int32_t>(x.codes[e]) - ga.zero_point) * ga.scale +
                            static_cast<float>(static_cast<int32_t>(b.codes[e]) - gb.zero_point) * gb.scale;
            y.codes[e] = quantize_value(v, yt.grid, lo, hi);
          }
        } else {
          for (int64_t e = 0; e < x.count(); ++e) y.values[e] = x.values[e] + b.values[e];
        }
        break;
      }
      case OpType::GlobalAveragePool: {
        if (x.dims.size() != 4) refuse(op, "needs a 4-D input");
        const int64_t c = x.dims[1], hw = x.dims[2] * x.dims[3];
        size_output({n, c, 1, 1});
        const int32_t lo = clamp_low(op), hi = clamp_high(op, yt.grid);
        for (int64_t m = 0; m < n; ++m)
          for (int64_t k = 0; k < c; ++k) {
            if (codes) {
              int64_t sum = 0;
              for (int64_t p = 0; p < hw; ++p) sum += x.codes[(m * hw + p) * c + k];
              const float mean = static_cast<float>(sum - hw * xt.grid.zero_point) * xt.grid.scale / static_cast<float>(hw);
              y.codes[m * c + k] = quantize_value(mean, yt.grid, lo, hi);
            } else {
              float sum = 0;
              for (int64_t p = 0; p < hw; ++p) sum += x.values[(m * hw + p) * c + k];
              y.values[m * c + k] = sum / static_cast<float>(hw);
            }
          }
        break;
      }
      case OpType::MaxPool: {
        if (x.dims.size() != 4) refuse(op, "needs a 4-D input");
        const ConvGeometry& g = op.geometry;
        const int64_t c = x.dims[1], h = x.dims[2], w = x.dims[3], oh = g.out_h(h), ow = g.out_w(w);
        if (oh < 1 || ow < 1) refuse(op, "the input is smaller than the window");
        size_output({n, c, oh, ow});
        for (int64_t m = 0; m < n; ++m) {
          if (codes) max_pool(g, c, x.codes.data() + m * h * w * c, h, w, y.codes.data() + m * oh * ow * c);
          else max_pool(g, c, x.values.data() + m * h * w * c, h, w, y.values.data() + m * oh * ow * c);
        }
        break;
      }
      case OpType::Flatten: {
        const int64_t features = x.count() / n;
        size_output({n, features});
        if (x.dims.size() == 4 && x.dims[2] * x.dims[3] > 1) {
          const int64_t hw = x.dims[2] * x.dims[3];
          if (codes) to_nchw(x.codes.data(), n, x.dims[1], hw, y.codes.data());
          else to_nchw(x.values.data(), n, x.dims[1], hw, y.values.data());
        } else if (codes) {
          y.codes = x.codes;
        } else {
          y.values = x.values;
        }
        break;
      }
      case OpType::Relu:
      case OpType::Clip: {
        size_output(x.dims);
        const float lo = op.type == OpType::Relu ? 0.f : op.clip_min, hi = op.type == OpType::Relu ? INFINITY : op.clip_max;
        const int64_t done = cpu_has_avx2() ? clamp_avx2(x.values.data(), x.count(), lo, hi, y.values.data()) : 0;
        for (int64_t e = done; e < x.count(); ++e) y.values[e] = std::min(std::max(x.values[e], lo), hi);
        break;
      }
    }
  }
}

std::vector<Model::Output> Model::collect_outputs() const {
  const std::vector<Buffer>& buf = impl_->buffers;
  std::vector<Output> outputs;
  for (int32_t id : spec_.outputs) {
    const Buffer& b = buf[id];
    Output o;
    o.name = spec_.tensors[id].name;
    o.dtype = spec_.tensors[id].dtype;
    o.shape = b.dims;
    const bool four = b.dims.size() == 4;
    if (o.dtype == DType::Uint8) {
      o.codes.resize(b.codes.size());
      if (four) to_nchw(b.codes.data(), b.dims[0], b.dims[1], b.dims[2] * b.dims[3], o.codes.data());
      else o.codes = b.codes;
    } else {
      o.values.resize(b.values.size());
      if (four) to_nchw(b.values.data(), b.dims[0], b.dims[1], b.dims[2] * b.dims[3], o.values.data());
      else o.values = b.values;
    }
    outputs.push_back(std::move(o));
  }
  return outputs;
}

}  // namespace autoprec::native
