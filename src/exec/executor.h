// Executes a graph::Graph on libtorch tensors.
//
// The executor compiles the graph once (one kernel per node, value names
// resolved to slots) and then runs batches through it. In evaluation mode it
// runs under c10::InferenceMode; in training mode autograd records every
// operation, so gradients reach the parameters (the graph's floating-point
// initializers) and any tensor a transform introduces.
//
// Quantizers attach as input transforms: a function applied to input `i` of
// node `n` before the node's kernel sees it (a weight for i=1 of Conv/Gemm,
// the activation for i=0). Observers see every value a run computes (for
// calibration). Value transforms apply to a value once, where it is produced
// (a node output, or a graph input as fed): every reader, and the graph
// output, sees the transformed tensor. Observers see values before their
// value transform. None of these concepts knows anything about quantization.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "exec/registry.h"
#include "graph/ir.h"

namespace autoprec::exec {

class Executor {
 public:
  using Transform = std::function<at::Tensor(const at::Tensor&)>;
  using Observer = std::function<void(const std::string& value, const at::Tensor& tensor)>;

  // Compiles `graph`; UserError listing every unsupported operator.
  explicit Executor(std::shared_ptr<const graph::Graph> graph, const std::string& origin = "model");

  // Runs the graph. `inputs` follow graph().inputs order; returns the outputs
  // in graph().outputs order. UserError when an input's rank or element type
  // disagrees with the model, or when an operator rejects its inputs.
  Tensors run(const Tensors& inputs) const;

  // Training mode records autograd; evaluation mode (the default) does not.
  void set_training(bool training) { training_ = training; }
  bool training() const { return training_; }

  // Parameters: one tensor per initializer, shared by every run. Replace or
  // mark requires_grad through this map; names are the initializer names.
  std::map<std::string, at::Tensor>& parameters() { return parameters_; }
  const std::map<std::string, at::Tensor>& parameters() const { return parameters_; }

  void set_input_transform(const std::string& node_name, size_t input_index, Transform transform);
  void clear_input_transforms();
  // UserError when no graph input or node output is called `value`.
  void set_value_transform(const std::string& value, Transform transform);
  void clear_value_transforms() { value_transforms_.clear(); }
  void set_observer(Observer observer) { observer_ = std::move(observer); }

  const graph::Graph& graph() const { return *graph_; }

 private:
  struct Step {
    const graph::Node* node;
    Kernel kernel;
    std::vector<int> inputs;   // slot per input, -1 for an omitted optional input
    std::vector<int> outputs;  // slot per output, -1 for an unused one
    std::vector<int> release;  // slots whose last reader is this step
    std::map<size_t, Transform> transforms;
  };

  Tensors run_steps(const Tensors& inputs) const;

  std::shared_ptr<const graph::Graph> graph_;
  std::string origin_;
  std::map<std::string, at::Tensor> parameters_;
  std::vector<std::pair<int, std::string>> parameter_slots_;
  std::vector<int> input_slots_;
  std::vector<int> output_slots_;
  std::vector<std::string> slot_names_;
  std::vector<Step> steps_;
  std::map<int, Transform> value_transforms_;  // by slot
  bool training_ = false;
  bool channels_last_ = false;  // 4-D inputs and conv weights use the channels-last layout
  Observer observer_;
};

}  // namespace autoprec::exec
