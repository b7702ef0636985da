// The native runtime's kernel study (docs/native.md): every integer kernel on
// the zoo's convolutions written as GEMMs, against an AVX2+FMA single-
// precision GEMM and the runtime's own exact W8A8 kernel (madd16), both
// measured in the same run, one thread; each case the fastest of 7 rounds.
// Also the instruction-throughput limits of the loops' core instructions on
// registers (no memory).
//
// Usage: native_kernels [SECONDS_PER_CASE]   (default 0.2)
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "native/conv.h"
#include "native/gemm.h"

using namespace autoprec::native;
using Clock = std::chrono::steady_clock;

namespace {

// Fastest seconds of one call over 7 rounds of at least `budget`/7 seconds
// each: on a shared machine the fastest round is the one least disturbed.
double time_call(const std::function<void()>& fn, double budget) {
  fn();
  double best = 1e30;
  for (int round = 0; round < 7; ++round) {
    int64_t calls = 0;
    const auto start = Clock::now();
    double elapsed = 0;
    do {
      fn();
      ++calls;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    } while (elapsed < budget / 7);
    best = std::min(best, elapsed / static_cast<double>(calls));
  }
  return best;
}

// Register-only loops: the rate an instruction sustains with 8 independent
// chains (a loop of `iters` iterations, timed as time_call does).
template <class Body>
double fastest_seconds(Body body, int64_t iters) {
  body(iters / 10);
  double best = 1e30;
  for (int round = 0; round < 7; ++round) {
    const auto start = Clock::now();
    body(iters);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
  }
  return best;
}

volatile int sink_int;
volatile float sink_float;

__attribute__((noinline)) void fma_loop(int64_t iters) {
  __m256 a0 = _mm256_set1_ps(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
  const __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-6f);
  for (int64_t it = 0; it < iters; ++it) {
    a0 = _mm256_fmadd_ps(a0, x, y); a1 = _mm256_fmadd_ps(a1, x, y); a2 = _mm256_fmadd_ps(a2, x, y);
    a3 = _mm256_fmadd_ps(a3, x, y); a4 = _mm256_fmadd_ps(a4, x, y); a5 = _mm256_fmadd_ps(a5, x, y);
    a6 = _mm256_fmadd_ps(a6, x, y); a7 = _mm256_fmadd_ps(a7, x, y); a8 = _mm256_fmadd_ps(a8, x, y);
    a9 = _mm256_fmadd_ps(a9, x, y);
  }
  __m256 t = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  sink_float = _mm256_cvtss_f32(_mm256_add_ps(t, _mm256_add_ps(a8, a9)));
}

__attribute__((noinline)) void maddubs_loop(int64_t iters) {
  // vpmaddubsw + vpmaddwd + vpaddd per 32 u8 x s8 products: the int8 kernel's core.
  __m256i a0 = _mm256_set1_epi32(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i x = _mm256_set1_epi8(3), b0 = _mm256_set1_epi8(-2), b1 = _mm256_set1_epi8(-3), b2 = _mm256_set1_epi8(5),
          b3 = _mm256_set1_epi8(7);
  for (int64_t it = 0; it < iters; ++it) {
    asm volatile("" : "+x"(x), "+x"(b0), "+x"(b1), "+x"(b2), "+x"(b3));  // not loop invariants
    a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b0), ones));
    a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b1), ones));
    a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b2), ones));
    a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b3), ones));
    a4 = _mm256_add_epi32(a4, _mm256_madd_epi16(_mm256_maddubs_epi16(b0, x), ones));
    a5 = _mm256_add_epi32(a5, _mm256_madd_epi16(_mm256_maddubs_epi16(b1, x), ones));
    a6 = _mm256_add_epi32(a6, _mm256_madd_epi16(_mm256_maddubs_epi16(b2, x), ones));
    a7 = _mm256_add_epi32(a7, _mm256_madd_epi16(_mm256_maddubs_epi16(b3, x), ones));
  }
  __m256i t = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)),
                               _mm256_add_epi32(_mm256_add_epi32(a4, a5), _mm256_add_epi32(a6, a7)));
  sink_int = _mm256_extract_epi32(t, 0);
}

__attribute__((noinline)) void shuffle_loop(int64_t iters) {
  const __m256i table = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6,
                                         7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m256i a0 = _mm256_set1_epi8(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (int64_t it = 0; it < iters; ++it) {
    a0 = _mm256_shuffle_epi8(table, a0); a1 = _mm256_shuffle_epi8(table, a1); a2 = _mm256_shuffle_epi8(table, a2);
    a3 = _mm256_shuffle_epi8(table, a3); a4 = _mm256_shuffle_epi8(table, a4); a5 = _mm256_shuffle_epi8(table, a5);
    a6 = _mm256_shuffle_epi8(table, a6); a7 = _mm256_shuffle_epi8(table, a7);
  }
  __m256i t = _mm256_add_epi8(_mm256_add_epi8(_mm256_add_epi8(a0, a1), _mm256_add_epi8(a2, a3)),
                              _mm256_add_epi8(_mm256_add_epi8(a4, a5), _mm256_add_epi8(a6, a7)));
  sink_int = _mm256_extract_epi32(t, 0);
}

struct Shape {
  const char* name;
  int64_t m, n, k;
};

struct Case {
  Kernel kernel;
  int wb, ab;
};

}  // namespace

int main(int argc, char** argv) {
  const double budget = argc > 1 ? std::atof(argv[1]) : 0.2;
  if (!cpu_has_avx2()) {
    std::puts("this CPU has no AVX2: only the reference kernel runs; nothing to measure");
    return 0;
  }
  const int64_t iters = 50'000'000;
  const double fma_gmacs = iters * 10.0 * 8 / fastest_seconds(fma_loop, iters) / 1e9;
  const double int8_gmacs = iters * 8.0 * 32 / fastest_seconds(maddubs_loop, iters) / 1e9;
  const double shuffles = iters * 8.0 / fastest_seconds(shuffle_loop, iters) / 1e9;
  std::printf("instruction limits, one core, registers only:\n");
  std::printf("  FP32 FMA: %.1f GMAC/s (%.1f GFLOP/s)\n", fma_gmacs, 2 * fma_gmacs);
  std::printf("  vpmaddubsw+vpmaddwd+vpaddd: %.1f GMAC/s (u8 x s8, %.2fx FP32)\n", int8_gmacs, int8_gmacs / fma_gmacs);
  std::printf("  vpshufb ymm: %.2f G/s (32 byte lookups each)\n\n", shuffles);

  const Shape shapes[] = {
      {"resnet20 stage 1 3x3 16->16 at 28x28", 784, 16, 144},
      {"resnet20 stage 2 3x3 32->32 at 14x14", 196, 32, 288},
      {"resnet20 stage 3 3x3 64->64 at 7x7", 49, 64, 576},
      {"1x1 32->192 at 14x14 (MobileNetV2 expand)", 196, 192, 32},
      {"3x3 128->128 at 14x14", 196, 128, 1152},
  };
  const Case cases[] = {
      {Kernel::Madd16, 8, 8},  {Kernel::MaddubsSplit, 8, 8}, {Kernel::Maddubs, 7, 8}, {Kernel::Maddubs, 8, 7}, {Kernel::Maddubs, 4, 8},
      {Kernel::Maddubs, 4, 4}, {Kernel::Maddubs, 2, 2}, {Kernel::MaddubsPacked, 7, 8}, {Kernel::MaddubsPacked, 6, 6},
      {Kernel::MaddubsPacked, 4, 8}, {Kernel::MaddubsPacked, 4, 4}, {Kernel::MaddubsPacked, 3, 4},
      {Kernel::MaddubsPacked, 2, 2}, {Kernel::Lut, 4, 6},     {Kernel::Lut, 4, 4},
      {Kernel::Lut, 3, 4},     {Kernel::Lut, 2, 6},     {Kernel::Lut, 2, 4},     {Kernel::Lut, 2, 2},
      {Kernel::Lut, 1, 4},     {Kernel::Lut, 1, 1},
  };
  std::mt19937_64 rng(0);
  std::printf("| layer (M x N x K) | kernel | pair | us | GMAC/s | vs FP32 | vs W8A8 madd16 | weight bytes |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const Shape& s : shapes) {
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> af(s.m * s.k), wf(s.n * s.k), cf(s.m * s.n);
    for (auto& x : af) x = u(rng);
    for (auto& x : wf) x = u(rng);
    const std::vector<float> packed_f = pack_sgemm_weights(wf.data(), s.n, s.k);
    const double fp32 = time_call([&] { sgemm_baseline(af.data(), s.m, packed_f, s.n, s.k, cf.data()); }, budget);
    const double macs = static_cast<double>(s.m * s.n * s.k);
    std::printf("| %s (%lld x %lld x %lld) | sgemm FP32 | - | %.1f | %.1f | 1.00x | | %lld |\n", s.name,
                static_cast<long long>(s.m), static_cast<long long>(s.n), static_cast<long long>(s.k), fp32 * 1e6,
                macs / fp32 / 1e9, static_cast<long long>(s.n * s.k * 4));
    double w8a8 = 0;
    for (const Case& c : cases) {
      std::uniform_int_distribution<int> act(0, (1 << c.ab) - 1), wt(-(1 << (c.wb - 1)), (1 << (c.wb - 1)) - 1);
      std::vector<int8_t> w(s.n * s.k);
      for (auto& x : w) x = static_cast<int8_t>(wt(rng));
      PackedWeights p = pack_weights(c.kernel, w.data(), s.n, s.k, c.wb, c.ab);
      std::vector<uint8_t> a(s.m * p.padded_k, 0);
      for (int64_t r = 0; r < s.m; ++r)
        for (int64_t i = 0; i < s.k; ++i) a[r * p.padded_k + i] = static_cast<uint8_t>(act(rng));
      std::vector<int32_t> out(s.m * p.padded_n);
      const double t = time_call([&] { gemm(p, a.data(), s.m, out.data()); }, budget);
      if (c.kernel == Kernel::Madd16 && c.wb == 8 && c.ab == 8) w8a8 = t;
      std::printf("| | %s | W%dA%d | %.1f | %.1f | %.2fx | %.2fx | %lld |\n", kernel_name(c.kernel), c.wb, c.ab, t * 1e6,
                  macs / t / 1e9, fp32 / t, w8a8 / t, static_cast<long long>(p.bytes()));
    }
  }

  // Whole layers: QuantizedConv (im2col, kernel, requantization) against an
  // FP32 convolution by the same im2col and the study's FP32 GEMM.
  struct Layer {
    const char* name;
    int64_t channels, size;
  };
  const Layer layers[] = {{"3x3 16->16 at 28x28", 16, 28}, {"3x3 32->32 at 14x14", 32, 14}, {"3x3 64->64 at 7x7", 64, 7}};
  const Case layer_cases[] = {{Kernel::MaddubsSplit, 8, 8}, {Kernel::Maddubs, 7, 8}, {Kernel::MaddubsPacked, 4, 4},
                              {Kernel::MaddubsPacked, 2, 2}};
  std::printf("\nresnet20 convolutions as whole layers (batch 1, one thread):\n\n");
  std::printf("| layer | form | us | vs FP32 | weight bytes |\n|---|---|---|---|---|\n");
  for (const Layer& l : layers) {
    const int64_t c = l.channels, hw = l.size, k = 9 * c;
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> x(hw * hw * c), wf(c * k), patches(hw * hw * k), y(hw * hw * c);
    for (auto& v : x) v = u(rng);
    for (auto& v : wf) v = u(rng);
    const std::vector<float> packed_f = pack_sgemm_weights(wf.data(), c, k);
    const double fp32 = time_call(
        [&] {
          for (int64_t r = 0; r < hw; ++r)
            for (int64_t q = 0; q < hw; ++q)
              for (int64_t i = 0; i < 3; ++i)
                for (int64_t j = 0; j < 3; ++j) {
                  const int64_t yi = r + i - 1, xj = q + j - 1;
                  float* to = patches.data() + (r * hw + q) * k + (i * 3 + j) * c;
                  if (yi < 0 || yi >= hw || xj < 0 || xj >= hw) {
                    std::fill(to, to + c, 0.f);
                  } else {
                    std::copy(x.data() + (yi * hw + xj) * c, x.data() + (yi * hw + xj + 1) * c, to);
                  }
                }
          sgemm_baseline(patches.data(), hw * hw, packed_f, c, k, y.data());
        },
        budget);
    std::printf("| %s | FP32 | %.1f | 1.00x | %lld |\n", l.name, fp32 * 1e6, static_cast<long long>(c * k * 4));
    for (const Case& cs : layer_cases) {
      ConvParams p;
      p.geometry = {c, c, 3, 3, 1, 1, 1, 1, 1, 1};
      std::uniform_int_distribution<int> wt(-(1 << (cs.wb - 1)), (1 << (cs.wb - 1)) - 1), act(0, (1 << cs.ab) - 1);
      p.weights.resize(c * k);
      for (auto& v : p.weights) v = static_cast<int8_t>(wt(rng));
      p.weight_bits = cs.wb;
      p.weight_scales.assign(c, 0.01f);
      p.bias.assign(c, 0);
      p.input = {0.02f, 0, cs.ab};
      p.output = {0.5f, 0, cs.ab};
      p.relu = true;
      QuantizedConv layer(p, cs.kernel);
      std::vector<uint8_t> xq(hw * hw * c), yq(hw * hw * c);
      for (auto& v : xq) v = static_cast<uint8_t>(act(rng));
      const double t = time_call([&] { layer.run(xq.data(), hw, hw, yq.data()); }, budget);
      std::printf("| | W%dA%d %s | %.1f | %.2fx | %lld |\n", cs.wb, cs.ab, kernel_name(cs.kernel), t * 1e6, fp32 / t,
                  static_cast<long long>(layer.weight_bytes()));
    }
  }
  return 0;
}
