// AVX-512 VNNI kernels (vpdpbusd on 256-bit vectors), compiled for that ISA
// by function attribute; gemm() dispatches here only after kernel_supports()
// said the CPU has it. Same layouts as maddubs and maddubs_packed: vpdpbusd
// sums each u8 x s8 quad straight into int32, so every pair up to 8 bits is
// exact in one instruction where maddubs_split needs four.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "native/gemm.h"
#include "native/gemm_kernels.h"

#define AUTOPREC_VNNI __attribute__((target("avx2,fma,avx512f,avx512vl,avx512vnni")))
#define AUTOPREC_VNNI_UNROLL _Pragma("GCC unroll 8")

namespace autoprec::native::detail {

namespace {

constexpr int kVnniRows = 4;  // rows of A per micro-kernel call

// Rows r < R of A against one 16-column block (w0: columns 0-7, w1: 8-15, 4 k per 32 bytes).
template <int R>
AUTOPREC_VNNI void vnni_block(const uint8_t* a, int64_t lda, int64_t segs, int64_t seg_stride, int64_t seg_quads,
                              const int8_t* w0, const int8_t* w1, int32_t* c, int64_t ldc) {
  __m256i acc0[R], acc1[R];
  AUTOPREC_VNNI_UNROLL
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_si256();
  for (int64_t kq = 0, seg = 0; seg < segs; ++seg)
  for (int64_t q = 0; q < seg_quads; ++q, ++kq) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0 + kq * 32));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w1 + kq * 32));
    const uint8_t* as = a + seg * seg_stride + q * 4;
    AUTOPREC_VNNI_UNROLL
    for (int r = 0; r < R; ++r) {
      int32_t quad;
      std::memcpy(&quad, as + r * lda, 4);
      const __m256i av = _mm256_set1_epi32(quad);
      acc0[r] = _mm256_dpbusd_epi32(acc0[r], av, b0);
      acc1[r] = _mm256_dpbusd_epi32(acc1[r], av, b1);
    }
  }
  AUTOPREC_VNNI_UNROLL
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc), acc0[r]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc + 8), acc1[r]);
  }
}

AUTOPREC_VNNI void vnni_columns(const PackedWeights& w, const int8_t* w0, const int8_t* w1, const uint8_t* a,
                                int64_t lda, int64_t segs, int64_t seg_stride, int64_t m, int32_t* c) {
  const int64_t seg_quads = w.padded_k / 4 / segs;
  for (int64_t r0 = 0; r0 < m; r0 += kVnniRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kVnniRows, m - r0));
    const uint8_t* ar = a + r0 * lda;
    int32_t* out = c + r0 * w.padded_n;
    switch (rows) {
      case 4: vnni_block<4>(ar, lda, segs, seg_stride, seg_quads, w0, w1, out, w.padded_n); break;
      case 3: vnni_block<3>(ar, lda, segs, seg_stride, seg_quads, w0, w1, out, w.padded_n); break;
      case 2: vnni_block<2>(ar, lda, segs, seg_stride, seg_quads, w0, w1, out, w.padded_n); break;
      default: vnni_block<1>(ar, lda, segs, seg_stride, seg_quads, w0, w1, out, w.padded_n); break;
    }
  }
}

}  // namespace

AUTOPREC_VNNI void gemm_vnni(const PackedWeights& w, const uint8_t* a, int64_t lda, int64_t segments,
                             int64_t segment_stride, int64_t m, int32_t* c) {
  const int64_t kq = w.padded_k / 4;
  if (w.kernel == Kernel::Vnni) {
    const auto* packed = reinterpret_cast<const int8_t*>(w.data.data());
    for (int64_t nb = 0; nb < w.padded_n / 16; ++nb) {
      const int8_t* w0 = packed + (2 * nb) * kq * 32;
      vnni_columns(w, w0, w0 + kq * 32, a, lda, segments, segment_stride, m, c + nb * 16);
    }
    return;
  }
  const int64_t block_codes = 16 * w.padded_k;
  const int64_t block_bytes = block_codes * w.weight_bits / 8;
  thread_local std::vector<int8_t> block;  // one block in L1, kept between calls
  block.resize(static_cast<size_t>(block_codes));
  for (int64_t nb = 0; nb < w.padded_n / 16; ++nb) {
    unpack_block_avx2(w.data.data() + nb * block_bytes, w.weight_bits, block_codes, block.data());
    vnni_columns(w, block.data(), block.data() + kq * 32, a, lda, segments, segment_stride, m, c + nb * 16);
  }
}

}  // namespace autoprec::native::detail
