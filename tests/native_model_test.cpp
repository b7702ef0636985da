// The native runtime's whole-model layer: depthwise and clamped convolutions
// against the direct-loop reference, a small residual network run by
// native::Model against the same network composed by hand from the
// reference parts, float islands, the packed file's round trip and its
// refusal of damaged files, and the refusal of specs it cannot run.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "native/model.h"
#include "native/parallel.h"

namespace autoprec::native {
namespace {

// Symmetric codes, as the export writes them: +-(2^(b-1) - 1).
std::vector<int8_t> random_codes(size_t n, int bits, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> d(-(1 << (bits - 1)) + 1, (1 << (bits - 1)) - 1);
  std::vector<int8_t> out(n);
  for (auto& v : out) v = static_cast<int8_t>(d(rng));
  return out;
}

std::vector<uint8_t> random_image(size_t n, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> d(0, 255);
  std::vector<uint8_t> out(n);
  for (auto& v : out) v = static_cast<uint8_t>(d(rng));
  return out;
}

ConvParams layer(int64_t cin, int64_t cout, int64_t kernel, int64_t stride, int64_t groups, int wb, std::mt19937_64& rng) {
  ConvParams p;
  p.geometry = {cin, cout, kernel, kernel, stride, stride, kernel / 2, kernel / 2, kernel / 2, kernel / 2, groups};
  p.weights = random_codes(static_cast<size_t>(cout * (cin / groups) * kernel * kernel), wb, rng);
  p.weight_bits = wb;
  std::uniform_real_distribution<float> scale(0.01f, 0.03f);
  std::uniform_int_distribution<int32_t> bias(-300, 300);
  for (int64_t o = 0; o < cout; ++o) {
    p.weight_scales.push_back(scale(rng));
    p.bias.push_back(bias(rng));
  }
  p.input = {0.02f, 20, 8};
  const float typical = 0.02f * 0.02f * 100.f * std::sqrt(static_cast<float>((cin / groups) * kernel * kernel)) * (1 << (wb - 1));
  p.output = {typical / 40.f, 100, 8};
  return p;
}

TEST(NativeConv, DepthwiseAndClampedLayersMatchTheReference) {
  std::mt19937_64 rng(5);
  int checked = 0;
  for (int wb : {8, 4, 2}) {
    for (int64_t stride : {1, 2}) {
      for (bool depthwise : {true, false}) {
        const int64_t c = depthwise ? 24 : 16;
        ConvParams p = layer(c, depthwise ? c : 20, 3, stride, depthwise ? c : 1, wb, rng);
        p.min_code = 90;   // an absorbed Clip(a, b) on the codes
        p.max_code = 160;
        p.relu = stride == 2;
        const int64_t h = 9, w = 7;
        std::vector<uint8_t> x = random_image(static_cast<size_t>(h * w * c), rng);
        const ConvGeometry& g = p.geometry;
        std::vector<uint8_t> expected(g.out_h(h) * g.out_w(w) * g.out_channels), got(expected.size(), 0);
        conv_reference(p, x.data(), h, w, expected.data());
        int inside = 0;
        for (uint8_t v : expected) {
          ASSERT_GE(v, 100 * p.relu > 90 ? 100 : 90);
          ASSERT_LE(v, 160);
          inside += v > 90 && v < 160;
        }
        ASSERT_GT(inside, static_cast<int>(expected.size() / 4)) << "most outputs clamped: the case tests nothing";
        QuantizedConv conv(p, choose_kernel(wb, 8));
        conv.run(x.data(), h, w, got.data());
        ASSERT_EQ(got, expected) << "W" << wb << " stride " << stride << (depthwise ? " depthwise" : "");
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 12);
}

TEST(NativeConv, AFloatOutputIsTheDequantizedSum) {
  ConvParams p;
  p.geometry = {2, 1, 1, 1, 1, 1, 0, 0, 0, 0};
  p.weights = {3, -2};
  p.weight_bits = 4;
  p.weight_scales = {0.5f};
  p.bias = {7};
  p.input = {0.25f, 10, 8};
  QuantizedConv conv(p, choose_kernel(4, 8));
  const uint8_t x[2] = {14, 5};  // (14-10)*3 + (5-10)*(-2) + 7 = 29
  float y = 0;
  conv.run_float(x, 1, 1, &y);
  EXPECT_FLOAT_EQ(y, 29 * 0.25f * 0.5f);
}

// quantize(), the reference parts, composed by hand.
uint8_t quantize(float v, const QuantGrid& g, int lo = 0, int hi = 255) {
  return static_cast<uint8_t>(std::clamp(std::nearbyint(v / g.scale) + g.zero_point, float(lo), float(hi)));
}

struct Residual {
  ModelSpec spec;
  ConvParams conv1, conv2, fc;
  QuantGrid in_grid{0.01f, 3, 8}, sum_grid{0.05f, 0, 8}, mean_grid{0.02f, 0, 8};
};

// input [2, 6, 6] -> Quantize -> Conv 3x3 relu -> Conv 3x3 -> Add(both) relu -> MaxPool 2x2 -> GlobalAveragePool
// -> Flatten -> Gemm (float logits)
Residual residual_network(std::mt19937_64& rng) {
  Residual r;
  r.conv1 = layer(2, 4, 3, 1, 1, 5, rng);
  r.conv1.input = r.in_grid;
  r.conv1.relu = true;
  r.conv2 = layer(4, 4, 3, 1, 1, 3, rng);
  r.conv2.input = r.conv1.output;
  r.conv2.output = {0.07f, 120, 8};
  r.fc = layer(4, 3, 1, 1, 1, 8, rng);
  r.fc.geometry.pad_top = r.fc.geometry.pad_left = r.fc.geometry.pad_bottom = r.fc.geometry.pad_right = 0;
  r.fc.input = r.mean_grid;
  ModelSpec& s = r.spec;
  s.tensors = {{"x", DType::Float32, {}},       {"xq", DType::Uint8, r.in_grid},   {"a", DType::Uint8, r.conv1.output},
               {"b", DType::Uint8, r.conv2.output}, {"sum", DType::Uint8, r.sum_grid}, {"pool", DType::Uint8, r.sum_grid},
               {"mean", DType::Uint8, r.mean_grid}, {"flat", DType::Uint8, r.mean_grid}, {"logits", DType::Float32, {}}};
  auto op = [](OpType t, std::vector<int32_t> in, int32_t out) {
    OpSpec o;
    o.type = t;
    o.name = op_name(t);
    o.inputs = std::move(in);
    o.outputs = {out};
    return o;
  };
  auto conv = [&](const ConvParams& p, OpType t, std::vector<int32_t> in, int32_t out) {
    OpSpec o = op(t, std::move(in), out);
    o.geometry = p.geometry;
    o.weight_bits = p.weight_bits;
    o.codes = p.weights;
    o.weight_scales = p.weight_scales;
    o.int_bias = p.bias;
    o.min_code = p.relu ? p.output.zero_point : 0;
    return o;
  };
  s.ops.push_back(op(OpType::Quantize, {0}, 1));
  s.ops.push_back(conv(r.conv1, OpType::Conv, {1}, 2));
  s.ops.push_back(conv(r.conv2, OpType::Conv, {2}, 3));
  s.ops.push_back(op(OpType::Add, {2, 3}, 4));
  s.ops.back().min_code = r.sum_grid.zero_point;
  s.ops.push_back(op(OpType::MaxPool, {4}, 5));
  s.ops.back().geometry = {0, 0, 2, 2, 2, 2, 0, 0, 0, 0};
  s.ops.push_back(op(OpType::GlobalAveragePool, {5}, 6));
  s.ops.push_back(op(OpType::Flatten, {6}, 7));
  s.ops.push_back(conv(r.fc, OpType::Gemm, {7}, 8));
  s.inputs = {0};
  s.outputs = {8};
  s.input_shape = {2, 6, 6};
  return r;
}

// The network of residual_network() on one NCHW image, by the reference parts.
std::vector<float> by_hand(const Residual& r, const float* image) {
  const int64_t c = 2, h = 6, w = 6;
  std::vector<uint8_t> xq(c * h * w);
  for (int64_t k = 0; k < c; ++k)
    for (int64_t p = 0; p < h * w; ++p) xq[p * c + k] = quantize(image[k * h * w + p], r.in_grid);
  std::vector<uint8_t> a(h * w * 4), b(h * w * 4), sum(h * w * 4);
  conv_reference(r.conv1, xq.data(), h, w, a.data());
  conv_reference(r.conv2, a.data(), h, w, b.data());
  for (size_t e = 0; e < sum.size(); ++e) {
    const float v = (a[e] - r.conv1.output.zero_point) * r.conv1.output.scale + (b[e] - r.conv2.output.zero_point) * r.conv2.output.scale;
    sum[e] = quantize(v, r.sum_grid, r.sum_grid.zero_point);
  }
  std::vector<float> logits(3);
  std::vector<uint8_t> mean(4);
  for (int64_t k = 0; k < 4; ++k) {
    int64_t total = 0;
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 3; ++j) {
        uint8_t m = 0;
        for (int64_t di = 0; di < 2; ++di)
          for (int64_t dj = 0; dj < 2; ++dj) m = std::max(m, sum[((2 * i + di) * w + 2 * j + dj) * 4 + k]);
        total += m;
      }
    mean[k] = quantize(static_cast<float>(total - 9 * r.sum_grid.zero_point) * r.sum_grid.scale / 9.f, r.mean_grid);
  }
  for (int64_t o = 0; o < 3; ++o) {
    int64_t acc = r.fc.bias[o];
    for (int64_t k = 0; k < 4; ++k) acc += (mean[k] - r.mean_grid.zero_point) * r.fc.weights[o * 4 + k];
    logits[o] = static_cast<float>(acc) * (r.mean_grid.scale * r.fc.weight_scales[o]);
  }
  return logits;
}

std::vector<float> random_input(int64_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> u(-0.1f, 2.5f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = u(rng);
  return x;
}

TEST(NativeModel, RunsAResidualNetworkAsItsReferencePartsDo) {
  std::mt19937_64 rng(11);
  Residual r = residual_network(rng);
  Model model(r.spec);
  std::vector<float> x = random_input(3 * 72, rng);  // a batch of 3
  auto out = model.run(x.data(), 3);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].shape, (std::vector<int64_t>{3, 3}));
  std::set<float> distinct;
  for (int64_t n = 0; n < 3; ++n) {
    const std::vector<float> expected = by_hand(r, x.data() + n * 72);
    for (int64_t o = 0; o < 3; ++o) {
      EXPECT_EQ(out[0].values[n * 3 + o], expected[o]) << "image " << n << " logit " << o;
      distinct.insert(expected[o]);
    }
  }
  EXPECT_GT(distinct.size(), 3u) << "the logits are constant: the case tests nothing";
  EXPECT_EQ(model.layers().size(), 3u);
  EXPECT_EQ(model.layers()[1].weight_bits, 3);
}

TEST(NativeThreads, EveryPartRunsOnceAndErrorsReachTheCaller) {
  ThreadPool pool(3);
  EXPECT_EQ(pool.threads(), 3);
  for (int round = 0; round < 50; ++round) {  // jobs back to back, as layers run
    std::vector<std::atomic<int>> calls(37);
    pool.run(37, [&](int i) { calls[i].fetch_add(1); });
    for (auto& c : calls) ASSERT_EQ(c.load(), 1) << "round " << round;
  }
  EXPECT_THROW(pool.run(8, [](int i) { if (i == 5) throw std::runtime_error("part 5"); }), std::runtime_error);
  int after = 0;
  pool.run(1, [&](int) { ++after; });  // still usable
  EXPECT_EQ(after, 1);
}

TEST(NativeThreads, AThreadedModelGivesTheSameOutputs) {
  std::mt19937_64 rng(21);
  Residual r = residual_network(rng);
  Model one(r.spec), two(r.spec, 2), three(r.spec, 3);
  EXPECT_EQ(two.threads(), 2);
  std::vector<float> x = random_input(4 * 72, rng);
  const auto expected = one.run(x.data(), 4)[0].values;
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(two.run(x.data(), 4)[0].values, expected);
    ASSERT_EQ(three.run(x.data(), 4)[0].values, expected);
  }
  // A layer split by rows, depthwise and dense, against the reference.
  for (int64_t groups : {int64_t{1}, int64_t{16}}) {
    ConvParams p = layer(16, 16, 3, 1, groups, 4, rng);
    std::vector<uint8_t> img = random_image(13 * 11 * 16, rng), want(13 * 11 * 16), got(want.size());
    conv_reference(p, img.data(), 13, 11, want.data());
    QuantizedConv conv(p, choose_kernel(4, 8));
    ThreadPool pool(2);
    conv.run(img.data(), 13, 11, got.data(), &pool);
    EXPECT_EQ(got, want) << "groups " << groups;
  }
}

TEST(NativeModel, RunsFloatIslands) {
  // x [1, 3, 3] -> Conv float 1x1 (2 outputs) -> Relu -> Flatten -> Gemm float -> Clip
  ModelSpec s;
  s.tensors = {{"x", DType::Float32, {}}, {"c", DType::Float32, {}}, {"r", DType::Float32, {}},
               {"f", DType::Float32, {}}, {"g", DType::Float32, {}}, {"y", DType::Float32, {}}};
  OpSpec conv;
  conv.type = OpType::Conv;
  conv.geometry = {1, 2, 1, 1, 1, 1, 0, 0, 0, 0};
  conv.float_weights = {2.f, -1.f};
  conv.float_bias = {0.5f, 0.25f};
  conv.inputs = {0};
  conv.outputs = {1};
  OpSpec relu;
  relu.type = OpType::Relu;
  relu.inputs = {1};
  relu.outputs = {2};
  OpSpec flat;
  flat.type = OpType::Flatten;
  flat.inputs = {2};
  flat.outputs = {3};
  OpSpec gemm;
  gemm.type = OpType::Gemm;
  gemm.geometry = {18, 1, 1, 1, 1, 1, 0, 0, 0, 0};
  for (int i = 0; i < 18; ++i) gemm.float_weights.push_back(i < 9 ? 1.f : 10.f);  // NCHW order: channel 0 first
  gemm.inputs = {3};
  gemm.outputs = {4};
  OpSpec clip;
  clip.type = OpType::Clip;
  clip.clip_min = -1;
  clip.clip_max = 100;
  clip.inputs = {4};
  clip.outputs = {5};
  s.ops = {conv, relu, flat, gemm, clip};
  s.inputs = {0};
  s.outputs = {5};
  s.input_shape = {1, 3, 3};
  Model model(s);
  std::vector<float> x = {0, 1, 2, -1, 0.5f, 0, 0, 0, 0.1f};
  float expected = 0;
  for (float v : x) expected += std::max(2 * v + 0.5f, 0.f) + 10 * std::max(-v + 0.25f, 0.f);
  auto out = model.run(x.data(), 1);
  EXPECT_NEAR(out[0].values[0], std::min(expected, 100.f), 1e-4);
  EXPECT_EQ(model.layers()[0].kernel, "float");
}

TEST(NativeModel, TakesAndGivesCodes) {
  // x uint8 [1, 2, 2] -> MaxPool 2x2 (on the codes) -> y uint8 [1, 1, 1]: a single-layer model's io.
  ModelSpec s;
  const QuantGrid g{0.1f, 5, 8};
  s.tensors = {{"x", DType::Uint8, g}, {"y", DType::Uint8, g}};
  OpSpec pool;
  pool.type = OpType::MaxPool;
  pool.geometry = {0, 0, 2, 2, 2, 2, 0, 0, 0, 0};
  pool.inputs = {0};
  pool.outputs = {1};
  s.ops = {pool};
  s.inputs = {0};
  s.outputs = {1};
  s.input_shape = {1, 2, 2};
  Model model(s);
  const uint8_t x[8] = {3, 9, 7, 1, 200, 0, 4, 4};  // two images
  auto out = model.run_codes(x, 2);
  EXPECT_EQ(out[0].dtype, DType::Uint8);
  EXPECT_EQ(out[0].codes, (std::vector<uint8_t>{9, 200}));
  const float f = 0;
  EXPECT_THROW(model.run(&f, 1), std::invalid_argument);
}

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "/" + name; }

TEST(NativeModelFile, RoundTripsAndRefusesDamagedFiles) {
  std::mt19937_64 rng(3);
  Residual r = residual_network(rng);
  const std::string path = temp_path("residual.apn");
  r.spec.metadata = "{\"note\": 1}";
  save_model(r.spec, path);
  ModelSpec back = load_model(path);
  ASSERT_EQ(back.ops.size(), r.spec.ops.size());
  for (size_t i = 0; i < back.ops.size(); ++i) {
    EXPECT_EQ(back.ops[i].codes, r.spec.ops[i].codes) << i;
    EXPECT_EQ(back.ops[i].int_bias, r.spec.ops[i].int_bias) << i;
    EXPECT_EQ(back.ops[i].min_code, r.spec.ops[i].min_code) << i;
  }
  EXPECT_EQ(back.metadata, r.spec.metadata);
  std::vector<float> x = random_input(72, rng);
  Model a(r.spec), b(back);
  EXPECT_EQ(a.run(x.data(), 1)[0].values, b.run(x.data(), 1)[0].values);
  // 3-bit codes take 3 bits in the file: conv2's 144 weights in 54 bytes.
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto expect_refused = [&](const std::string& damaged, const std::string& why) {
    const std::string p = temp_path("damaged.apn");
    std::ofstream(p, std::ios::binary) << damaged;
    try {
      load_model(p);
      ADD_FAILURE() << "loaded a file with " << why;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  expect_refused(bytes.substr(0, bytes.size() - 7), "truncated");
  expect_refused("ONNXFILE" + bytes.substr(8), "magic");
  expect_refused(bytes + "x", "after the end");
  std::string huge = bytes;
  huge[12] = '\xff';  // the tensor count
  huge[13] = '\xff';
  huge[14] = '\xff';
  huge[15] = '\xff';
  expect_refused(huge, "entries");
  EXPECT_THROW(load_model(temp_path("missing.apn")), std::runtime_error);
}

TEST(NativeModel, RefusesSpecsItCannotRun) {
  std::mt19937_64 rng(9);
  auto refused = [](ModelSpec s, const std::string& why) {
    try {
      Model m(std::move(s));
      ADD_FAILURE() << "accepted a spec with " << why;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  Residual r = residual_network(rng);
  ModelSpec s = r.spec;
  std::swap(s.ops[1], s.ops[2]);
  refused(s, "before it is written");
  s = r.spec;
  s.ops[7].geometry.kernel_h = 3;
  refused(s, "1x1");
  s = r.spec;
  s.tensors[5].grid.scale *= 2;  // MaxPool's output on another grid
  refused(s, "share its input's grid");
  s = r.spec;
  s.ops[1].codes[0] = 40;  // outside 5 bits
  refused(s, "outside");
  s = r.spec;
  s.outputs = {};
  refused(s, "no output");
  s = r.spec;
  s.ops[3].inputs = {2, 99};
  refused(s, "out of range");
}

}  // namespace
}  // namespace autoprec::native
