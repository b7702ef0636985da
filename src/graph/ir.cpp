#include "graph/ir.h"

#include <deque>
#include <set>

#include "util/error.h"

namespace autoprec::graph {
namespace {

const Attribute* find_attr(const Node& node, const std::string& attr, Attribute::Kind kind) {
  auto it = node.attributes.find(attr);
  if (it == node.attributes.end()) return nullptr;
  if (it->second.kind != kind) {
    fail("node '{}' ({}): attribute '{}' has an unexpected type", node.name, node.op_type, attr);
  }
  return &it->second;
}

}  // namespace

int64_t Node::get_int(const std::string& attr, int64_t fallback) const {
  const Attribute* a = find_attr(*this, attr, Attribute::Kind::Int);
  return a ? a->i : fallback;
}

double Node::get_float(const std::string& attr, double fallback) const {
  const Attribute* a = find_attr(*this, attr, Attribute::Kind::Float);
  return a ? a->f : fallback;
}

std::string Node::get_string(const std::string& attr, const std::string& fallback) const {
  const Attribute* a = find_attr(*this, attr, Attribute::Kind::String);
  return a ? a->s : fallback;
}

std::vector<int64_t> Node::get_ints(const std::string& attr, std::vector<int64_t> fallback) const {
  const Attribute* a = find_attr(*this, attr, Attribute::Kind::Ints);
  return a ? a->ints : fallback;
}

std::vector<double> Node::get_floats(const std::string& attr, std::vector<double> fallback) const {
  const Attribute* a = find_attr(*this, attr, Attribute::Kind::Floats);
  return a ? a->floats : fallback;
}

at::Tensor Node::get_tensor(const std::string& attr) const {
  const Attribute* a = find_attr(*this, attr, Attribute::Kind::Tensor);
  if (!a) fail("node '{}' ({}): missing tensor attribute '{}'", name, op_type, attr);
  return a->t;
}

std::vector<std::string> Graph::input_names() const {
  std::vector<std::string> names;
  for (const ValueInfo& v : inputs) names.push_back(v.name);
  return names;
}

const Node* Graph::producer(const std::string& value) const {
  for (const Node& n : nodes) {
    for (const std::string& out : n.outputs) {
      if (out == value) return &n;
    }
  }
  return nullptr;
}

std::vector<const Node*> Graph::consumers(const std::string& value) const {
  std::vector<const Node*> result;
  for (const Node& n : nodes) {
    for (const std::string& in : n.inputs) {
      if (in == value) {
        result.push_back(&n);
        break;
      }
    }
  }
  return result;
}

std::optional<std::vector<int64_t>> Graph::shape_of(const std::string& value) const {
  auto init = initializers.find(value);
  if (init != initializers.end()) return init->second.sizes().vec();
  auto info = value_info.find(value);
  if (info != value_info.end() && info->second.has_shape) return info->second.shape;
  for (const ValueInfo& v : inputs) {
    if (v.name == value && v.has_shape) return v.shape;
  }
  for (const ValueInfo& v : outputs) {
    if (v.name == value && v.has_shape) return v.shape;
  }
  return std::nullopt;
}

const Node* Graph::find_node(const std::string& node_name) const {
  for (const Node& n : nodes) {
    if (n.name == node_name) return &n;
  }
  return nullptr;
}

void Graph::sort_topologically() {
  std::set<std::string> available;
  for (const auto& [name, tensor] : initializers) available.insert(name);
  for (const ValueInfo& v : inputs) available.insert(v.name);
  available.insert("");

  std::vector<Node> sorted;
  sorted.reserve(nodes.size());
  std::deque<Node> pending(nodes.begin(), nodes.end());
  size_t stalled = 0;
  while (!pending.empty()) {
    Node node = std::move(pending.front());
    pending.pop_front();
    bool ready = true;
    for (const std::string& in : node.inputs) {
      if (!available.count(in)) {
        ready = false;
        break;
      }
    }
    if (ready) {
      for (const std::string& out : node.outputs) available.insert(out);
      sorted.push_back(std::move(node));
      stalled = 0;
    } else {
      pending.push_back(std::move(node));
      if (++stalled > pending.size()) {
        const Node& blocked = pending.front();
        for (const std::string& in : blocked.inputs) {
          if (!available.count(in)) {
            fail("node '{}' ({}) reads value '{}' that no node, input or initializer defines (or the graph has a cycle)",
                 blocked.name, blocked.op_type, in);
          }
        }
      }
    }
  }
  nodes = std::move(sorted);
}

}  // namespace autoprec::graph
