// Element-wise, activation, reduction and matrix operators.
#include "exec/ops_common.h"

namespace autoprec::exec {
namespace {

using detail::axes_from;
using detail::normalize_axes;
using detail::normalize_axis;
using detail::present;
using graph::Node;

template <at::Tensor (*F)(const at::Tensor&)>
Kernel unary(const Node&, int64_t) {
  return [](const Tensors& in) { return Tensors{F(in[0])}; };
}

template <at::Tensor (*F)(const at::Tensor&, const at::Tensor&)>
Kernel binary(const Node&, int64_t) {
  return [](const Tensors& in) { return Tensors{F(in[0], in[1])}; };
}

at::Tensor add(const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }
at::Tensor sub(const at::Tensor& a, const at::Tensor& b) { return at::sub(a, b); }
at::Tensor mul(const at::Tensor& a, const at::Tensor& b) { return at::mul(a, b); }
at::Tensor div(const at::Tensor& a, const at::Tensor& b) {
  if (!a.is_floating_point() && a.scalar_type() != at::kBool) return at::div(a, b, "trunc");
  return at::div(a, b);
}
at::Tensor pow(const at::Tensor& a, const at::Tensor& b) { return at::pow(a, b).to(a.scalar_type()); }
at::Tensor equal(const at::Tensor& a, const at::Tensor& b) { return at::eq(a, b); }
at::Tensor less(const at::Tensor& a, const at::Tensor& b) { return at::lt(a, b); }
at::Tensor less_equal(const at::Tensor& a, const at::Tensor& b) { return at::le(a, b); }
at::Tensor greater(const at::Tensor& a, const at::Tensor& b) { return at::gt(a, b); }
at::Tensor greater_equal(const at::Tensor& a, const at::Tensor& b) { return at::ge(a, b); }
at::Tensor logical_and(const at::Tensor& a, const at::Tensor& b) { return at::logical_and(a, b); }
at::Tensor logical_or(const at::Tensor& a, const at::Tensor& b) { return at::logical_or(a, b); }
at::Tensor logical_xor(const at::Tensor& a, const at::Tensor& b) { return at::logical_xor(a, b); }
at::Tensor prelu(const at::Tensor& x, const at::Tensor& slope) {
  // Opsets before 7 give a per-channel slope as a 1-D tensor.
  if (slope.dim() == 1 && x.dim() > 2 && slope.numel() == x.size(1) && slope.numel() != x.size(-1)) {
    std::vector<int64_t> shape(x.dim() - 1, 1);
    shape[0] = slope.numel();
    return at::where(x < 0, x * slope.reshape(shape), x);
  }
  return at::where(x < 0, x * slope, x);
}
at::Tensor matmul(const at::Tensor& a, const at::Tensor& b) { return at::matmul(a, b); }

at::Tensor relu(const at::Tensor& x) { return at::relu(x); }
at::Tensor sigmoid(const at::Tensor& x) { return at::sigmoid(x); }
at::Tensor tanh(const at::Tensor& x) { return at::tanh(x); }
at::Tensor erf(const at::Tensor& x) { return at::erf(x); }
at::Tensor sqrt(const at::Tensor& x) { return at::sqrt(x); }
at::Tensor exp(const at::Tensor& x) { return at::exp(x); }
at::Tensor log(const at::Tensor& x) { return at::log(x); }
at::Tensor neg(const at::Tensor& x) { return at::neg(x); }
at::Tensor abs(const at::Tensor& x) { return at::abs(x); }
at::Tensor reciprocal(const at::Tensor& x) { return at::reciprocal(x); }
at::Tensor floor(const at::Tensor& x) { return at::floor(x); }
at::Tensor ceil(const at::Tensor& x) { return at::ceil(x); }
at::Tensor round(const at::Tensor& x) { return at::round(x); }  // half to even, as ONNX
at::Tensor sign(const at::Tensor& x) { return at::sign(x); }
at::Tensor sin(const at::Tensor& x) { return at::sin(x); }
at::Tensor cos(const at::Tensor& x) { return at::cos(x); }
at::Tensor logical_not(const at::Tensor& x) { return at::logical_not(x); }
at::Tensor hard_swish(const at::Tensor& x) { return at::hardswish(x); }
at::Tensor softsign(const at::Tensor& x) { return x / (1 + at::abs(x)); }
at::Tensor softplus(const at::Tensor& x) { return at::softplus(x); }
at::Tensor tan(const at::Tensor& x) { return at::tan(x); }
at::Tensor sinh(const at::Tensor& x) { return at::sinh(x); }
at::Tensor cosh(const at::Tensor& x) { return at::cosh(x); }
at::Tensor asin(const at::Tensor& x) { return at::asin(x); }
at::Tensor acos(const at::Tensor& x) { return at::acos(x); }
at::Tensor atan(const at::Tensor& x) { return at::atan(x); }
at::Tensor asinh(const at::Tensor& x) { return at::asinh(x); }
at::Tensor acosh(const at::Tensor& x) { return at::acosh(x); }
at::Tensor atanh(const at::Tensor& x) { return at::atanh(x); }
at::Tensor is_nan(const at::Tensor& x) { return at::isnan(x); }
at::Tensor cast_like(const at::Tensor& x, const at::Tensor& like) { return x.to(like.scalar_type()); }

Kernel is_inf(const Node& node, int64_t) {
  bool positive = node.get_int("detect_positive", 1) != 0;
  bool negative = node.get_int("detect_negative", 1) != 0;
  return [positive, negative](const Tensors& in) {
    at::Tensor result = at::zeros_like(in[0], at::TensorOptions().dtype(at::kBool));
    if (positive) result = result | at::isposinf(in[0]);
    if (negative) result = result | at::isneginf(in[0]);
    return Tensors{result};
  };
}

Kernel mod(const Node& node, int64_t) {
  bool fmod = node.get_int("fmod", 0) != 0;
  return [fmod](const Tensors& in) { return Tensors{fmod ? at::fmod(in[0], in[1]) : at::remainder(in[0], in[1])}; };
}

Kernel thresholded_relu(const Node& node, int64_t) {
  double alpha = node.get_float("alpha", 1.0);
  return [alpha](const Tensors& in) { return Tensors{at::where(in[0] > alpha, in[0], at::zeros_like(in[0]))}; };
}

Kernel shrink(const Node& node, int64_t) {
  double bias = node.get_float("bias", 0.0);
  double lambd = node.get_float("lambd", 0.5);
  return [bias, lambd](const Tensors& in) {
    const at::Tensor& x = in[0];
    at::Tensor y = at::where(x < -lambd, x + bias, at::where(x > lambd, x - bias, at::zeros_like(x)));
    return Tensors{y.to(x.scalar_type())};
  };
}

template <bool kMax>
Kernel arg_reduce(const Node& node, int64_t) {
  int64_t axis = node.get_int("axis", 0);
  bool keepdims = node.get_int("keepdims", 1) != 0;
  bool last = node.get_int("select_last_index", 0) != 0;
  return [axis, keepdims, last, node](const Tensors& in) {
    int64_t a = normalize_axis(axis, in[0].dim(), node);
    at::Tensor x = last ? in[0].flip(a) : in[0];
    at::Tensor index = kMax ? at::argmax(x, a, true) : at::argmin(x, a, true);
    if (last) index = (x.size(a) - 1) - index;
    if (!keepdims) index = index.squeeze(a);
    return Tensors{index};
  };
}

Kernel hardmax(const Node& node, int64_t opset) {
  bool coerce = opset < 13;
  int64_t axis = node.get_int("axis", coerce ? 1 : -1);
  return [axis, coerce, node](const Tensors& in) {
    const at::Tensor& x = in[0];
    int64_t a = normalize_axis(axis, x.dim(), node);
    at::Tensor flat = coerce ? x.reshape({x.numel() / std::max<int64_t>(1, at::prod(at::tensor(x.sizes().slice(a).vec())).item<int64_t>()), -1}) : x;
    int64_t dim = coerce ? 1 : a;
    at::Tensor index = at::argmax(flat, dim, true);
    at::Tensor y = at::zeros_like(flat).scatter_(dim, index, 1);
    return Tensors{y.reshape(x.sizes())};
  };
}

Kernel cum_sum(const Node& node, int64_t) {
  bool exclusive = node.get_int("exclusive", 0) != 0;
  bool reverse = node.get_int("reverse", 0) != 0;
  return [exclusive, reverse, node](const Tensors& in) {
    int64_t a = normalize_axis(in[1].reshape({}).item<int64_t>(), in[0].dim(), node);
    at::Tensor x = reverse ? in[0].flip(a) : in[0];
    at::Tensor y = at::cumsum(x, a).to(x.scalar_type());
    if (exclusive) y = y - x;
    return Tensors{reverse ? y.flip(a) : y};
  };
}

Kernel einsum(const Node& node, int64_t) {
  std::string equation = node.get_string("equation", "");
  return [equation](const Tensors& in) { return Tensors{at::einsum(equation, in)}; };
}

Kernel top_k(const Node& node, int64_t) {
  int64_t axis = node.get_int("axis", -1);
  bool largest = node.get_int("largest", 1) != 0;
  bool sorted = node.get_int("sorted", 1) != 0;
  return [axis, largest, sorted, node](const Tensors& in) {
    int64_t a = normalize_axis(axis, in[0].dim(), node);
    int64_t k = in[1].reshape({-1})[0].item<int64_t>();
    auto [values, indices] = at::topk(in[0], k, a, largest, sorted);
    return Tensors{values, indices};
  };
}

Kernel trilu(const Node& node, int64_t) {
  bool upper = node.get_int("upper", 1) != 0;
  return [upper](const Tensors& in) {
    int64_t k = present(in, 1) ? in[1].reshape({}).item<int64_t>() : 0;
    return Tensors{upper ? at::triu(in[0], k) : at::tril(in[0], k)};
  };
}

Kernel leaky_relu(const Node& node, int64_t) {
  double alpha = node.get_float("alpha", 0.01);
  return [alpha](const Tensors& in) { return Tensors{at::leaky_relu(in[0], alpha)}; };
}

Kernel elu(const Node& node, int64_t) {
  double alpha = node.get_float("alpha", 1.0);
  return [alpha](const Tensors& in) { return Tensors{at::elu(in[0], alpha)}; };
}

Kernel selu(const Node& node, int64_t) {
  double alpha = node.get_float("alpha", 1.67326319217681884765625);
  double gamma = node.get_float("gamma", 1.05070102214813232421875);
  return [alpha, gamma](const Tensors& in) {
    const at::Tensor& x = in[0];
    return Tensors{gamma * at::where(x > 0, x, alpha * (at::exp(x) - 1))};
  };
}

Kernel hard_sigmoid(const Node& node, int64_t) {
  double alpha = node.get_float("alpha", 0.2);
  double beta = node.get_float("beta", 0.5);
  return [alpha, beta](const Tensors& in) { return Tensors{at::clamp(in[0] * alpha + beta, 0.0, 1.0)}; };
}

Kernel clip(const Node& node, int64_t opset) {
  std::optional<double> attr_min, attr_max;
  if (opset < 11) {
    if (node.has("min")) attr_min = node.get_float("min", 0);
    if (node.has("max")) attr_max = node.get_float("max", 0);
  }
  return [attr_min, attr_max](const Tensors& in) {
    c10::optional<at::Scalar> lo, hi;
    if (attr_min) lo = *attr_min;
    if (attr_max) hi = *attr_max;
    if (present(in, 1)) lo = in[1].reshape({}).item();
    if (present(in, 2)) hi = in[2].reshape({}).item();
    if (!lo && !hi) return Tensors{in[0]};
    if (lo && hi && lo->toDouble() > hi->toDouble()) return Tensors{at::full_like(in[0], *hi)};
    return Tensors{at::clamp(in[0], lo, hi)};
  };
}

// Softmax and LogSoftmax: opsets before 13 coerce the input to 2-D at `axis`.
template <bool kLog>
Kernel softmax(const Node& node, int64_t opset) {
  bool coerce = opset < 13;
  int64_t axis = node.get_int("axis", coerce ? 1 : -1);
  return [axis, coerce, node](const Tensors& in) {
    const at::Tensor& x = in[0];
    int64_t a = normalize_axis(axis, std::max<int64_t>(x.dim(), 1), node);
    at::Tensor y;
    if (coerce) {
      auto sizes = x.sizes();
      int64_t rows = 1;
      for (int64_t i = 0; i < a; ++i) rows *= sizes[i];
      at::Tensor flat = x.reshape({rows, -1});
      y = (kLog ? at::log_softmax(flat, 1) : at::softmax(flat, 1)).reshape(sizes);
    } else {
      y = kLog ? at::log_softmax(x, a) : at::softmax(x, a);
    }
    return Tensors{y};
  };
}

// Variadic element-wise ops with broadcasting (Sum, Max, Min, Mean).
enum class Variadic { Sum, Max, Min, Mean };
template <Variadic kOp>
Kernel variadic(const Node&, int64_t) {
  return [](const Tensors& in) {
    at::Tensor acc = in[0];
    for (size_t i = 1; i < in.size(); ++i) {
      switch (kOp) {
        case Variadic::Sum:
        case Variadic::Mean: acc = acc + in[i]; break;
        case Variadic::Max: acc = at::maximum(acc, in[i]); break;
        case Variadic::Min: acc = at::minimum(acc, in[i]); break;
      }
    }
    if (kOp == Variadic::Mean) acc = acc / static_cast<double>(in.size());
    return Tensors{acc};
  };
}

enum class Reduce { Mean, Sum, Max, Min, Prod, SumSquare, L1, L2, LogSum, LogSumExp };
template <Reduce kOp>
Kernel reduce(const Node& node, int64_t opset) {
  bool keepdims = node.get_int("keepdims", 1) != 0;
  bool noop_with_empty_axes = node.get_int("noop_with_empty_axes", 0) != 0;
  // ReduceSum takes axes as an input from opset 13; the others from opset 18.
  return [node, keepdims, noop_with_empty_axes](const Tensors& in) {
    const at::Tensor& x = in[0];
    auto axes_opt = axes_from(node, in, 1);
    std::vector<int64_t> axes;
    if (axes_opt && !axes_opt->empty()) {
      axes = normalize_axes(*axes_opt, x.dim(), node);
    } else {
      if (noop_with_empty_axes) return Tensors{x};
      for (int64_t i = 0; i < x.dim(); ++i) axes.push_back(i);
    }
    at::Tensor y;
    switch (kOp) {
      case Reduce::Mean: y = at::mean(x, axes, keepdims); break;
      case Reduce::Sum: y = at::sum(x, axes, keepdims); break;
      case Reduce::SumSquare: y = at::sum(x * x, axes, keepdims); break;
      case Reduce::L1: y = at::sum(at::abs(x), axes, keepdims); break;
      case Reduce::L2: y = at::sqrt(at::sum(x * x, axes, keepdims)); break;
      case Reduce::LogSum: y = at::log(at::sum(x, axes, keepdims)); break;
      case Reduce::LogSumExp: y = at::logsumexp(x, axes, keepdims); break;
      case Reduce::Max:
      case Reduce::Min:
      case Reduce::Prod: {
        y = x;
        std::vector<int64_t> sorted = axes;
        std::sort(sorted.rbegin(), sorted.rend());
        for (int64_t a : sorted) {
          if (kOp == Reduce::Max) y = std::get<0>(at::max(y, a, true));
          if (kOp == Reduce::Min) y = std::get<0>(at::min(y, a, true));
          if (kOp == Reduce::Prod) y = at::prod(y, a, true);
        }
        if (!keepdims) {
          for (int64_t a : sorted) y = y.squeeze(a);
        }
        break;
      }
    }
    return Tensors{y.to(x.scalar_type())};
  };
}

Kernel gemm(const Node& node, int64_t) {
  double alpha = node.get_float("alpha", 1.0);
  double beta = node.get_float("beta", 1.0);
  bool trans_a = node.get_int("transA", 0) != 0;
  bool trans_b = node.get_int("transB", 0) != 0;
  return [=](const Tensors& in) {
    at::Tensor a = trans_a ? in[0].t() : in[0];
    bool has_c = present(in, 2);
    if (alpha == 1.0 && (beta == 1.0 || !has_c) && a.dim() == 2) {
      at::Tensor weight = trans_b ? in[1] : in[1].t();
      if (!has_c || in[2].dim() <= 1) return Tensors{at::linear(a, weight, has_c ? in[2].reshape({-1}) : at::Tensor())};
    }
    at::Tensor b = trans_b ? in[1].t() : in[1];
    at::Tensor y = at::matmul(a, b);
    if (alpha != 1.0) y = y * alpha;
    if (has_c) y = y + (beta == 1.0 ? in[2] : in[2] * beta);
    return Tensors{y};
  };
}

// com.microsoft MatMulNBits (quant/matmul_nbits.h): Y = A · W^T (+ bias) with
// W [N, K] = (code - zero point) * scale per (channel, block), codes packed
// low-first along K in uint8 [N, blocks, block * bits / 8].
Kernel matmul_nbits(const Node& node, int64_t) {
  const int64_t k = node.get_int("K", 0), n = node.get_int("N", 0);
  const int64_t bits = node.get_int("bits", 4), block = node.get_int("block_size", 0);
  if (k <= 0 || n <= 0 || (bits != 2 && bits != 4 && bits != 8) || block < 16 || (block & (block - 1))) {
    fail("node '{}' (MatMulNBits): needs K, N > 0, bits 2, 4 or 8 and a power-of-two block_size >= 16", node.name);
  }
  return [=](const Tensors& in) {
    if (present(in, 3) || present(in, 4)) {
      fail("node '{}' (MatMulNBits): zero points and g_idx are not supported", node.name);
    }
    const int64_t blocks = (k + block - 1) / block;
    at::Tensor packed = in[1].to(at::kInt).reshape({n, blocks * block * bits / 8});
    std::vector<at::Tensor> fields;
    for (int64_t shift = 0; shift < 8; shift += bits) fields.push_back(packed.bitwise_right_shift(shift).bitwise_and((1 << bits) - 1));
    at::Tensor codes = at::stack(fields, 2).reshape({n, blocks * block}).narrow(1, 0, k);
    at::Tensor scales = in[2].to(at::kFloat).reshape({n, blocks}).repeat_interleave(block, 1).narrow(1, 0, k);
    at::Tensor weight = (codes - (1 << (bits - 1))).to(at::kFloat) * scales;
    return Tensors{at::linear(in[0], weight, present(in, 5) ? in[5] : at::Tensor())};
  };
}

Kernel cast(const Node& node, int64_t) {
  int64_t to = node.get_int("to", 0);
  at::ScalarType type;
  switch (to) {
    case 1: type = at::kFloat; break;
    case 2: type = at::kByte; break;
    case 3: type = at::kChar; break;
    case 5: type = at::kShort; break;
    case 6: type = at::kInt; break;
    case 7: type = at::kLong; break;
    case 9: type = at::kBool; break;
    case 10: type = at::kHalf; break;
    case 11: type = at::kDouble; break;
    case 16: type = at::kBFloat16; break;
    default: fail("node '{}' (Cast): target type {} is not supported", node.name, to);
  }
  return [type](const Tensors& in) { return Tensors{in[0].to(type)}; };
}

Kernel where(const Node&, int64_t) {
  return [](const Tensors& in) { return Tensors{at::where(in[0].to(at::kBool), in[1], in[2])}; };
}

}  // namespace

void register_math_ops(Registry& r) {
  r.add("Add", binary<add>);
  r.add("Sub", binary<sub>);
  r.add("Mul", binary<mul>);
  r.add("Div", binary<div>);
  r.add("Pow", binary<pow>);
  r.add("Equal", binary<equal>);
  r.add("Less", binary<less>);
  r.add("LessOrEqual", binary<less_equal>);
  r.add("Greater", binary<greater>);
  r.add("GreaterOrEqual", binary<greater_equal>);
  r.add("And", binary<logical_and>);
  r.add("Or", binary<logical_or>);
  r.add("Xor", binary<logical_xor>);
  r.add("PRelu", binary<prelu>);
  r.add("MatMul", binary<matmul>);
  r.add("Relu", unary<relu>);
  r.add("Sigmoid", unary<sigmoid>);
  r.add("Tanh", unary<tanh>);
  r.add("Erf", unary<erf>);
  r.add("Sqrt", unary<sqrt>);
  r.add("Exp", unary<exp>);
  r.add("Log", unary<log>);
  r.add("Neg", unary<neg>);
  r.add("Abs", unary<abs>);
  r.add("Reciprocal", unary<reciprocal>);
  r.add("Floor", unary<floor>);
  r.add("Ceil", unary<ceil>);
  r.add("Round", unary<round>);
  r.add("Sign", unary<sign>);
  r.add("Sin", unary<sin>);
  r.add("Cos", unary<cos>);
  r.add("Not", unary<logical_not>);
  r.add("HardSwish", unary<hard_swish>);
  r.add("Softsign", unary<softsign>);
  r.add("Softplus", unary<softplus>);
  r.add("Tan", unary<tan>);
  r.add("Sinh", unary<sinh>);
  r.add("Cosh", unary<cosh>);
  r.add("Asin", unary<asin>);
  r.add("Acos", unary<acos>);
  r.add("Atan", unary<atan>);
  r.add("Asinh", unary<asinh>);
  r.add("Acosh", unary<acosh>);
  r.add("Atanh", unary<atanh>);
  r.add("IsNaN", unary<is_nan>);
  r.add("IsInf", is_inf);
  r.add("CastLike", binary<cast_like>);
  r.add("Mod", mod);
  r.add("ThresholdedRelu", thresholded_relu);
  r.add("Shrink", shrink);
  r.add("ArgMax", arg_reduce<true>);
  r.add("ArgMin", arg_reduce<false>);
  r.add("Hardmax", hardmax);
  r.add("CumSum", cum_sum);
  r.add("Einsum", einsum);
  r.add("TopK", top_k);
  r.add("Trilu", trilu);
  r.add("ReduceLogSum", reduce<Reduce::LogSum>);
  r.add("LeakyRelu", leaky_relu);
  r.add("Elu", elu);
  r.add("Selu", selu);
  r.add("HardSigmoid", hard_sigmoid);
  r.add("Clip", clip);
  r.add("Softmax", softmax<false>);
  r.add("LogSoftmax", softmax<true>);
  r.add("Sum", variadic<Variadic::Sum>);
  r.add("Max", variadic<Variadic::Max>);
  r.add("Min", variadic<Variadic::Min>);
  r.add("Mean", variadic<Variadic::Mean>);
  r.add("ReduceMean", reduce<Reduce::Mean>);
  r.add("ReduceSum", reduce<Reduce::Sum>);
  r.add("ReduceMax", reduce<Reduce::Max>);
  r.add("ReduceMin", reduce<Reduce::Min>);
  r.add("ReduceProd", reduce<Reduce::Prod>);
  r.add("ReduceSumSquare", reduce<Reduce::SumSquare>);
  r.add("ReduceL1", reduce<Reduce::L1>);
  r.add("ReduceL2", reduce<Reduce::L2>);
  r.add("ReduceLogSumExp", reduce<Reduce::LogSumExp>);
  r.add("Gemm", gemm);
  r.add("com.microsoft::MatMulNBits", matmul_nbits);
  r.add("Cast", cast);
  r.add("Where", where);
}

}  // namespace autoprec::exec
