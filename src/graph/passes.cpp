#include "graph/passes.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <set>

#include "util/error.h"

namespace autoprec::graph {
namespace {

bool is_graph_output(const Graph& graph, const std::string& value) {
  return std::any_of(graph.outputs.begin(), graph.outputs.end(), [&](const ValueInfo& v) { return v.name == value; });
}

int use_count(const Graph& graph, const std::string& value) {
  int count = 0;
  for (const Node& n : graph.nodes) count += static_cast<int>(std::count(n.inputs.begin(), n.inputs.end(), value));
  return count + (is_graph_output(graph, value) ? 1 : 0);
}

bool initializer_input(const Graph& graph, const Node& node, size_t index) {
  return index < node.inputs.size() && graph.initializers.count(node.inputs[index]) != 0;
}

// Folds BN `bn` into the layer `layer`; returns false (graph untouched) when the pattern does not apply.
bool fold_one(Graph& graph, Node& layer, const Node& bn) {
  if (bn.inputs.size() < 5 || bn.outputs.empty()) return false;
  for (size_t i = 1; i < 5; ++i) {
    if (!initializer_input(graph, bn, i)) return false;
  }
  if (!initializer_input(graph, layer, 1) || use_count(graph, layer.inputs[1]) != 1) return false;
  if (use_count(graph, layer.outputs[0]) != 1) return false;
  if (bn.outputs.size() > 1) {
    for (size_t i = 1; i < bn.outputs.size(); ++i) {
      if (!bn.outputs[i].empty() && use_count(graph, bn.outputs[i]) > 0) return false;
    }
  }
  if (bn.get_int("training_mode", 0) != 0) return false;

  at::Tensor weight = graph.initializers.at(layer.inputs[1]);
  if (!weight.is_floating_point()) return false;
  const auto options = at::TensorOptions().dtype(at::kDouble);
  at::Tensor gamma = graph.initializers.at(bn.inputs[1]).to(options);
  at::Tensor beta = graph.initializers.at(bn.inputs[2]).to(options);
  at::Tensor mean = graph.initializers.at(bn.inputs[3]).to(options);
  at::Tensor var = graph.initializers.at(bn.inputs[4]).to(options);
  double eps = bn.get_float("epsilon", 1e-5);
  at::Tensor scale = gamma / at::sqrt(var + eps);

  int64_t out_channels = 0;
  int64_t out_axis = 0;
  if (layer.op_type == "Conv") {
    out_channels = weight.size(0);
  } else if (layer.op_type == "Gemm") {
    if (layer.get_float("alpha", 1.0) != 1.0 || layer.get_float("beta", 1.0) != 1.0) return false;
    if (layer.get_int("transA", 0) != 0) return false;
    out_axis = layer.get_int("transB", 0) ? 0 : 1;
    out_channels = weight.size(out_axis);
  } else {
    return false;
  }
  if (scale.numel() != out_channels) return false;

  at::Tensor bias = at::zeros({out_channels}, options);
  bool has_bias = layer.inputs.size() > 2 && !layer.inputs[2].empty();
  if (has_bias) {
    if (!initializer_input(graph, layer, 2) || use_count(graph, layer.inputs[2]) != 1) return false;
    at::Tensor b = graph.initializers.at(layer.inputs[2]);
    if (b.numel() != out_channels) return false;
    bias = b.to(options).reshape({out_channels});
  }

  std::vector<int64_t> scale_shape(weight.dim(), 1);
  scale_shape[out_axis] = out_channels;
  at::Tensor new_weight = (weight.to(options) * scale.reshape(scale_shape)).to(weight.scalar_type());
  at::Tensor new_bias = ((bias - mean) * scale + beta).to(weight.scalar_type());

  graph.initializers[layer.inputs[1]] = new_weight;
  std::string bias_name = has_bias ? layer.inputs[2] : layer.name + ".bias";
  while (!has_bias && graph.initializers.count(bias_name)) bias_name += "_";
  graph.initializers[bias_name] = new_bias;
  if (layer.inputs.size() < 3) layer.inputs.resize(3);
  layer.inputs[2] = bias_name;
  layer.outputs[0] = bn.outputs[0];
  return true;
}

}  // namespace

void replace_uses(Graph& graph, const std::string& from, const std::string& to) {
  for (Node& n : graph.nodes) {
    for (std::string& in : n.inputs) {
      if (in == from) in = to;
    }
  }
}

int fold_batchnorm(Graph& graph) {
  int folded = 0;
  std::set<std::string> removed;
  for (Node& bn : graph.nodes) {
    if (bn.op_type != "BatchNormalization" || !bn.domain.empty() || bn.inputs.empty()) continue;
    // The producer is found by index so that `layer` stays a mutable reference.
    for (Node& layer : graph.nodes) {
      if (layer.outputs.empty() || layer.outputs[0] != bn.inputs[0]) continue;
      if ((layer.op_type == "Conv" || layer.op_type == "Gemm") && layer.domain.empty() && fold_one(graph, layer, bn)) {
        removed.insert(bn.name);
        ++folded;
      }
      break;
    }
  }
  graph.nodes.erase(std::remove_if(graph.nodes.begin(), graph.nodes.end(),
                                   [&](const Node& n) { return removed.count(n.name) != 0; }),
                    graph.nodes.end());
  if (folded) remove_dead_nodes(graph);
  return folded;
}

int remove_identity_and_dropout(Graph& graph) {
  int removed = 0;
  std::vector<Node> kept;
  kept.reserve(graph.nodes.size());
  for (Node& n : graph.nodes) {
    bool passthrough = (n.op_type == "Identity" || n.op_type == "Dropout") && n.domain.empty() && !n.inputs.empty() &&
                       !n.outputs.empty() && !is_graph_output(graph, n.outputs[0]);
    if (passthrough && n.op_type == "Dropout") {
      // A Dropout whose mask output is read, or that is forced into training mode, is not an identity.
      bool mask_used = n.outputs.size() > 1 && !n.outputs[1].empty() && use_count(graph, n.outputs[1]) > 0;
      bool training = n.inputs.size() > 2 && !n.inputs[2].empty();
      passthrough = !mask_used && !training;
    }
    if (passthrough) {
      replace_uses(graph, n.outputs[0], n.inputs[0]);
      ++removed;
    } else {
      kept.push_back(std::move(n));
    }
  }
  graph.nodes = std::move(kept);
  return removed;
}

int remove_dead_nodes(Graph& graph) {
  int removed = 0;
  bool changed = true;
  while (changed) {
    changed = false;
    std::set<std::string> used;
    for (const Node& n : graph.nodes) used.insert(n.inputs.begin(), n.inputs.end());
    for (const ValueInfo& v : graph.outputs) used.insert(v.name);
    auto dead = [&](const Node& n) {
      return std::none_of(n.outputs.begin(), n.outputs.end(), [&](const std::string& o) { return used.count(o) != 0; });
    };
    auto end = std::remove_if(graph.nodes.begin(), graph.nodes.end(), dead);
    if (end != graph.nodes.end()) {
      removed += static_cast<int>(graph.nodes.end() - end);
      graph.nodes.erase(end, graph.nodes.end());
      changed = true;
    }
    for (auto it = graph.initializers.begin(); it != graph.initializers.end();) {
      if (!used.count(it->first)) {
        it = graph.initializers.erase(it);
      } else {
        ++it;
      }
    }
  }
  return removed;
}

}  // namespace autoprec::graph
