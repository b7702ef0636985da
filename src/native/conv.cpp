#include "native/conv.h"
#include "native/parallel.h"
#include "native/simd_codes.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace autoprec::native {

namespace {

int64_t patch_size(const ConvGeometry& g) { return g.kernel_h * g.kernel_w * (g.in_channels / g.groups); }

void check(const ConvParams& p) {
  const ConvGeometry& g = p.geometry;
  if (g.in_channels < 1 || g.out_channels < 1 || g.kernel_h < 1 || g.kernel_w < 1 || g.stride_h < 1 || g.stride_w < 1 ||
      g.pad_top < 0 || g.pad_left < 0 || g.pad_bottom < 0 || g.pad_right < 0) {
    throw std::invalid_argument("convolution: channels, kernel and strides must be positive, pads non-negative");
  }
  if (g.groups != 1 && !(g.groups == g.in_channels && g.groups == g.out_channels)) {
    throw std::invalid_argument("convolution: " + std::to_string(g.groups) +
                                " groups; only 1 or one per channel (depthwise) are supported");
  }
  if (static_cast<int64_t>(p.weights.size()) != g.out_channels * patch_size(g)) {
    throw std::invalid_argument("convolution: " + std::to_string(p.weights.size()) + " weights for " +
                                std::to_string(g.out_channels * patch_size(g)));
  }
  if (static_cast<int64_t>(p.weight_scales.size()) != g.out_channels ||
      (!p.bias.empty() && static_cast<int64_t>(p.bias.size()) != g.out_channels)) {
    throw std::invalid_argument("convolution: one weight scale (and bias) per output channel");
  }
  for (const QuantGrid* q : {&p.input, &p.output}) {
    if (q->bits < 1 || q->bits > 8 || q->zero_point < 0 || q->zero_point >= (1 << q->bits) || !(q->scale > 0)) {
      throw std::invalid_argument("convolution: an activation grid needs 1-8 bits, a positive scale and a zero point on the grid");
    }
  }
  if (p.lowest_code() > p.highest_code()) throw std::invalid_argument("convolution: the output clamp is empty");
}

// The rounding and clamping of the export's requantization.
uint8_t requantize(int64_t acc, float multiplier, int32_t zero_point, int32_t lo, int32_t hi) {
  const float y = static_cast<float>(acc) * multiplier;
  const int64_t q = static_cast<int64_t>(std::nearbyint(y)) + zero_point;
  return static_cast<uint8_t>(std::clamp<int64_t>(q, lo, hi));
}

// requantize() for the first multiple of 8 of `n` columns: cvtps rounds half
// to even like nearbyint, and the float is bounded first so that no
// conversion overflows (the bound lies far outside every grid). Returns the
// columns done.
__attribute__((target("avx2"))) int64_t requantize_avx2(const int32_t* acc, const int32_t* offsets,
                                                      const float* multipliers, int64_t n, int32_t zero_point,
                                                      int32_t lo, int32_t hi, uint8_t* out) {
  const __m256i zp = _mm256_set1_epi32(zero_point), low = _mm256_set1_epi32(lo), high = _mm256_set1_epi32(hi);
  int64_t o = 0;
  for (; o + 8 <= n; o += 8) {
    const __m256i a = _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + o)),
                                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(offsets + o)));
    detail::store_codes_avx2(_mm256_mul_ps(_mm256_cvtepi32_ps(a), _mm256_loadu_ps(multipliers + o)), zp, low, high, out + o);
  }
  return o;
}

// memcpy for the short spans of im2col, inline (a call costs as much as a 48-byte copy).
inline void copy_span(uint8_t* to, const uint8_t* from, int64_t n) {
  for (; n >= 16; n -= 16, to += 16, from += 16) {
    uint8_t block[16];
    std::memcpy(block, from, 16);
    std::memcpy(to, block, 16);
  }
  if (n > 0) std::memcpy(to, from, static_cast<size_t>(n));
}

// out[k] += (in[k] - zx) * wt[k] for the first multiple of 8 of `n`
// channels (one depthwise tap); returns the channels done.
__attribute__((target("avx2"))) int64_t depthwise_tap_avx2(const uint8_t* in, const int16_t* wt, int64_t n, int32_t zx,
                                                         int32_t* out) {
  const __m256i z = _mm256_set1_epi32(zx);
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256i a = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + k))), z);
    const __m256i b = _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wt + k)));
    __m256i* o = reinterpret_cast<__m256i*>(out + k);
    _mm256_storeu_si256(o, _mm256_add_epi32(_mm256_loadu_si256(o), _mm256_mullo_epi32(a, b)));
  }
  return k;
}

// Weights OIHW -> O x (kh, kw, c): the order im2col writes an NHWC patch in.
std::vector<int8_t> patch_major(const ConvParams& p) {
  const ConvGeometry& g = p.geometry;
  const int64_t in = g.in_channels / g.groups;
  std::vector<int8_t> out(p.weights.size());
  for (int64_t o = 0; o < g.out_channels; ++o)
    for (int64_t c = 0; c < in; ++c)
      for (int64_t i = 0; i < g.kernel_h; ++i)
        for (int64_t j = 0; j < g.kernel_w; ++j)
          out[((o * g.kernel_h + i) * g.kernel_w + j) * in + c] = p.weights[((o * in + c) * g.kernel_h + i) * g.kernel_w + j];
  return out;
}

struct Scratch {
  std::vector<uint8_t> patches;
  std::vector<uint8_t> padded;
  std::vector<int16_t> depthwise;
  std::vector<int32_t> acc;
};

// Per-thread buffers kept between calls: a layer allocates nothing per image
// once the largest layer has run.
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

int32_t ConvParams::lowest_code() const {
  return std::max(min_code, relu ? output.zero_point : 0);
}

int32_t ConvParams::highest_code() const {
  const int32_t top = (1 << output.bits) - 1;
  return max_code < 0 ? top : std::min(max_code, top);
}

QuantizedConv::QuantizedConv(ConvParams params, Kernel kernel) : params_(std::move(params)) {
  check(params_);
  const ConvGeometry& g = params_.geometry;
  if (g.depthwise()) {
    for (int8_t v : params_.weights) {
      const int limit = 1 << (params_.weight_bits - 1);
      if (v < -limit || v >= limit) throw std::invalid_argument("convolution: a weight code lies outside its bits");
    }
    // [kh][kw][c] codes at weight_bits each (two's complement, LSB first):
    // held packed, widened per call for the direct loop.
    const int b = params_.weight_bits;
    packed_.data.assign(static_cast<size_t>((static_cast<int64_t>(params_.weights.size()) * b + 7) / 8), 0);
    int64_t bit = 0;
    for (int64_t t = 0; t < g.kernel_h * g.kernel_w; ++t)
      for (int64_t c = 0; c < g.out_channels; ++c) {
        const auto u = static_cast<uint8_t>(params_.weights[c * g.kernel_h * g.kernel_w + t]);
        for (int i = 0; i < b; ++i, ++bit)
          if (u >> i & 1) packed_.data[static_cast<size_t>(bit / 8)] |= static_cast<uint8_t>(1 << (bit % 8));
      }
    packed_.kernel = Kernel::Reference;
    packed_.weight_bits = params_.weight_bits;
    packed_.n = packed_.padded_n = g.out_channels;
    packed_.k = packed_.padded_k = g.kernel_h * g.kernel_w;
    packed_.row_sums.assign(g.out_channels, 0);
  } else {
    const std::vector<int8_t> w = patch_major(params_);
    packed_ = pack_weights(kernel, w.data(), g.out_channels, patch_size(g), params_.weight_bits, params_.input.bits);
  }
  for (int64_t o = 0; o < g.out_channels; ++o) {
    dequantizers_.push_back(params_.input.scale * params_.weight_scales[o]);
    multipliers_.push_back(params_.input.scale * params_.weight_scales[o] / params_.output.scale);
    const int32_t bias = params_.bias.empty() ? 0 : params_.bias[o];
    offsets_.push_back(g.depthwise() ? bias : bias - params_.input.zero_point * packed_.row_sums[o]);
  }
  params_.weights = {};
  params_.weights.shrink_to_fit();
  in_place_ = !g.depthwise() && g.stride_h == 1 && g.stride_w == 1 && gemm_in_place_supports(packed_, g.kernel_h);
}

int64_t QuantizedConv::weight_bytes() const {
  return packed_.bytes();
}

void QuantizedConv::unpack_depthwise(std::vector<int16_t>& out) const {
  const ConvGeometry& g = params_.geometry;
  const int b = params_.weight_bits;
  const int64_t n = g.kernel_h * g.kernel_w * g.out_channels;
  out.resize(static_cast<size_t>(n));
  const uint8_t* data = packed_.data.data();
  for (int64_t k = 0, bit = 0; k < n; ++k, bit += b) {
    // b <= 8 bits starting at `bit`: within two bytes.
    const int64_t byte = bit / 8, shift = bit % 8;
    uint32_t v = data[byte];
    if (shift + b > 8) v |= static_cast<uint32_t>(data[byte + 1]) << 8;
    int32_t code = static_cast<int32_t>((v >> shift) & ((1u << b) - 1));
    if (code & (1 << (b - 1))) code -= 1 << b;
    out[static_cast<size_t>(k)] = static_cast<int16_t>(code);
  }
}

void QuantizedConv::accumulate(const uint8_t* x, int64_t h, int64_t w, int64_t r0, int64_t r1, const uint8_t* padded,
                               const int16_t* depthwise, std::vector<int32_t>& acc, int64_t& stride, int64_t& pitch) const {
  const ConvGeometry& g = params_.geometry;
  const int64_t ow = g.out_w(w);
  const int64_t pixels = (r1 - r0) * ow;
  pitch = ow;
  if (padded) {
    // Virtual pixels over the padded width: row r's window at column c starts
    // at padded pixel (r, c); columns ow .. wp-1 are computed and ignored.
    const int64_t wp = w + g.pad_left + g.pad_right;
    const int64_t m = (r1 - r0 - 1) * wp + ow;
    stride = packed_.padded_n;
    pitch = wp;
    acc.resize(static_cast<size_t>(m * stride));
    gemm_in_place(packed_, padded + r0 * wp * g.in_channels, g.in_channels, g.kernel_h, wp * g.in_channels, m, acc.data());
    return;
  }
  if (g.depthwise()) {
    const int64_t ch = g.out_channels;
    const int32_t zx = params_.input.zero_point;
    stride = ch;
    acc.assign(static_cast<size_t>(pixels * ch), 0);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < ow; ++c) {
        int32_t* out = acc.data() + ((r - r0) * ow + c) * ch;
        for (int64_t i = 0; i < g.kernel_h; ++i) {
          const int64_t yi = r * g.stride_h + i - g.pad_top;
          if (yi < 0 || yi >= h) continue;  // the real value 0
          for (int64_t j = 0; j < g.kernel_w; ++j) {
            const int64_t xj = c * g.stride_w + j - g.pad_left;
            if (xj < 0 || xj >= w) continue;
            const uint8_t* in = x + (yi * w + xj) * ch;
            const int16_t* wt = depthwise + (i * g.kernel_w + j) * ch;
            int64_t k = cpu_has_avx2() ? depthwise_tap_avx2(in, wt, ch, zx, out) : 0;
            for (; k < ch; ++k) out[k] += (static_cast<int32_t>(in[k]) - zx) * static_cast<int32_t>(wt[k]);
          }
        }
      }
    return;
  }
  std::vector<uint8_t>& patches = scratch().patches;
  const int64_t k = patch_size(g), padded_k = packed_.padded_k;
  patches.resize(static_cast<size_t>(pixels * padded_k));
  const auto zx = static_cast<uint8_t>(params_.input.zero_point);
  const int64_t span = g.kernel_w * g.in_channels;  // one kernel row of an NHWC patch: contiguous in the input
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = 0; c < ow; ++c) {
      uint8_t* row = patches.data() + ((r - r0) * ow + c) * padded_k;
      const int64_t x0 = c * g.stride_w - g.pad_left;
      const bool columns_inside = x0 >= 0 && x0 + g.kernel_w <= w;
      for (int64_t i = 0; i < g.kernel_h; ++i) {
        const int64_t yi = r * g.stride_h + i - g.pad_top;
        uint8_t* to = row + i * span;
        if (yi < 0 || yi >= h) {
          std::memset(to, zx, static_cast<size_t>(span));
        } else if (columns_inside) {
          copy_span(to, x + (yi * w + x0) * g.in_channels, span);
        } else {
          for (int64_t j = 0; j < g.kernel_w; ++j, to += g.in_channels) {
            const int64_t xj = x0 + j;
            if (xj < 0 || xj >= w) std::memset(to, zx, static_cast<size_t>(g.in_channels));
            else std::memcpy(to, x + (yi * w + xj) * g.in_channels, static_cast<size_t>(g.in_channels));
          }
        }
      }
      std::memset(row + k, 0, static_cast<size_t>(padded_k - k));  // the kernels' padding adds nothing
    }
  stride = packed_.padded_n;
  acc.resize(static_cast<size_t>(pixels * packed_.padded_n));
  gemm(packed_, patches.data(), pixels, acc.data());
}

void QuantizedConv::run_rows(const uint8_t* x, int64_t h, int64_t w, int64_t r0, int64_t r1, const uint8_t* padded,
                             const int16_t* depthwise, uint8_t* y, float* y_float) const {
  const ConvGeometry& g = params_.geometry;
  std::vector<int32_t>& acc = scratch().acc;
  int64_t stride = 0, pitch = 0;
  accumulate(x, h, w, r0, r1, padded, depthwise, acc, stride, pitch);
  const int64_t ow = g.out_w(w), pixels = (r1 - r0) * ow, first = r0 * ow;
  auto acc_row = [&](int64_t p) { return acc.data() + ((p / ow) * pitch + p % ow) * stride; };
  if (y_float) {
    for (int64_t p = 0; p < pixels; ++p)
      for (int64_t o = 0; o < g.out_channels; ++o)
        y_float[(first + p) * g.out_channels + o] = static_cast<float>(acc_row(p)[o] + offsets_[o]) * dequantizers_[o];
    return;
  }
  const int32_t hi = params_.highest_code(), lo = params_.lowest_code();
  for (int64_t p = 0; p < pixels; ++p) {
    const int32_t* row = acc_row(p);
    uint8_t* out = y + (first + p) * g.out_channels;
    int64_t o = cpu_has_avx2() ? requantize_avx2(row, offsets_.data(), multipliers_.data(), g.out_channels,
                                                 params_.output.zero_point, lo, hi, out)
                               : 0;
    for (; o < g.out_channels; ++o) {
      out[o] = requantize(static_cast<int64_t>(row[o]) + offsets_[o], multipliers_[o], params_.output.zero_point, lo, hi);
    }
  }
}

void QuantizedConv::run_split(const uint8_t* x, int64_t h, int64_t w, uint8_t* y, float* y_float, ThreadPool* pool) const {
  const ConvGeometry& g = params_.geometry;
  const int64_t oh = g.out_h(h), ow = g.out_w(w);
  if (oh < 1 || ow < 1) throw std::invalid_argument("convolution: the image is smaller than the kernel");
  // Rows in parts of at least 8 output pixels per thread's turn; one part without a pool.
  const int threads = pool ? pool->threads() : 1;
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>({oh, threads, (oh * ow) / 8}));
  const uint8_t* padded = nullptr;
  if (in_place_) {
    // The image with its padding (the code z_x), read in place by every part.
    const int64_t wp = w + g.pad_left + g.pad_right, hp = h + g.pad_top + g.pad_bottom, c = g.in_channels;
    std::vector<uint8_t>& image = scratch().padded;
    image.assign(static_cast<size_t>(hp * wp * c), static_cast<uint8_t>(params_.input.zero_point));
    for (int64_t r = 0; r < h; ++r)
      std::memcpy(image.data() + ((r + g.pad_top) * wp + g.pad_left) * c, x + r * w * c, static_cast<size_t>(w * c));
    padded = image.data();
  }
  const int16_t* depthwise = nullptr;
  if (g.depthwise()) {
    unpack_depthwise(scratch().depthwise);
    depthwise = scratch().depthwise.data();
  }
  if (parts == 1) return run_rows(x, h, w, 0, oh, padded, depthwise, y, y_float);
  pool->run(static_cast<int>(parts), [&](int part) {
    const int64_t r0 = oh * part / parts, r1 = oh * (part + 1) / parts;
    if (r1 > r0) run_rows(x, h, w, r0, r1, padded, depthwise, y, y_float);
  });
}

void QuantizedConv::run(const uint8_t* x, int64_t h, int64_t w, uint8_t* y, ThreadPool* pool) const {
  run_split(x, h, w, y, nullptr, pool);
}

void QuantizedConv::run_float(const uint8_t* x, int64_t h, int64_t w, float* y, ThreadPool* pool) const {
  run_split(x, h, w, nullptr, y, pool);
}

void conv_reference(const ConvParams& params, const uint8_t* x, int64_t h, int64_t w, uint8_t* y) {
  check(params);
  const ConvGeometry& g = params.geometry;
  const int64_t oh = g.out_h(h), ow = g.out_w(w);
  const int32_t hi = params.highest_code(), lo = params.lowest_code();
  const int64_t in = g.in_channels / g.groups, out_per_group = g.out_channels / g.groups;
  for (int64_t r = 0; r < oh; ++r)
    for (int64_t c = 0; c < ow; ++c)
      for (int64_t o = 0; o < g.out_channels; ++o) {
        int64_t acc = params.bias.empty() ? 0 : params.bias[o];
        const int64_t first = (o / out_per_group) * in;
        for (int64_t ch = first; ch < first + in; ++ch)
          for (int64_t i = 0; i < g.kernel_h; ++i)
            for (int64_t j = 0; j < g.kernel_w; ++j) {
              const int64_t yi = r * g.stride_h + i - g.pad_top, xj = c * g.stride_w + j - g.pad_left;
              if (yi < 0 || yi >= h || xj < 0 || xj >= w) continue;  // the real value 0
              const int64_t xq = x[(yi * w + xj) * g.in_channels + ch] - params.input.zero_point;
              acc += xq * params.weights[((o * in + (ch - first)) * g.kernel_h + i) * g.kernel_w + j];
            }
        const float multiplier = params.input.scale * params.weight_scales[o] / params.output.scale;
        y[(r * ow + c) * g.out_channels + o] = requantize(acc, multiplier, params.output.zero_point, lo, hi);
      }
}

}  // namespace autoprec::native
