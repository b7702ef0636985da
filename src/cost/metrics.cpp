#include "cost/metrics.h"

#include <ATen/ATen.h>

#include <set>

namespace autoprec::cost {

CostSummary compute_costs(const graph::Graph& graph, const exec::ModelSummary& summary,
                          const std::vector<quant::QuantLayer>& layers,
                          const std::map<std::string, quant::LayerPrecision>& precision,
                          quant::Granularity granularity) {
  std::map<std::string, const exec::LayerInfo*> info;
  for (const auto& l : summary.layers) info[l.name] = &l;
  CostSummary total;
  std::set<std::string> counted;  // initializers accounted to a quantizable layer
  for (const quant::QuantLayer& layer : layers) {
    const graph::Node* node = graph.find_node(layer.name);
    const quant::LayerPrecision& p = precision.at(layer.name);
    LayerCost c;
    c.name = layer.name;
    c.op = layer.op;
    c.weight_bits = layer.weight_input >= 0 ? p.weight_bits : 32;
    c.activation_bits = p.activation_bits;
    auto it = info.find(layer.name);
    if (it != info.end()) {
      c.macs = it->second->macs;
      int64_t input = 1;
      for (int64_t d : it->second->input_shape) input *= d;
      c.activation_bits_in = static_cast<double>(input) * c.activation_bits;
    }
    int64_t channels = 1;
    if (layer.weight_input >= 0) {
      const at::Tensor& w = graph.initializers.at(node->inputs[layer.weight_input]);
      c.weights = w.numel();
      channels = granularity == quant::Granularity::PerChannel ? w.size(layer.channel_axis) : 1;
      counted.insert(node->inputs[layer.weight_input]);
    }
    if (node->inputs.size() > 2 && graph.initializers.count(node->inputs[2])) {
      c.biases = graph.initializers.at(node->inputs[2]).numel();
      counted.insert(node->inputs[2]);
    }
    bool float_weights = quant::is_float_bits(c.weight_bits);
    double scale_bits = float_weights || c.weights == 0 ? 0.0 : 32.0 * static_cast<double>(channels);
    double bias_bits = float_weights ? c.weight_bits : 32;
    c.weight_memory_bits = static_cast<double>(c.weights) * c.weight_bits + static_cast<double>(c.biases) * bias_bits + scale_bits;
    c.bops = static_cast<double>(c.macs) * c.weight_bits * c.activation_bits;
    total.weight_memory_bits += c.weight_memory_bits;
    total.fp32_weight_memory_bits += 32.0 * static_cast<double>(c.weights + c.biases);
    total.bops += c.bops;
    total.fp32_bops += 32.0 * 32.0 * static_cast<double>(c.macs);
    total.macs += c.macs;
    total.peak_activation_bits = std::max(total.peak_activation_bits, c.activation_bits_in);
    total.layers.push_back(c);
  }
  for (const auto& [name, t] : graph.initializers) {
    if (t.is_floating_point() && !counted.count(name)) {
      total.weight_memory_bits += 32.0 * static_cast<double>(t.numel());
      total.fp32_weight_memory_bits += 32.0 * static_cast<double>(t.numel());
    }
  }
  return total;
}

}  // namespace autoprec::cost
