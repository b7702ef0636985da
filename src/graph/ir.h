// Graph IR: the in-memory form of an ONNX model that every later stage
// (executor, quantizers, cost models, export) works on.
//
// Values are identified by the names they carry in the ONNX file, so that
// users recognise their layers in every table autoprec prints. Nodes are kept
// in topological order. Initializers (weights, constants) are libtorch
// tensors; graph inputs never include initializers.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace autoprec::graph {

// One ONNX node attribute. Only the kinds autoprec's operators use.
struct Attribute {
  enum class Kind { Int, Float, String, Ints, Floats, Strings, Tensor };
  Kind kind = Kind::Int;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  at::Tensor t;
};

struct Node {
  std::string name;     // unique; nodes without a name in the file get "<op>_<index>"
  std::string op_type;  // ONNX operator name, e.g. "Conv"
  std::string domain;   // "" for the default ONNX domain
  std::vector<std::string> inputs;   // value names; "" marks an omitted optional input
  std::vector<std::string> outputs;  // value names
  std::map<std::string, Attribute> attributes;

  bool has(const std::string& attr) const { return attributes.count(attr) != 0; }
  // Attribute accessors with defaults; a present attribute of the wrong kind is a UserError.
  int64_t get_int(const std::string& attr, int64_t fallback) const;
  double get_float(const std::string& attr, double fallback) const;
  std::string get_string(const std::string& attr, const std::string& fallback) const;
  std::vector<int64_t> get_ints(const std::string& attr, std::vector<int64_t> fallback = {}) const;
  std::vector<double> get_floats(const std::string& attr, std::vector<double> fallback = {}) const;
  at::Tensor get_tensor(const std::string& attr) const;
};

// Element type and shape of a value; a dimension of -1 is unknown (e.g. batch).
struct ValueInfo {
  std::string name;
  int32_t elem_type = 0;        // onnx::TensorProto::DataType
  std::vector<int64_t> shape;   // empty with has_shape=false when the rank is unknown
  bool has_shape = false;
};

struct Graph {
  std::string name;
  int64_t opset = 0;  // default-domain opset the model was written for
  std::vector<Node> nodes;
  std::map<std::string, at::Tensor> initializers;
  std::vector<ValueInfo> inputs;   // runtime inputs, in file order
  std::vector<ValueInfo> outputs;  // in file order
  std::map<std::string, ValueInfo> value_info;  // shapes from ONNX shape inference
  std::map<std::string, std::string> metadata;  // metadata_props

  // The node producing `value`, or nullptr for graph inputs and initializers.
  const Node* producer(const std::string& value) const;
  // Nodes that read `value`.
  std::vector<const Node*> consumers(const std::string& value) const;
  // Known shape of a value: initializer shape, else inferred shape, else nullopt.
  std::optional<std::vector<int64_t>> shape_of(const std::string& value) const;
  const Node* find_node(const std::string& name) const;
  // Re-sorts `nodes` topologically; UserError if the graph has a cycle or reads an undefined value.
  void sort_topologically();
  // The names of `inputs`, in order.
  std::vector<std::string> input_names() const;
};

}  // namespace autoprec::graph
