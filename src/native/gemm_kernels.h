// The AVX2 kernels behind native::gemm (gemm.h); each needs its own packing.
#pragma once

#include <cstdint>
#include <vector>

#include "native/gemm.h"

namespace autoprec::native::detail {

// The fields a wb-bit code is stored in (maddubs_packed): widths 4, 2, 1 (8: one
// raw byte) and the bit each starts at, low bits first; e.g. 7 = 4 + 2 + 1.
struct CodeField {
  int bits, shift;
};
std::vector<CodeField> code_fields(int weight_bits);
// Codes in one field's stream come in chunks of 32 bytes; byte i of a chunk
// holds codes i + 32 s at bit s * bits, for s < 8 / bits.
inline int64_t codes_per_chunk(int field_bits) { return 32 * (8 / field_bits); }

void gemm_madd16_avx2(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c);
void gemm_maddubs_avx2(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c);
void gemm_maddubs_packed_avx2(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c);
void gemm_maddubs_split_avx2(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c);
void gemm_lut_avx2(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c);
// One 16-column block of maddubs_packed weights into the maddubs layout (signed codes).
void unpack_block_avx2(const uint8_t* packed, int wb, int64_t block_codes, int8_t* out);
// vnni and vnni_packed (AVX-512 VNNI on 256-bit vectors): A's row r is `segments` runs of
// k / segments bytes at a + r * lda + s * segment_stride (one run: lda = padded_k).
void gemm_vnni(const PackedWeights& w, const uint8_t* a, int64_t lda, int64_t segments, int64_t segment_stride,
               int64_t m, int32_t* c);
void gemm_in_place_avx2(const PackedWeights& w, const uint8_t* a, int64_t lda, int64_t segments, int64_t segment_stride,
                        int64_t m, int32_t* c);

}  // namespace autoprec::native::detail
