// The native runtime's integer kernels and its quantized convolution against
// their scalar references: every kernel, every (weight bits, activation bits)
// pair it supports, shapes with and without tails, the extreme codes where an
// int16 sum would saturate, K long enough to need the LUT kernel's periodic
// widening, and convolutions with padding, strides and fused ReLU.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <stdexcept>
#include <vector>

#include "native/conv.h"
#include "native/gemm.h"
#include "native/model.h"

namespace autoprec::native {
namespace {

struct Shape {
  int64_t m, n, k;
};

struct Operands {
  std::vector<uint8_t> a;  // M x K
  std::vector<int8_t> w;   // N x K
};

// extreme: 0 random codes; 1 the largest activations with the most negative
// weights; 2 the largest activations with the largest weights.
Operands random_operands(const Shape& s, int wb, int ab, uint64_t seed, int extreme = 0) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> act(0, (1 << ab) - 1), wt(-(1 << (wb - 1)), (1 << (wb - 1)) - 1);
  Operands o;
  o.a.resize(s.m * s.k);
  o.w.resize(s.n * s.k);
  for (auto& x : o.a) x = static_cast<uint8_t>(extreme ? (1 << ab) - 1 : act(rng));
  const int w_extreme = extreme == 1 ? -(1 << (wb - 1)) : (1 << (wb - 1)) - 1;
  for (auto& x : o.w) x = static_cast<int8_t>(extreme ? w_extreme : wt(rng));
  return o;
}

// C of the kernel over operands laid out with its paddings, cut back to M x N.
std::vector<int32_t> run_kernel(Kernel kernel, const Operands& o, const Shape& s, int wb, int ab) {
  PackedWeights p = pack_weights(kernel, o.w.data(), s.n, s.k, wb, ab);
  std::vector<uint8_t> a(s.m * p.padded_k, 0);
  for (int64_t r = 0; r < s.m; ++r)
    for (int64_t i = 0; i < s.k; ++i) a[r * p.padded_k + i] = o.a[r * s.k + i];
  std::vector<int32_t> c(s.m * p.padded_n, -1);
  gemm(p, a.data(), s.m, c.data());
  std::vector<int32_t> out(s.m * s.n);
  for (int64_t r = 0; r < s.m; ++r)
    for (int64_t j = 0; j < s.n; ++j) out[r * s.n + j] = c[r * p.padded_n + j];
  return out;
}

std::vector<int32_t> reference(const Operands& o, const Shape& s) {
  std::vector<int32_t> c(s.m * s.n);
  gemm_reference(o.a.data(), s.m, o.w.data(), s.n, s.k, c.data());
  return c;
}

const Shape kShapes[] = {
    {1, 1, 1},     // everything is padding but one product
    {5, 17, 13},   // tails in every dimension
    {4, 16, 8},    // exactly one block
    {49, 64, 576}, // resnet20's last stage as a GEMM (7x7 pixels, 3x3x64 -> 64)
    {7, 33, 300},
};

TEST(NativeKernels, EverySupportedPairMatchesTheReference) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU: only the reference kernel runs";
  int checked = 0;
  for (Kernel kernel : {Kernel::Madd16, Kernel::Maddubs, Kernel::MaddubsSplit, Kernel::MaddubsPacked, Kernel::Lut,
                        Kernel::Vnni, Kernel::VnniPacked}) {
    for (int wb = 1; wb <= 8; ++wb) {
      for (int ab = 1; ab <= 8; ++ab) {
        if (!kernel_supports(kernel, wb, ab)) continue;
        for (const Shape& s : kShapes) {
          for (int extreme : {0, 1, 2}) {
            const uint64_t seed = 1000 * wb + 10 * ab + static_cast<uint64_t>(s.k);
            Operands o = random_operands(s, wb, ab, seed, extreme);
            ASSERT_EQ(run_kernel(kernel, o, s, wb, ab), reference(o, s))
                << kernel_name(kernel) << " W" << wb << "A" << ab << " m" << s.m << " n" << s.n << " k" << s.k
                << " extreme " << extreme;
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 500);
}

TEST(NativeKernels, LongReductionsWidenBeforeTheirSumsOverflow) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2";
  // K = 4800: 600 octets, more than the LUT's int16 sums hold at 6-bit activations (260).
  const Shape s{3, 16, 4800};
  for (int wb : {1, 4}) {
    Operands o = random_operands(s, wb, 6, 7, /*extreme=*/2);
    EXPECT_EQ(run_kernel(Kernel::Lut, o, s, wb, 6), reference(o, s)) << "W" << wb;
  }
  Operands o = random_operands(s, 8, 7, 9, 1);
  EXPECT_EQ(run_kernel(Kernel::Maddubs, o, s, 8, 7), reference(o, s));
  EXPECT_EQ(run_kernel(Kernel::Madd16, o, s, 8, 7), reference(o, s));
  Operands full = random_operands(s, 8, 8, 11, 1);  // 255 x -128 everywhere: what maddubs alone saturates
  EXPECT_EQ(run_kernel(Kernel::MaddubsSplit, full, s, 8, 8), reference(full, s));
  if (kernel_supports(Kernel::Vnni, 8, 8)) {
    EXPECT_EQ(run_kernel(Kernel::Vnni, full, s, 8, 8), reference(full, s));
    EXPECT_EQ(run_kernel(Kernel::VnniPacked, full, s, 8, 8), reference(full, s));
  }
}

TEST(NativeKernels, VnniRunsWhereTheCpuHasIt) {
  EXPECT_EQ(kernel_supports(Kernel::Vnni, 8, 8), cpu_has_avx512_vnni());
  if (!cpu_has_avx512_vnni()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU: the vnni kernels are not checked here";
  EXPECT_EQ(choose_kernel(8, 8), Kernel::Vnni);
  EXPECT_EQ(choose_kernel(4, 8), Kernel::VnniPacked);
  std::vector<int8_t> w(64 * 576, 1);
  EXPECT_EQ(pack_weights(Kernel::VnniPacked, w.data(), 64, 576, 4, 8).bytes(), 64 * 576 / 2);  // packed at 4 bits
}

TEST(NativeKernels, RefusesWhatItCannotComputeExactly) {
  std::vector<int8_t> w(16, 0);
  EXPECT_FALSE(kernel_supports(Kernel::Maddubs, 8, 8));  // 2 x 255 x 128 saturates int16
  EXPECT_FALSE(kernel_supports(Kernel::Lut, 5, 4));
  EXPECT_FALSE(kernel_supports(Kernel::Lut, 2, 8));      // a table entry would exceed a byte
  EXPECT_THROW(pack_weights(Kernel::Maddubs, w.data(), 2, 8, 8, 8), std::invalid_argument);
  w[3] = 2;  // outside 2 bits (-2..1)
  EXPECT_THROW(pack_weights(Kernel::Reference, w.data(), 2, 8, 2, 2), std::invalid_argument);
  EXPECT_THROW(pack_weights(Kernel::Reference, w.data(), 0, 8, 8, 8), std::invalid_argument);
}

TEST(NativeKernels, LutWeightsTakeTheirBitWidthInMemory) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2";
  std::vector<int8_t> w(64 * 576, -1);  // within every width from 1 bit
  for (int wb : {1, 2, 3, 4}) {
    PackedWeights p = pack_weights(Kernel::Lut, w.data(), 64, 576, wb, 4);
    EXPECT_EQ(p.bytes(), 64 * 576 * wb / 8) << "W" << wb;
  }
  EXPECT_EQ(pack_weights(Kernel::Maddubs, w.data(), 64, 576, 4, 4).bytes(), 64 * 576);
  // maddubs_packed: every width from 1 to 8 bits at its bit budget.
  for (int wb = 1; wb <= 8; ++wb) {
    PackedWeights p = pack_weights(Kernel::MaddubsPacked, w.data(), 64, 576, wb, 4);
    EXPECT_EQ(p.bytes(), 64 * 576 * wb / 8) << "W" << wb;
  }
}

TEST(NativeKernels, BaselineSgemmMatchesAPlainProduct) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2";
  const Shape s{6, 19, 37};
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> a(s.m * s.k), w(s.n * s.k), c(s.m * s.n);
  for (auto& x : a) x = u(rng);
  for (auto& x : w) x = u(rng);
  sgemm_baseline(a.data(), s.m, pack_sgemm_weights(w.data(), s.n, s.k), s.n, s.k, c.data());
  for (int64_t r = 0; r < s.m; ++r)
    for (int64_t j = 0; j < s.n; ++j) {
      double e = 0;
      for (int64_t i = 0; i < s.k; ++i) e += static_cast<double>(a[r * s.k + i]) * w[j * s.k + i];
      EXPECT_NEAR(c[r * s.n + j], e, 1e-4);
    }
}

}  // namespace
}  // namespace autoprec::native

namespace autoprec::native {
namespace {

struct ConvCase {
  int64_t cin, cout, kernel, stride, pad, h, w;
};

ConvParams random_conv(const ConvCase& c, int wb, int ab, bool relu, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> wt(-(1 << (wb - 1)), (1 << (wb - 1)) - 1), zp(0, (1 << ab) - 1);
  std::uniform_real_distribution<float> scale(0.002f, 0.05f);
  ConvParams p;
  p.geometry = {c.cin, c.cout, c.kernel, c.kernel, c.stride, c.stride, c.pad, c.pad, c.pad, c.pad};
  p.weights.resize(c.cout * c.cin * c.kernel * c.kernel);
  for (auto& v : p.weights) v = static_cast<int8_t>(wt(rng));
  p.weight_bits = wb;
  // Bias and output scale in proportion to a typical accumulation, so that outputs spread over the grid.
  const double k = static_cast<double>(c.cin * c.kernel * c.kernel);
  const double typical_acc = std::sqrt(k) * ((1 << ab) / 3.5) * ((1 << (wb - 1)) / 1.7) + 1;
  std::uniform_int_distribution<int32_t> bias(-static_cast<int32_t>(typical_acc), static_cast<int32_t>(typical_acc));
  for (int64_t o = 0; o < c.cout; ++o) {
    p.weight_scales.push_back(scale(rng));
    p.bias.push_back(bias(rng));
  }
  p.input = {scale(rng), zp(rng), ab};
  p.output = {static_cast<float>(p.input.scale * 0.026 * typical_acc / ((1 << ab) / 4.0)), 1 << (ab - 1), ab};
  p.relu = relu;
  return p;
}

TEST(NativeConv, EveryKernelGivesTheReferenceLayerExactly) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2";
  const ConvCase cases[] = {
      {1, 16, 3, 1, 1, 28, 28},  // a stem: one input channel, padding 1
      {16, 16, 3, 1, 1, 9, 9},   // resnet20-like stage
      {16, 32, 3, 2, 1, 9, 9},   // a stride-2 downsampling
      {32, 24, 1, 1, 0, 5, 7},   // a 1x1 projection
      {3, 5, 5, 2, 2, 11, 6},    // odd sizes everywhere
  };
  int checked = 0;
  for (Kernel kernel : {Kernel::Madd16, Kernel::Maddubs, Kernel::MaddubsSplit, Kernel::MaddubsPacked, Kernel::Lut,
                        Kernel::Vnni, Kernel::VnniPacked}) {
    for (auto [wb, ab] : std::vector<std::pair<int, int>>{{8, 8}, {7, 8}, {4, 8}, {4, 4}, {2, 2}, {3, 6}, {2, 4}}) {
      if (!kernel_supports(kernel, wb, ab)) continue;
      for (const ConvCase& c : cases) {
        for (bool relu : {false, true}) {
          ConvParams params = random_conv(c, wb, ab, relu, 31 * wb + ab + c.cin);
          std::mt19937_64 rng(c.h * c.w + wb);
          std::uniform_int_distribution<int> act(0, (1 << ab) - 1);
          std::vector<uint8_t> x(c.h * c.w * c.cin);
          for (auto& v : x) v = static_cast<uint8_t>(act(rng));
          const ConvGeometry& g = params.geometry;
          std::vector<uint8_t> expected(g.out_h(c.h) * g.out_w(c.w) * c.cout), got(expected.size(), 0xAA);
          conv_reference(params, x.data(), c.h, c.w, expected.data());
          // Not a saturated image: the outputs take at least 3 values (every value a ReLU'd 2-bit grid has).
          const int grid = (1 << ab) - (relu ? params.output.zero_point : 0);
          ASSERT_GE(static_cast<int>(std::set<uint8_t>(expected.begin(), expected.end()).size()), std::min(3, grid))
              << "W" << wb << "A" << ab << (relu ? " relu" : "");
          QuantizedConv layer(params, kernel);
          layer.run(x.data(), c.h, c.w, got.data());
          ASSERT_EQ(got, expected) << kernel_name(kernel) << " W" << wb << "A" << ab << " cin " << c.cin << " cout "
                                   << c.cout << " k" << c.kernel << " s" << c.stride << (relu ? " relu" : "");
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 100);
}

TEST(NativeConv, TheReferenceRequantizesAsTheExportDoes) {
  // One 1x1 convolution by hand: acc = (x - zx) * w + bias, y = nearbyint(acc * sx * sw / sy) + zy.
  ConvParams p;
  p.geometry = {1, 1, 1, 1, 1, 1, 0, 0, 0, 0};
  p.weights = {3};
  p.weight_bits = 4;
  p.weight_scales = {0.5f};
  p.bias = {1};
  p.input = {0.25f, 2, 8};
  p.output = {0.0625f, 10, 8};
  const uint8_t x[4] = {2, 3, 0, 200};
  uint8_t y[4];
  conv_reference(p, x, 2, 2, y);
  // multiplier 0.25 * 0.5 / 0.0625 = 2: x=2 -> 1*2 = 2 -> 12; x=3 -> 4*2 = 8 -> 18; x=0 -> -5*2 -> 0; x=200 -> clamp 255.
  EXPECT_EQ(std::vector<int>(y, y + 4), (std::vector<int>{12, 18, 0, 255}));
  p.relu = true;
  conv_reference(p, x, 2, 2, y);
  EXPECT_EQ(y[2], 10);  // ReLU: never below the zero point
  // Ties round half to even, as ONNX Runtime's requantization does: acc = (6 - 2) * 1 + 1 = 5, 5 * 0.5 = 2.5 -> 2.
  p.weights = {1};
  p.output.scale = 0.25f;
  const uint8_t tie[1] = {6};
  conv_reference(p, tie, 1, 1, y);
  EXPECT_EQ(y[0], 12);
  QuantizedConv layer(p, Kernel::Reference);
  layer.run(tie, 1, 1, y);
  EXPECT_EQ(y[0], 12);
  p.weights = {8};  // outside 4 bits
  EXPECT_THROW(QuantizedConv(p, Kernel::Reference), std::invalid_argument);
}

}  // namespace
}  // namespace autoprec::native
