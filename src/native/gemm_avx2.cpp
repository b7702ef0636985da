// AVX2 kernels, compiled for AVX2 by function attribute so that the library
// runs (on its scalar path) on CPUs without it; gemm() dispatches here only
// after kernel_supports() said yes.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "native/gemm.h"
#include "native/gemm_kernels.h"

#define AUTOPREC_AVX2 __attribute__((target("avx2,fma")))
// Unrolled completely, the per-row accumulator arrays live in registers.
#define AUTOPREC_UNROLL _Pragma("GCC unroll 8")

namespace autoprec::native {

namespace {

constexpr int kRows = 4;  // rows of A per micro-kernel call

// ---- madd16: C += A16 * W16 with vpmaddwd (8 n x 2 k per instruction) ----
template <int R>
AUTOPREC_AVX2 void madd16_block(const int16_t* a16, int64_t lda, const int16_t* w0, const int16_t* w1, int64_t kpairs,
                                int32_t* c, int64_t ldc) {
  __m256i acc0[R], acc1[R];
  AUTOPREC_UNROLL
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_si256();
  for (int64_t kp = 0; kp < kpairs; ++kp) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0 + kp * 16));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w1 + kp * 16));
    AUTOPREC_UNROLL
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, a16 + r * lda + kp * 2, 4);
      const __m256i av = _mm256_set1_epi32(pair);
      acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(av, b0));
      acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(av, b1));
    }
  }
  AUTOPREC_UNROLL
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc), acc0[r]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc + 8), acc1[r]);
  }
}

// ---- maddubs: vpmaddubsw (u8 x s8 pairs -> s16) then vpmaddwd by 1 (8 n x 4 k) ----
// kSplit: activations split into their low 7 bits and their top bit, each
// product exact in int16; the top bit's sums are weighted by 128 in vpmaddwd.
// A row r's k values are `segs` runs of seg_quads * 4 bytes at a + r * lda + s * seg_stride.
template <int R, bool kSplit>
AUTOPREC_AVX2 void maddubs_block(const uint8_t* a, int64_t lda, int64_t segs, int64_t seg_stride, int64_t seg_quads,
                                 const int8_t* w0, const int8_t* w1, int32_t* c, int64_t ldc) {
  const __m256i ones = _mm256_set1_epi16(1), top_weight = _mm256_set1_epi16(128);
  const __m256i low7 = _mm256_set1_epi8(0x7f), bit0 = _mm256_set1_epi8(1);
  __m256i acc0[R], acc1[R];
  AUTOPREC_UNROLL
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_si256();
  for (int64_t kq = 0, seg = 0; seg < segs; ++seg)
  for (int64_t q = 0; q < seg_quads; ++q, ++kq) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0 + kq * 32));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w1 + kq * 32));
    const uint8_t* as = a + seg * seg_stride + q * 4;
    AUTOPREC_UNROLL
    for (int r = 0; r < R; ++r) {
      int32_t quad;
      std::memcpy(&quad, as + r * lda, 4);
      const __m256i av = _mm256_set1_epi32(quad);
      if constexpr (kSplit) {
        const __m256i lo = _mm256_and_si256(av, low7), hi = _mm256_and_si256(_mm256_srli_epi16(av, 7), bit0);
        acc0[r] = _mm256_add_epi32(acc0[r], _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(lo, b0), ones),
                                                             _mm256_madd_epi16(_mm256_maddubs_epi16(hi, b0), top_weight)));
        acc1[r] = _mm256_add_epi32(acc1[r], _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(lo, b1), ones),
                                                             _mm256_madd_epi16(_mm256_maddubs_epi16(hi, b1), top_weight)));
      } else {
        acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones));
        acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones));
      }
    }
  }
  AUTOPREC_UNROLL
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc), acc0[r]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc + 8), acc1[r]);
  }
}

// ---- lut: 16 sums of 4 activations per table, looked up by 4 weight bits ----

// The tables of one row: per octet of k, 32 bytes; lane 0 holds the 16 sums
// of activations 8o..8o+3 selected by the index bits, lane 1 those of 8o+4..8o+7.
AUTOPREC_AVX2 void build_tables(const uint8_t* a, int64_t octets, uint8_t* tables) {
  // Byte idx of mask j is 0xff when bit j of idx (idx = byte position mod 16) is set.
  alignas(32) uint8_t masks[4][32];
  alignas(32) uint8_t pick[4][32];
  for (int j = 0; j < 4; ++j)
    for (int i = 0; i < 32; ++i) {
      masks[j][i] = ((i & 15) >> j) & 1 ? 0xff : 0;
      pick[j][i] = static_cast<uint8_t>(i < 16 ? j : 4 + j);  // lane 0: a[j]; lane 1: a[4+j]
    }
  __m256i mask[4], sel[4];
  for (int j = 0; j < 4; ++j) {
    mask[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(masks[j]));
    sel[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(pick[j]));
  }
  for (int64_t o = 0; o < octets; ++o) {
    int64_t eight;
    std::memcpy(&eight, a + o * 8, 8);
    const __m256i av = _mm256_set1_epi64x(eight);
    __m256i t = _mm256_and_si256(_mm256_shuffle_epi8(av, sel[0]), mask[0]);
    for (int j = 1; j < 4; ++j) t = _mm256_add_epi8(t, _mm256_and_si256(_mm256_shuffle_epi8(av, sel[j]), mask[j]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tables + o * 32), t);
  }
}

// Rows r < R of one 16-column block: sum over octets of plane b's lookups,
// widened to int32 and added, times 2^b, into even[r] (n = 0, 2, .., 14) and
// odd[r] (n = 1, 3, .., 15).
template <int R>
AUTOPREC_AVX2 void lut_block(const uint8_t* const* tables, const uint8_t* planes, int wb, int64_t octets,
                             int chain, int64_t chunk, __m256i* even, __m256i* odd) {
  const __m256i low_nibble = _mm256_set1_epi8(0x0f);
  const __m256i low_byte = _mm256_set1_epi16(0x00ff);
  AUTOPREC_UNROLL
  for (int r = 0; r < R; ++r) even[r] = odd[r] = _mm256_setzero_si256();
  for (int b = 0; b < wb; ++b) {
    const uint8_t* plane = planes + b * octets * 16;
    for (int64_t begin = 0; begin < octets; begin += chunk) {
      const int64_t end = std::min(octets, begin + chunk);
      __m256i e16[R], o16[R], s8[R];
      AUTOPREC_UNROLL
      for (int r = 0; r < R; ++r) e16[r] = o16[r] = s8[r] = _mm256_setzero_si256();
      int pending = 0;
      for (int64_t o = begin; o < end; ++o) {
        const __m256i x = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(plane + o * 16)));
        const __m256i idx = _mm256_and_si256(_mm256_blend_epi32(x, _mm256_srli_epi16(x, 4), 0xF0), low_nibble);
        AUTOPREC_UNROLL
        for (int r = 0; r < R; ++r) {
          const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tables[r] + o * 32));
          s8[r] = _mm256_add_epi8(s8[r], _mm256_shuffle_epi8(t, idx));
        }
        if (++pending == chain) {
          AUTOPREC_UNROLL
          for (int r = 0; r < R; ++r) {
            e16[r] = _mm256_add_epi16(e16[r], _mm256_and_si256(s8[r], low_byte));
            o16[r] = _mm256_add_epi16(o16[r], _mm256_srli_epi16(s8[r], 8));
            s8[r] = _mm256_setzero_si256();
          }
          pending = 0;
        }
      }
      AUTOPREC_UNROLL
      for (int r = 0; r < R; ++r) {
        if (pending) {
          e16[r] = _mm256_add_epi16(e16[r], _mm256_and_si256(s8[r], low_byte));
          o16[r] = _mm256_add_epi16(o16[r], _mm256_srli_epi16(s8[r], 8));
        }
        // Lane 0 and lane 1 hold the same 8 columns for the two halves of each octet.
        const __m256i e32 = _mm256_add_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(e16[r])),
                                             _mm256_cvtepu16_epi32(_mm256_extracti128_si256(e16[r], 1)));
        const __m256i o32 = _mm256_add_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(o16[r])),
                                             _mm256_cvtepu16_epi32(_mm256_extracti128_si256(o16[r], 1)));
        even[r] = _mm256_add_epi32(even[r], _mm256_slli_epi32(e32, b));
        odd[r] = _mm256_add_epi32(odd[r], _mm256_slli_epi32(o32, b));
      }
    }
  }
}

// Planes interleaved (2 and 4 bits): a lookup register holds G = 16/wb columns
// x wb planes per lane; vpmaddubsw by the planes' weights 2^b combines them
// into int16 per column, so no plane is widened separately.
template <int R>
AUTOPREC_AVX2 void lut_interleaved_block(const uint8_t* const* tables, const uint8_t* block, int wb, int64_t octets,
                                         int chain, int steps16, __m256i* acc32) {
  const __m256i low_nibble = _mm256_set1_epi8(0x0f);
  const __m256i plane_weights = wb == 2 ? _mm256_set1_epi16(0x0201) : _mm256_set1_epi32(0x08040201);
  const __m256i ones16 = _mm256_set1_epi16(1);
  AUTOPREC_UNROLL
  for (int r = 0; r < R; ++r) acc32[r] = _mm256_setzero_si256();
  int64_t o = 0;
  while (o < octets) {
    __m256i acc16[R];
    AUTOPREC_UNROLL
    for (int r = 0; r < R; ++r) acc16[r] = _mm256_setzero_si256();
    for (int step = 0; step < steps16 && o < octets; ++step) {
      __m256i s8[R];
      AUTOPREC_UNROLL
      for (int r = 0; r < R; ++r) s8[r] = _mm256_setzero_si256();
      for (int c = 0; c < chain && o < octets; ++c, ++o) {
        const __m256i x = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + o * 16)));
        const __m256i idx = _mm256_and_si256(_mm256_blend_epi32(x, _mm256_srli_epi16(x, 4), 0xF0), low_nibble);
        AUTOPREC_UNROLL
        for (int r = 0; r < R; ++r) {
          const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tables[r] + o * 32));
          s8[r] = _mm256_add_epi8(s8[r], _mm256_shuffle_epi8(t, idx));
        }
      }
      AUTOPREC_UNROLL
      for (int r = 0; r < R; ++r) acc16[r] = _mm256_add_epi16(acc16[r], _mm256_maddubs_epi16(s8[r], plane_weights));
    }
    AUTOPREC_UNROLL
    for (int r = 0; r < R; ++r) {
      const __m256i widened =
          wb == 2 ? _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(acc16[r])),
                                     _mm256_cvtepi16_epi32(_mm256_extracti128_si256(acc16[r], 1)))
                  : _mm256_madd_epi16(acc16[r], ones16);
      acc32[r] = _mm256_add_epi32(acc32[r], widened);
    }
  }
}

}  // namespace

namespace detail {

AUTOPREC_AVX2 void gemm_madd16_avx2(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c) {
  const int64_t kp = w.padded_k / 2;
  std::vector<int16_t> a16(kRows * w.padded_k);
  const auto* packed = reinterpret_cast<const int16_t*>(w.data.data());
  for (int64_t r0 = 0; r0 < m; r0 += kRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kRows, m - r0));
    for (int r = 0; r < rows; ++r)
      for (int64_t i = 0; i < w.padded_k; ++i) a16[r * w.padded_k + i] = a[(r0 + r) * w.padded_k + i];
    for (int64_t nb = 0; nb < w.padded_n / 16; ++nb) {
      const int16_t* w0 = packed + (2 * nb) * kp * 16;
      const int16_t* w1 = w0 + kp * 16;
      int32_t* out = c + r0 * w.padded_n + nb * 16;
      switch (rows) {
        case 4: madd16_block<4>(a16.data(), w.padded_k, w0, w1, kp, out, w.padded_n); break;
        case 3: madd16_block<3>(a16.data(), w.padded_k, w0, w1, kp, out, w.padded_n); break;
        case 2: madd16_block<2>(a16.data(), w.padded_k, w0, w1, kp, out, w.padded_n); break;
        default: madd16_block<1>(a16.data(), w.padded_k, w0, w1, kp, out, w.padded_n); break;
      }
    }
  }
}

// Every row of A against one 16-column block (w0: columns 0-7, w1: 8-15).
// Where A's rows are: row r at a + r * lda, its k values in `segs` runs
// seg_stride apart (1 run: a plain row-major A with lda = padded_k).
struct RowsOfA {
  const uint8_t* a;
  int64_t lda, segs, seg_stride;
};

template <bool kSplit>
AUTOPREC_AVX2 void maddubs_columns(const PackedWeights& w, const int8_t* w0, const int8_t* w1, const RowsOfA& a,
                                   int64_t m, int32_t* c) {
  const int64_t seg_quads = w.padded_k / 4 / a.segs;
  for (int64_t r0 = 0; r0 < m; r0 += kRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kRows, m - r0));
    const uint8_t* ar = a.a + r0 * a.lda;
    int32_t* out = c + r0 * w.padded_n;
    switch (rows) {
      case 4: maddubs_block<4, kSplit>(ar, a.lda, a.segs, a.seg_stride, seg_quads, w0, w1, out, w.padded_n); break;
      case 3: maddubs_block<3, kSplit>(ar, a.lda, a.segs, a.seg_stride, seg_quads, w0, w1, out, w.padded_n); break;
      case 2: maddubs_block<2, kSplit>(ar, a.lda, a.segs, a.seg_stride, seg_quads, w0, w1, out, w.padded_n); break;
      default: maddubs_block<1, kSplit>(ar, a.lda, a.segs, a.seg_stride, seg_quads, w0, w1, out, w.padded_n); break;
    }
  }
}

template <bool kSplit>
AUTOPREC_AVX2 void maddubs_gemm(const PackedWeights& w, const RowsOfA& a, int64_t m, int32_t* c) {
  const int64_t kq = w.padded_k / 4;
  const auto* packed = reinterpret_cast<const int8_t*>(w.data.data());
  for (int64_t nb = 0; nb < w.padded_n / 16; ++nb) {
    const int8_t* w0 = packed + (2 * nb) * kq * 32;
    maddubs_columns<kSplit>(w, w0, w0 + kq * 32, a, m, c + nb * 16);
  }
}

AUTOPREC_AVX2 void gemm_maddubs_avx2(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c) {
  maddubs_gemm<false>(w, {a, w.padded_k, 1, 0}, m, c);
}

// One 16-column block of maddubs_packed weights into the maddubs layout (signed codes).
AUTOPREC_AVX2 void unpack_block(const uint8_t* packed, int wb, int64_t block_codes, int8_t* out) {
  bool first = true;
  for (const CodeField& f : code_fields(wb)) {
    const int64_t per_chunk = codes_per_chunk(f.bits);
    const __m256i mask = _mm256_set1_epi8(static_cast<char>((1 << f.bits) - 1));
    for (int64_t c0 = 0; c0 < block_codes; c0 += per_chunk, packed += 32) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(packed));
      for (int sub = 0; sub < 8 / f.bits; ++sub) {
        auto* to = reinterpret_cast<__m256i*>(out + c0 + 32 * sub);
        __m256i v = f.bits == 8 ? x : _mm256_and_si256(_mm256_srli_epi16(x, sub * f.bits), mask);
        if (f.shift) v = _mm256_slli_epi16(v, f.shift);  // stays within its byte: shift + bits <= 8
        _mm256_storeu_si256(to, first ? v : _mm256_or_si256(_mm256_loadu_si256(to), v));
      }
    }
    first = false;
  }
  const __m256i offset = _mm256_set1_epi8(static_cast<char>(1 << (wb - 1)));
  for (int64_t i = 0; i < block_codes; i += 32) {
    auto* to = reinterpret_cast<__m256i*>(out + i);
    _mm256_storeu_si256(to, _mm256_sub_epi8(_mm256_loadu_si256(to), offset));
  }
}

AUTOPREC_AVX2 void maddubs_packed_gemm(const PackedWeights& w, const RowsOfA& a, int64_t m, int32_t* c) {
  const int64_t kq = w.padded_k / 4;
  const int64_t block_codes = 16 * w.padded_k;
  const int64_t block_bytes = block_codes * w.weight_bits / 8;
  thread_local std::vector<int8_t> block;  // one block in L1, kept between calls
  block.resize(static_cast<size_t>(block_codes));
  for (int64_t nb = 0; nb < w.padded_n / 16; ++nb) {
    unpack_block(w.data.data() + nb * block_bytes, w.weight_bits, block_codes, block.data());
    maddubs_columns<false>(w, block.data(), block.data() + kq * 32, a, m, c + nb * 16);
  }
}

AUTOPREC_AVX2 void unpack_block_avx2(const uint8_t* packed, int wb, int64_t block_codes, int8_t* out) {
  unpack_block(packed, wb, block_codes, out);
}

AUTOPREC_AVX2 void gemm_maddubs_packed_avx2(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c) {
  maddubs_packed_gemm(w, {a, w.padded_k, 1, 0}, m, c);
}

AUTOPREC_AVX2 void gemm_maddubs_split_avx2(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c) {
  maddubs_gemm<true>(w, {a, w.padded_k, 1, 0}, m, c);
}

void gemm_in_place_avx2(const PackedWeights& w, const uint8_t* a, int64_t lda, int64_t segments, int64_t segment_stride,
                        int64_t m, int32_t* c) {
  const RowsOfA rows{a, lda, segments, segment_stride};
  switch (w.kernel) {
    case Kernel::Maddubs: maddubs_gemm<false>(w, rows, m, c); return;
    case Kernel::MaddubsSplit: maddubs_gemm<true>(w, rows, m, c); return;
    case Kernel::MaddubsPacked: maddubs_packed_gemm(w, rows, m, c); return;
    case Kernel::Vnni:
    case Kernel::VnniPacked: gemm_vnni(w, a, lda, segments, segment_stride, m, c); return;
    default: return;  // gemm_in_place_supports() said no
  }
}

AUTOPREC_AVX2 void gemm_lut_avx2(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c) {
  const int64_t octets = w.padded_k / 8;
  const int wb = w.weight_bits;
  const int entry_max = 4 * ((1 << w.activation_bits) - 1);  // a table entry's largest value
  const int chain = std::max(1, 255 / entry_max);              // lookups summed in bytes before widening
  const int64_t chunk = 65535 / entry_max / chain * chain;  // octets summed in int16 before widening
  std::vector<uint8_t> tables(kRows * octets * 32);
  alignas(32) int32_t even[8], odd[8];
  for (int64_t r0 = 0; r0 < m; r0 += kRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kRows, m - r0));
    const uint8_t* rows_tables[kRows];
    int32_t offset_sum[kRows];
    for (int r = 0; r < rows; ++r) {
      const uint8_t* ar = a + (r0 + r) * w.padded_k;
      build_tables(ar, octets, tables.data() + r * octets * 32);
      rows_tables[r] = tables.data() + r * octets * 32;
      int32_t s = 0;
      for (int64_t i = 0; i < w.padded_k; ++i) s += ar[i];
      offset_sum[r] = s * (1 << (wb - 1));
    }
    if (wb == 2 || wb == 4) {
      const int group = 16 / wb;
      const int pair_max = 255 * (wb == 2 ? 3 : 12);  // the largest int16 a vpmaddubsw step adds
      const int steps16 = std::max(1, 32767 / pair_max);
      for (int64_t nb = 0; nb < w.padded_n / group; ++nb) {
        const uint8_t* block = w.data.data() + nb * octets * 16;
        __m256i acc[kRows];
        switch (rows) {
          case 4: lut_interleaved_block<4>(rows_tables, block, wb, octets, chain, steps16, acc); break;
          case 3: lut_interleaved_block<3>(rows_tables, block, wb, octets, chain, steps16, acc); break;
          case 2: lut_interleaved_block<2>(rows_tables, block, wb, octets, chain, steps16, acc); break;
          default: lut_interleaved_block<1>(rows_tables, block, wb, octets, chain, steps16, acc); break;
        }
        for (int r = 0; r < rows; ++r) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(even), acc[r]);
          int32_t* out = c + (r0 + r) * w.padded_n + nb * group;
          // 2 bits: 8 columns; 4 bits: 4 columns in each lane (the two halves of the octets).
          for (int j = 0; j < group; ++j) out[j] = (wb == 2 ? even[j] : even[j] + even[j + 4]) - offset_sum[r];
        }
      }
      continue;
    }
    for (int64_t nb = 0; nb < w.padded_n / 16; ++nb) {
      const uint8_t* planes = w.data.data() + nb * wb * octets * 16;
      __m256i e[kRows], o[kRows];
      switch (rows) {
        case 4: lut_block<4>(rows_tables, planes, wb, octets, chain, chunk, e, o); break;
        case 3: lut_block<3>(rows_tables, planes, wb, octets, chain, chunk, e, o); break;
        case 2: lut_block<2>(rows_tables, planes, wb, octets, chain, chunk, e, o); break;
        default: lut_block<1>(rows_tables, planes, wb, octets, chain, chunk, e, o); break;
      }
      for (int r = 0; r < rows; ++r) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(even), e[r]);
        _mm256_store_si256(reinterpret_cast<__m256i*>(odd), o[r]);
        int32_t* out = c + (r0 + r) * w.padded_n + nb * 16;
        for (int j = 0; j < 8; ++j) {
          out[2 * j] = even[j] - offset_sum[r];
          out[2 * j + 1] = odd[j] - offset_sum[r];
        }
      }
    }
  }
}

}  // namespace detail

std::vector<float> pack_sgemm_weights(const float* w, int64_t n, int64_t k) {
  const int64_t np = (n + 15) / 16 * 16;
  std::vector<float> packed(np * k, 0.f);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < k; ++i) packed[(j / 16) * k * 16 + i * 16 + j % 16] = w[j * k + i];
  return packed;
}

AUTOPREC_AVX2 void sgemm_baseline(const float* a, int64_t m, const std::vector<float>& packed, int64_t n, int64_t k,
                                  float* c) {
  const int64_t np = (n + 15) / 16 * 16;
  float tail[16];
  for (int64_t r0 = 0; r0 < m; r0 += kRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kRows, m - r0));
    for (int64_t nb = 0; nb < np / 16; ++nb) {
      __m256 acc0[kRows], acc1[kRows];
      AUTOPREC_UNROLL
      for (int r = 0; r < kRows; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
      const float* wp = packed.data() + nb * k * 16;
      for (int64_t i = 0; i < k; ++i) {
        const __m256 b0 = _mm256_loadu_ps(wp + i * 16), b1 = _mm256_loadu_ps(wp + i * 16 + 8);
        AUTOPREC_UNROLL
        for (int r = 0; r < kRows; ++r) {
          const __m256 av = _mm256_set1_ps(a[(r0 + std::min(r, rows - 1)) * k + i]);
          acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
          acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
        }
      }
      for (int r = 0; r < rows; ++r) {
        _mm256_storeu_ps(tail, acc0[r]);
        _mm256_storeu_ps(tail + 8, acc1[r]);
        for (int j = 0; j < 16 && nb * 16 + j < n; ++j) c[(r0 + r) * n + nb * 16 + j] = tail[j];
      }
    }
  }
}

}  // namespace autoprec::native
