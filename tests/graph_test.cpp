#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "exec/executor.h"
#include "exec/model.h"
#include "graph/onnx_import.h"
#include "graph/passes.h"
#include "onnx_builder.h"
#include "util/error.h"
#include "test_helpers.h"

namespace autoprec {
namespace {

using testing::error_of;

using testing::ModelBuilder;

ModelBuilder conv_bn_model() {
  ModelBuilder b;
  b.input("x", {-1, 2, 5, 5}).output("y", {-1, 3, 5, 5});
  at::manual_seed(0);
  b.initializer("w", at::randn({3, 2, 3, 3}));
  b.initializer("bias", at::randn({3}));
  b.initializer("gamma", at::rand({3}) + 0.5);
  b.initializer("beta", at::randn({3}));
  b.initializer("mean", at::randn({3}) * 0.1);
  b.initializer("var", at::rand({3}) + 0.5);
  auto& conv = b.node("Conv", {"x", "w", "bias"}, {"c"}, "conv1");
  ModelBuilder::attr(conv, "pads", std::vector<int64_t>{1, 1, 1, 1});
  b.node("BatchNormalization", {"c", "gamma", "beta", "mean", "var"}, {"bn"}, "bn1");
  b.node("Relu", {"bn"}, {"y"}, "relu1");
  return b;
}

TEST(OnnxImport, RejectsEmptyGarbageAndTruncatedInput) {
  EXPECT_NE(error_of([] { graph::import_onnx_bytes("", "m.onnx"); }).find("empty"), std::string::npos);
  EXPECT_NE(error_of([] { graph::import_onnx_bytes("this is not a model", "m.onnx"); }).find("not an ONNX model"),
            std::string::npos);
  std::string bytes = conv_bn_model().bytes();
  std::string truncated = bytes.substr(0, bytes.size() / 2);
  EXPECT_FALSE(error_of([&] { graph::import_onnx_bytes(truncated, "m.onnx"); }).empty());
  EXPECT_NE(error_of([] { graph::import_onnx_file("/nonexistent/model.onnx"); }).find("does not exist"),
            std::string::npos);
}

TEST(OnnxImport, RejectsNewerOpset) {
  ModelBuilder b(18);
  b.input("x", {1}).output("y", {1});
  b.node("Relu", {"x"}, {"y"});
  std::string message = error_of([&] { graph::import_onnx_bytes(b.bytes(), "m.onnx"); });
  EXPECT_NE(message.find("opset 18"), std::string::npos) << message;
}

// libonnx 1.12's Conv shape inference indexes the input's dimensions by the
// weight's rank without checking them against each other (a fuzzer crash).
TEST(OnnxImport, RejectsConvWhoseWeightRankDoesNotMatchItsInput) {
  for (std::vector<int64_t> weight_dims : {std::vector<int64_t>{1, 1, 1, 1, 1, 1}, std::vector<int64_t>{1, 1}}) {
    ModelBuilder b;
    b.input("x", {1, 1, 4}).output("y", {1, 1, 4});
    b.initializer("w", at::ones(weight_dims));
    b.node("Conv", {"x", "w"}, {"y"}, "conv");
    std::string message = error_of([&] { graph::import_onnx_bytes(b.bytes(), "m.onnx"); });
    EXPECT_NE(message.find("conv"), std::string::npos) << message;
    EXPECT_NE(message.find("rank"), std::string::npos) << message;
  }
}

TEST(OnnxImport, RejectsControlFlowBeforeShapeInference) {
  ModelBuilder b;
  b.input("cond", {1}, onnx::TensorProto::BOOL).output("y", {1});
  auto& node = b.node("If", {"cond"}, {"y"}, "branch");
  for (const char* name : {"then_branch", "else_branch"}) {
    auto* a = node.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::GRAPH);
    a->mutable_g()->set_name(name);
  }
  std::string message = error_of([&] { graph::import_onnx_bytes(b.bytes(), "m.onnx"); });
  EXPECT_NE(message.find("control-flow"), std::string::npos) << message;
}

// Every input that once crashed the fuzzer must now import or be refused.
TEST(OnnxImport, FuzzerRegressionsImportOrAreRefused) {
  const char* source_dir = std::getenv("AUTOPREC_SOURCE_DIR");
  ASSERT_NE(source_dir, nullptr) << "run through ctest, which sets AUTOPREC_SOURCE_DIR";
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(source_dir) / "fuzz/regressions")) {
    ++files;
    try {
      graph::Graph g = graph::import_onnx_file(entry.path().string());
      graph::fold_batchnorm(g);
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(entry.path().filename().string()), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(files, 0);
}

// libonnx's shape inference reads non-tensor values as shapeless tensors;
// they are refused before it runs.
TEST(OnnxImport, SequencesFeedingTensorOperatorsAreRefused) {
  ModelBuilder b;
  b.input("x", {1, 1, 4, 4}).output("y", {1, 1, 4, 4});
  b.initializer("w", at::ones({1, 1, 1, 1}));
  b.node("SequenceConstruct", {"x"}, {"s"}, "seq");
  b.node("Conv", {"s", "w"}, {"y"}, "conv");
  try {
    graph::import_onnx_bytes(b.bytes(), "seq.onnx");
    ADD_FAILURE() << "a sequence feeding Conv was imported";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("seq.onnx: node 'seq' (SequenceConstruct) works on sequences"), std::string::npos)
        << e.what();
  }
}

TEST(OnnxImport, KeepsNamesAndInfersShapes) {
  graph::Graph g = graph::import_onnx_bytes(conv_bn_model().bytes(), "m.onnx");
  ASSERT_EQ(g.nodes.size(), 3u);
  EXPECT_EQ(g.nodes[0].name, "conv1");
  EXPECT_EQ(g.inputs.size(), 1u);  // initializers are not inputs
  auto shape = g.shape_of("c");
  ASSERT_TRUE(shape.has_value());
  EXPECT_EQ(*shape, (std::vector<int64_t>{-1, 3, 5, 5}));
}

TEST(Passes, FoldBatchNormPreservesOutputs) {
  auto original = std::make_shared<graph::Graph>(graph::import_onnx_bytes(conv_bn_model().bytes(), "m.onnx"));
  auto folded = std::make_shared<graph::Graph>(*original);
  EXPECT_EQ(graph::fold_batchnorm(*folded), 1);
  for (const auto& n : folded->nodes) EXPECT_NE(n.op_type, "BatchNormalization");
  at::Tensor x = at::randn({4, 2, 5, 5});
  at::Tensor a = exec::Executor(original).run({x})[0];
  at::Tensor b = exec::Executor(folded).run({x})[0];
  EXPECT_TRUE(at::allclose(a, b, 1e-5, 1e-5)) << (a - b).abs().max().item<float>();
}

TEST(Passes, StandaloneBatchNormStaysAndRuns) {
  ModelBuilder b;
  b.input("x", {-1, 3, 4, 4}).output("y", {-1, 3, 4, 4});
  b.initializer("gamma", at::ones({3}) * 2);
  b.initializer("beta", at::ones({3}));
  b.initializer("mean", at::ones({3}));
  b.initializer("var", at::ones({3}) * 4);
  b.node("BatchNormalization", {"x", "gamma", "beta", "mean", "var"}, {"y"}, "bn");
  auto g = std::make_shared<graph::Graph>(graph::import_onnx_bytes(b.bytes(), "m.onnx"));
  exec::simplify(*g);
  ASSERT_EQ(g->nodes.size(), 1u);
  at::Tensor x = at::full({1, 3, 4, 4}, 3.0);
  at::Tensor y = exec::Executor(g).run({x})[0];
  // (3 - 1) / sqrt(4 + 1e-5) * 2 + 1 ≈ 3
  EXPECT_NEAR(y[0][0][0][0].item<float>(), 3.0, 1e-4);
}

// The chain PyTorch emits for x.view(x.size(0), -1).
ModelBuilder flatten_chain_model(int64_t batch) {
  ModelBuilder b;
  b.input("x", {batch, 2, 3}).output("y", {batch, 6});
  b.initializer("zero", at::tensor({int64_t{0}}));
  b.initializer("minus_one", at::tensor({int64_t{-1}}));
  auto& c = b.node("Constant", {}, {"idx"});
  auto* a = c.add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  graph::tensor_to_proto(at::scalar_tensor(int64_t{0}, at::kLong), "", a->mutable_t());
  b.node("Shape", {"x"}, {"s"});
  auto& gather = b.node("Gather", {"s", "idx"}, {"g"});
  ModelBuilder::attr(gather, "axis", int64_t{0});
  b.node("Unsqueeze", {"g", "zero"}, {"u"});
  auto& concat = b.node("Concat", {"u", "minus_one"}, {"shape"});
  ModelBuilder::attr(concat, "axis", int64_t{0});
  b.node("Reshape", {"x", "shape"}, {"r"});
  b.node("Identity", {"r"}, {"y"});
  return b;
}

TEST(Passes, FoldsStaticShapeChainsAndRunsDynamicOnes) {
  auto fixed = std::make_shared<graph::Graph>(graph::import_onnx_bytes(flatten_chain_model(4).bytes(), "m.onnx"));
  exec::SimplifyReport report = exec::simplify(*fixed);
  EXPECT_GE(report.constants_folded, 4);
  int non_constant = 0;
  for (const auto& n : fixed->nodes) non_constant += n.op_type != "Identity";
  EXPECT_EQ(non_constant, 1);  // only Reshape is left (Identity writes the graph output)

  auto dynamic = std::make_shared<graph::Graph>(graph::import_onnx_bytes(flatten_chain_model(-1).bytes(), "m.onnx"));
  exec::simplify(*dynamic);
  exec::Executor executor(dynamic);
  for (int64_t batch : {1, 5}) {
    at::Tensor x = at::randn({batch, 2, 3});
    at::Tensor y = executor.run({x})[0];
    EXPECT_EQ(y.sizes().vec(), (std::vector<int64_t>{batch, 6}));
    EXPECT_TRUE(at::equal(y, x.reshape({batch, 6})));
  }
}

TEST(Passes, RemovesIdentityAndDropout) {
  ModelBuilder b;
  b.input("x", {2}).output("y", {2});
  b.node("Identity", {"x"}, {"a"});
  b.node("Dropout", {"a"}, {"b"});
  b.node("Relu", {"b"}, {"y"});
  auto g = graph::import_onnx_bytes(b.bytes(), "m.onnx");
  EXPECT_EQ(graph::remove_identity_and_dropout(g), 2);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].inputs[0], "x");
}

TEST(Executor, ListsEveryUnsupportedOperatorWithNodes) {
  ModelBuilder b;
  b.input("x", {2, 2}).output("y", {}).output("u", {-1});
  b.node("Det", {"x"}, {"d"}, "det_a");
  b.node("Det", {"x"}, {"e"}, "det_b");
  b.node("Sum", {"d", "e"}, {"y"}, "sum");
  b.node("Unique", {"x"}, {"u"}, "hm");
  auto g = std::make_shared<graph::Graph>(graph::import_onnx_bytes(b.bytes(), "m.onnx"));
  std::string message = error_of([&] { exec::Executor e(g, "m.onnx"); });
  EXPECT_NE(message.find("2 unsupported operators"), std::string::npos) << message;
  EXPECT_NE(message.find("det_a"), std::string::npos) << message;
  EXPECT_NE(message.find("det_b"), std::string::npos) << message;
  EXPECT_NE(message.find("hm"), std::string::npos) << message;
}

TEST(Executor, ChecksInputShapeAndType) {
  auto g = std::make_shared<graph::Graph>(graph::import_onnx_bytes(conv_bn_model().bytes(), "m.onnx"));
  exec::Executor executor(g, "m.onnx");
  EXPECT_NE(error_of([&] { executor.run({at::zeros({1, 3, 5, 5})}); }).find("shape"), std::string::npos);
  EXPECT_NE(error_of([&] { executor.run({at::zeros({1, 2, 5, 5}, at::kDouble)}); }).find("FLOAT"), std::string::npos);
  EXPECT_NE(error_of([&] { executor.run({}); }).find("input"), std::string::npos);
}

TEST(Executor, TrainingModeRecordsGradientsEvalModeDoesNot) {
  auto g = std::make_shared<graph::Graph>(graph::import_onnx_bytes(conv_bn_model().bytes(), "m.onnx"));
  exec::simplify(*g);
  exec::Executor executor(g);
  at::Tensor& w = executor.parameters().at("w");
  w = w.detach().clone().requires_grad_(true);
  at::Tensor x = at::randn({2, 2, 5, 5});
  EXPECT_FALSE(executor.run({x})[0].requires_grad());
  executor.set_training(true);
  at::Tensor y = executor.run({x})[0];
  ASSERT_TRUE(y.requires_grad());
  y.sum().backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_GT(w.grad().abs().sum().item<float>(), 0);
}

TEST(Executor, InputTransformsAndObserversSeeTheRightTensors) {
  auto g = std::make_shared<graph::Graph>(graph::import_onnx_bytes(conv_bn_model().bytes(), "m.onnx"));
  exec::simplify(*g);
  exec::Executor executor(g);
  at::Tensor x = at::randn({1, 2, 5, 5});
  at::Tensor reference = executor.run({x})[0];
  int calls = 0;
  executor.set_input_transform("conv1", 1, [&](const at::Tensor& w) {
    ++calls;
    return at::zeros_like(w);
  });
  std::vector<std::string> seen;
  executor.set_observer([&](const std::string& name, const at::Tensor&) { seen.push_back(name); });
  at::Tensor y = executor.run({x})[0];
  EXPECT_EQ(calls, 1);
  // Zero weights leave relu(bias'): constant per channel.
  EXPECT_NEAR((y[0][0] - y[0][0][0][0]).abs().max().item<float>(), 0, 1e-6);
  EXPECT_FALSE(at::allclose(y, reference));
  EXPECT_EQ(seen.size(), g->nodes.size());
  executor.clear_input_transforms();
  EXPECT_TRUE(at::allclose(executor.run({x})[0], reference));
  EXPECT_FALSE(error_of([&] { executor.set_input_transform("missing", 0, nullptr); }).empty());
}

}  // namespace
}  // namespace autoprec
