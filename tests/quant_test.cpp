// Fake quantization against the scalar reference, straight-through
// gradients, calibration, the quantized network and cost accounting.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include "cost/metrics.h"
#include "exec/model.h"
#include "exec/summary.h"
#include "graph/onnx_import.h"
#include "onnx_builder.h"
#include "test_models.h"
#include "quant/fake_quant.h"
#include "quant/quantized_model.h"
#include "quant/sensitivity.h"
#include "util/error.h"

namespace autoprec {
namespace {

using quant::QuantGrid;
using testing::ModelBuilder;
using testing::tiny_model;

struct GridCase {
  int bits;
  bool is_unsigned;
  bool per_channel;
};

class FakeQuantMatchesReference : public ::testing::TestWithParam<GridCase> {};

TEST_P(FakeQuantMatchesReference, EveryElement) {
  const GridCase c = GetParam();
  at::manual_seed(c.bits * 7 + c.is_unsigned);
  QuantGrid grid = c.is_unsigned ? quant::unsigned_grid(c.bits) : quant::signed_grid(c.bits);
  at::Tensor x = at::randn({4, 37}) * 2;
  if (c.is_unsigned) x = x.abs();
  at::Tensor scale = (at::rand({4}) + 0.1) * (c.is_unsigned ? 3.0 : 2.0) / static_cast<double>(grid.qmax);
  int64_t zero_point = 0;
  at::Tensor y = c.per_channel
                     ? quant::fake_quantize_per_channel(x, scale.to(at::kFloat), at::zeros({4}, at::kInt), 0, grid)
                     : quant::fake_quantize_per_tensor(x, scale[0].item<double>(), zero_point, grid);
  // Error bound per bit-width: half a step inside the range.
  for (int64_t r = 0; r < 4; ++r) {
    float s = c.per_channel ? scale[r].item<float>() : scale[0].item<float>();
    for (int64_t k = 0; k < 37; ++k) {
      float xv = x[r][k].item<float>();
      float expected = quant::fake_quantize_reference(xv, s, zero_point, grid);
      ASSERT_NEAR(y[r][k].item<float>(), expected, 1e-6 * std::max(1.0f, std::abs(expected)))
          << "bits " << c.bits << " x " << xv;
      float lo = static_cast<float>(grid.qmin) * s;
      float hi = static_cast<float>(grid.qmax) * s;
      if (xv >= lo && xv <= hi) {
        ASSERT_LE(std::abs(expected - xv), 0.5f * s + 1e-6f);
      }
    }
  }
}

std::vector<GridCase> grid_cases() {
  std::vector<GridCase> cases;
  for (int bits = 2; bits <= 8; ++bits) {
    for (bool is_unsigned : {false, true}) {
      for (bool per_channel : {false, true}) cases.push_back({bits, is_unsigned, per_channel});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllBitWidths, FakeQuantMatchesReference, ::testing::ValuesIn(grid_cases()),
                         [](const ::testing::TestParamInfo<GridCase>& info) {
                           return "b" + std::to_string(info.param.bits) + (info.param.is_unsigned ? "_unsigned" : "_signed") +
                                  (info.param.per_channel ? "_per_channel" : "_per_tensor");
                         });

TEST(FakeQuant, GridsAndReference) {
  EXPECT_EQ(quant::signed_grid(2).qmin, -1);
  EXPECT_EQ(quant::signed_grid(2).qmax, 1);
  EXPECT_EQ(quant::signed_grid(8).qmax, 127);
  EXPECT_EQ(quant::unsigned_grid(4).qmax, 15);
  QuantGrid g = quant::unsigned_grid(8);
  EXPECT_FLOAT_EQ(quant::fake_quantize_reference(0.25f, 0.1f, 3, g), 0.2f);  // round half to even: 2.5 -> 2
  EXPECT_FLOAT_EQ(quant::fake_quantize_reference(-5.0f, 0.1f, 3, g), -0.3f);  // clamps at qmin
}

TEST(FakeQuant, InferencePathMatchesTheAutogradKernel) {
  at::manual_seed(9);
  at::Tensor x = at::randn({8, 16, 5, 5}).contiguous(at::MemoryFormat::ChannelsLast) * 3;
  for (int bits : {2, 4, 8}) {
    QuantGrid grid = quant::unsigned_grid(bits);
    at::Tensor reference = at::fake_quantize_per_tensor_affine(x, 0.037, 1, grid.qmin, grid.qmax);
    c10::InferenceMode guard;
    at::Tensor fast = quant::fake_quantize_per_tensor(x, 0.037, 1, grid);
    EXPECT_TRUE(at::equal(fast, reference)) << bits;
    EXPECT_TRUE(fast.is_contiguous(at::MemoryFormat::ChannelsLast));
  }
}

TEST(FakeQuant, IsIdempotent) {
  at::manual_seed(3);
  at::Tensor x = at::randn({1000});
  for (int bits : {2, 3, 4, 8}) {
    QuantGrid grid = quant::signed_grid(bits);
    at::Tensor once = quant::fake_quantize_per_tensor(x, 0.05, 0, grid);
    at::Tensor twice = quant::fake_quantize_per_tensor(once, 0.05, 0, grid);
    EXPECT_TRUE(at::equal(once, twice)) << bits;
  }
}

TEST(FakeQuant, GradientIsStraightThroughInsideAndZeroOutside) {
  QuantGrid grid = quant::signed_grid(4);  // [-7, 7] * 0.1
  at::Tensor x = at::tensor({-1.0f, -0.69f, 0.0f, 0.33f, 0.69f, 0.75f, 2.0f}).requires_grad_(true);
  quant::fake_quantize_per_tensor(x, 0.1, 0, grid).sum().backward();
  at::Tensor expected = at::tensor({0.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f, 0.0f});
  EXPECT_TRUE(at::equal(x.grad(), expected)) << x.grad();
}

TEST(FakeQuant, TrainingPathMatchesATenInValueAndGradient) {
  at::manual_seed(9);
  for (auto [bits, zero_point] : {std::pair{8, 3}, std::pair{4, 0}, std::pair{2, 1}}) {
    QuantGrid grid = quant::unsigned_grid(bits);
    at::Tensor x = (at::randn({4, 8, 5, 5}) * 2).contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor a = x.clone().requires_grad_(true), b = x.clone().requires_grad_(true);
    at::Tensor upstream = at::randn({4, 8, 5, 5});
    at::Tensor ours = quant::fake_quantize_per_tensor(a, 0.05, zero_point, grid);
    at::Tensor aten = at::fake_quantize_per_tensor_affine(b, 0.05, zero_point, grid.qmin, grid.qmax);
    EXPECT_TRUE(at::equal(ours, aten)) << bits;
    (ours * upstream).sum().backward();
    (aten * upstream).sum().backward();
    EXPECT_TRUE(at::equal(a.grad(), b.grad())) << bits;
  }
}

TEST(FakeQuant, LearnableScaleGetsAGradient) {
  at::Tensor x = at::randn({64});
  at::Tensor scale = at::full({1}, 0.1f).requires_grad_(true);
  quant::fake_quantize_learnable(x, scale, at::zeros({1}), -1, quant::signed_grid(3)).pow(2).sum().backward();
  ASSERT_TRUE(scale.grad().defined());
  EXPECT_NE(scale.grad().item<float>(), 0.0f);
}

TEST(Calibration, MseClippingBeatsMinMaxAtLowBits) {
  at::manual_seed(5);
  at::Tensor w = at::randn({8, 256});
  w[0][0] = 12;  // an outlier stretches the min/max range
  for (int bits : {2, 3}) {
    QuantGrid grid = quant::signed_grid(bits);
    at::Tensor zero = at::zeros({8}, at::kInt);
    at::Tensor minmax = quant::weight_scales(w, bits, 0, quant::RangeMethod::MinMax);
    at::Tensor mse = quant::weight_scales(w, bits, 0, quant::RangeMethod::Mse);
    double e_minmax = (quant::fake_quantize_per_channel(w, minmax, zero, 0, grid) - w).pow(2).mean().item<double>();
    double e_mse = (quant::fake_quantize_per_channel(w, mse, zero, 0, grid) - w).pow(2).mean().item<double>();
    EXPECT_LT(e_mse, e_minmax) << bits;
  }
  at::Tensor samples = at::randn({10000});
  auto [lo, hi] = quant::activation_range(samples, -4.0, 4.0, 8, false, quant::RangeMethod::Percentile, 99.0);
  EXPECT_NEAR(hi, 2.33, 0.1);  // the 99th percentile of N(0, 1)
  EXPECT_NEAR(lo, -2.33, 0.1);
  auto [ulo, uhi] = quant::activation_range(samples.abs(), 0.0, 4.0, 8, true, quant::RangeMethod::MinMax, 99.99);
  EXPECT_EQ(ulo, 0.0);
  EXPECT_EQ(uhi, 4.0);
}

TEST(QuantizedModel, FindsLayersAndSignModes) {
  auto g = tiny_model();
  auto layers = quant::find_quantizable_layers(*g);
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers[0].name, "conv");
  EXPECT_FALSE(layers[0].nonnegative_input);
  EXPECT_TRUE(layers[1].nonnegative_input);  // Relu -> Flatten -> Gemm
  EXPECT_EQ(layers[1].channel_axis, 0);
}

TEST(QuantizedModel, CalibratesAndApproachesFloatAtHighBits) {
  auto g = tiny_model();
  at::manual_seed(2);
  at::Tensor images = at::randn({64, 1, 4, 4});
  exec::Executor fp32(g);
  at::Tensor reference = fp32.run({images})[0];
  double previous = 1e9;
  for (int bits : {2, 4, 8}) {
    quant::QuantizedModel model(g, quant::uniform(bits, bits));
    EXPECT_FALSE(model.calibrated());
    model.calibrate(images);
    EXPECT_TRUE(model.calibrated());
    // The conv input is signed (asymmetric grid); the fc input is non-negative (unsigned, zero point 0).
    EXPECT_NE(model.activation_quantizer("conv").zero_point.item<int>(), 0);
    EXPECT_EQ(model.activation_quantizer("fc").zero_point.item<int>(), 0);
    double error = (model.executor().run({images})[0] - reference).abs().mean().item<double>() /
                   reference.abs().mean().item<double>();
    EXPECT_LT(error, previous) << bits;
    previous = error;
  }
  EXPECT_LT(previous, 0.02);  // 8 bits: within 2% of the float output magnitude
}

TEST(QuantizedModel, CalibratedConfigReproducesTheNetwork) {
  auto g = tiny_model();
  at::Tensor images = at::randn({32, 1, 4, 4});
  quant::QuantizedModel model(g, quant::uniform(4, 6));
  model.calibrate(images);
  quant::PrecisionConfig saved = model.calibrated_config();
  ASSERT_EQ(saved.calibration.size(), 2u);
  EXPECT_EQ(saved.calibration.at("conv").weight_scale.size(), 4u);
  quant::QuantizedModel reloaded(g, quant::parse_precision_config(quant::to_yaml(saved), "saved.yaml"));
  EXPECT_TRUE(reloaded.calibrated());
  EXPECT_TRUE(at::allclose(reloaded.executor().run({images})[0], model.executor().run({images})[0], 1e-5, 1e-6));
}

TEST(QuantizedModel, FloatBitsLeaveLayersAlone) {
  auto g = tiny_model();
  at::Tensor images = at::randn({8, 1, 4, 4});
  quant::QuantizedModel model(g, quant::uniform(32, 16));
  EXPECT_TRUE(model.calibrated());
  EXPECT_TRUE(at::equal(model.executor().run({images})[0], exec::Executor(g).run({images})[0]));
}

TEST(QuantizedModel, GradientsReachTheWeights) {
  auto g = tiny_model();
  at::Tensor images = at::randn({8, 1, 4, 4});
  quant::QuantizedModel model(g, quant::uniform(4, 8));
  model.calibrate(images);
  at::Tensor& w = model.executor().parameters().at("w1");
  w = w.detach().clone().requires_grad_(true);
  model.executor().set_training(true);
  model.executor().run({images})[0].pow(2).sum().backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_GT(w.grad().abs().sum().item<float>(), 0);
}

TEST(QuantizedModel, CachedWeightsFollowWeightUpdates) {
  auto g = tiny_model();
  at::Tensor images = at::randn({8, 1, 4, 4});
  quant::QuantizedModel model(g, quant::uniform(4, 8));
  model.calibrate(images);
  at::Tensor first = model.executor().run({images})[0];
  EXPECT_TRUE(at::equal(model.executor().run({images})[0], first));
  at::Tensor& w = model.executor().parameters().at("w1");
  {
    at::NoGradGuard no_grad;
    w.mul_(-1);  // in place: same tensor, new version
  }
  at::Tensor flipped = model.executor().run({images})[0];
  EXPECT_FALSE(at::allclose(flipped, first));
  w = w.neg();  // a new tensor
  EXPECT_TRUE(at::allclose(model.executor().run({images})[0], first, 1e-5, 1e-6));
}

TEST(Sensitivity, LowerBitsHurtMoreAndTheTableIsComplete) {
  auto g = tiny_model();
  at::manual_seed(4);
  data::Dataset validation;
  validation.images = at::randn({200, 1, 4, 4});
  validation.labels = exec::Executor(g).run({validation.images})[0].argmax(1);  // FP32 is right by construction
  data::Dataset calibration;
  calibration.images = at::randn({64, 1, 4, 4});
  calibration.labels = at::zeros({64}, at::kLong);
  quant::SensitivityTable t = quant::measure_sensitivity(g, calibration, validation, {2, 8}, quant::QuantOptions{});
  EXPECT_DOUBLE_EQ(t.fp32_top1, 1.0);
  ASSERT_EQ(t.rows.size(), 2u * 2u * 2u);
  for (const std::string& layer : t.layers) {
    for (const char* tensor : {"weight", "activation"}) {
      EXPECT_GT(t.at(layer, tensor, 2).kl, t.at(layer, tensor, 8).kl) << layer << " " << tensor;
      EXPECT_GE(t.at(layer, tensor, 2).accuracy_drop, t.at(layer, tensor, 8).accuracy_drop) << layer << " " << tensor;
      EXPECT_NEAR(t.at(layer, tensor, 8).accuracy_drop, 0.0, 0.03);
    }
  }
  EXPECT_NEAR(quant::mean_kl(validation.images.reshape({200, 16}), validation.images.reshape({200, 16})), 0.0, 1e-12);
}

TEST(Cost, TwoLayerModelByHand) {
  auto g = tiny_model();
  exec::Executor executor(g);
  exec::ModelSummary summary = exec::summarize(executor);
  auto layers = quant::find_quantizable_layers(*g);
  quant::PrecisionConfig config = quant::uniform(4, 8);
  config.layers.push_back({"fc", quant::PartialPrecision{2, 6}});
  auto precision = quant::resolve(config, quant::layer_names(layers));
  cost::CostSummary c = cost::compute_costs(*g, summary, layers, precision, quant::Granularity::PerChannel);
  ASSERT_EQ(c.layers.size(), 2u);
  // conv: 36 weights x 4 bits + 4 biases x 32 + 4 scales x 32; MACs 16 positions x 4 channels x 9.
  EXPECT_EQ(c.layers[0].weight_memory_bits, 36 * 4 + 4 * 32 + 4 * 32);
  EXPECT_EQ(c.layers[0].macs, 16 * 4 * 9);
  EXPECT_EQ(c.layers[0].bops, 16 * 4 * 9 * 4 * 8);
  EXPECT_EQ(c.layers[0].activation_bits_in, 16 * 8);
  // fc: 192 weights x 2 bits + 3 x 32 bias + 3 x 32 scales; MACs 192; BOPs 192 x 2 x 6.
  EXPECT_EQ(c.layers[1].weight_memory_bits, 192 * 2 + 3 * 32 + 3 * 32);
  EXPECT_EQ(c.layers[1].bops, 192 * 2 * 6);
  EXPECT_EQ(c.weight_memory_bits, c.layers[0].weight_memory_bits + c.layers[1].weight_memory_bits);
  EXPECT_EQ(c.fp32_weight_memory_bits, 32.0 * (36 + 4 + 192 + 3));
  EXPECT_EQ(c.peak_activation_bits, 64 * 6);
  EXPECT_EQ(c.macs, 16 * 4 * 9 + 192);
}

TEST(QuantizedModel, RejectsConfigsThatDoNotFit) {
  auto g = tiny_model();
  quant::PrecisionConfig config = quant::uniform(4, 8);
  config.layers.push_back({"conv2", quant::PartialPrecision{2, {}}});
  EXPECT_THROW(quant::QuantizedModel(g, config), UserError);
}

}  // namespace
}  // namespace autoprec
