// A quantized 2-D convolution of the native runtime: NHWC activations on an
// unsigned b-bit grid, signed weight codes with one scale per output channel,
// an int32 bias on the grid of s_x * s_w[o], and the integer export's
// requantization (docs/deploy.md; ONNX QLinearConv):
//
//   acc[p][o] = sum_k (x_q[p][k] - z_x) * w_q[o][k] + bias[o]
//   y_q[p][o] = clamp(nearbyint(acc[p][o] * (s_x * s_w[o] / s_y)) + z_y, lo, 2^b_y - 1)
//
// with the product in float32 and nearbyint rounding half to even, as ONNX
// Runtime's CPU kernels do; lo = z_y with a fused ReLU, else 0. Padding
// reads the real value 0 (the code z_x). The inner product runs on the
// kernel of native/gemm.h chosen for the (weight bits, activation bits) pair.
#pragma once

#include <cstdint>
#include <vector>

#include "native/gemm.h"

namespace autoprec::native {

class ThreadPool;  // native/parallel.h

struct QuantGrid {
  float scale = 1;
  int32_t zero_point = 0;
  int bits = 8;  // codes 0 .. 2^bits - 1
};

struct ConvGeometry {
  int64_t in_channels = 0, out_channels = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t groups = 1;  // 1, or in_channels = out_channels (depthwise)
  bool depthwise() const { return groups > 1; }
  int64_t out_h(int64_t h) const { return (h + pad_top + pad_bottom - kernel_h) / stride_h + 1; }
  int64_t out_w(int64_t w) const { return (w + pad_left + pad_right - kernel_w) / stride_w + 1; }
};

struct ConvParams {
  ConvGeometry geometry;
  std::vector<int8_t> weights;      // OIHW signed codes within weight_bits (I = in_channels / groups)
  int weight_bits = 8;
  std::vector<float> weight_scales;  // one per output channel
  std::vector<int32_t> bias;        // one per output channel on the grid s_x * s_w[o]; empty: none
  QuantGrid input, output;
  bool relu = false;
  // Output codes are further held to [min_code, max_code] (an absorbed Clip);
  // max_code -1: the top of the grid.
  int32_t min_code = 0, max_code = -1;
  // The output code range after ReLU and the clamp: [lo, hi].
  int32_t lowest_code() const;
  int32_t highest_code() const;
};

class QuantizedConv {
 public:
  // std::invalid_argument when sizes disagree, a code is out of range, or
  // `kernel` cannot run the pair exactly.
  QuantizedConv(ConvParams params, Kernel kernel);
  // x: one image, NHWC uint8 [h][w][in_channels]; y: [out_h][out_w][out_channels].
  // With a pool, the output rows are spread over its threads (the same result).
  void run(const uint8_t* x, int64_t h, int64_t w, uint8_t* y, ThreadPool* pool = nullptr) const;
  // The same layer with a float output and no requantization (a Gemm whose
  // logits stay float): y = (acc) * s_x * s_w[o]; the output grid is unused.
  void run_float(const uint8_t* x, int64_t h, int64_t w, float* y, ThreadPool* pool = nullptr) const;
  // The parameters without the weight codes (packed, not kept twice).
  const ConvParams& params() const { return params_; }
  // Bytes the weights take in memory, packed at their bit-width (a depthwise
  // layer's are widened per call into a per-thread buffer).
  int64_t weight_bytes() const;

 private:
  ConvParams params_;
  PackedWeights packed_;
  std::vector<float> multipliers_;  // s_x * s_w[o] / s_y
  std::vector<float> dequantizers_;  // s_x * s_w[o]
  std::vector<int32_t> offsets_;     // bias[o] - z_x * sum_k w[o][k] (depthwise: bias[o])
  bool in_place_ = false;  // stride 1 on a kernel that reads the padded image in place (gemm_in_place)
  // acc ((r1 - r0) * out_w pixels x stride, offsets not yet added) of output rows [r0, r1).
  // With `padded` (the padded image, in_place_), the GEMM reads it in place
  // and output pixel (r, c) is acc row ((r - r0) * pitch + c); else pitch = out_w.
  // `depthwise`: the widened [kh][kw][c] weights of a depthwise layer (unpack_depthwise).
  void accumulate(const uint8_t* x, int64_t h, int64_t w, int64_t r0, int64_t r1, const uint8_t* padded,
                  const int16_t* depthwise, std::vector<int32_t>& acc, int64_t& stride, int64_t& pitch) const;
  // Output rows [r0, r1) into y (codes) or y_float.
  void run_rows(const uint8_t* x, int64_t h, int64_t w, int64_t r0, int64_t r1, const uint8_t* padded,
                const int16_t* depthwise, uint8_t* y, float* y_float) const;
  void unpack_depthwise(std::vector<int16_t>& out) const;
  void run_split(const uint8_t* x, int64_t h, int64_t w, uint8_t* y, float* y_float, ThreadPool* pool) const;
};

// The same layer by direct loops: the ground truth of QuantizedConv's tests.
void conv_reference(const ConvParams& params, const uint8_t* x, int64_t h, int64_t w, uint8_t* y);

}  // namespace autoprec::native
