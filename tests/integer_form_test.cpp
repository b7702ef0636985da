// The integer form: which tensors the plan quantizes, the simulation that
// follows it (int32 bias grid, one quantizer per tensor) and its export.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "deploy/layer_model.h"
#include "deploy/qdq_export.h"
#include "exec/executor.h"
#include "exec/model.h"
#include "graph/onnx_import.h"
#include "graph/tensor_proto.h"
#include "onnx_builder.h"
#include "quant/integer_form.h"
#include "quant/quantized_model.h"
#include "temp_dir.h"
#include "util/error.h"
#include "test_helpers.h"

namespace autoprec {
namespace {

using testing::op_types;
using testing::count_ops;

using testing::ModelBuilder;

// x -> conv1 -> relu1 -> conv2 -> add(relu1) -> relu2 -> [sigmoid island] ->
// GlobalAveragePool -> flatten -> fc -> y (a residual block and a classifier).
std::shared_ptr<graph::Graph> residual_model(bool with_island) {
  ModelBuilder b;
  b.input("x", {-1, 2, 6, 6}).output("y", {-1, 3});
  at::manual_seed(21);
  b.initializer("w1", at::randn({4, 2, 3, 3}) * 0.5).initializer("b1", at::randn({4}) * 0.2);
  b.initializer("w2", at::randn({4, 4, 3, 3}) * 0.3).initializer("b2", at::randn({4}) * 0.2);
  b.initializer("w3", at::randn({3, 4})).initializer("b3", at::randn({3}) * 0.1);
  auto& conv1 = b.node("Conv", {"x", "w1", "b1"}, {"c1"}, "conv1");
  ModelBuilder::attr(conv1, "pads", std::vector<int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c1"}, {"r1"}, "relu1");
  auto& conv2 = b.node("Conv", {"r1", "w2", "b2"}, {"c2"}, "conv2");
  ModelBuilder::attr(conv2, "pads", std::vector<int64_t>{1, 1, 1, 1});
  b.node("Add", {"c2", "r1"}, {"s"}, "add");
  b.node("Relu", {"s"}, {"r2"}, "relu2");
  std::string pooled_input = "r2";
  if (with_island) {
    b.node("Sigmoid", {"r2"}, {"g"}, "gate");
    pooled_input = "g";
  }
  b.node("GlobalAveragePool", {pooled_input}, {"p"}, "pool");
  b.node("Flatten", {"p"}, {"f"}, "flatten");
  auto& fc = b.node("Gemm", {"f", "w3", "b3"}, {"y"}, "fc");
  ModelBuilder::attr(fc, "transB", int64_t{1});
  auto g = std::make_shared<graph::Graph>(graph::import_onnx_bytes(b.bytes(), "residual.onnx"));
  exec::simplify(*g);
  return g;
}

quant::IntegerPlan plan_of(const graph::Graph& g, const quant::PrecisionConfig& config) {
  auto layers = quant::find_quantizable_layers(g);
  return quant::plan_integer_form(g, layers, quant::resolve(config, quant::layer_names(layers)));
}

quant::PrecisionConfig int_config(int weight_bits = 7) {
  quant::PrecisionConfig c = quant::uniform(weight_bits, 8);
  c.options.format = quant::QuantForm::Int;
  return c;
}

std::vector<std::string> values(const quant::IntegerPlan& plan) {
  std::vector<std::string> out;
  for (const auto& t : plan.tensors) out.push_back(t.value);
  return out;
}

TEST(IntegerPlan, ResidualBlockIsIntegerFromInputToClassifier) {
  auto g = residual_model(false);
  quant::IntegerPlan plan = plan_of(*g, int_config());
  EXPECT_EQ(plan.integer_nodes, (std::set<std::string>{"conv1", "conv2", "add", "pool", "flatten", "fc"}));
  EXPECT_EQ(plan.integer_layers, (std::set<std::string>{"conv1", "conv2", "fc"}));
  EXPECT_EQ(plan.absorbed, (std::set<std::string>{"relu1", "relu2"}));
  // conv1's raw output and the Add's are never quantized: their Relu is; the
  // logits stay float (QGemm has a float output).
  EXPECT_EQ(values(plan), (std::vector<std::string>{"x", "r1", "c2", "r2", "p", "f"}));
  EXPECT_EQ(plan.find("f")->root, "p");
  EXPECT_TRUE(plan.find("r1")->nonnegative);
  EXPECT_FALSE(plan.find("c2")->nonnegative);
  EXPECT_EQ(plan.float_to_integer, 1);  // the graph input
  EXPECT_EQ(plan.integer_to_float, 0);
  EXPECT_TRUE(plan.float_nodes.empty());
}

TEST(IntegerPlan, FloatOperatorIsAnIslandWithBoundaries) {
  auto g = residual_model(true);
  quant::IntegerPlan plan = plan_of(*g, int_config());
  // The gate reads an integer tensor; the pool and flatten after it stay
  // float, and the classifier's input crosses back into integers.
  EXPECT_EQ(plan.float_nodes, (std::vector<std::string>{"gate", "flatten"}));
  EXPECT_FALSE(plan.integer_nodes.count("pool"));
  EXPECT_EQ(plan.find("g"), nullptr);
  ASSERT_NE(plan.find("f"), nullptr);
  EXPECT_TRUE(plan.find("f")->from_float);
  EXPECT_EQ(plan.float_to_integer, 2);  // x and f
  EXPECT_EQ(plan.integer_to_float, 1);  // the gate reading r2
}

TEST(IntegerPlan, FloatLayerIsAnIsland) {
  auto g = residual_model(false);
  quant::PrecisionConfig c = int_config();
  c.layers.push_back({"conv2", {32, 32}});
  quant::IntegerPlan plan = plan_of(*g, c);
  EXPECT_FALSE(plan.integer_nodes.count("conv2"));
  EXPECT_EQ(plan.float_nodes, (std::vector<std::string>{"conv2"}));
  EXPECT_TRUE(plan.integer_nodes.count("add"));  // still reads r1, an integer tensor
  EXPECT_TRUE(plan.find("c2")->from_float);
  // A float-weight layer keeps its (unused) 8-bit activation setting: the
  // model still counts as calibrated once every tensor is.
  c.layers.push_back({"conv1", {32, 8}});
  auto model = std::make_unique<quant::QuantizedModel>(g, c, "residual");
  at::manual_seed(4);
  model->calibrate(at::randn({32, 2, 6, 6}));
  EXPECT_TRUE(model->calibrated());
}

TEST(IntegerPlan, NarrowActivationsAreRefusedNamingTheLayer) {
  auto g = residual_model(false);
  quant::PrecisionConfig c = int_config();
  c.layers.push_back({"conv2", {8, 4}});
  try {
    plan_of(*g, c);
    FAIL() << "4-bit activations accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("'conv2' asks for 4-bit activations"), std::string::npos) << e.what();
  }
}

std::unique_ptr<quant::QuantizedModel> calibrated(std::shared_ptr<graph::Graph> g, const quant::PrecisionConfig& c) {
  auto model = std::make_unique<quant::QuantizedModel>(g, c, "residual");
  at::manual_seed(4);
  model->calibrate(at::randn({96, 2, 6, 6}));
  return model;
}

TEST(IntegerSimulation, EveryQuantizedTensorIsOnItsGridAndBiasesOnTheInt32Grid) {
  auto g = residual_model(false);
  auto model = calibrated(g, int_config());
  ASSERT_TRUE(model->calibrated());
  // Observers see values before their value transform: re-quantizing what
  // readers got must change nothing, so read each tensor through its quantizer.
  for (const std::string& value : {"r1", "c2", "r2", "p"}) {
    const quant::TensorQuantizer& q = model->tensor_quantizer(value);
    EXPECT_TRUE(q.enabled) << value;
    EXPECT_EQ(q.grid.qmax, 255);
  }
  EXPECT_EQ(model->tensor_quantizer("r1").zero_point.item<int>(), 0);  // Relu output: unsigned grid
  EXPECT_GT(model->tensor_quantizer("c2").zero_point.item<int>(), 0);  // signed tensor: zero point inside
  // conv1's input quantizer is the graph input's.
  EXPECT_EQ(&model->activation_quantizer("conv1"), &model->tensor_quantizer("x"));
  at::Tensor s = model->bias_scale("conv2");
  EXPECT_TRUE(at::allclose(s, model->tensor_quantizer("r1").scale * model->weight_quantizer("conv2").scale));

  // The config round-trips the form and every tensor range.
  quant::PrecisionConfig written = model->calibrated_config();
  EXPECT_EQ(written.tensor_ranges.size(), 5u);  // x, r1, c2, r2, p
  quant::PrecisionConfig reread = quant::parse_precision_config(quant::to_yaml(written), "written");
  EXPECT_EQ(reread, written);
  quant::QuantizedModel rebuilt(g, reread, "residual");
  ASSERT_TRUE(rebuilt.calibrated());
  at::manual_seed(8);
  at::Tensor x = at::randn({16, 2, 6, 6});
  EXPECT_TRUE(at::equal(rebuilt.executor().run({x})[0], model->executor().run({x})[0]));
}

TEST(IntegerSimulation, DiffersFromTheQdqForm) {
  auto g = residual_model(false);
  auto integer = calibrated(g, int_config());
  auto qdq = calibrated(g, quant::uniform(7, 8));
  at::manual_seed(8);
  at::Tensor x = at::randn({16, 2, 6, 6});
  EXPECT_FALSE(at::equal(integer->executor().run({x})[0], qdq->executor().run({x})[0]));
}

const onnx::TensorProto* find_initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

TEST(IntegerExport, OneQuantizePerTensorInt32BiasesAndReimportMatchesTheSimulation) {
  auto g = residual_model(true);
  auto model = calibrated(g, int_config(5));
  deploy::QdqExport e = deploy::export_qdq(*model, {"residual.onnx"});
  EXPECT_EQ(e.format, quant::QuantForm::Int);
  EXPECT_EQ(e.float_nodes, (std::vector<std::string>{"gate", "flatten"}));
  EXPECT_EQ(count_ops(e.model, "QuantizeLinear"), 5);  // x, r1, c2, r2, f
  // One DequantizeLinear per reader of a quantized tensor (conv1, conv2, add
  // twice, gate, fc), plus weights and biases.
  EXPECT_EQ(count_ops(e.model, "DequantizeLinear"), 6 + 3 + 3);
  const onnx::TensorProto* bias = find_initializer(e.model, "b2_int32");
  ASSERT_NE(bias, nullptr);
  EXPECT_EQ(bias->data_type(), onnx::TensorProto::INT32);
  at::Tensor stored = graph::tensor_from_proto(*bias).to(at::kDouble);
  at::Tensor expected = at::round(model->executor().parameters().at("b2").to(at::kDouble) /
                                  model->bias_scale("conv2").to(at::kDouble));
  EXPECT_TRUE(at::equal(stored, expected));
  const onnx::TensorProto* weight = find_initializer(e.model, "w1_quantized");
  ASSERT_NE(weight, nullptr);
  EXPECT_EQ(weight->data_type(), onnx::TensorProto::INT8);  // 5-bit weights in INT8: ORT has no INT4 Conv

  testing::TempDir dir;
  std::string path = dir.file("int.onnx");
  deploy::save_qdq(e.model, path);
  auto reimported = exec::load_model(path);
  exec::Executor runtime(reimported, path);
  at::manual_seed(5);
  at::Tensor x = at::randn({64, 2, 6, 6});
  at::Tensor want = model->executor().run({x})[0];
  at::Tensor got = runtime.run({x})[0];
  at::Tensor diff = (got - want).abs();
  EXPECT_GE(diff.le(1e-5).to(at::kDouble).mean().item<double>(), 0.95);
  EXPECT_LE(diff.max().item<double>(), 0.05 * want.abs().max().item<double>());
}

TEST(IntegerExport, ValidationRefusesABiasOffTheProductScale) {
  auto g = residual_model(false);
  auto model = calibrated(g, int_config());
  deploy::QdqExport e = deploy::export_qdq(*model, {"residual.onnx"});
  deploy::validate_qdq(e.model);
  for (auto& t : *e.model.mutable_graph()->mutable_initializer()) {
    if (t.name() != "b2_scale") continue;
    at::Tensor s = graph::tensor_from_proto(t) * 2;
    const std::string name = t.name();
    graph::tensor_to_proto(s, name, &t);
  }
  try {
    deploy::validate_qdq(e.model);
    FAIL() << "a wrong bias scale passed";
  } catch (const UserError& err) {
    EXPECT_NE(std::string(err.what()).find("bias scale"), std::string::npos) << err.what();
  }
}

TEST(IntegerLayerModel, IntegerLayerBetweenUint8TensorsAndFloatLayerWithItsBoundaries) {
  auto g = residual_model(false);
  const graph::Node& conv = *g->find_node("conv2");
  onnx::ModelProto integer;
  ASSERT_TRUE(integer.ParseFromString(deploy::integer_layer_model(*g, conv, {1, 4, 6, 6}, {1, 4, 6, 6}, 5, 8)));
  EXPECT_EQ(integer.graph().input(0).name(), "x");
  EXPECT_EQ(integer.graph().input(0).type().tensor_type().elem_type(), onnx::TensorProto::UINT8);
  EXPECT_EQ(integer.graph().output(0).name(), "y");
  EXPECT_EQ(integer.graph().output(0).type().tensor_type().elem_type(), onnx::TensorProto::UINT8);
  std::vector<std::string> ops = op_types(integer);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "Conv"), 1);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "QuantizeLinear"), 1);  // the output's; the input's is gone
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "DequantizeLinear"), 3);  // input, weight, int32 bias
  EXPECT_NE(find_initializer(integer, "b2_int32"), nullptr);

  onnx::ModelProto island;
  ASSERT_TRUE(island.ParseFromString(deploy::integer_layer_model(*g, conv, {1, 4, 6, 6}, {1, 4, 6, 6}, 32, 32)));
  EXPECT_EQ(island.graph().input(0).type().tensor_type().elem_type(), onnx::TensorProto::UINT8);
  EXPECT_EQ(op_types(island), (std::vector<std::string>{"DequantizeLinear", "Conv", "QuantizeLinear"}));
  bool per_axis = false;
  for (const auto& a : island.graph().node(0).attribute()) per_axis = per_axis || (a.name() == "axis" && a.i() == 1);
  EXPECT_TRUE(per_axis) << "a float layer reads a per-axis DequantizeLinear (ORT leaves it float)";
}

}  // namespace
}  // namespace autoprec
