#include "exec/summary.h"

#include <ATen/ATen.h>

#include "graph/op_traits.h"
#include "graph/tensor_proto.h"
#include "util/error.h"

namespace autoprec::exec {

at::Tensor example_input(const graph::Graph& graph, size_t index, int64_t batch) {
  const graph::ValueInfo& info = graph.inputs.at(index);
  if (!info.has_shape || info.shape.empty()) fail("input '{}' has no declared shape", info.name);
  std::vector<int64_t> shape = info.shape;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] >= 0) continue;
    if (d != 0) fail("input '{}' has an unknown dimension {} besides the batch", info.name, d);
    shape[d] = batch;
  }
  at::ScalarType type = info.elem_type ? graph::scalar_type_from_onnx(info.elem_type) : at::kFloat;
  return at::zeros(shape, at::TensorOptions().dtype(type));
}

ModelSummary summarize(const Executor& executor) {
  const graph::Graph& g = executor.graph();
  std::map<std::string, std::vector<int64_t>> shapes;
  Tensors inputs;
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    inputs.push_back(example_input(g, i, 1));
    shapes[g.inputs[i].name] = inputs.back().sizes().vec();
  }
  Executor probe = executor;
  probe.set_observer([&](const std::string& name, const at::Tensor& t) { shapes[name] = t.sizes().vec(); });
  Tensors outputs = probe.run(inputs);

  ModelSummary summary;
  if (!inputs.empty()) summary.input_shape = inputs[0].sizes().vec();
  if (!outputs.empty()) summary.output_shape = outputs[0].sizes().vec();
  for (const auto& [name, t] : g.initializers) {
    if (t.is_floating_point()) summary.total_parameters += t.numel();
  }
  auto shape_of = [&](const std::string& name) -> std::vector<int64_t> {
    auto init = g.initializers.find(name);
    if (init != g.initializers.end()) return init->second.sizes().vec();
    auto it = shapes.find(name);
    return it == shapes.end() ? std::vector<int64_t>{} : it->second;
  };
  auto numel = [](const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
  };
  auto param_count = [&](const graph::Node& node, size_t first) {
    int64_t n = 0;
    for (size_t i = first; i < node.inputs.size(); ++i) {
      auto it = g.initializers.find(node.inputs[i]);
      if (it != g.initializers.end() && it->second.is_floating_point()) n += it->second.numel();
    }
    return n;
  };

  for (const graph::Node& node : g.nodes) {
    LayerInfo layer;
    layer.name = node.name;
    layer.op = node.op_type;
    if (node.inputs.empty() || node.outputs.empty()) continue;
    layer.input_shape = shape_of(node.inputs[0]);
    layer.output_shape = shape_of(node.outputs[0]);
    const graph::WeightedOpTraits* traits = graph::weighted_op(node);
    const bool weighted = traits != nullptr && node.inputs.size() > static_cast<size_t>(traits->weight_input) &&
                          g.initializers.count(node.inputs[traits->weight_input]) != 0;
    if (weighted) {
      layer.weight_shape = shape_of(node.inputs[traits->weight_input]);
      layer.macs = numel(layer.output_shape) * traits->macs_per_output(node, layer.weight_shape);
      layer.quantizable = traits->accepts(node, static_cast<int64_t>(layer.weight_shape.size()));
    } else if ((node.op_type == "BatchNormalization" || node.op_type == "LayerNormalization" ||
                node.op_type == "InstanceNormalization") && param_count(node, 1) > 0) {
      layer.macs = 0;
    } else {
      continue;
    }
    layer.parameters = param_count(node, 1);
    summary.total_macs += layer.macs;
    summary.layers.push_back(std::move(layer));
  }
  return summary;
}

}  // namespace autoprec::exec
