// Integer matrix products for autoprec's native low-bit runtime: the inner
// loop of a convolution written as a GEMM over NHWC activations (rows m are
// output pixels, k runs over kernel rows, columns and input channels, n over
// output channels).
//
//   C[m][n] = sum_k A[m][k] * W[n][k]
//
// A holds unsigned activation codes of `activation_bits` (0 .. 2^ab - 1),
// row-major with a row stride of padded_k(); W holds signed weight codes of
// `weight_bits` (-2^(wb-1) .. 2^(wb-1) - 1), given row-major N x K to
// pack_weights(), which stores them in the kernel's layout at their bit-width
// where the kernel allows (the LUT kernel: wb bits per weight). C is int32,
// row-major with a row stride of padded_n(). Zero points and scales are the
// caller's (the epilogue): every kernel computes this exact integer sum.
//
// Kernels (docs/native.md has the study that chose them):
//   reference  scalar, every pair up to 8 bits; the ground truth of the tests.
//   madd16     AVX2 vpmaddwd on activations widened to int16: every pair up to 8 bits.
//   maddubs    AVX2 vpmaddubsw + vpmaddwd: exact unless ab = wb = 8 (its int16
//              pair sums would saturate).
//   maddubs_split  maddubs on the activations' low 7 bits and, weighted by 128,
//              on their top bit: every pair up to 8 bits, at twice the work.
//   maddubs_packed  maddubs with the weights kept at wb bits in memory (split
//              into 4-, 2- and 1-bit fields); each 16-column block is unpacked
//              into a small buffer before its rows run. The same pairs as maddubs.
//   vnni       AVX-512 VNNI vpdpbusd on 256-bit vectors (u8 x s8 quads summed
//              straight into int32): every pair up to 8 bits, exact, the maddubs layout.
//   vnni_packed  vnni with the weights kept at wb bits in memory, unpacked per
//              16-column block as maddubs_packed does.
//   lut        AVX2 table lookup (vpshufb) on the weights' bit planes, 16 sums of
//              4 activations per table: weights of 1-4 bits, activations of up
//              to 6 bits (the table's entries are bytes); cost falls with the
//              number of weight bits.
// No libtorch: this library is linked by applications that run models.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace autoprec::native {

enum class Kernel { Reference, Madd16, Maddubs, MaddubsSplit, MaddubsPacked, Lut, Vnni, VnniPacked };

const char* kernel_name(Kernel kernel);
// True when `kernel` computes the exact sum for this pair on this CPU.
bool kernel_supports(Kernel kernel, int weight_bits, int activation_bits);
bool cpu_has_avx2();
// AVX2, FMA and AVX-512 VNNI with VL (vpdpbusd on 256-bit vectors).
bool cpu_has_avx512_vnni();

struct PackedWeights {
  Kernel kernel = Kernel::Reference;
  int weight_bits = 8;
  int activation_bits = 8;  // the widest activation codes gemm() may be given
  int64_t n = 0, k = 0;     // logical sizes
  int64_t padded_n = 0;     // C's row stride
  int64_t padded_k = 0;     // A's row stride; A's padding columns must be 0
  std::vector<uint8_t> data;  // the kernel's layout
  std::vector<int32_t> row_sums;  // per n: sum_k W[n][k] (for the caller's zero-point correction)
  // Bytes the weights take in memory.
  int64_t bytes() const { return static_cast<int64_t>(data.size()); }
};

// `w`: N x K signed codes within `weight_bits`. std::invalid_argument when a
// code is out of range or the kernel does not support the pair.
PackedWeights pack_weights(Kernel kernel, const int8_t* w, int64_t n, int64_t k, int weight_bits,
                           int activation_bits);

// C (M x padded_n, row-major) = A (M x padded_k) * W^T. A's codes must be
// within the activation bits given to pack_weights.
void gemm(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c);

// The same product with A read in place: row r's k values are `segments`
// runs of k / segments bytes at a + r * lda + s * segment_stride (s <
// segments), which is the im2col of a stride-1 convolution over a padded NHWC
// image without the copy (lda = channels, one run per kernel row,
// segment_stride = the padded row). C as gemm(). Only when
// gemm_in_place_supports() says so: a maddubs or vnni kernel, k = padded_k, and runs
// of a multiple of 4 bytes.
bool gemm_in_place_supports(const PackedWeights& w, int64_t segments);
void gemm_in_place(const PackedWeights& w, const uint8_t* a, int64_t lda, int64_t segments, int64_t segment_stride,
                   int64_t m, int32_t* c);

// The scalar ground truth on unpacked operands: A M x K, W N x K, C M x N.
void gemm_reference(const uint8_t* a, int64_t m, const int8_t* w, int64_t n, int64_t k, int32_t* c);

// A single-precision product of the same shape (C = A W^T, A M x K, W N x K
// packed by pack_sgemm_weights, AVX2+FMA register-blocked), the baseline the
// kernel study measures against.
std::vector<float> pack_sgemm_weights(const float* w, int64_t n, int64_t k);
void sgemm_baseline(const float* a, int64_t m, const std::vector<float>& packed_w, int64_t n, int64_t k, float* c);

}  // namespace autoprec::native
