#include "exec/registry.h"

#include <algorithm>

#include <fmt/ranges.h>

#include "util/error.h"

namespace autoprec::exec {

void Registry::add(const std::string& op_type, KernelFactory factory) { factories_[op_type] = factory; }

KernelFactory Registry::find(const std::string& op_type) const {
  auto it = factories_.find(op_type);
  return it == factories_.end() ? nullptr : it->second;
}

KernelFactory Registry::find(const graph::Node& node) const {
  return find(node.domain.empty() || node.domain == "ai.onnx" ? node.op_type : node.domain + "::" + node.op_type);
}

std::vector<std::string> Registry::op_types() const {
  std::vector<std::string> names;
  for (const auto& [name, factory] : factories_) names.push_back(name);
  return names;
}

const Registry& registry() {
  static const Registry instance = [] {
    Registry r;
    register_math_ops(r);
    register_nn_ops(r);
    register_shape_ops(r);
    return r;
  }();
  return instance;
}

void check_supported(const graph::Graph& graph, const std::string& origin) {
  std::map<std::string, std::vector<std::string>> unsupported;  // op -> node names
  for (const graph::Node& node : graph.nodes) {
    std::string op = node.domain.empty() ? node.op_type : node.domain + "::" + node.op_type;
    if (!registry().find(node)) unsupported[op].push_back(node.name);
  }
  if (unsupported.empty()) return;
  std::string list;
  for (const auto& [op, nodes] : unsupported) {
    if (!list.empty()) list += "; ";
    std::vector<std::string> shown(nodes.begin(), nodes.begin() + std::min<size_t>(nodes.size(), 5));
    list += fmt::format("{} (node{} {}{})", op, nodes.size() > 1 ? "s" : "", fmt::join(shown, ", "),
                        nodes.size() > shown.size() ? fmt::format(" and {} more", nodes.size() - shown.size()) : "");
  }
  fail("{} uses {} unsupported operator{}: {}", origin, unsupported.size(), unsupported.size() > 1 ? "s" : "", list);
}

Kernel make_kernel(const graph::Node& node, int64_t opset) {
  KernelFactory factory = registry().find(node);
  if (!factory) fail("node '{}': operator {} is not supported", node.name, node.op_type);
  return factory(node, opset);
}

}  // namespace autoprec::exec
