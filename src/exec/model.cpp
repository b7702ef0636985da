#include "exec/model.h"

#include <ATen/ATen.h>

#include "exec/registry.h"
#include "graph/onnx_import.h"
#include "graph/passes.h"
#include "util/error.h"

namespace autoprec::exec {

int fold_constants(graph::Graph& graph) {
  // No gradients, but not InferenceMode: folded values become initializers
  // that training saves for backward (a ViT's 1/sqrt(d) before a Div), which
  // inference tensors cannot be.
  at::NoGradGuard no_grad;
  int folded = 0;
  std::vector<graph::Node> kept;
  kept.reserve(graph.nodes.size());
  std::set<std::string> graph_outputs;
  for (const auto& v : graph.outputs) graph_outputs.insert(v.name);
  for (graph::Node& node : graph.nodes) {
    KernelFactory factory = registry().find(node);
    bool constant_inputs = factory != nullptr;
    for (const std::string& in : node.inputs) {
      if (!in.empty() && !graph.initializers.count(in)) constant_inputs = false;
    }
    bool writes_output = false;
    for (const std::string& out : node.outputs) writes_output |= graph_outputs.count(out) != 0;
    std::optional<std::vector<int64_t>> shape;
    if (node.op_type == "Shape" && node.domain.empty() && !node.inputs.empty()) {
      shape = graph.shape_of(node.inputs[0]);
      if (shape && std::any_of(shape->begin(), shape->end(), [](int64_t d) { return d < 0; })) shape.reset();
    }
    if (writes_output || (!constant_inputs && !shape)) {
      kept.push_back(std::move(node));
      continue;
    }
    Tensors inputs;
    if (shape) {
      inputs.push_back(at::empty(*shape, at::TensorOptions().dtype(at::kFloat)));
    } else {
      for (const std::string& in : node.inputs) inputs.push_back(in.empty() ? at::Tensor() : graph.initializers.at(in));
    }
    Tensors outputs;
    try {
      outputs = make_kernel(node, graph.opset)(inputs);
    } catch (const std::exception&) {
      // A node that cannot run on its constants is left for the executor,
      // which reports the failure in context.
      kept.push_back(std::move(node));
      continue;
    }
    for (size_t i = 0; i < node.outputs.size() && i < outputs.size(); ++i) {
      if (!node.outputs[i].empty()) graph.initializers[node.outputs[i]] = outputs[i].contiguous().clone();
    }
    ++folded;
  }
  graph.nodes = std::move(kept);
  return folded;
}

SimplifyReport simplify(graph::Graph& graph) {
  SimplifyReport report;
  report.identities_removed = graph::remove_identity_and_dropout(graph);
  report.constants_folded = fold_constants(graph);
  report.batchnorms_folded = graph::fold_batchnorm(graph);
  report.dead_nodes_removed = graph::remove_dead_nodes(graph);
  return report;
}

std::shared_ptr<graph::Graph> load_model(const std::string& path, SimplifyReport* report) {
  auto graph = std::make_shared<graph::Graph>(graph::import_onnx_file(path));
  check_supported(*graph, path);
  SimplifyReport r = simplify(*graph);
  if (report) *report = r;
  return graph;
}

}  // namespace autoprec::exec
