#include "quant/layers.h"

#include <ATen/ATen.h>

#include "graph/op_traits.h"

namespace autoprec::quant {

bool produces_nonnegative(const graph::Graph& graph, const std::string& value) {
  const graph::Node* producer = graph.producer(value);
  if (!producer) return false;
  const std::string& op = producer->op_type;
  if (op == "Relu" || op == "Sigmoid" || op == "HardSigmoid" || op == "Softmax") return true;
  if (op == "Clip") {
    if (producer->has("min")) return producer->get_float("min", -1) >= 0;
    if (producer->inputs.size() > 1 && graph.initializers.count(producer->inputs[1])) {
      return graph.initializers.at(producer->inputs[1]).item<double>() >= 0;
    }
    return false;
  }
  if (op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool" || op == "Flatten" || op == "Reshape") {
    return !producer->inputs.empty() && produces_nonnegative(graph, producer->inputs[0]);
  }
  return false;
}

std::vector<QuantLayer> find_quantizable_layers(const graph::Graph& graph, bool include_activation_matmul) {
  std::vector<QuantLayer> layers;
  for (const graph::Node& node : graph.nodes) {
    const graph::WeightedOpTraits* traits = graph::weighted_op(node);
    if (traits == nullptr || node.inputs.size() <= static_cast<size_t>(traits->weight_input)) continue;
    auto weight = graph.initializers.find(node.inputs[traits->weight_input]);
    const bool has_weight = weight != graph.initializers.end() && weight->second.is_floating_point() &&
                            weight->second.dim() >= 2 && traits->accepts(node, weight->second.dim());
    QuantLayer layer;
    layer.name = node.name;
    layer.op = node.op_type;
    layer.weight_input = traits->weight_input;
    layer.activation = node.inputs[0];
    layer.nonnegative_input = produces_nonnegative(graph, node.inputs[0]);
    if (has_weight) {
      const at::Tensor& w = weight->second;
      layer.channel_axis = traits->channel_axis(node, w.sizes().vec());
      layer.depthwise = node.op_type == "Conv" && node.get_int("group", 1) > 1 && w.size(1) == 1;
    } else if (node.op_type == "MatMul" && include_activation_matmul && !graph.initializers.count(node.inputs[0])) {
      layer.weight_input = -1;
      layer.second_activation = node.inputs[1];
    } else {
      continue;
    }
    layers.push_back(std::move(layer));
  }
  return layers;
}

std::vector<std::string> layer_names(const std::vector<QuantLayer>& layers) {
  std::vector<std::string> names;
  for (const auto& l : layers) names.push_back(l.name);
  return names;
}

}  // namespace autoprec::quant
