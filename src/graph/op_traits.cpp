#include "graph/op_traits.h"

#include <algorithm>

namespace autoprec::graph {
namespace {

int64_t product(const std::vector<int64_t>& shape, size_t first) {
  int64_t n = 1;
  for (size_t i = first; i < shape.size(); ++i) n *= shape[i];
  return n;
}

}  // namespace

const std::vector<WeightedOpTraits>& weighted_ops() {
  static const std::vector<WeightedOpTraits> ops = {
      // Conv: weight [M, C/group, kH, kW]; each output reads C/group * kH * kW inputs.
      {"Conv", 1, 2, true, [](const Node&, int64_t rank) { return rank >= 3; },
       [](const Node&, const std::vector<int64_t>&) -> int64_t { return 0; },
       [](const Node&, const std::vector<int64_t>& w) { return product(w, 1); }},
      // Gemm: Y = A B' (+ C); B [K, N] (transB 0) or [N, K] (transB 1).
      {"Gemm", 1, 2, false, [](const Node& n, int64_t rank) { return rank == 2 && n.get_int("transA", 0) == 0; },
       [](const Node& n, const std::vector<int64_t>&) -> int64_t { return n.get_int("transB", 0) ? 0 : 1; },
       [](const Node& n, const std::vector<int64_t>& w) -> int64_t {
         if (w.size() != 2) return 0;
         return n.get_int("transB", 0) ? w[1] : w[0];
       }},
      // MatMul: Y = A B with B [..., K, N]; the output channel is B's last axis.
      {"MatMul", 1, -1, false, [](const Node&, int64_t rank) { return rank >= 2; },
       [](const Node&, const std::vector<int64_t>& w) -> int64_t { return static_cast<int64_t>(w.size()) - 1; },
       [](const Node&, const std::vector<int64_t>& w) -> int64_t {
         if (w.empty()) return 0;
         return w.size() >= 2 ? w[w.size() - 2] : w[0];
       }},
  };
  return ops;
}

const WeightedOpTraits* weighted_op(const std::string& op_type) {
  for (const WeightedOpTraits& t : weighted_ops()) {
    if (op_type == t.op) return &t;
  }
  return nullptr;
}

const WeightedOpTraits* weighted_op(const Node& node) {
  if (!node.domain.empty() && node.domain != "ai.onnx") return nullptr;
  return weighted_op(node.op_type);
}

std::vector<std::string> weighted_op_names() {
  std::vector<std::string> names;
  for (const WeightedOpTraits& t : weighted_ops()) names.emplace_back(t.op);
  return names;
}

}  // namespace autoprec::graph
