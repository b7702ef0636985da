// The last step every AVX2 requantization of the native runtime shares: 8
// float values on a code grid rounded, shifted by the zero point, clamped
// and stored as 8 uint8 codes.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace autoprec::native::detail {

// out[i] = clamp(nearbyint(v[i]) + zero_point, lo, hi) for 0 <= lo <= hi <= 255.
// cvtps rounds half to even under the default MXCSR, as nearbyint does; v is
// first bounded to +-2^30 so that no conversion overflows (a NaN takes the
// lower bound: no code is NaN).
__attribute__((target("avx2"))) inline void store_codes_avx2(__m256 v, __m256i zero_point, __m256i lo, __m256i hi,
                                                           uint8_t* out) {
  v = _mm256_max_ps(_mm256_min_ps(v, _mm256_set1_ps(1 << 30)), _mm256_set1_ps(-(1 << 30)));
  __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), zero_point);
  q = _mm256_min_epi32(_mm256_max_epi32(q, lo), hi);
  // Within 0..255, the saturating packs keep every value.
  const __m128i packed16 = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_packus_epi16(packed16, packed16));
}

}  // namespace autoprec::native::detail
