#include "graph/onnx_export.h"

#include <onnx/checker.h>

#include "graph/tensor_proto.h"
#include "util/error.h"
#include "util/file.h"

namespace autoprec::graph {
namespace {

void write_attribute(const std::string& name, const Attribute& a, onnx::AttributeProto* proto) {
  proto->set_name(name);
  using Kind = Attribute::Kind;
  switch (a.kind) {
    case Kind::Int:
      proto->set_type(onnx::AttributeProto::INT);
      proto->set_i(a.i);
      break;
    case Kind::Float:
      proto->set_type(onnx::AttributeProto::FLOAT);
      proto->set_f(static_cast<float>(a.f));
      break;
    case Kind::String:
      proto->set_type(onnx::AttributeProto::STRING);
      proto->set_s(a.s);
      break;
    case Kind::Ints:
      proto->set_type(onnx::AttributeProto::INTS);
      for (int64_t v : a.ints) proto->add_ints(v);
      break;
    case Kind::Floats:
      proto->set_type(onnx::AttributeProto::FLOATS);
      for (double v : a.floats) proto->add_floats(static_cast<float>(v));
      break;
    case Kind::Strings:
      proto->set_type(onnx::AttributeProto::STRINGS);
      for (const std::string& v : a.strings) proto->add_strings(v);
      break;
    case Kind::Tensor:
      proto->set_type(onnx::AttributeProto::TENSOR);
      tensor_to_proto(a.t, "", proto->mutable_t());
      break;
  }
}

void write_value_info(const ValueInfo& info, onnx::ValueInfoProto* proto) {
  proto->set_name(info.name);
  auto* tensor_type = proto->mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(info.elem_type);
  if (!info.has_shape) return;
  auto* shape = tensor_type->mutable_shape();
  for (int64_t d : info.shape) {
    auto* dim = shape->add_dim();
    if (d >= 0) {
      dim->set_dim_value(d);
    } else {
      dim->set_dim_param("N");
    }
  }
}

}  // namespace

onnx::ModelProto to_model_proto(const Graph& graph, const std::map<std::string, at::Tensor>& initializers,
                                const std::map<std::string, std::string>& metadata, int64_t opset) {
  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);
  model.set_producer_name("autoprec");
  model.set_producer_version("0.1.0");
  auto* default_opset = model.add_opset_import();
  default_opset->set_domain("");
  default_opset->set_version(opset > 0 ? opset : graph.opset);
  std::map<std::string, bool> other_domains;
  for (const Node& node : graph.nodes) {
    if (!node.domain.empty() && node.domain != "ai.onnx") other_domains[node.domain] = true;
  }
  for (const auto& [domain, unused] : other_domains) {
    auto* entry = model.add_opset_import();
    entry->set_domain(domain);
    entry->set_version(1);
  }

  std::map<std::string, std::string> props = graph.metadata;
  for (const auto& [key, value] : metadata) props[key] = value;
  for (const auto& [key, value] : props) {
    auto* entry = model.add_metadata_props();
    entry->set_key(key);
    entry->set_value(value);
  }

  onnx::GraphProto* g = model.mutable_graph();
  g->set_name(graph.name.empty() ? "autoprec" : graph.name);
  for (const ValueInfo& input : graph.inputs) write_value_info(input, g->add_input());
  for (const ValueInfo& output : graph.outputs) write_value_info(output, g->add_output());
  for (const auto& [name, tensor] : graph.initializers) {
    auto replaced = initializers.find(name);
    tensor_to_proto(replaced != initializers.end() ? replaced->second : tensor, name, g->add_initializer());
  }
  for (const Node& node : graph.nodes) {
    onnx::NodeProto* proto = g->add_node();
    proto->set_name(node.name);
    proto->set_op_type(node.op_type);
    if (!node.domain.empty()) proto->set_domain(node.domain);
    for (const std::string& input : node.inputs) proto->add_input(input);
    for (const std::string& output : node.outputs) proto->add_output(output);
    for (const auto& [name, attribute] : node.attributes) write_attribute(name, attribute, proto->add_attribute());
  }
  return model;
}

void save_model_proto(const onnx::ModelProto& model, const std::string& path, bool check) {
  if (check) {
    try {
      onnx::checker::check_model(model);
    } catch (const std::exception& e) {
      std::string message = e.what();
      fail("the model for {} fails the ONNX checker: {}", path, message.substr(0, message.find('\n')));
    }
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) fail("cannot serialize the model for {}", path);
  write_file_atomically(path, bytes, "ONNX model");
}

}  // namespace autoprec::graph
