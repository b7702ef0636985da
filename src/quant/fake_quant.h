// Fake quantization: quantize to a b-bit integer grid and dequantize, in
// floating point, with a straight-through estimator for the gradient.
//
//   q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)
//   y = (q - zero_point) * scale
//
// The gradient with respect to x is 1 where x lies inside the grid's range
// [(qmin - zero_point)·scale, (qmax - zero_point)·scale] and 0 outside it.
// The learnable variant (LSQ, Esser et al. 2020) also returns a gradient for
// `scale`, scaled by 1/sqrt(numel·qmax).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace autoprec::quant {

// An integer grid [qmin, qmax].
struct QuantGrid {
  int64_t qmin = 0;
  int64_t qmax = 0;
};

// Symmetric signed grid for weights, narrow range: [-(2^(b-1)-1), 2^(b-1)-1]
// (b = 2 gives the ternary {-1, 0, 1}).
QuantGrid signed_grid(int bits);
// Unsigned grid for activations: [0, 2^b - 1].
QuantGrid unsigned_grid(int bits);

// Scalar reference of the formula above.
float fake_quantize_reference(float x, float scale, int64_t zero_point, QuantGrid grid);

// Per-tensor fake quantization of x (any shape). scale > 0.
at::Tensor fake_quantize_per_tensor(const at::Tensor& x, double scale, int64_t zero_point, QuantGrid grid);

// Per-channel fake quantization along `axis`: scale float32 [C],
// zero_point int32 [C], C = x.size(axis).
at::Tensor fake_quantize_per_channel(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                                     int64_t axis, QuantGrid grid);

// LSQ: like the above with a learnable `scale` (float32 [1] for axis < 0,
// else [C]); zero_point float32 of the same shape (not learned).
at::Tensor fake_quantize_learnable(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                                   int64_t axis, QuantGrid grid);

}  // namespace autoprec::quant
