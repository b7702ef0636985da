// Shape manipulation, indexing and constant operators.
#include "exec/ops_common.h"

#include <numeric>

namespace autoprec::exec {
namespace {

using detail::axes_from;
using detail::normalize_axes;
using detail::normalize_axis;
using detail::present;
using detail::to_int_vector;
using graph::Node;

Kernel identity(const Node&, int64_t) {
  return [](const Tensors& in) { return Tensors{in[0]}; };
}

Kernel flatten(const Node& node, int64_t) {
  int64_t axis = node.get_int("axis", 1);
  return [axis, node](const Tensors& in) {
    const at::Tensor& x = in[0];
    int64_t a = axis < 0 ? axis + x.dim() : axis;
    if (a < 0 || a > x.dim()) fail("node '{}' (Flatten): axis {} is out of range for rank {}", node.name, axis, x.dim());
    int64_t rows = 1;
    for (int64_t i = 0; i < a; ++i) rows *= x.size(i);
    int64_t cols = 1;
    for (int64_t i = a; i < x.dim(); ++i) cols *= x.size(i);
    return Tensors{x.reshape({rows, cols})};
  };
}

Kernel reshape(const Node& node, int64_t) {
  bool allow_zero = node.get_int("allowzero", 0) != 0;
  return [allow_zero, node](const Tensors& in) {
    std::vector<int64_t> shape = present(in, 1) ? to_int_vector(in[1]) : node.get_ints("shape");
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == 0 && !allow_zero) {
        if (static_cast<int64_t>(i) >= in[0].dim()) fail("node '{}' (Reshape): 0 in shape copies a missing dimension", node.name);
        shape[i] = in[0].size(static_cast<int64_t>(i));
      }
    }
    return Tensors{in[0].reshape(shape)};
  };
}

Kernel transpose(const Node& node, int64_t) {
  std::vector<int64_t> perm = node.get_ints("perm");
  return [perm](const Tensors& in) {
    std::vector<int64_t> p = perm;
    if (p.empty()) {
      for (int64_t i = in[0].dim() - 1; i >= 0; --i) p.push_back(i);
    }
    return Tensors{in[0].permute(p)};
  };
}

Kernel concat(const Node& node, int64_t) {
  int64_t axis = node.get_int("axis", 0);
  return [axis, node](const Tensors& in) {
    int64_t a = normalize_axis(axis, in[0].dim(), node);
    return Tensors{at::cat(in, a)};
  };
}

Kernel split(const Node& node, int64_t) {
  int64_t axis = node.get_int("axis", 0);
  size_t outputs = node.outputs.size();
  return [axis, outputs, node](const Tensors& in) {
    const at::Tensor& x = in[0];
    int64_t a = normalize_axis(axis, x.dim(), node);
    auto sizes = axes_from(node, in, 1, "split");
    std::vector<int64_t> parts;
    if (sizes && !sizes->empty()) {
      parts = *sizes;
    } else {
      int64_t each = (x.size(a) + static_cast<int64_t>(outputs) - 1) / static_cast<int64_t>(outputs);
      for (size_t i = 0; i < outputs; ++i) parts.push_back(std::min(each, x.size(a) - each * static_cast<int64_t>(i)));
    }
    return Tensors(at::split_with_sizes(x, parts, a));
  };
}

Kernel slice(const Node& node, int64_t opset) {
  bool from_attrs = opset < 10;
  return [from_attrs, node](const Tensors& in) {
    const at::Tensor& x = in[0];
    std::vector<int64_t> starts = from_attrs ? node.get_ints("starts") : to_int_vector(in[1]);
    std::vector<int64_t> ends = from_attrs ? node.get_ints("ends") : to_int_vector(in[2]);
    std::vector<int64_t> axes;
    if (from_attrs ? node.has("axes") : present(in, 3)) {
      axes = from_attrs ? node.get_ints("axes") : to_int_vector(in[3]);
    } else {
      axes.resize(starts.size());
      std::iota(axes.begin(), axes.end(), 0);
    }
    std::vector<int64_t> steps = !from_attrs && present(in, 4) ? to_int_vector(in[4]) : std::vector<int64_t>(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
      fail("node '{}' (Slice): starts, ends, axes and steps differ in length", node.name);
    }
    at::Tensor y = x;
    for (size_t i = 0; i < starts.size(); ++i) {
      int64_t a = normalize_axis(axes[i], x.dim(), node);
      int64_t dim = x.size(a);
      int64_t step = steps[i];
      if (step == 0) fail("node '{}' (Slice): step 0", node.name);
      int64_t start = starts[i] < 0 ? starts[i] + dim : starts[i];
      int64_t end = ends[i] < 0 ? ends[i] + dim : ends[i];
      if (step > 0) {
        start = std::clamp<int64_t>(start, 0, dim);
        end = std::clamp<int64_t>(end, 0, dim);
        y = y.slice(a, start, std::max(start, end), step);
      } else {
        start = std::clamp<int64_t>(start, 0, dim - 1);
        end = std::clamp<int64_t>(end, -1, dim - 1);
        at::Tensor index = at::arange(start, end, step, at::TensorOptions().dtype(at::kLong));
        y = y.index_select(a, index);
      }
    }
    return Tensors{y};
  };
}

Kernel gather(const Node& node, int64_t) {
  int64_t axis = node.get_int("axis", 0);
  return [axis, node](const Tensors& in) {
    const at::Tensor& data = in[0];
    int64_t a = normalize_axis(axis, data.dim(), node);
    at::Tensor indices = in[1].to(at::kLong);
    indices = at::where(indices < 0, indices + data.size(a), indices);
    std::vector<int64_t> shape(data.sizes().begin(), data.sizes().begin() + a);
    for (int64_t d : indices.sizes()) shape.push_back(d);
    shape.insert(shape.end(), data.sizes().begin() + a + 1, data.sizes().end());
    return Tensors{data.index_select(a, indices.reshape({-1})).reshape(shape)};
  };
}

Kernel squeeze(const Node& node, int64_t) {
  return [node](const Tensors& in) {
    at::Tensor y = in[0];
    auto axes = axes_from(node, in, 1);
    if (!axes) return Tensors{y.squeeze()};
    std::vector<int64_t> sorted = normalize_axes(*axes, y.dim(), node);
    std::sort(sorted.rbegin(), sorted.rend());
    for (int64_t a : sorted) {
      if (y.size(a) != 1) fail("node '{}' (Squeeze): dimension {} has size {}, not 1", node.name, a, y.size(a));
      y = y.squeeze(a);
    }
    return Tensors{y};
  };
}

Kernel unsqueeze(const Node& node, int64_t) {
  return [node](const Tensors& in) {
    at::Tensor y = in[0];
    auto axes = axes_from(node, in, 1);
    if (!axes) fail("node '{}' (Unsqueeze): axes are required", node.name);
    int64_t out_rank = y.dim() + static_cast<int64_t>(axes->size());
    std::vector<int64_t> sorted = normalize_axes(*axes, out_rank, node);
    std::sort(sorted.begin(), sorted.end());
    for (int64_t a : sorted) y = y.unsqueeze(a);
    return Tensors{y};
  };
}

Kernel shape(const Node& node, int64_t) {
  std::optional<int64_t> start, end;
  if (node.has("start")) start = node.get_int("start", 0);
  if (node.has("end")) end = node.get_int("end", 0);
  return [start, end](const Tensors& in) {
    int64_t rank = in[0].dim();
    auto clamp = [rank](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
    int64_t s = start ? clamp(*start) : 0;
    int64_t e = end ? clamp(*end) : rank;
    std::vector<int64_t> dims(in[0].sizes().begin() + s, in[0].sizes().begin() + std::max(s, e));
    return Tensors{at::tensor(dims, at::TensorOptions().dtype(at::kLong)).reshape({static_cast<int64_t>(dims.size())})};
  };
}

Kernel size(const Node&, int64_t) {
  return [](const Tensors& in) { return Tensors{at::scalar_tensor(in[0].numel(), at::TensorOptions().dtype(at::kLong))}; };
}

Kernel constant(const Node& node, int64_t) {
  at::Tensor value;
  auto longs = at::TensorOptions().dtype(at::kLong);
  if (node.has("value")) {
    value = node.get_tensor("value");
  } else if (node.has("value_float")) {
    value = at::scalar_tensor(node.get_float("value_float", 0), at::TensorOptions().dtype(at::kFloat));
  } else if (node.has("value_floats")) {
    auto v = node.get_floats("value_floats");
    value = at::tensor(std::vector<float>(v.begin(), v.end()));
  } else if (node.has("value_int")) {
    value = at::scalar_tensor(node.get_int("value_int", 0), longs);
  } else if (node.has("value_ints")) {
    value = at::tensor(node.get_ints("value_ints"), longs);
  } else {
    fail("node '{}' (Constant): no supported value attribute (sparse and string constants are not supported)", node.name);
  }
  return [value](const Tensors&) { return Tensors{value}; };
}

Kernel constant_of_shape(const Node& node, int64_t) {
  at::Tensor value = node.has("value") ? node.get_tensor("value").reshape({}) : at::zeros({}, at::TensorOptions().dtype(at::kFloat));
  return [value](const Tensors& in) {
    return Tensors{at::full(to_int_vector(in[0]), value.item(), value.options())};
  };
}

void reverse_pads(const std::vector<int64_t>& onnx_pads, int64_t rank, std::vector<int64_t>* torch_pads) {
  torch_pads->clear();
  for (int64_t i = rank; i-- > 0;) {
    torch_pads->push_back(onnx_pads[i]);
    torch_pads->push_back(onnx_pads[i + rank]);
  }
}

Kernel pad(const Node& node, int64_t opset) {
  std::string mode = node.get_string("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge") {
    fail("node '{}' (Pad): mode '{}' is not supported", node.name, mode);
  }
  bool from_attrs = opset < 11;
  return [mode, from_attrs, node](const Tensors& in) {
    const at::Tensor& x = in[0];
    int64_t rank = x.dim();
    std::vector<int64_t> pads = from_attrs ? node.get_ints("pads") : to_int_vector(in[1]);
    if (static_cast<int64_t>(pads.size()) != 2 * rank) {
      fail("node '{}' (Pad): {} pads for a rank-{} input", node.name, pads.size(), rank);
    }
    std::vector<int64_t> torch_pads;
    reverse_pads(pads, rank, &torch_pads);
    if (mode == "constant") {
      double value = from_attrs ? node.get_float("value", 0.0) : (present(in, 2) ? detail::scalar_value(in[2]) : 0.0);
      return Tensors{at::constant_pad_nd(x, torch_pads, value)};
    }
    // reflect/edge: ATen pads only trailing spatial dimensions of a batched input.
    int64_t first_padded = rank;
    for (int64_t i = 0; i < rank; ++i) {
      if (pads[i] != 0 || pads[i + rank] != 0) {
        first_padded = i;
        break;
      }
    }
    int64_t spatial = rank - first_padded;
    if (spatial == 0) return Tensors{x};
    if (spatial > 3) fail("node '{}' (Pad): {} mode pads at most 3 trailing dimensions", node.name, mode);
    torch_pads.resize(static_cast<size_t>(2 * spatial));
    // Reshape to [batch, channel, spatial...] as ATen expects.
    std::vector<int64_t> lead(x.sizes().begin(), x.sizes().begin() + first_padded);
    int64_t batch = 1;
    for (int64_t d : lead) batch *= d;
    std::vector<int64_t> shaped = {1, batch};
    shaped.insert(shaped.end(), x.sizes().begin() + first_padded, x.sizes().end());
    at::Tensor y = x.is_floating_point() ? x.reshape(shaped) : x.reshape(shaped).to(at::kDouble);
    bool reflect = mode == "reflect";
    if (spatial == 1) y = reflect ? at::reflection_pad1d(y.squeeze(0), torch_pads) : at::replication_pad1d(y.squeeze(0), torch_pads);
    if (spatial == 2) y = reflect ? at::reflection_pad2d(y, torch_pads) : at::replication_pad2d(y, torch_pads);
    if (spatial == 3) y = reflect ? at::reflection_pad3d(y, torch_pads) : at::replication_pad3d(y, torch_pads);
    std::vector<int64_t> out_shape = lead;
    out_shape.insert(out_shape.end(), y.sizes().end() - spatial, y.sizes().end());
    return Tensors{y.reshape(out_shape).to(x.scalar_type())};
  };
}

Kernel expand(const Node&, int64_t) {
  return [](const Tensors& in) {
    std::vector<int64_t> shape = to_int_vector(in[1]);
    auto out = at::infer_size(in[0].sizes(), shape);
    return Tensors{in[0].expand(out)};
  };
}

Kernel tile(const Node&, int64_t) {
  return [](const Tensors& in) { return Tensors{in[0].repeat(to_int_vector(in[1]))}; };
}

Kernel range(const Node&, int64_t) {
  return [](const Tensors& in) {
    at::Tensor start = in[0].reshape({});
    auto options = start.options().requires_grad(false);
    double s = detail::scalar_value(in[0]);
    double limit = detail::scalar_value(in[1]);
    double delta = detail::scalar_value(in[2]);
    int64_t count = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((limit - s) / delta)));
    return Tensors{(at::arange(count, at::TensorOptions().dtype(at::kDouble)) * delta + s).to(options)};
  };
}

Kernel gather_elements(const Node& node, int64_t) {
  int64_t axis = node.get_int("axis", 0);
  return [axis, node](const Tensors& in) {
    int64_t a = normalize_axis(axis, in[0].dim(), node);
    at::Tensor index = in[1].to(at::kLong);
    index = at::where(index < 0, index + in[0].size(a), index);
    return Tensors{at::gather(in[0], a, index)};
  };
}

Kernel scatter_elements(const Node& node, int64_t) {
  int64_t axis = node.get_int("axis", 0);
  std::string reduction = node.get_string("reduction", "none");
  if (reduction != "none" && reduction != "add" && reduction != "mul") {
    fail("node '{}' ({}): reduction '{}' is not supported", node.name, node.op_type, reduction);
  }
  return [axis, reduction, node](const Tensors& in) {
    int64_t a = normalize_axis(axis, in[0].dim(), node);
    at::Tensor index = in[1].to(at::kLong);
    index = at::where(index < 0, index + in[0].size(a), index);
    if (reduction == "none") return Tensors{at::scatter(in[0], a, index, in[2])};
    return Tensors{at::scatter(in[0], a, index, in[2], reduction == "add" ? "add" : "multiply")};
  };
}

Kernel one_hot(const Node& node, int64_t) {
  int64_t axis = node.get_int("axis", -1);
  return [axis, node](const Tensors& in) {
    int64_t depth = static_cast<int64_t>(detail::scalar_value(in[1]));
    at::Tensor index = in[0].to(at::kLong);
    index = at::where(index < 0, index + depth, index);
    at::Tensor valid = (index >= 0) & (index < depth);
    at::Tensor hot = at::one_hot(at::where(valid, index, at::zeros_like(index)), depth) * valid.unsqueeze(-1);
    at::Tensor values = in[2].reshape({-1});
    at::Tensor y = at::where(hot.to(at::kBool), values[1], values[0]);
    int64_t a = normalize_axis(axis, y.dim(), node);
    return Tensors{y.movedim(-1, a)};
  };
}

Kernel depth_to_space(const Node& node, int64_t) {
  int64_t block = node.get_int("blocksize", 0);
  bool crd = node.get_string("mode", "DCR") == "CRD";
  return [block, crd](const Tensors& in) {
    const at::Tensor& x = in[0];
    int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    at::Tensor y = crd ? x.reshape({n, c / (block * block), block, block, h, w}).permute({0, 1, 4, 2, 5, 3})
                       : x.reshape({n, block, block, c / (block * block), h, w}).permute({0, 3, 4, 1, 5, 2});
    return Tensors{y.reshape({n, c / (block * block), h * block, w * block})};
  };
}

Kernel space_to_depth(const Node& node, int64_t) {
  int64_t block = node.get_int("blocksize", 0);
  return [block](const Tensors& in) {
    const at::Tensor& x = in[0];
    int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    at::Tensor y = x.reshape({n, c, h / block, block, w / block, block}).permute({0, 3, 5, 1, 2, 4});
    return Tensors{y.reshape({n, c * block * block, h / block, w / block})};
  };
}

Kernel eye_like(const Node& node, int64_t) {
  int64_t k = node.get_int("k", 0);
  int64_t dtype = node.get_int("dtype", -1);
  return [k, dtype](const Tensors& in) {
    const at::Tensor& x = in[0];
    at::Tensor eye = at::ones({x.size(0), x.size(1)}, at::TensorOptions().dtype(at::kDouble)).triu(k).tril(k);
    at::ScalarType type = x.scalar_type();
    if (dtype == 1) type = at::kFloat;
    if (dtype == 6) type = at::kInt;
    if (dtype == 7) type = at::kLong;
    if (dtype == 11) type = at::kDouble;
    return Tensors{eye.to(type)};
  };
}

}  // namespace

void register_shape_ops(Registry& r) {
  r.add("GatherElements", gather_elements);
  r.add("ScatterElements", scatter_elements);
  r.add("OneHot", one_hot);
  r.add("DepthToSpace", depth_to_space);
  r.add("SpaceToDepth", space_to_depth);
  r.add("EyeLike", eye_like);
  r.add("Identity", identity);
  r.add("Flatten", flatten);
  r.add("Reshape", reshape);
  r.add("Transpose", transpose);
  r.add("Concat", concat);
  r.add("Split", split);
  r.add("Slice", slice);
  r.add("Gather", gather);
  r.add("Squeeze", squeeze);
  r.add("Unsqueeze", unsqueeze);
  r.add("Shape", shape);
  r.add("Size", size);
  r.add("Constant", constant);
  r.add("ConstantOfShape", constant_of_shape);
  r.add("Pad", pad);
  r.add("Expand", expand);
  r.add("Tile", tile);
  r.add("Range", range);
}

}  // namespace autoprec::exec
