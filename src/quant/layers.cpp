#include "quant/layers.h"

#include <ATen/ATen.h>

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
    if (!node.domain.empty() || node.inputs.size() < 2) continue;
    if (node.op_type != "Conv" && node.op_type != "Gemm" && node.op_type != "MatMul") continue;
    auto weight = graph.initializers.find(node.inputs[1]);
    bool has_weight = weight != graph.initializers.end() && weight->second.is_floating_point() && weight->second.dim() >= 2;
    QuantLayer layer;
    layer.name = node.name;
    layer.op = node.op_type;
    layer.activation = node.inputs[0];
    layer.nonnegative_input = produces_nonnegative(graph, node.inputs[0]);
    if (has_weight) {
      const at::Tensor& w = weight->second;
      if (node.op_type == "Conv") {
        layer.channel_axis = 0;
        int64_t groups = node.get_int("group", 1);
        layer.depthwise = groups > 1 && w.size(1) == 1;
      } else if (node.op_type == "Gemm") {
        if (node.get_int("transA", 0) != 0) continue;
        layer.channel_axis = node.get_int("transB", 0) ? 0 : 1;
      } else {
        layer.channel_axis = w.dim() - 1;
      }
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
