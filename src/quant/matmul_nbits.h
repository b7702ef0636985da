// Weight-only MatMul/Gemm layers that run as ONNX Runtime's MatMulNBits
// (com.microsoft, opset 1): Y = A · dequantize(B) (+ bias), with B stored
// packed at 2, 4 or 8 bits per weight and dequantized inside the kernel. It is
// the one path on which sub-8-bit weights run faster than 8-bit ones in ONNX
// Runtime on a CPU (memory-bound matrix-vector work at batch 1), and the
// packed weights stay packed in memory.
//
// A layer runs as MatMulNBits when
//   - it is a MatMul, or a Gemm with alpha = beta = 1 and transA = 0, whose
//     weight is a 2-D initializer (Gemm's bias, when 1-D of N values, becomes
//     the kernel's bias input);
//   - its weights have 2, 4 or 8 bits and its input activation stays float.
// ORT 1.30's CPU kernel takes block sizes 16, 32, 64, 128 and 256 along the
// reduction axis K, each block of each output channel with its own scale, and
// a partial last block. The simulation quantizes such a weight in the same
// blocks: a column of K <= 256 is one block, so the layer is per output
// channel exactly; a longer one is split into blocks of 256.
//   block_size(K) = min(256, max(16, next power of two >= K))
// Codes are the simulation's signed narrow-range grid values q plus
// 2^(bits-1) (ORT's default zero point when no zero_points input is given),
// so they lie in [1, 2^bits - 1].
#pragma once

#include <cstdint>

#include "graph/ir.h"
#include "quant/config.h"
#include "quant/layers.h"

namespace autoprec::quant {

// The weight bit-widths MatMulNBits runs.
bool matmul_nbits_bits(int weight_bits);

// True when `layer` (of `graph`) has the shape MatMulNBits takes, whatever
// its precision.
bool matmul_nbits_shape(const graph::Graph& graph, const QuantLayer& layer);

// True when `layer` at `precision` runs as MatMulNBits (see above).
bool runs_as_matmul_nbits(const graph::Graph& graph, const QuantLayer& layer, const LayerPrecision& precision);

// The reduction length K of such a layer's weight and its axis in the weight
// tensor (the axis that is not `layer.channel_axis`).
int64_t matmul_nbits_k_axis(const QuantLayer& layer);

// block_size(K) above. k > 0.
int64_t matmul_nbits_block_size(int64_t k);

}  // namespace autoprec::quant
