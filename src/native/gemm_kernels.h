// The AVX2 kernels behind native::gemm (gemm.h); each needs its own packing.
#pragma once

#include <cstdint>

#include "native/gemm.h"

namespace autoprec::native::detail {

void gemm_madd16_avx2(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c);
void gemm_maddubs_avx2(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c);
void gemm_maddubs_split_avx2(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c);
void gemm_lut_avx2(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c);

}  // namespace autoprec::native::detail
