// ONNX QDQ export: 4-bit packing, containers per bit-width, the exported
// integers against the simulation, re-import of 8-bit-container exports into
// autoprec's own executor, the structural check, and errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "deploy/qdq_export.h"
#include "exec/executor.h"
#include "exec/model.h"
#include "graph/tensor_proto.h"
#include "quant/quantized_model.h"
#include "onnx_builder.h"
#include "temp_dir.h"
#include "test_models.h"
#include "util/error.h"
#include "test_helpers.h"

namespace autoprec {
namespace {

using testing::count_ops;

using testing::tiny_model;

constexpr int32_t kFloat = onnx::TensorProto::FLOAT;
constexpr int32_t kInt8 = onnx::TensorProto::INT8;
constexpr int32_t kUint8 = onnx::TensorProto::UINT8;

at::Tensor calibration_images() {
  at::manual_seed(3);
  return at::randn({128, 1, 4, 4});
}

std::unique_ptr<quant::QuantizedModel> calibrated(const quant::PrecisionConfig& config) {
  auto model = std::make_unique<quant::QuantizedModel>(tiny_model(), config, "tiny");
  model->calibrate(calibration_images());
  return model;
}

quant::PrecisionConfig mixed(int conv_w, int conv_a, int fc_w, int fc_a) {
  quant::PrecisionConfig c = quant::uniform(8, 8);
  c.layers.push_back({"conv", {conv_w, conv_a}});
  c.layers.push_back({"fc", {fc_w, fc_a}});
  return c;
}

const onnx::TensorProto& initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer()) {
    if (t.name() == name) return t;
  }
  throw std::runtime_error("no initializer " + name);
}

bool has_initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer()) {
    if (t.name() == name) return true;
  }
  return false;
}

int64_t opset_of(const onnx::ModelProto& m) {
  for (const auto& e : m.opset_import()) {
    if (e.domain().empty()) return e.version();
  }
  return 0;
}

std::string metadata(const onnx::ModelProto& m, const std::string& key) {
  for (const auto& p : m.metadata_props()) {
    if (p.key() == key) return p.value();
  }
  return "";
}

// The integers the simulation puts on the grid for `layer`'s weight.
std::vector<int64_t> simulated_weight_integers(const quant::QuantizedModel& model, const std::string& layer,
                                               const std::string& weight) {
  const quant::TensorQuantizer& wq = model.weight_quantizer(layer);
  at::Tensor w = model.executor().parameters().at(weight).contiguous();
  at::Tensor scale = wq.scale.detach();
  std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
  shape[static_cast<size_t>(wq.axis)] = scale.numel();
  at::Tensor q = at::round(wq.apply(w).detach() / scale.reshape(shape)).to(at::kLong).contiguous().reshape({-1});
  return std::vector<int64_t>(q.data_ptr<int64_t>(), q.data_ptr<int64_t>() + q.numel());
}

std::vector<int64_t> integers(const onnx::TensorProto& t) {
  int64_t n = 1;
  for (int64_t d : t.dims()) n *= d;
  if (t.data_type() == deploy::kOnnxInt4 || t.data_type() == deploy::kOnnxUint4) {
    return deploy::unpack_4bit(t.raw_data(), n, t.data_type() == deploy::kOnnxInt4);
  }
  at::Tensor x = graph::tensor_from_proto(t).to(at::kLong).contiguous().reshape({-1});
  return std::vector<int64_t>(x.data_ptr<int64_t>(), x.data_ptr<int64_t>() + x.numel());
}

TEST(Int4Packing, LowNibbleFirstAndRoundTrips) {
  EXPECT_EQ(deploy::pack_4bit({1, 2}, false), std::string("\x21", 1));
  EXPECT_EQ(deploy::pack_4bit({-1, 7, -8}, true), std::string("\x7f\x08", 2));  // odd count: high nibble 0
  for (bool is_signed : {true, false}) {
    std::vector<int64_t> values;
    for (int64_t v = is_signed ? -8 : 0; v <= (is_signed ? 7 : 15); ++v) values.push_back(v);
    values.push_back(is_signed ? -3 : 9);  // odd count
    std::string bytes = deploy::pack_4bit(values, is_signed);
    EXPECT_EQ(bytes.size(), (values.size() + 1) / 2);
    EXPECT_EQ(deploy::unpack_4bit(bytes, static_cast<int64_t>(values.size()), is_signed), values);
  }
  EXPECT_THROW(deploy::pack_4bit({8}, true), UserError);
  EXPECT_THROW(deploy::pack_4bit({-1}, false), UserError);
  EXPECT_THROW(deploy::unpack_4bit("ab", 5, true), UserError);
}

TEST(QdqContainers, SmallestTypeThatHoldsTheBits) {
  for (int bits = 2; bits <= 8; ++bits) {
    EXPECT_EQ(deploy::weight_container(bits), bits <= 4 ? deploy::kOnnxInt4 : kInt8) << bits;
    EXPECT_EQ(deploy::activation_container(bits), kUint8) << bits;  // UINT4 breaks ORT 1.30's optimizers
  }
  EXPECT_THROW(deploy::weight_container(16), UserError);
  EXPECT_THROW(deploy::activation_container(1), UserError);
}

// Runs the exported file in autoprec's executor (8-bit containers, opset 13)
// and compares with the simulation: all but a few elements equal, the rest
// within one activation step's effect on the output.
void expect_reimport_matches(const quant::PrecisionConfig& config, bool expect_clip) {
  auto model = calibrated(config);
  deploy::QdqExport e = deploy::export_qdq(*model, {"tiny.onnx"});
  EXPECT_EQ(e.opset, deploy::kOpset8Bit);
  EXPECT_EQ(count_ops(e.model, "Clip") > 0, expect_clip);
  testing::TempDir dir;
  std::string path = dir.file("qdq.onnx");
  deploy::save_qdq(e.model, path);  // libonnx checker at opset 13
  auto reimported = exec::load_model(path);
  exec::Executor runtime(reimported, path);
  at::manual_seed(5);
  at::Tensor x = at::randn({64, 1, 4, 4});
  at::Tensor expected = model->executor().run({x})[0];
  at::Tensor got = runtime.run({x})[0];
  ASSERT_EQ(got.sizes(), expected.sizes());
  at::Tensor diff = (got - expected).abs();
  double exact = diff.le(1e-5).to(at::kDouble).mean().item<double>();
  double range = expected.abs().max().item<double>();
  EXPECT_GE(exact, 0.95) << "fraction of outputs equal to the simulation";
  EXPECT_LE(diff.max().item<double>(), 0.05 * range);
}

TEST(QdqExport, W8A8ReimportMatchesTheSimulation) { expect_reimport_matches(quant::uniform(8, 8), false); }

TEST(QdqExport, OddBitsInInt8ContainersReimportMatchesTheSimulation) {
  // 6-bit weights / 5-bit activations in int8/uint8, a float fc layer.
  expect_reimport_matches(mixed(6, 5, 16, 16), true);
  expect_reimport_matches(mixed(7, 8, 5, 6), true);
}

TEST(QdqExport, WeightsAreTheSimulationsIntegersWithPerChannelScales) {
  auto model = calibrated(mixed(6, 8, 8, 8));
  deploy::QdqExport e = deploy::export_qdq(*model);
  const auto& q = initializer(e.model, "w1_quantized");
  EXPECT_EQ(q.data_type(), kInt8);
  std::vector<int64_t> values = integers(q);
  EXPECT_EQ(values, simulated_weight_integers(*model, "conv", "w1"));
  for (int64_t v : values) EXPECT_LE(std::abs(v), 31);
  EXPECT_EQ(integers(initializer(e.model, "w1_scale")).size(), 4u);
  // The float weights are gone; the bias stays float.
  EXPECT_FALSE(has_initializer(e.model, "w1"));
  EXPECT_TRUE(has_initializer(e.model, "b1"));
  EXPECT_EQ(initializer(e.model, "b1").data_type(), kFloat);
  // fc (Gemm, transB=1): channel axis 0.
  for (const auto& node : e.model.graph().node()) {
    if (node.op_type() == "DequantizeLinear" && node.input(0) == "w2_quantized") {
      ASSERT_EQ(node.attribute_size(), 1);
      EXPECT_EQ(node.attribute(0).i(), 0);
    }
  }
  EXPECT_EQ(e.quantized_weight_bytes, 36 + 192);
}

TEST(QdqExport, Uint8WeightsHoldTheSameValuesWithZeroPoint128) {
  auto model = calibrated(mixed(8, 8, 3, 8));
  deploy::ExportOptions options;
  options.uint8_weights = true;
  deploy::QdqExport e = deploy::export_qdq(*model, options);
  const auto& q = initializer(e.model, "w1_quantized");
  EXPECT_EQ(q.data_type(), kUint8);
  std::vector<int64_t> stored = integers(q);
  std::vector<int64_t> expected = simulated_weight_integers(*model, "conv", "w1");
  for (int64_t& v : expected) v += 128;
  EXPECT_EQ(stored, expected);
  for (int64_t z : integers(initializer(e.model, "w1_zero_point"))) EXPECT_EQ(z, 128);
  EXPECT_EQ(initializer(e.model, "w2_quantized").data_type(), deploy::kOnnxInt4);  // 3 bits stay INT4
  EXPECT_NO_THROW(deploy::validate_qdq(e.model));
  // The executor agrees: same float weights.
  auto plain = calibrated(mixed(8, 8, 16, 16));
  options.uint8_weights = true;
  testing::TempDir dir;
  deploy::save_qdq(deploy::export_qdq(*plain, options).model, dir.file("u8.onnx"));
  exec::Executor runtime(exec::load_model(dir.file("u8.onnx")));
  at::Tensor x = calibration_images().slice(0, 0, 16);
  EXPECT_TRUE(at::allclose(runtime.run({x})[0], plain->executor().run({x})[0], 1e-4, 1e-5));
}

TEST(QdqExport, FourBitAndOddBitsUseInt4AtOpset21) {
  auto model = calibrated(mixed(3, 4, 2, 3));
  deploy::QdqExport e = deploy::export_qdq(*model, {"tiny.onnx"});
  EXPECT_EQ(e.opset, deploy::kOpset4Bit);
  EXPECT_EQ(opset_of(e.model), 21);
  EXPECT_EQ(e.model.ir_version(), 10);
  const auto& w1 = initializer(e.model, "w1_quantized");
  EXPECT_EQ(w1.data_type(), deploy::kOnnxInt4);
  EXPECT_EQ(w1.raw_data().size(), 18u);  // 36 values, two per byte
  std::vector<int64_t> v1 = integers(w1);
  EXPECT_EQ(v1, simulated_weight_integers(*model, "conv", "w1"));
  for (int64_t v : v1) EXPECT_LE(std::abs(v), 3);
  std::vector<int64_t> v2 = integers(initializer(e.model, "w2_quantized"));
  EXPECT_EQ(v2, simulated_weight_integers(*model, "fc", "w2"));
  for (int64_t v : v2) EXPECT_LE(std::abs(v), 1);  // 2 bits: ternary
  EXPECT_EQ(initializer(e.model, "w1_zero_point").data_type(), deploy::kOnnxInt4);
  // Activations: UINT8, with a Clip holding them to their 4- and 3-bit grids.
  EXPECT_EQ(initializer(e.model, "conv/input_zero_point").data_type(), kUint8);
  EXPECT_EQ(initializer(e.model, "fc/input_zero_point").data_type(), kUint8);
  EXPECT_TRUE(has_initializer(e.model, "conv/input_clip_max"));
  ASSERT_TRUE(has_initializer(e.model, "fc/input_clip_max"));
  const quant::TensorQuantizer& aq = model->activation_quantizer("fc");
  float scale = aq.scale.item<float>();
  float max = graph::tensor_from_proto(initializer(e.model, "fc/input_clip_max")).item<float>();
  EXPECT_EQ(std::nearbyint(max / scale) + aq.zero_point.item<int>(), 7);
  ASSERT_EQ(e.layers.size(), 2u);
  EXPECT_TRUE(e.layers[0].activation_clip);
  EXPECT_TRUE(e.layers[1].activation_clip);

  nlohmann::json precision = nlohmann::json::parse(metadata(e.model, "autoprec.precision"));
  EXPECT_EQ(precision["conv"]["weight_bits"], 3);
  EXPECT_EQ(precision["conv"]["activation_bits"], 4);
  EXPECT_EQ(precision["conv"]["weight_type"], "INT4");
  EXPECT_EQ(precision["fc"]["weight_bits"], 2);
  EXPECT_EQ(precision["fc"]["activation_bits"], 3);
  EXPECT_EQ(precision["fc"]["activation_type"], "UINT8");
  EXPECT_EQ(metadata(e.model, "autoprec.source_model"), "tiny.onnx");
  EXPECT_EQ(metadata(e.model, "autoprec.format"), "qdq-1");
  // The embedded config rebuilds the same simulation.
  quant::PrecisionConfig embedded = quant::parse_precision_config(metadata(e.model, "autoprec.precision_config"), "meta");
  EXPECT_EQ(embedded, model->calibrated_config());

  EXPECT_NO_THROW(deploy::validate_qdq(e.model));
  testing::TempDir dir;
  deploy::save_qdq(e.model, dir.file("w3.onnx"));  // no libonnx checker at opset 21
  onnx::ModelProto back;
  std::ifstream file(dir.file("w3.onnx"), std::ios::binary);
  ASSERT_TRUE(back.ParseFromIstream(&file));
  EXPECT_EQ(back.SerializeAsString(), e.model.SerializeAsString());
}

TEST(QdqExport, FloatLayersStayFloat) {
  auto model = calibrated(mixed(16, 32, 8, 8));
  deploy::QdqExport e = deploy::export_qdq(*model);
  EXPECT_TRUE(has_initializer(e.model, "w1"));
  EXPECT_FALSE(has_initializer(e.model, "w1_quantized"));
  EXPECT_FALSE(has_initializer(e.model, "conv/input_scale"));
  EXPECT_EQ(count_ops(e.model, "QuantizeLinear"), 1);
  EXPECT_EQ(count_ops(e.model, "DequantizeLinear"), 2);
  EXPECT_EQ(e.layers[0].weight_type, kFloat);
  EXPECT_NO_THROW(deploy::validate_qdq(e.model));
}

TEST(QdqExport, UncalibratedActivationsAreAUserError) {
  quant::QuantizedModel model(tiny_model(), quant::uniform(8, 8), "tiny");
  try {
    deploy::export_qdq(model);
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("no calibrated range"), std::string::npos) << e.what();
  }
}

TEST(QdqValidation, RejectsBrokenFiles) {
  auto model = calibrated(mixed(3, 3, 6, 5));
  const onnx::ModelProto good = deploy::export_qdq(*model).model;
  ASSERT_NO_THROW(deploy::validate_qdq(good));
  auto expect_rejected = [](const onnx::ModelProto& m, const std::string& what) {
    try {
      deploy::validate_qdq(m);
      ADD_FAILURE() << "accepted a model with " << what;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("QDQ model check"), std::string::npos) << e.what();
    }
  };
  auto with_initializer = [&](const std::string& name, auto edit) {
    onnx::ModelProto m = good;
    for (auto& t : *m.mutable_graph()->mutable_initializer()) {
      if (t.name() == name) edit(t);
    }
    return m;
  };
  expect_rejected(with_initializer("w1_quantized", [](onnx::TensorProto& t) { t.mutable_raw_data()->pop_back(); }),
                  "a short packed tensor");
  // 3-bit weights hold [-3, 3]; 5 fits the INT4 container but not the grid.
  expect_rejected(with_initializer("w1_quantized", [](onnx::TensorProto& t) { (*t.mutable_raw_data())[0] = 0x05; }),
                  "a weight outside the 3-bit grid");
  // 6-bit weights in INT8: [-31, 31].
  expect_rejected(with_initializer("w2_quantized", [](onnx::TensorProto& t) { (*t.mutable_raw_data())[0] = 40; }),
                  "a weight outside the 6-bit grid");
  expect_rejected(with_initializer("fc/input_clip_max", [](onnx::TensorProto& t) {
                    float big = 1e6f;
                    t.set_raw_data(std::string(reinterpret_cast<const char*>(&big), 4));
                  }),
                  "a Clip that lets 5-bit activations past the grid");
  onnx::ModelProto old_opset = good;
  old_opset.mutable_opset_import(0)->set_version(13);
  expect_rejected(old_opset, "INT4 at opset 13");
  onnx::ModelProto no_metadata = good;
  no_metadata.clear_metadata_props();
  expect_rejected(no_metadata, "no metadata");
  onnx::ModelProto wrong_bits = good;
  for (auto& p : *wrong_bits.mutable_metadata_props()) {
    if (p.key() == "autoprec.precision") {
      auto j = nlohmann::json::parse(p.value());
      j["conv"]["weight_bits"] = 2;  // the file holds 3-bit values
      p.set_value(j.dump());
    }
  }
  expect_rejected(wrong_bits, "metadata claiming fewer bits than the values use");
}

// x [-1, 600] -> Gemm (transB, W [40, 600], bias) -> Relu -> MatMul (W [40, 6]): two
// layers MatMulNBits takes, one with a column longer than a block.
std::shared_ptr<graph::Graph> nbits_model() {
  testing::ModelBuilder b;
  b.input("x", {-1, 600}).output("y", {-1, 6});
  at::manual_seed(5);
  b.initializer("w1", at::randn({40, 600}) * 0.1).initializer("b1", at::randn({40}));
  b.initializer("w2", at::randn({40, 6}));
  auto& gemm = b.node("Gemm", {"x", "w1", "b1"}, {"h"}, "fc1");
  testing::ModelBuilder::attr(gemm, "transB", int64_t{1});
  b.node("Relu", {"h"}, {"r"}, "relu");
  b.node("MatMul", {"r", "w2"}, {"y"}, "fc2");
  return std::make_shared<graph::Graph>(graph::import_onnx_bytes(b.bytes(), "nbits.onnx"));
}

quant::PrecisionConfig nbits_config(quant::QuantForm form) {
  quant::PrecisionConfig c = quant::uniform(8, 8);
  c.layers.push_back({"fc1", {4, 32}});
  c.layers.push_back({"fc2", {2, 32}});
  c.options.format = form;
  return c;
}

TEST(MatMulNBits, LongColumnsAreQuantizedInBlocksOf256) {
  quant::QuantizedModel model(nbits_model(), nbits_config(quant::QuantForm::Qdq), "nbits");
  const quant::TensorQuantizer& fc1 = model.weight_quantizer("fc1");
  EXPECT_EQ(fc1.block, 256);
  EXPECT_EQ(fc1.block_axis, 1);
  ASSERT_EQ(fc1.scale.numel(), 40 * 3);  // 600 = 256 + 256 + 88
  at::Tensor w = model.executor().parameters().at("w1");
  at::Tensor rows = quant::weight_blocks(fc1.apply(w), 0, 1, 256);
  at::Tensor q = at::round(rows / fc1.scale.unsqueeze(1));
  EXPECT_LE(q.abs().max().item<double>(), 7);
  // Min/max scales: every block reaches the end of its grid.
  EXPECT_TRUE(at::all(q.abs().amax(1) == 7).item<bool>());
  // Not the per-channel result: blocks have their own scales.
  at::Tensor per_channel = quant::fake_quantize_per_channel(
      w, quant::weight_scales(w, 4, 0, quant::RangeMethod::MinMax), at::zeros({40}, at::kInt), 0, quant::signed_grid(4));
  EXPECT_FALSE(at::allclose(fc1.apply(w), per_channel));
  // A column of 40 is one block of 64: exactly per channel.
  const quant::TensorQuantizer& fc2 = model.weight_quantizer("fc2");
  EXPECT_EQ(fc2.block, 64);
  at::Tensor w2 = model.executor().parameters().at("w2");
  at::Tensor expected = quant::fake_quantize_per_channel(
      w2, quant::weight_scales(w2, 2, 1, quant::RangeMethod::MinMax), at::zeros({6}, at::kInt), 1, quant::signed_grid(2));
  EXPECT_TRUE(at::equal(fc2.apply(w2), expected));
  // Calibrated scales round-trip through the config, with their count checked.
  quant::QuantizedModel again(nbits_model(), model.calibrated_config(), "nbits");
  EXPECT_TRUE(at::equal(again.weight_quantizer("fc1").scale, fc1.scale));
  quant::PrecisionConfig wrong = model.calibrated_config();
  wrong.calibration["fc1"].weight_scale.resize(40);
  EXPECT_THROW(quant::QuantizedModel(nbits_model(), wrong, "nbits"), UserError);
}

TEST(MatMulNBits, ExportPacksTheSimulationsCodesAndReimportMatches) {
  for (quant::QuantForm form : {quant::QuantForm::Qdq, quant::QuantForm::Int}) {
    quant::QuantizedModel model(nbits_model(), nbits_config(form), "nbits");
    at::manual_seed(2);
    at::Tensor x = at::randn({64, 600});
    model.calibrate(x);
    deploy::QdqExport e = deploy::export_qdq(model);
    EXPECT_EQ(count_ops(e.model, "MatMulNBits"), 2);
    EXPECT_EQ(count_ops(e.model, "Gemm") + count_ops(e.model, "MatMul"), 0);
    EXPECT_EQ(opset_of(e.model), 13);  // no INT4 tensor: the codes are packed in UINT8
    for (const auto& node : e.model.graph().node()) {
      if (node.op_type() != "MatMulNBits") continue;
      EXPECT_EQ(node.domain(), "com.microsoft");
      std::map<std::string, int64_t> attrs;
      for (const auto& a : node.attribute()) attrs[a.name()] = a.i();
      const bool fc1 = node.name() == "fc1";
      EXPECT_EQ(attrs["K"], fc1 ? 600 : 40);
      EXPECT_EQ(attrs["N"], fc1 ? 40 : 6);
      EXPECT_EQ(attrs["bits"], fc1 ? 4 : 2);
      EXPECT_EQ(attrs["block_size"], fc1 ? 256 : 64);
      EXPECT_EQ(node.input_size(), fc1 ? 6 : 3);  // fc1 carries Gemm's bias
      // Codes: the simulation's integers + 2^(b-1), low bits first along K.
      const int bits = fc1 ? 4 : 2;
      const quant::TensorQuantizer& wq = model.weight_quantizer(node.name());
      at::Tensor w = model.executor().parameters().at(fc1 ? "w1" : "w2");
      at::Tensor rows = quant::weight_blocks(wq.apply(w), fc1 ? 0 : 1, fc1 ? 1 : 0, wq.block);
      at::Tensor expected = (at::round(rows / wq.scale.unsqueeze(1)) + (1 << (bits - 1))).to(at::kLong).reshape({-1});
      const std::string& packed = initializer(e.model, node.input(1)).raw_data();
      ASSERT_EQ(static_cast<int64_t>(packed.size()) * 8 / bits, expected.numel());
      for (int64_t i = 0; i < expected.numel(); ++i) {
        int byte = static_cast<unsigned char>(packed[static_cast<size_t>(i * bits / 8)]);
        int code = (byte >> (bits * (i % (8 / bits)))) & ((1 << bits) - 1);
        ASSERT_EQ(code, expected[i].item<int64_t>()) << node.name() << " code " << i;
      }
    }
    nlohmann::json precision = nlohmann::json::parse(metadata(e.model, "autoprec.precision"));
    EXPECT_EQ(precision["fc1"]["kernel"], "MatMulNBits");
    ASSERT_NO_THROW(deploy::validate_qdq(e.model));
    // autoprec's executor runs the contrib op: the file computes the simulation.
    testing::TempDir dir;
    deploy::save_qdq(e.model, dir.file("nbits.onnx"));
    exec::Executor runtime(exec::load_model(dir.file("nbits.onnx")));
    at::Tensor expected = model.executor().run({x})[0];
    EXPECT_TRUE(at::allclose(runtime.run({x})[0], expected, 1e-4, 1e-4)) << (runtime.run({x})[0] - expected).abs().max();
    // A code of 0 lies outside the narrow grid.
    onnx::ModelProto broken = e.model;
    for (auto& t : *broken.mutable_graph()->mutable_initializer()) {
      if (t.name() == "w2_nbits") (*t.mutable_raw_data())[0] = 0;
    }
    EXPECT_THROW(deploy::validate_qdq(broken), UserError);
  }
}

TEST(MatMulNBits, AreNotCountedAsFloatIslandsBesideIntegerLayers) {
  // fc1 on integers feeds fc2 as MatMulNBits: fc2 reads a quantized tensor but computes on its codes.
  quant::PrecisionConfig c = quant::uniform(8, 8);
  c.layers.push_back({"fc2", {4, 32}});
  c.options.format = quant::QuantForm::Int;
  quant::QuantizedModel model(nbits_model(), c, "nbits");
  at::manual_seed(3);
  model.calibrate(at::randn({64, 600}));
  ASSERT_NE(model.integer_plan(), nullptr);
  const std::vector<std::string>& planned = model.integer_plan()->float_nodes;
  ASSERT_EQ(std::count(planned.begin(), planned.end(), "fc2"), 1);  // what the export corrects
  deploy::QdqExport e = deploy::export_qdq(model);
  EXPECT_EQ(count_ops(e.model, "MatMulNBits"), 1);
  EXPECT_EQ(std::count(e.float_nodes.begin(), e.float_nodes.end(), "fc2"), 0);
}

TEST(QdqExport, UpgradeMovesReduceAxesToAnInput) {
  graph::Graph g;
  g.opset = 13;
  graph::Node node;
  node.name = "mean";
  node.op_type = "ReduceMean";
  node.inputs = {"x"};
  node.outputs = {"y"};
  graph::Attribute axes;
  axes.kind = graph::Attribute::Kind::Ints;
  axes.ints = {2, 3};
  node.attributes["axes"] = axes;
  g.nodes.push_back(node);
  deploy::upgrade_opset(g, 21);
  EXPECT_EQ(g.opset, 21);
  ASSERT_EQ(g.nodes[0].inputs.size(), 2u);
  EXPECT_FALSE(g.nodes[0].has("axes"));
  at::Tensor a = g.initializers.at(g.nodes[0].inputs[1]);
  EXPECT_TRUE(a.equal(at::tensor({2, 3}, at::kLong)));
}

}  // namespace
}  // namespace autoprec
