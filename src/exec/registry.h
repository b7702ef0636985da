// The operator registry: the one list of ONNX operators autoprec executes.
//
// Each operator has a kernel factory that reads the node's attributes once
// and returns a Kernel. A Kernel maps the node's input tensors (in ONNX input
// order; an undefined tensor stands for an omitted optional input) to its
// output tensors, using differentiable ATen operations so that autograd
// flows through the whole graph. Adding an operator means adding its factory
// to the registration function of its family (ops_math.cpp, ops_nn.cpp,
// ops_shape.cpp) and a test.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "graph/ir.h"

namespace autoprec::exec {

using Tensors = std::vector<at::Tensor>;
using Kernel = std::function<Tensors(const Tensors& inputs)>;
// Builds the kernel for `node` in a model of default-domain opset `opset`.
// Throws UserError when the node's attributes are invalid or unsupported.
using KernelFactory = Kernel (*)(const graph::Node& node, int64_t opset);

class Registry {
 public:
  void add(const std::string& op_type, KernelFactory factory);
  // nullptr when `op_type` (default ONNX domain) is not supported.
  KernelFactory find(const std::string& op_type) const;
  // The factory of `node`'s operator: op_type in the default domain,
  // "DOMAIN::op_type" in any other (com.microsoft::MatMulNBits). nullptr when
  // there is none.
  KernelFactory find(const graph::Node& node) const;
  std::vector<std::string> op_types() const;

 private:
  std::map<std::string, KernelFactory> factories_;
};

// The process-wide registry with every built-in operator.
const Registry& registry();

// Registration functions, one per operator family.
void register_math_ops(Registry& r);
void register_nn_ops(Registry& r);
void register_shape_ops(Registry& r);

// UserError naming every node (name and op type) of `graph` that autoprec
// cannot execute, all at once; `origin` names the model in the message.
void check_supported(const graph::Graph& graph, const std::string& origin);

// Builds the kernel for one node (UserError if unsupported).
Kernel make_kernel(const graph::Node& node, int64_t opset);

}  // namespace autoprec::exec
