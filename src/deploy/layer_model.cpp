#include "deploy/layer_model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <memory>

#include "deploy/qdq_export.h"
#include "graph/tensor_proto.h"
#include "quant/quantized_model.h"
#include "util/error.h"

namespace autoprec::deploy {
namespace {

using onnx::TensorProto;

void set_uint8(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& shape) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(TensorProto::UINT8);
  for (int64_t d : shape) t->mutable_shape()->add_dim()->set_dim_value(d);
}

void add_scalar(onnx::GraphProto* g, const std::string& name, const at::Tensor& t) {
  graph::tensor_to_proto(t, name, g->add_initializer());
}

}  // namespace

std::string integer_layer_model(const graph::Graph& graph, const graph::Node& node, const std::vector<int64_t>& input_shape,
                                const std::vector<int64_t>& output_shape, int weight_bits, int activation_bits) {
  c10::InferenceMode guard;
  auto one = std::make_shared<graph::Graph>();
  one->name = node.name;
  one->opset = graph.opset;
  one->inputs.push_back({"x", TensorProto::FLOAT, input_shape, true});
  one->outputs.push_back({"y", TensorProto::FLOAT, output_shape, true});
  graph::Node copy = node;
  copy.inputs[0] = "x";
  copy.outputs = {"y"};
  for (size_t i = 1; i < copy.inputs.size(); ++i) {
    if (!copy.inputs[i].empty()) one->initializers[copy.inputs[i]] = graph.initializers.at(copy.inputs[i]);
  }
  one->nodes.push_back(copy);

  quant::PrecisionConfig config = quant::uniform(weight_bits, activation_bits);
  config.options.format = quant::QuantForm::Int;
  quant::QuantizedModel model(one, config, node.name);
  at::Generator gen = at::detail::createCPUGenerator(0);
  model.calibrate(at::rand(input_shape, gen, at::kFloat));
  const bool integer = model.integer_plan()->integer_layers.count(node.name) > 0;
  onnx::ModelProto proto = export_qdq(model).model;
  onnx::GraphProto* g = proto.mutable_graph();

  if (integer) {
    // Drop the QuantizeLinear of the input and any DequantizeLinear of the
    // output: inside a chain the neighbours hand over uint8 tensors.
    std::string x_q, y_q;
    for (int i = g->node_size() - 1; i >= 0; --i) {
      const onnx::NodeProto& n = g->node(i);
      bool input_q = n.op_type() == "QuantizeLinear" && n.input(0) == "x";
      bool output_dq = n.op_type() == "DequantizeLinear" && n.output(0) == "y";
      if (!input_q && !output_dq) continue;
      (input_q ? x_q : y_q) = input_q ? n.output(0) : n.input(0);
      g->mutable_node()->DeleteSubrange(i, 1);
    }
    if (x_q.empty()) fail("layer {}: the integer export has no input QuantizeLinear", node.name);
    // The runner feeds "x" and reads "y": the uint8 tensors take those names.
    for (auto& n : *g->mutable_node()) {
      for (auto& in : *n.mutable_input()) {
        if (in == x_q) in = "x";
      }
      for (auto& out : *n.mutable_output()) {
        if (!y_q.empty() && out == y_q) out = "y";
      }
    }
    g->clear_input();
    set_uint8(g->add_input(), "x", input_shape);
    if (!y_q.empty()) {
      g->clear_output();
      set_uint8(g->add_output(), "y", output_shape);
    } else {
      // QGemm's float output: quantize it as the next integer reader would.
      add_scalar(g, "y_scale", at::full({}, 0.05, at::kFloat));
      add_scalar(g, "y_zero_point", at::full({}, 128, at::TensorOptions().dtype(at::kByte)));
      auto* q = g->add_node();
      q->set_op_type("QuantizeLinear");
      q->set_name("y/quantize");
      for (auto& n : *g->mutable_node()) {
        for (auto& out : *n.mutable_output()) {
          if (out == "y") out = "y_float";
        }
      }
      for (const char* in : {"y_float", "y_scale", "y_zero_point"}) q->add_input(in);
      q->add_output("y");
      g->clear_output();
      set_uint8(g->add_output(), "y", output_shape);
    }
    return proto.SerializeAsString();
  }

  // Float island: DequantizeLinear in (per axis, as export writes it for a
  // float layer), QuantizeLinear out.
  int64_t channels = input_shape.size() > 1 ? input_shape[1] : 1;
  int64_t axis = 1;
  if (node.op_type == "MatMul") {
    axis = -1;
    channels = input_shape.back();
  }
  onnx::GraphProto rebuilt;
  add_scalar(&rebuilt, "x_scale", at::full({channels}, 1.0 / 255, at::kFloat));
  add_scalar(&rebuilt, "x_zero_point", at::zeros({channels}, at::TensorOptions().dtype(at::kByte)));
  auto* dq = rebuilt.add_node();
  dq->set_op_type("DequantizeLinear");
  dq->set_name("x/dequantize");
  for (const char* in : {"x", "x_scale", "x_zero_point"}) dq->add_input(in);
  dq->add_output("x_float");
  auto* a = dq->add_attribute();
  a->set_name("axis");
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(axis);
  for (auto n : g->node()) {
    for (auto& in : *n.mutable_input()) {
      if (in == "x") in = "x_float";
    }
    for (auto& out : *n.mutable_output()) {
      if (out == "y") out = "y_float";
    }
    *rebuilt.add_node() = n;
  }
  add_scalar(&rebuilt, "y_scale", at::full({}, 0.05, at::kFloat));
  add_scalar(&rebuilt, "y_zero_point", at::full({}, 128, at::TensorOptions().dtype(at::kByte)));
  auto* q = rebuilt.add_node();
  q->set_op_type("QuantizeLinear");
  q->set_name("y/quantize");
  for (const char* in : {"y_float", "y_scale", "y_zero_point"}) q->add_input(in);
  q->add_output("y");
  for (const auto& t : g->initializer()) *rebuilt.add_initializer() = t;
  set_uint8(rebuilt.add_input(), "x", input_shape);
  set_uint8(rebuilt.add_output(), "y", output_shape);
  rebuilt.set_name(g->name());
  *g = rebuilt;
  return proto.SerializeAsString();
}

}  // namespace autoprec::deploy
