// Convolution, pooling and normalisation operators.
#include "exec/ops_common.h"

#include <limits>

namespace autoprec::exec {
namespace {

using detail::normalize_axis;
using detail::present;
using graph::Node;

// Spatial geometry shared by Conv and the pooling operators.
struct Window {
  std::vector<int64_t> kernel;     // empty for Conv: taken from the weight
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pads;       // [begin..., end...]
  std::string auto_pad;
  bool ceil_mode = false;
};

Window read_window(const Node& node, bool has_kernel_attr) {
  Window w;
  if (has_kernel_attr) {
    w.kernel = node.get_ints("kernel_shape");
    if (w.kernel.empty()) fail("node '{}' ({}): kernel_shape is required", node.name, node.op_type);
  }
  w.strides = node.get_ints("strides");
  w.dilations = node.get_ints("dilations");
  w.pads = node.get_ints("pads");
  w.auto_pad = node.get_string("auto_pad", "NOTSET");
  w.ceil_mode = node.get_int("ceil_mode", 0) != 0;
  if (w.auto_pad != "NOTSET" && w.auto_pad != "SAME_UPPER" && w.auto_pad != "SAME_LOWER" && w.auto_pad != "VALID") {
    fail("node '{}' ({}): auto_pad '{}' is not valid", node.name, node.op_type, w.auto_pad);
  }
  return w;
}

// Resolves strides, dilations and explicit pads for an input with `spatial` sizes.
void resolve(Window& w, at::IntArrayRef spatial, at::IntArrayRef kernel) {
  size_t n = spatial.size();
  if (w.strides.empty()) w.strides.assign(n, 1);
  if (w.dilations.empty()) w.dilations.assign(n, 1);
  if (w.auto_pad == "SAME_UPPER" || w.auto_pad == "SAME_LOWER") {
    w.pads.assign(2 * n, 0);
    for (size_t i = 0; i < n; ++i) {
      int64_t out = (spatial[i] + w.strides[i] - 1) / w.strides[i];
      int64_t total = std::max<int64_t>(0, (out - 1) * w.strides[i] + (kernel[i] - 1) * w.dilations[i] + 1 - spatial[i]);
      int64_t small = total / 2;
      w.pads[i] = w.auto_pad == "SAME_UPPER" ? small : total - small;
      w.pads[i + n] = total - w.pads[i];
    }
  } else if (w.auto_pad == "VALID" || w.pads.empty()) {
    w.pads.assign(2 * n, 0);
  }
}

bool symmetric(const std::vector<int64_t>& pads) {
  size_t n = pads.size() / 2;
  for (size_t i = 0; i < n; ++i) {
    if (pads[i] != pads[i + n]) return false;
  }
  return true;
}

// at::constant_pad_nd wants pads for the last dimension first.
at::Tensor pad_spatial(const at::Tensor& x, const std::vector<int64_t>& pads, double value) {
  size_t n = pads.size() / 2;
  std::vector<int64_t> torch_pads;
  for (size_t i = n; i-- > 0;) {
    torch_pads.push_back(pads[i]);
    torch_pads.push_back(pads[i + n]);
  }
  return at::constant_pad_nd(x, torch_pads, value);
}

Kernel conv(const Node& node, int64_t) {
  Window base = read_window(node, false);
  int64_t groups = node.get_int("group", 1);
  return [base, groups, node](const Tensors& in) {
    const at::Tensor& x = in[0];
    const at::Tensor& weight = in[1];
    if (x.dim() < 3 || weight.dim() != x.dim()) {
      fail("node '{}' (Conv): input rank {} and weight rank {} do not match", node.name, x.dim(), weight.dim());
    }
    Window w = base;
    resolve(w, x.sizes().slice(2), weight.sizes().slice(2));
    at::Tensor bias = present(in, 2) ? in[2] : at::Tensor();
    size_t n = static_cast<size_t>(x.dim() - 2);
    if (symmetric(w.pads)) {
      std::vector<int64_t> padding(w.pads.begin(), w.pads.begin() + n);
      return Tensors{at::convolution(x, weight, bias, w.strides, padding, w.dilations, false,
                                     std::vector<int64_t>(n, 0), groups)};
    }
    at::Tensor padded = pad_spatial(x, w.pads, 0.0);
    return Tensors{at::convolution(padded, weight, bias, w.strides, std::vector<int64_t>(n, 0), w.dilations, false,
                                   std::vector<int64_t>(n, 0), groups)};
  };
}

Kernel conv_transpose(const Node& node, int64_t) {
  Window base = read_window(node, false);
  int64_t groups = node.get_int("group", 1);
  std::vector<int64_t> output_padding = node.get_ints("output_padding");
  std::vector<int64_t> output_shape = node.get_ints("output_shape");
  return [base, groups, output_padding, output_shape, node](const Tensors& in) {
    const at::Tensor& x = in[0];
    const at::Tensor& weight = in[1];
    size_t n = static_cast<size_t>(x.dim() - 2);
    Window w = base;
    if (w.strides.empty()) w.strides.assign(n, 1);
    if (w.dilations.empty()) w.dilations.assign(n, 1);
    std::vector<int64_t> extra = output_padding.empty() ? std::vector<int64_t>(n, 0) : output_padding;
    if (w.pads.empty() || w.auto_pad != "NOTSET" || !output_shape.empty()) w.pads.assign(2 * n, 0);
    std::vector<int64_t> target = output_shape;
    if (target.size() > n) target.erase(target.begin(), target.end() - static_cast<int64_t>(n));
    if (!target.empty() || w.auto_pad == "SAME_UPPER" || w.auto_pad == "SAME_LOWER") {
      for (size_t i = 0; i < n; ++i) {
        int64_t in_size = x.size(static_cast<int64_t>(i) + 2);
        int64_t out = target.empty() ? in_size * w.strides[i] : target[i];
        int64_t full = w.strides[i] * (in_size - 1) + extra[i] + (weight.size(static_cast<int64_t>(i) + 2) - 1) * w.dilations[i] + 1;
        if (out > full) extra[i] += out - full;
        int64_t total = std::max<int64_t>(0, full - out);
        bool upper = w.auto_pad != "SAME_LOWER";
        w.pads[i] = upper ? total / 2 : total - total / 2;
        w.pads[i + n] = total - w.pads[i];
      }
    }
    // Transposed convolution without padding or bias, then the trailing
    // output_padding, the crop of the (possibly asymmetric) pads, the bias.
    std::vector<int64_t> zero(n, 0);
    at::Tensor y = at::convolution(x, weight, at::Tensor(), w.strides, zero, w.dilations, true, zero, groups);
    for (size_t i = 0; i < n; ++i) {
      int64_t dim = static_cast<int64_t>(i) + 2;
      if (extra[i] > 0) {
        std::vector<int64_t> pad_spec(2 * (n - i - 1), 0);
        pad_spec.push_back(0);
        pad_spec.push_back(extra[i]);
        y = at::constant_pad_nd(y, pad_spec, 0.0);
      }
      y = y.narrow(dim, w.pads[i], y.size(dim) - w.pads[i] - w.pads[i + n]);
    }
    if (present(in, 2)) {
      std::vector<int64_t> bias_shape(y.dim(), 1);
      bias_shape[1] = in[2].numel();
      y = y + in[2].reshape(bias_shape);
    }
    return Tensors{y};
  };
}

Kernel max_pool(const Node& node, int64_t) {
  Window base = read_window(node, true);
  if (node.outputs.size() > 1 && !node.outputs[1].empty()) {
    fail("node '{}' (MaxPool): the Indices output is not supported", node.name);
  }
  return [base, node](const Tensors& in) {
    const at::Tensor& x = in[0];
    size_t n = base.kernel.size();
    if (static_cast<size_t>(x.dim()) != n + 2) {
      fail("node '{}' (MaxPool): input rank {} does not match kernel rank {}", node.name, x.dim(), n);
    }
    Window w = base;
    resolve(w, x.sizes().slice(2), w.kernel);
    std::vector<int64_t> padding(n, 0);
    bool torch_pads = symmetric(w.pads);
    for (size_t i = 0; i < n && torch_pads; ++i) torch_pads = w.pads[i] * 2 <= w.kernel[i];
    // ATen pools only floating-point tensors; small integers convert exactly.
    at::Tensor input = x.is_floating_point() ? x : x.to(at::kDouble);
    if (torch_pads) {
      padding.assign(w.pads.begin(), w.pads.begin() + n);
    } else {
      input = pad_spatial(input, w.pads, -std::numeric_limits<double>::infinity());
    }
    at::Tensor y;
    if (n == 1) y = at::max_pool1d(input, w.kernel, w.strides, padding, w.dilations, w.ceil_mode);
    else if (n == 2) y = at::max_pool2d(input, w.kernel, w.strides, padding, w.dilations, w.ceil_mode);
    else if (n == 3) y = at::max_pool3d(input, w.kernel, w.strides, padding, w.dilations, w.ceil_mode);
    else fail("node '{}' (MaxPool): {}-D pooling is not supported", node.name, n);
    return Tensors{y.to(x.scalar_type())};
  };
}

// Sum pooling over windows (no padding), by average pooling with divisor 1.
at::Tensor window_sum(const at::Tensor& x, const Window& w) {
  size_t n = w.kernel.size();
  std::vector<int64_t> zero(n, 0);
  if (n == 1) {
    return at::avg_pool2d(x.unsqueeze(-1), {w.kernel[0], 1}, {w.strides[0], 1}, {0, 0}, w.ceil_mode, true, 1)
        .squeeze(-1);
  }
  if (n == 2) return at::avg_pool2d(x, w.kernel, w.strides, zero, w.ceil_mode, true, 1);
  return at::avg_pool3d(x, w.kernel, w.strides, zero, w.ceil_mode, true, 1);
}

Kernel average_pool(const Node& node, int64_t) {
  Window base = read_window(node, true);
  bool count_include_pad = node.get_int("count_include_pad", 0) != 0;
  return [base, count_include_pad, node](const Tensors& in) {
    const at::Tensor& x = in[0];
    size_t n = base.kernel.size();
    if (static_cast<size_t>(x.dim()) != n + 2 || n < 1 || n > 3) {
      fail("node '{}' (AveragePool): input rank {} does not match kernel rank {}", node.name, x.dim(), n);
    }
    Window w = base;
    resolve(w, x.sizes().slice(2), w.kernel);
    bool no_pads = std::all_of(w.pads.begin(), w.pads.end(), [](int64_t p) { return p == 0; });
    if (no_pads && n == 2 && !w.ceil_mode) {
      return Tensors{at::avg_pool2d(x, w.kernel, w.strides, {0, 0}, false, true)};
    }
    // General case: the divisor counts the window's elements inside the input
    // (and inside the pads when count_include_pad), whatever the padding.
    at::Tensor padded = pad_spatial(x, w.pads, 0.0);
    std::vector<int64_t> mask_shape(n + 2, 1);
    for (size_t i = 0; i < n; ++i) mask_shape[i + 2] = x.size(static_cast<int64_t>(i) + 2);
    at::Tensor ones = at::ones(mask_shape, x.options().requires_grad(false));
    at::Tensor mask = count_include_pad ? at::ones_like(pad_spatial(ones, w.pads, 1.0)) : pad_spatial(ones, w.pads, 0.0);
    return Tensors{window_sum(padded, w) / window_sum(mask, w)};
  };
}

Kernel global_average_pool(const Node&, int64_t) {
  return [](const Tensors& in) {
    std::vector<int64_t> dims;
    for (int64_t d = 2; d < in[0].dim(); ++d) dims.push_back(d);
    return Tensors{at::mean(in[0], dims, true)};
  };
}

Kernel global_max_pool(const Node&, int64_t) {
  return [](const Tensors& in) {
    at::Tensor y = in[0];
    for (int64_t d = 2; d < in[0].dim(); ++d) y = std::get<0>(at::max(y, d, true));
    return Tensors{y};
  };
}

Kernel batch_norm(const Node& node, int64_t) {
  double eps = node.get_float("epsilon", 1e-5);
  if (node.get_int("training_mode", 0) != 0) {
    fail("node '{}' (BatchNormalization): training_mode=1 is not supported", node.name);
  }
  // Running statistics are used in training and evaluation alike: quantized
  // fine-tuning keeps the statistics of the trained model fixed.
  return [eps](const Tensors& in) {
    return Tensors{at::batch_norm(in[0], in[1], in[2], in[3], in[4], false, 0.0, eps, false)};
  };
}

Kernel layer_norm(const Node& node, int64_t) {
  int64_t axis = node.get_int("axis", -1);
  double eps = node.get_float("epsilon", 1e-5);
  bool stats = node.outputs.size() > 1;
  return [axis, eps, stats, node](const Tensors& in) {
    const at::Tensor& x = in[0];
    int64_t a = normalize_axis(axis, x.dim(), node);
    std::vector<int64_t> normalized(x.sizes().begin() + a, x.sizes().end());
    at::Tensor scale = present(in, 1) ? in[1] : at::Tensor();
    at::Tensor bias = present(in, 2) ? in[2] : at::Tensor();
    if (!stats && (!scale.defined() || scale.sizes().vec() == normalized) &&
        (!bias.defined() || bias.sizes().vec() == normalized)) {
      return Tensors{at::layer_norm(x, normalized, scale, bias, eps)};
    }
    std::vector<int64_t> dims;
    for (int64_t d = a; d < x.dim(); ++d) dims.push_back(d);
    at::Tensor mean = at::mean(x, dims, true);
    at::Tensor var = at::mean((x - mean) * (x - mean), dims, true);
    at::Tensor inv_std = at::rsqrt(var + eps);
    at::Tensor y = (x - mean) * inv_std;
    if (scale.defined()) y = y * scale;
    if (bias.defined()) y = y + bias;
    return Tensors{y, mean, inv_std};
  };
}

Kernel instance_norm(const Node& node, int64_t) {
  double eps = node.get_float("epsilon", 1e-5);
  return [eps](const Tensors& in) {
    return Tensors{at::instance_norm(in[0], in[1], in[2], {}, {}, true, 0.0, eps, false)};
  };
}

Kernel dropout(const Node& node, int64_t) {
  bool mask = node.outputs.size() > 1 && !node.outputs[1].empty();
  return [mask](const Tensors& in) {
    if (present(in, 2) && in[2].reshape({-1})[0].item<bool>()) {
      fail("Dropout with training_mode=true is not supported");
    }
    if (mask) return Tensors{in[0], at::ones_like(in[0], at::TensorOptions().dtype(at::kBool))};
    return Tensors{in[0]};
  };
}

// QuantizeLinear / DequantizeLinear (opsets 10 and 13): per-tensor when the
// scale is a scalar, per-axis along `axis` when it is 1-D. 8-bit and int32
// integers; rounding half to even as the spec says.
struct AffineParams {
  at::Tensor scale;       // float32, broadcastable to the data
  at::Tensor zero_point;  // float32, same
};

AffineParams affine_params(const Tensors& in, int64_t axis, int64_t rank, const Node& node) {
  at::Tensor scale = in[1].to(at::kFloat);
  at::Tensor zero_point = present(in, 2) ? in[2].to(at::kFloat) : at::zeros_like(scale);
  if (zero_point.numel() != scale.numel()) {
    fail("node '{}' ({}): the zero point has {} values, the scale {}", node.name, node.op_type, zero_point.numel(),
         scale.numel());
  }
  if (scale.dim() == 0 || (scale.dim() == 1 && scale.numel() == 1 && rank == 0)) {
    return {scale.reshape({}), zero_point.reshape({})};
  }
  if (scale.dim() != 1) fail("node '{}' ({}): the scale must be a scalar or 1-D", node.name, node.op_type);
  int64_t a = normalize_axis(axis, rank, node);
  std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
  shape[static_cast<size_t>(a)] = scale.numel();
  return {scale.reshape(shape), zero_point.reshape(shape)};
}

Kernel quantize_linear(const Node& node, int64_t opset) {
  int64_t axis = node.get_int("axis", 1);
  return [axis, node](const Tensors& in) {
    at::ScalarType type = present(in, 2) ? in[2].scalar_type() : at::kByte;
    if (type != at::kByte && type != at::kChar) {
      fail("node '{}' (QuantizeLinear): output type {} is not supported (uint8 or int8)", node.name,
           c10::toString(type));
    }
    AffineParams p = affine_params(in, axis, in[0].dim(), node);
    double lo = type == at::kByte ? 0 : -128;
    double hi = type == at::kByte ? 255 : 127;
    at::Tensor q = at::round(in[0].to(at::kFloat) / p.scale).add_(p.zero_point).clamp_(lo, hi);
    return Tensors{q.to(type)};
  };
}

Kernel dequantize_linear(const Node& node, int64_t opset) {
  int64_t axis = node.get_int("axis", 1);
  return [axis, node](const Tensors& in) {
    at::ScalarType type = in[0].scalar_type();
    if (type != at::kByte && type != at::kChar && type != at::kInt) {
      fail("node '{}' (DequantizeLinear): input type {} is not supported (uint8, int8 or int32)", node.name,
           c10::toString(type));
    }
    AffineParams p = affine_params(in, axis, in[0].dim(), node);
    return Tensors{(in[0].to(at::kFloat) - p.zero_point) * p.scale};
  };
}

}  // namespace

void register_nn_ops(Registry& r) {
  r.add("Conv", conv);
  r.add("ConvTranspose", conv_transpose);
  r.add("MaxPool", max_pool);
  r.add("AveragePool", average_pool);
  r.add("GlobalAveragePool", global_average_pool);
  r.add("GlobalMaxPool", global_max_pool);
  r.add("BatchNormalization", batch_norm);
  r.add("LayerNormalization", layer_norm);
  r.add("InstanceNormalization", instance_norm);
  r.add("Dropout", dropout);
  r.add("QuantizeLinear", quantize_linear);
  r.add("DequantizeLinear", dequantize_linear);
}

}  // namespace autoprec::exec
