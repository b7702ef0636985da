#include "quant/integer_form.h"

#include <ATen/ATen.h>

#include "util/error.h"

namespace autoprec::quant {
namespace {

const std::set<std::string> kOwnScaleOps = {"Add", "Mul", "GlobalAveragePool", "AveragePool", "Concat"};
const std::set<std::string> kPassThroughOps = {"MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"};

bool is_constant(const graph::Graph& g, const std::string& value) {
  if (g.initializers.count(value)) return true;
  const graph::Node* p = g.producer(value);
  return p && p->op_type == "Constant";
}

std::optional<double> constant_scalar(const graph::Graph& g, const std::string& value) {
  auto it = g.initializers.find(value);
  if (it != g.initializers.end() && it->second.numel() == 1) return it->second.item<double>();
  return std::nullopt;
}

bool absorbable(const graph::Graph& g, const graph::Node& node) {
  if (node.op_type == "Relu") return true;
  if (node.op_type != "Clip") return false;
  if (node.has("min")) return node.get_float("min", -1) >= 0;
  if (node.inputs.size() < 2 || node.inputs[1].empty()) return false;
  std::optional<double> lo = constant_scalar(g, node.inputs[1]);
  return lo && *lo >= 0;
}

// The activation inputs an integer node reads through DequantizeLinear.
std::vector<std::string> activation_inputs(const graph::Graph& g, const graph::Node& node, bool layer) {
  if (layer || kPassThroughOps.count(node.op_type)) return {node.inputs.at(0)};
  std::vector<std::string> out;
  for (const std::string& in : node.inputs) {
    if (!in.empty() && !is_constant(g, in)) out.push_back(in);
  }
  return out;
}

bool output_nonnegative(const graph::Graph& g, const std::string& value, const std::map<std::string, bool>& known) {
  auto it = known.find(value);
  if (it != known.end()) return it->second;
  return produces_nonnegative(g, value);
}

}  // namespace

const IntegerTensor* IntegerPlan::find(const std::string& value) const {
  for (const IntegerTensor& t : tensors) {
    if (t.value == value) return &t;
  }
  return nullptr;
}

std::vector<std::string> IntegerPlan::roots() const {
  std::vector<std::string> out;
  for (const IntegerTensor& t : tensors) {
    if (t.root == t.value) out.push_back(t.value);
  }
  return out;
}

IntegerPlan plan_integer_form(const graph::Graph& g, const std::vector<QuantLayer>& layers,
                              const std::map<std::string, LayerPrecision>& precision) {
  IntegerPlan plan;
  std::map<std::string, const QuantLayer*> layer_by_name;
  for (const QuantLayer& layer : layers) {
    const LayerPrecision& p = precision.at(layer.name);
    if (!is_float_bits(p.activation_bits) && p.activation_bits != 8) {
      fail("layer '{}' asks for {}-bit activations; the integer form (format int) holds activations in 8 bits or "
           "float (use format qdq for narrower activations)",
           layer.name, p.activation_bits);
    }
    const graph::Node* node = g.find_node(layer.name);
    // QGemm folds the bias in at scale s_x * s_w: alpha and beta must be 1.
    bool plain_gemm = layer.op != "Gemm" || (node->get_float("alpha", 1.0) == 1.0 && node->get_float("beta", 1.0) == 1.0);
    if (layer.weight_input >= 0 && !is_float_bits(p.weight_bits) && p.activation_bits == 8 && plain_gemm) {
      layer_by_name[layer.name] = &layer;
    }
  }

  // Values written by integer nodes (after absorption) and every quantized
  // value's root, in the order they are first seen.
  std::map<std::string, std::string> root_of;
  std::map<std::string, bool> nonnegative;
  std::set<std::string> integer_produced;
  std::vector<std::string> order;
  auto add = [&](const std::string& value, const std::string& root) {
    if (root_of.emplace(value, root).second) order.push_back(value);
  };

  for (const graph::Node& node : g.nodes) {
    if (plan.absorbed.count(node.name)) continue;
    bool is_layer = layer_by_name.count(node.name) > 0;
    bool integer = is_layer;
    if (!is_layer && (kOwnScaleOps.count(node.op_type) || kPassThroughOps.count(node.op_type)) && !node.inputs.empty()) {
      std::vector<std::string> ins = activation_inputs(g, node, false);
      bool binary = node.op_type == "Add" || node.op_type == "Mul";
      if (!ins.empty() && (!binary || ins.size() == 2)) {
        for (const std::string& in : kPassThroughOps.count(node.op_type) ? std::vector<std::string>{ins[0]} : ins) {
          if (integer_produced.count(in)) integer = true;
        }
      }
    }
    if (!integer) continue;
    plan.integer_nodes.insert(node.name);
    if (is_layer) plan.integer_layers.insert(node.name);
    for (const std::string& in : activation_inputs(g, node, is_layer)) {
      if (!root_of.count(in)) add(in, in);
    }
    const std::string& out = node.outputs.at(0);
    if (kPassThroughOps.count(node.op_type)) {
      add(out, root_of.at(node.inputs.at(0)));
      nonnegative[out] = output_nonnegative(g, node.inputs.at(0), nonnegative);
      integer_produced.insert(out);
      continue;
    }
    std::string produced = out;
    std::vector<const graph::Node*> readers = g.consumers(out);
    bool is_output = false;
    for (const auto& v : g.outputs) is_output = is_output || v.name == out;
    // Gemm and MatMul have integer kernels with a float output (QGemm,
    // MatMulIntegerToFloat): a graph output they write stays float.
    if (is_output && readers.empty() && is_layer && node.op_type != "Conv") continue;
    if (!is_output && readers.size() == 1 && absorbable(g, *readers[0])) {
      plan.absorbed.insert(readers[0]->name);
      produced = readers[0]->outputs.at(0);
      nonnegative[produced] = true;
    }
    add(produced, produced);
    integer_produced.insert(produced);
  }

  for (const std::string& value : order) {
    IntegerTensor t;
    t.value = value;
    t.root = root_of.at(value);
    t.nonnegative = output_nonnegative(g, value, nonnegative);
    t.from_float = t.root == value && !integer_produced.count(value);
    if (t.from_float) ++plan.float_to_integer;
    plan.tensors.push_back(t);
  }
  for (const graph::Node& node : g.nodes) {
    if (plan.integer_nodes.count(node.name) || plan.absorbed.count(node.name)) continue;
    bool touches = false;
    for (const std::string& in : node.inputs) {
      if (!in.empty() && root_of.count(in)) {
        touches = true;
        ++plan.integer_to_float;
      }
    }
    for (const std::string& out : node.outputs) touches = touches || root_of.count(out);
    if (touches) plan.float_nodes.push_back(node.name);
  }
  return plan;
}

}  // namespace autoprec::quant
