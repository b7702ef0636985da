#include "graph/onnx_import.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include "graph/tensor_proto.h"
#include "util/error.h"

namespace autoprec::graph {
namespace {

ValueInfo convert_value_info(const onnx::ValueInfoProto& proto) {
  ValueInfo info;
  info.name = proto.name();
  if (!proto.type().has_tensor_type()) return info;
  const auto& tensor_type = proto.type().tensor_type();
  info.elem_type = tensor_type.elem_type();
  if (tensor_type.has_shape()) {
    info.has_shape = true;
    for (const auto& dim : tensor_type.shape().dim()) {
      info.shape.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
    }
  }
  return info;
}

Attribute convert_attribute(const onnx::AttributeProto& proto, const std::string& base_dir) {
  Attribute a;
  switch (proto.type()) {
    case onnx::AttributeProto::INT:
      a.kind = Attribute::Kind::Int;
      a.i = proto.i();
      break;
    case onnx::AttributeProto::FLOAT:
      a.kind = Attribute::Kind::Float;
      a.f = proto.f();
      break;
    case onnx::AttributeProto::STRING:
      a.kind = Attribute::Kind::String;
      a.s = proto.s();
      break;
    case onnx::AttributeProto::INTS:
      a.kind = Attribute::Kind::Ints;
      a.ints.assign(proto.ints().begin(), proto.ints().end());
      break;
    case onnx::AttributeProto::FLOATS:
      a.kind = Attribute::Kind::Floats;
      a.floats.assign(proto.floats().begin(), proto.floats().end());
      break;
    case onnx::AttributeProto::STRINGS:
      a.kind = Attribute::Kind::Strings;
      a.strings.assign(proto.strings().begin(), proto.strings().end());
      break;
    case onnx::AttributeProto::TENSOR:
      a.kind = Attribute::Kind::Tensor;
      a.t = tensor_from_proto(proto.t(), base_dir);
      break;
    default:
      // Graph-valued and sparse attributes belong to operators autoprec does
      // not execute; keep a placeholder so the operator check can name them.
      a.kind = Attribute::Kind::String;
      a.s = "<unsupported attribute type>";
      break;
  }
  return a;
}

// libonnx's shape inference divides by strides and similar attributes
// without checking them; reject non-positive values and subgraphs before it
// runs.
void check_window_attributes(const onnx::GraphProto& g, const std::string& origin) {
  static const char* positive[] = {"strides", "dilations", "kernel_shape", "blocksize"};
  for (const auto& node : g.node()) {
    for (const auto& attr : node.attribute()) {
      // Subgraphs (If, Loop, Scan) would go through the same unchecked
      // inference, and autoprec does not execute control flow.
      if (attr.type() == onnx::AttributeProto::GRAPH || attr.type() == onnx::AttributeProto::GRAPHS) {
        fail("{}: node '{}' ({}) has a subgraph; autoprec does not support control-flow operators", origin,
             node.name(), node.op_type());
      }
      for (const char* name : positive) {
        if (attr.name() != name) continue;
        bool ok = attr.type() != onnx::AttributeProto::INTS || std::all_of(attr.ints().begin(), attr.ints().end(), [](int64_t v) { return v > 0; });
        if (attr.type() == onnx::AttributeProto::INT) ok = attr.i() > 0;
        if (!ok) fail("{}: node '{}' ({}) has a non-positive '{}' attribute", origin, node.name(), node.op_type(), name);
      }
    }
  }
}

// libonnx's shape inference reads a sparse (or sequence, map, optional) value
// as a tensor without a shape and indexes past it; autoprec runs dense
// tensors only, so such values are refused before it runs.
void check_dense_values(const onnx::GraphProto& g, const std::string& origin) {
  auto check = [&](const onnx::ValueInfoProto& v, const char* what) {
    switch (v.type().value_case()) {
      case onnx::TypeProto::VALUE_NOT_SET:
      case onnx::TypeProto::kTensorType: return;
      case onnx::TypeProto::kSparseTensorType: fail("{}: {} '{}' is a sparse tensor; autoprec runs dense tensors only", origin, what, v.name());
      default: fail("{}: {} '{}' is not a tensor (a sequence, map or optional); autoprec runs tensors only", origin, what, v.name());
    }
  };
  for (const auto& v : g.input()) check(v, "graph input");
  for (const auto& v : g.output()) check(v, "graph output");
  for (const auto& v : g.value_info()) check(v, "value");
  // Operators that make or take sequences and optionals: their values reach
  // tensor operators' inference the same way.
  static const std::set<std::string> non_tensor_ops = {
      "SequenceConstruct", "SequenceEmpty", "SequenceInsert", "SequenceErase", "SequenceAt", "SequenceLength",
      "SplitToSequence", "ConcatFromSequence", "SequenceMap", "Optional", "OptionalGetElement", "OptionalHasElement"};
  for (const auto& node : g.node()) {
    if ((node.domain().empty() || node.domain() == "ai.onnx") && non_tensor_ops.count(node.op_type())) {
      fail("{}: node '{}' ({}) works on sequences or optionals; autoprec runs tensors only", origin, node.name(),
           node.op_type());
    }
  }
  if (g.sparse_initializer_size() > 0) {
    fail("{}: initializer '{}' is sparse; autoprec runs dense tensors only", origin,
         g.sparse_initializer(0).values().name());
  }
}

// Statically known dimensions of a value before shape inference (-1 where
// symbolic), from initializers, declared graph inputs and Constant nodes.
std::map<std::string, std::vector<int64_t>> declared_dims(const onnx::GraphProto& g) {
  std::map<std::string, std::vector<int64_t>> dims;
  for (const auto& input : g.input()) {
    if (!input.type().has_tensor_type() || !input.type().tensor_type().has_shape()) continue;
    auto& d = dims[input.name()];
    for (const auto& dim : input.type().tensor_type().shape().dim()) d.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
  }
  for (const auto& init : g.initializer()) dims[init.name()].assign(init.dims().begin(), init.dims().end());
  for (const auto& node : g.node()) {
    if (node.op_type() != "Constant" || node.output_size() != 1) continue;
    for (const auto& attr : node.attribute()) {
      if (attr.name() == "value" && attr.has_t()) dims[node.output(0)].assign(attr.t().dims().begin(), attr.t().dims().end());
    }
  }
  return dims;
}

// libonnx 1.12 infers a Conv's kernel from its weight's rank and then indexes
// the input's dimensions with it unchecked, so a weight whose rank does not
// match the input crashes it. Pin kernel_shape from the weight, which the
// spec says it equals, so libonnx's own size check applies; refuse when the
// weight's shape is not known statically.
void pin_conv_kernel_shapes(onnx::GraphProto* g, const std::string& origin) {
  const auto dims = declared_dims(*g);
  for (auto& node : *g->mutable_node()) {
    const std::string& op = node.op_type();
    if (!node.domain().empty() && node.domain() != "ai.onnx") continue;
    if (op != "Conv" && op != "ConvInteger" && op != "QLinearConv") continue;
    bool has_kernel_shape = std::any_of(node.attribute().begin(), node.attribute().end(),
                                        [](const onnx::AttributeProto& a) { return a.name() == "kernel_shape"; });
    if (has_kernel_shape) continue;
    const int weight_index = op == "QLinearConv" ? 3 : 1;
    if (node.input_size() <= weight_index) continue;  // the checker reports missing inputs
    auto weight = dims.find(node.input(weight_index));
    if (weight == dims.end()) {
      fail("{}: node '{}' ({}) has no kernel_shape attribute and the shape of its weight '{}' is not declared", origin,
           node.name(), op, node.input(weight_index));
    }
    auto input = dims.find(node.input(0));
    if (input != dims.end() && input->second.size() != weight->second.size()) {
      fail("{}: node '{}' ({}) has a weight '{}' of rank {} for an input '{}' of rank {}", origin, node.name(), op,
           weight->first, weight->second.size(), input->first, input->second.size());
    }
    if (weight->second.size() < 3) {
      fail("{}: node '{}' ({}) has a weight '{}' of rank {}; a convolution weight has rank 3 or more", origin,
           node.name(), op, weight->first, weight->second.size());
    }
    if (std::any_of(weight->second.begin() + 2, weight->second.end(), [](int64_t d) { return d < 1; })) continue;
    auto* attr = node.add_attribute();
    attr->set_name("kernel_shape");
    attr->set_type(onnx::AttributeProto::INTS);
    for (auto it = weight->second.begin() + 2; it != weight->second.end(); ++it) attr->add_ints(*it);
  }
}

// libonnx 1.12's Gemm shape inference indexes A's and B's two dimensions
// without checking their rank, so a declared vector or scalar crashes it.
void check_gemm_ranks(const onnx::GraphProto& g, const std::string& origin) {
  const auto dims = declared_dims(g);
  for (const auto& node : g.node()) {
    if (node.op_type() != "Gemm" || (!node.domain().empty() && node.domain() != "ai.onnx")) continue;
    for (int i = 0; i < 2 && i < node.input_size(); ++i) {
      auto d = dims.find(node.input(i));
      if (d != dims.end() && d->second.size() != 2) {
        fail("{}: node '{}' (Gemm) input '{}' has rank {}; Gemm multiplies matrices (rank 2)", origin, node.name(),
             node.input(i), d->second.size());
      }
    }
  }
}

// Errors here name no file; the caller prefixes the origin.
Graph convert_graph(const onnx::ModelProto& model, int64_t opset, const std::string& base_dir) {
  const onnx::GraphProto& g = model.graph();
  Graph graph;
  graph.name = g.name();
  graph.opset = opset;
  for (const auto& prop : model.metadata_props()) graph.metadata[prop.key()] = prop.value();

  for (const auto& init : g.initializer()) {
    graph.initializers[init.name()] = tensor_from_proto(init, base_dir);
  }
  for (const auto& input : g.input()) {
    if (graph.initializers.count(input.name())) continue;
    graph.inputs.push_back(convert_value_info(input));
  }
  for (const auto& output : g.output()) graph.outputs.push_back(convert_value_info(output));
  for (const auto& info : g.value_info()) graph.value_info[info.name()] = convert_value_info(info);

  std::map<std::string, int> name_counts;
  for (int i = 0; i < g.node_size(); ++i) {
    const onnx::NodeProto& proto = g.node(i);
    Node node;
    node.op_type = proto.op_type();
    node.domain = proto.domain() == "ai.onnx" ? "" : proto.domain();
    node.name = proto.name().empty() ? fmt::format("{}_{}", proto.op_type(), i) : proto.name();
    if (name_counts[node.name]++ > 0) node.name = fmt::format("{}_{}", node.name, i);
    node.inputs.assign(proto.input().begin(), proto.input().end());
    node.outputs.assign(proto.output().begin(), proto.output().end());
    for (const auto& attr : proto.attribute()) {
      node.attributes[attr.name()] = convert_attribute(attr, base_dir);
    }
    graph.nodes.push_back(std::move(node));
  }
  if (graph.outputs.empty()) fail("the model has no graph outputs");
  graph.sort_topologically();
  return graph;
}

}  // namespace

Graph import_onnx_bytes(const std::string& bytes, const std::string& origin, const std::string& base_dir) {
  if (bytes.empty()) fail("{} is empty, not an ONNX model", origin);
  onnx::ModelProto model;
  if (!model.ParseFromString(bytes)) {
    fail("{} is not an ONNX model or is truncated (protobuf parse failed)", origin);
  }
  if (!model.has_graph()) fail("{} is not an ONNX model: it has no graph", origin);

  int64_t opset = 0;
  for (const auto& entry : model.opset_import()) {
    if (entry.domain().empty() || entry.domain() == "ai.onnx") opset = entry.version();
  }
  if (opset == 0) fail("{} declares no default-domain opset", origin);
  if (opset > kMaxOpset) {
    for (const auto& p : model.metadata_props()) {
      if (p.key() == "autoprec.source_model") {
        fail("{} is a QDQ file autoprec exported (opset {}, 4-bit types), which ONNX Runtime runs and autoprec does "
             "not; use the float model it came from ({})",
             origin, opset, p.value());
      }
    }
    fail("{} uses ONNX opset {}; autoprec supports opsets {} to {} (re-export with opset_version={})", origin, opset,
         kMinOpset, kMaxOpset, kMaxOpset);
  }
  if (opset < kMinOpset) {
    fail("{} uses ONNX opset {}; autoprec supports opsets {} to {}", origin, opset, kMinOpset, kMaxOpset);
  }

  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    std::string message = e.what();
    auto newline = message.find('\n');
    if (newline != std::string::npos) message = message.substr(0, newline);
    fail("{} fails the ONNX checker: {}", origin, message);
  }

  check_window_attributes(model.graph(), origin);
  check_dense_values(model.graph(), origin);
  pin_conv_kernel_shapes(model.mutable_graph(), origin);
  check_gemm_ranks(model.graph(), origin);
  try {
    onnx::ShapeInferenceOptions options{false, 0, false};
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception& e) {
    std::string message = e.what();
    auto newline = message.find('\n');
    if (newline != std::string::npos) message = message.substr(0, newline);
    fail("{}: ONNX shape inference failed: {}", origin, message);
  }

  try {
    return convert_graph(model, opset, base_dir);
  } catch (const UserError& e) {
    fail("{}: {}", origin, e.what());
  }
}


Graph import_onnx_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail("model file {} is a directory, not an .onnx file", path);
  if (!std::filesystem::is_regular_file(path, ec)) fail("model file {} does not exist", path);
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("cannot read model file {}", path);
  std::ostringstream buffer;
  buffer << file.rdbuf();
  std::string base_dir = std::filesystem::path(path).parent_path().string();
  return import_onnx_bytes(buffer.str(), path, base_dir);
}

}  // namespace autoprec::graph
