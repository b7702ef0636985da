#include "exec/executor.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <set>

#include <fmt/ranges.h>

#include "graph/tensor_proto.h"
#include "util/error.h"

namespace autoprec::exec {

namespace {

std::string first_line(const std::string& text) {
  auto newline = text.find('\n');
  return newline == std::string::npos ? text : text.substr(0, newline);
}

}  // namespace

Executor::Executor(std::shared_ptr<const graph::Graph> graph, const std::string& origin)
    : graph_(std::move(graph)), origin_(origin) {
  const graph::Graph& g = *graph_;
  check_supported(g, origin_);

  std::map<std::string, int> slots;
  auto slot_of = [&](const std::string& name) {
    auto it = slots.find(name);
    if (it != slots.end()) return it->second;
    int id = static_cast<int>(slot_names_.size());
    slots[name] = id;
    slot_names_.push_back(name);
    return id;
  };
  for (const auto& [name, tensor] : g.initializers) {
    parameters_[name] = tensor;
    parameter_slots_.emplace_back(slot_of(name), name);
  }
  for (const graph::ValueInfo& v : g.inputs) input_slots_.push_back(slot_of(v.name));
  // oneDNN runs 2-D convolutions fastest on channels-last tensors (measured
  // ~1.3x on ResNet-20); values keep their meaning whatever their layout.
  for (const graph::Node& node : g.nodes) {
    if (node.op_type != "Conv" || node.inputs.size() < 2) continue;
    auto weight = parameters_.find(node.inputs[1]);
    if (weight != parameters_.end() && weight->second.dim() == 4 && weight->second.is_floating_point()) {
      weight->second = weight->second.contiguous(at::MemoryFormat::ChannelsLast);
      channels_last_ = true;
    }
  }

  std::vector<int> last_reader;
  for (const graph::Node& node : g.nodes) {
    Step step;
    step.node = &node;
    step.kernel = make_kernel(node, g.opset);
    for (const std::string& in : node.inputs) {
      if (in.empty()) {
        step.inputs.push_back(-1);
      } else {
        if (!slots.count(in)) fail("{}: node '{}' reads undefined value '{}'", origin_, node.name, in);
        step.inputs.push_back(slots[in]);
      }
    }
    for (const std::string& out : node.outputs) step.outputs.push_back(out.empty() ? -1 : slot_of(out));
    steps_.push_back(std::move(step));
  }
  for (const graph::ValueInfo& v : g.outputs) {
    if (!slots.count(v.name)) fail("{}: graph output '{}' is not computed by any node", origin_, v.name);
    output_slots_.push_back(slots[v.name]);
  }

  // Free each intermediate value after its last reader, unless it is a
  // graph output or a parameter.
  std::set<int> kept(output_slots_.begin(), output_slots_.end());
  for (const auto& [slot, name] : parameter_slots_) kept.insert(slot);
  std::vector<int> last(slot_names_.size(), -1);
  for (size_t s = 0; s < steps_.size(); ++s) {
    for (int in : steps_[s].inputs) {
      if (in >= 0) last[in] = static_cast<int>(s);
    }
  }
  for (size_t slot = 0; slot < last.size(); ++slot) {
    if (last[slot] >= 0 && !kept.count(static_cast<int>(slot))) steps_[last[slot]].release.push_back(static_cast<int>(slot));
  }
}

void Executor::set_input_transform(const std::string& node_name, size_t input_index, Transform transform) {
  for (Step& step : steps_) {
    if (step.node->name == node_name) {
      if (input_index >= step.inputs.size()) {
        fail("node '{}' has no input {}", node_name, input_index);
      }
      step.transforms[input_index] = std::move(transform);
      return;
    }
  }
  fail("{} has no node named '{}'", origin_, node_name);
}

void Executor::set_value_transform(const std::string& value, Transform transform) {
  for (size_t slot = 0; slot < slot_names_.size(); ++slot) {
    if (slot_names_[slot] != value) continue;
    for (const auto& [parameter_slot, name] : parameter_slots_) {
      if (parameter_slot == static_cast<int>(slot)) fail("{}: '{}' is an initializer, not a computed value", origin_, value);
    }
    value_transforms_[static_cast<int>(slot)] = std::move(transform);
    return;
  }
  fail("{} has no value named '{}'", origin_, value);
}

void Executor::clear_input_transforms() {
  for (Step& step : steps_) step.transforms.clear();
}

Tensors Executor::run(const Tensors& inputs) const {
  const graph::Graph& g = *graph_;
  if (inputs.size() != g.inputs.size()) {
    fail("{} takes {} input(s), got {}", origin_, g.inputs.size(), inputs.size());
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const graph::ValueInfo& info = g.inputs[i];
    const at::Tensor& t = inputs[i];
    if (info.elem_type != 0 && graph::scalar_type_from_onnx(info.elem_type) != t.scalar_type()) {
      fail("input '{}' of {} must be {}, got {}", info.name, origin_, graph::onnx_type_name(info.elem_type),
           c10::toString(t.scalar_type()));
    }
    if (info.has_shape) {
      bool ok = static_cast<int64_t>(info.shape.size()) == t.dim();
      for (size_t d = 0; ok && d < info.shape.size(); ++d) ok = info.shape[d] < 0 || info.shape[d] == t.size(d);
      if (!ok) {
        std::vector<std::string> dims;
        for (int64_t d : info.shape) dims.push_back(d < 0 ? "N" : std::to_string(d));
        fail("input '{}' of {} must have shape [{}], got {}", info.name, origin_, fmt::join(dims, ", "),
             c10::str(t.sizes()));
      }
    }
  }
  if (training_) return run_steps(inputs);
  c10::InferenceMode guard;
  return run_steps(inputs);
}

Tensors Executor::run_steps(const Tensors& inputs) const {
  std::vector<at::Tensor> slots(slot_names_.size());
  for (const auto& [slot, name] : parameter_slots_) slots[slot] = parameters_.at(name);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const at::Tensor& x = inputs[i];
    bool to_channels_last = channels_last_ && x.dim() == 4 && x.is_floating_point();
    slots[input_slots_[i]] = to_channels_last ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
    auto transform = value_transforms_.find(input_slots_[i]);
    if (transform != value_transforms_.end()) slots[input_slots_[i]] = transform->second(slots[input_slots_[i]]);
  }

  Tensors args;
  for (const Step& step : steps_) {
    args.assign(step.inputs.size(), at::Tensor());
    for (size_t i = 0; i < step.inputs.size(); ++i) {
      if (step.inputs[i] >= 0) args[i] = slots[step.inputs[i]];
    }
    for (const auto& [index, transform] : step.transforms) {
      if (args[index].defined()) args[index] = transform(args[index]);
    }
    Tensors results;
    try {
      results = step.kernel(args);
    } catch (const UserError&) {
      throw;
    } catch (const c10::Error& e) {
      fail("{}: node '{}' ({}) failed: {}", origin_, step.node->name, step.node->op_type,
           first_line(e.what_without_backtrace()));
    }
    for (size_t o = 0; o < step.outputs.size() && o < results.size(); ++o) {
      if (step.outputs[o] < 0) continue;
      slots[step.outputs[o]] = std::move(results[o]);
      if (observer_) observer_(slot_names_[step.outputs[o]], slots[step.outputs[o]]);
      if (!value_transforms_.empty()) {
        auto transform = value_transforms_.find(step.outputs[o]);
        if (transform != value_transforms_.end()) slots[step.outputs[o]] = transform->second(slots[step.outputs[o]]);
      }
    }
    for (int slot : step.release) slots[slot] = at::Tensor();
  }
  Tensors outputs;
  outputs.reserve(output_slots_.size());
  for (int slot : output_slots_) outputs.push_back(slots[slot]);
  return outputs;
}

}  // namespace autoprec::exec
