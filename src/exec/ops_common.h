// Helpers shared by the operator families (internal to exec/).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "exec/registry.h"
#include "util/error.h"

namespace autoprec::exec::detail {

// Axis in [-rank, rank) mapped to [0, rank); UserError otherwise.
inline int64_t normalize_axis(int64_t axis, int64_t rank, const graph::Node& node) {
  if (axis < -rank || axis >= rank) fail("node '{}' ({}): axis {} is out of range for rank {}", node.name, node.op_type, axis, rank);
  return axis < 0 ? axis + rank : axis;
}

// Values of a 1-D (or scalar) integer tensor.
inline std::vector<int64_t> to_int_vector(const at::Tensor& t) {
  at::Tensor c = t.to(at::kLong).contiguous().reshape({-1});
  const int64_t* p = c.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

inline bool present(const Tensors& inputs, size_t index) { return index < inputs.size() && inputs[index].defined(); }

// Axes given either as the attribute `attr` (older opsets) or as input `index`.
inline std::optional<std::vector<int64_t>> axes_from(const graph::Node& node, const Tensors& inputs, size_t index,
                                                      const char* attr = "axes") {
  if (present(inputs, index)) return to_int_vector(inputs[index]);
  if (node.has(attr)) return node.get_ints(attr);
  return std::nullopt;
}

inline std::vector<int64_t> normalize_axes(std::vector<int64_t> axes, int64_t rank, const graph::Node& node) {
  for (int64_t& a : axes) a = normalize_axis(a, rank, node);
  return axes;
}

inline double scalar_value(const at::Tensor& t) { return t.to(at::kDouble).reshape({-1})[0].item<double>(); }

}  // namespace autoprec::exec::detail
