// Operator semantics not pinned down by the ONNX conformance data, and the
// registry's coverage.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "exec/executor.h"
#include "exec/model.h"
#include "exec/registry.h"
#include "graph/onnx_import.h"
#include "onnx_builder.h"

namespace autoprec {
namespace {

using testing::ModelBuilder;

at::Tensor run_single(ModelBuilder& b, const exec::Tensors& inputs) {
  auto g = std::make_shared<graph::Graph>(graph::import_onnx_bytes(b.bytes(), "m.onnx"));
  return exec::Executor(g).run(inputs)[0];
}

TEST(Registry, CoversTheOperatorsModelsNeed) {
  const char* required[] = {"Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Relu", "LeakyRelu",
                            "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Erf", "Softmax", "LogSoftmax",
                            "BatchNormalization", "LayerNormalization", "MaxPool", "AveragePool", "GlobalAveragePool",
                            "ReduceMean", "Flatten", "Reshape", "Transpose", "Concat", "Split", "Slice", "Gather",
                            "Squeeze", "Unsqueeze", "Shape", "Constant", "ConstantOfShape", "Identity", "Dropout", "Pad"};
  for (const char* op : required) EXPECT_NE(exec::registry().find(op), nullptr) << op;
  EXPECT_EQ(exec::registry().find("NotAnOperator"), nullptr);
}

// A transformer's scaled attention divides by a constant folded at load time
// (Sqrt of the head width); fine-tuning saves it for backward, which an
// inference tensor cannot be ("Inference tensors cannot be saved for backward").
TEST(FoldConstants, FoldedValuesTrainWithAutograd) {
  ModelBuilder b;
  b.input("x", {2, 4}).output("y", {2, 3});
  at::manual_seed(3);
  b.initializer("w", at::randn({4, 3}));
  b.initializer("d", at::full({1}, 16.0f));
  b.node("Sqrt", {"d"}, {"s"});
  b.node("MatMul", {"x", "w"}, {"m"});
  b.node("Div", {"m", "s"}, {"y"});
  auto g = std::make_shared<graph::Graph>(graph::import_onnx_bytes(b.bytes(), "m.onnx"));
  EXPECT_EQ(exec::fold_constants(*g), 1);
  for (const auto& [name, t] : g->initializers) EXPECT_FALSE(t.is_inference()) << name;
  exec::Executor e(g);
  e.set_training(true);
  at::Tensor x = at::randn({2, 4}).requires_grad_();
  at::Tensor y = e.run({x})[0];
  y.sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(at::allclose(y, at::matmul(x, g->initializers.at("w")) / 4.0));
}

TEST(Ops, ConvWithAsymmetricPadsMatchesExplicitPadding) {
  ModelBuilder b;
  b.input("x", {1, 1, 4, 4}).output("y", {1, 2, 4, 3});
  at::manual_seed(1);
  at::Tensor w = at::randn({2, 1, 3, 3});
  b.initializer("w", w);
  auto& conv = b.node("Conv", {"x", "w"}, {"y"});
  ModelBuilder::attr(conv, "pads", std::vector<int64_t>{0, 1, 2, 0});
  at::Tensor x = at::randn({1, 1, 4, 4});
  at::Tensor expected = at::conv2d(at::constant_pad_nd(x, {1, 0, 0, 2}), w);
  EXPECT_TRUE(at::allclose(run_single(b, {x}), expected, 1e-5, 1e-6));
}

TEST(Ops, ConvSameUpperPadsLikeTheSpec) {
  ModelBuilder b;
  b.input("x", {1, 1, 5, 5}).output("y", {1, 1, 3, 3});
  b.initializer("w", at::ones({1, 1, 2, 2}));
  auto& conv = b.node("Conv", {"x", "w"}, {"y"});
  auto* a = conv.add_attribute();
  a->set_name("auto_pad");
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s("SAME_UPPER");
  ModelBuilder::attr(conv, "strides", std::vector<int64_t>{2, 2});
  at::Tensor y = run_single(b, {at::ones({1, 1, 5, 5})});
  ASSERT_EQ(y.sizes().vec(), (std::vector<int64_t>{1, 1, 3, 3}));
  // Total padding 1 per axis goes to the end: the last row/column sees one valid pair.
  EXPECT_FLOAT_EQ(y[0][0][0][0].item<float>(), 4);
  EXPECT_FLOAT_EQ(y[0][0][2][2].item<float>(), 1);
}

TEST(Ops, AveragePoolCountsPadsOnlyWhenAsked) {
  for (int64_t include : {0, 1}) {
    ModelBuilder b;
    b.input("x", {1, 1, 2, 2}).output("y", {1, 1, 2, 2});
    auto& pool = b.node("AveragePool", {"x"}, {"y"});
    ModelBuilder::attr(pool, "kernel_shape", std::vector<int64_t>{2, 2});
    ModelBuilder::attr(pool, "pads", std::vector<int64_t>{1, 1, 0, 0});
    ModelBuilder::attr(pool, "count_include_pad", include);
    at::Tensor y = run_single(b, {at::ones({1, 1, 2, 2})});
    // The top-left window covers 1 real element and 3 pads.
    EXPECT_FLOAT_EQ(y[0][0][0][0].item<float>(), include ? 0.25f : 1.0f);
  }
}

TEST(Ops, SliceWithNegativeStepReverses) {
  ModelBuilder b;
  b.input("x", {5}).output("y", {3});
  b.initializer("starts", at::tensor({int64_t{-1}}));
  b.initializer("ends", at::tensor({std::numeric_limits<int64_t>::min()}));
  b.initializer("axes", at::tensor({int64_t{0}}));
  b.initializer("steps", at::tensor({int64_t{-2}}));
  b.node("Slice", {"x", "starts", "ends", "axes", "steps"}, {"y"});
  at::Tensor y = run_single(b, {at::arange(5, at::kFloat)});
  EXPECT_TRUE(at::equal(y, at::tensor({4.0f, 2.0f, 0.0f})));
}

TEST(Ops, SoftmaxBeforeOpset13CoercesTo2D) {
  at::Tensor x = at::randn({2, 3, 4});
  ModelBuilder old_style(11);
  old_style.input("x", {2, 3, 4}).output("y", {2, 3, 4});
  old_style.node("Softmax", {"x"}, {"y"});
  at::Tensor expected_old = at::softmax(x.reshape({2, 12}), 1).reshape({2, 3, 4});
  EXPECT_TRUE(at::allclose(run_single(old_style, {x}), expected_old));
  ModelBuilder new_style(13);
  new_style.input("x", {2, 3, 4}).output("y", {2, 3, 4});
  new_style.node("Softmax", {"x"}, {"y"});
  EXPECT_TRUE(at::allclose(run_single(new_style, {x}), at::softmax(x, -1)));
}

TEST(Ops, GemmHonoursTransposesAlphaAndBeta) {
  ModelBuilder b;
  b.input("a", {3, 2}).output("y", {2, 4});
  at::Tensor bt = at::randn({4, 3});
  at::Tensor c = at::randn({4});
  b.initializer("b", bt).initializer("c", c);
  auto& gemm = b.node("Gemm", {"a", "b", "c"}, {"y"});
  ModelBuilder::attr(gemm, "transA", int64_t{1});
  ModelBuilder::attr(gemm, "transB", int64_t{1});
  ModelBuilder::attr(gemm, "alpha", 0.5f);
  ModelBuilder::attr(gemm, "beta", 2.0f);
  at::Tensor a = at::randn({3, 2});
  at::Tensor expected = 0.5 * at::matmul(a.t(), bt.t()) + 2 * c;
  EXPECT_TRUE(at::allclose(run_single(b, {a}), expected, 1e-5, 1e-6));
}

TEST(Ops, QuantizeLinearPerAxisRoundsHalfToEvenAndSaturates) {
  ModelBuilder b;
  b.input("x", {2, 3}).output("y", {2, 3}, onnx::TensorProto::INT8).output("z", {2, 3});
  b.initializer("s", at::tensor({1.0f, 0.5f, 2.0f}));
  b.initializer("zp", at::tensor({0, 1, -2}, at::kChar));
  auto& q = b.node("QuantizeLinear", {"x", "s", "zp"}, {"y"});
  ModelBuilder::attr(q, "axis", int64_t{1});
  auto& dq = b.node("DequantizeLinear", {"y", "s", "zp"}, {"z"});
  ModelBuilder::attr(dq, "axis", int64_t{1});
  auto g = std::make_shared<graph::Graph>(graph::import_onnx_bytes(b.bytes(), "qdq.onnx"));
  at::Tensor x = at::tensor({2.5f, 0.25f, 3.0f, -200.0f, 100.0f, -3.0f}).reshape({2, 3});
  exec::Tensors out = exec::Executor(g).run({x});
  // round(2.5) = 2 (even); 0.25/0.5 = 0.5 -> 0, +1; 3/2 = 1.5 -> 2, -2; -3/2 = -1.5 -> -2, -2;
  // saturation at -128 / 127.
  EXPECT_TRUE(out[0].equal(at::tensor({2, 1, 0, -128, 127, -4}, at::kChar).reshape({2, 3})));
  EXPECT_TRUE(at::allclose(out[1], at::tensor({2.0f, 0.0f, 4.0f, -128.0f, 63.0f, -4.0f}).reshape({2, 3})));
}

TEST(Ops, QuantizeLinearPerTensorDefaultsToUint8) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {4}, onnx::TensorProto::UINT8);
  b.initializer("s", at::full({}, 0.1f));
  b.node("QuantizeLinear", {"x", "s"}, {"y"});
  at::Tensor got = run_single(b, {at::tensor({-1.0f, 0.04f, 0.06f, 30.0f})});
  EXPECT_TRUE(got.equal(at::tensor({0, 0, 1, 255}, at::kByte)));
}

TEST(Ops, PadReflectAndEdge) {
  for (const char* mode : {"reflect", "edge"}) {
    ModelBuilder b;
    b.input("x", {1, 4}).output("y", {1, 7});
    b.initializer("pads", at::tensor({int64_t{0}, int64_t{2}, int64_t{0}, int64_t{1}}));
    auto& pad = b.node("Pad", {"x", "pads"}, {"y"});
    auto* a = pad.add_attribute();
    a->set_name("mode");
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(mode);
    at::Tensor y = run_single(b, {at::tensor({1.0f, 2.0f, 3.0f, 4.0f}).reshape({1, 4})});
    at::Tensor expected = std::string(mode) == "reflect" ? at::tensor({3.0f, 2.0f, 1.0f, 2.0f, 3.0f, 4.0f, 3.0f}).reshape({1, 7})
                                                         : at::tensor({1.0f, 1.0f, 1.0f, 2.0f, 3.0f, 4.0f, 4.0f}).reshape({1, 7});
    EXPECT_TRUE(at::equal(y, expected)) << mode << ": " << y;
  }
}

}  // namespace
}  // namespace autoprec
