#include "deploy/native_export.h"

#include <ATen/ATen.h>

#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "graph/tensor_proto.h"
#include "util/error.h"

namespace autoprec::deploy {

namespace {

using native::DType;
using native::OpSpec;
using native::OpType;

int64_t int_attribute(const onnx::NodeProto& node, const std::string& name, int64_t otherwise) {
  for (const auto& a : node.attribute())
    if (a.name() == name) return a.i();
  return otherwise;
}

std::vector<int64_t> ints_attribute(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& a : node.attribute())
    if (a.name() == name) return {a.ints().begin(), a.ints().end()};
  return {};
}

float float_attribute(const onnx::NodeProto& node, const std::string& name, float otherwise) {
  for (const auto& a : node.attribute())
    if (a.name() == name) return a.f();
  return otherwise;
}

bool has_attribute(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& a : node.attribute())
    if (a.name() == name) return true;
  return false;
}

class Converter {
 public:
  Converter(const onnx::ModelProto& model, std::string origin) : model_(model), origin_(std::move(origin)) {
    const auto& g = model.graph();
    for (const auto& t : g.initializer()) initializers_[t.name()] = &t;
    for (const auto& node : g.node()) {
      for (const auto& in : node.input()) readers_[in].push_back(&node);
      for (const auto& out : node.output()) producers_[out] = &node;
    }
    for (const auto& p : model.metadata_props()) {
      if (p.key() == "autoprec.precision") {
        try {
          precision_ = nlohmann::json::parse(p.value());
        } catch (const std::exception&) {
          fail("{}: its autoprec.precision metadata is not JSON", origin_);
        }
        spec_.metadata = p.value();
      }
    }
    for (const auto& o : g.output()) graph_outputs_.insert(o.name());
  }

  native::ModelSpec convert() {
    const auto& g = model_.graph();
    std::vector<const onnx::ValueInfoProto*> inputs;
    for (const auto& in : g.input())
      if (!initializers_.count(in.name())) inputs.push_back(&in);
    if (inputs.size() != 1) fail("{}: the native runtime runs models with one input; this one has {}", origin_, inputs.size());
    const auto& shape = inputs[0]->type().tensor_type().shape();
    for (int i = 1; i < shape.dim_size(); ++i) {
      if (!shape.dim(i).has_dim_value() || shape.dim(i).dim_value() < 1) {
        fail("{}: input '{}' needs fixed sizes after the batch", origin_, inputs[0]->name());
      }
      spec_.input_shape.push_back(shape.dim(i).dim_value());
    }
    const int32_t type = inputs[0]->type().tensor_type().elem_type();
    if (type == onnx::TensorProto::UINT8) {
      spec_.inputs.push_back(add_tensor(inputs[0]->name(), DType::Uint8, input_grid(inputs[0]->name())));
    } else if (type == onnx::TensorProto::FLOAT) {
      spec_.inputs.push_back(add_tensor(inputs[0]->name(), DType::Float32));
    } else {
      fail("{}: input '{}' must be float or uint8", origin_, inputs[0]->name());
    }
    for (const auto& node : g.node()) {
      if (done_.count(&node)) continue;
      convert_node(node);
    }
    for (const auto& o : g.output()) {
      auto it = ids_.find(o.name());
      const bool codes = it != ids_.end() && spec_.tensors[it->second].dtype == DType::Uint8;
      spec_.outputs.push_back(codes ? it->second : float_tensor(o.name(), nullptr));
    }
    return std::move(spec_);
  }

 private:
  [[noreturn]] void refuse(const onnx::NodeProto& node, const std::string& why) const {
    fail("{}: the native runtime cannot run node '{}' ({}): {}", origin_, node.name(), node.op_type(), why);
  }

  int32_t add_tensor(const std::string& name, DType dtype, native::QuantGrid grid = {}) {
    const auto id = static_cast<int32_t>(spec_.tensors.size());
    spec_.tensors.push_back({name, dtype, grid});
    ids_[name] = id;
    return id;
  }

  at::Tensor constant(const std::string& name, const onnx::NodeProto& node) const {
    if (auto it = initializers_.find(name); it != initializers_.end()) return graph::tensor_from_proto(*it->second);
    if (auto it = producers_.find(name); it != producers_.end() && it->second->op_type() == "Constant") {
      for (const auto& a : it->second->attribute())
        if (a.name() == "value") return graph::tensor_from_proto(a.t());
    }
    refuse(node, "input '" + name + "' is not a constant");
  }

  const onnx::NodeProto* producer(const std::string& value, const std::string& op) const {
    auto it = producers_.find(value);
    return it != producers_.end() && it->second->op_type() == op ? it->second : nullptr;
  }

  // The quantized value a DequantizeLinear output reads ("" when `value` is not one).
  std::string dequantized_from(const std::string& value) const {
    const onnx::NodeProto* dq = producer(value, "DequantizeLinear");
    if (!dq || initializers_.count(dq->input(0)) || !ids_.count(dq->input(0))) return "";
    return spec_.tensors[ids_.at(dq->input(0))].dtype == DType::Uint8 ? dq->input(0) : "";
  }

  // The grid of a uint8 graph input: that of the DequantizeLinear nodes
  // reading it (per axis only when every channel has the same scale and zero point).
  native::QuantGrid input_grid(const std::string& name) const {
    auto it = readers_.find(name);
    if (it == readers_.end()) fail("{}: uint8 input '{}' is never read", origin_, name);
    std::optional<native::QuantGrid> grid;
    for (const onnx::NodeProto* r : it->second) {
      if (r->op_type() != "DequantizeLinear" || r->input_size() < 3) refuse(*r, "a uint8 input must be read by DequantizeLinear");
      at::Tensor s = constant(r->input(1), *r).to(at::kFloat).reshape({-1});
      at::Tensor z = constant(r->input(2), *r).to(at::kLong).reshape({-1});
      if (!s.eq(s[0]).all().item<bool>() || !z.eq(z[0]).all().item<bool>()) refuse(*r, "a uint8 input with per-channel grids");
      const native::QuantGrid g{s[0].item<float>(), static_cast<int32_t>(z[0].item<int64_t>()), 8};
      if (grid && (grid->scale != g.scale || grid->zero_point != g.zero_point)) refuse(*r, "a uint8 input read on two grids");
      grid = g;
    }
    return *grid;
  }

  native::QuantGrid grid_of(const onnx::NodeProto& q) const {
    if (q.input_size() < 3) refuse(q, "a QuantizeLinear without a zero point");
    at::Tensor s = constant(q.input(1), q), z = constant(q.input(2), q);
    if (s.numel() != 1 || z.numel() != 1) refuse(q, "a per-axis activation scale");
    if (z.scalar_type() != at::kByte) refuse(q, "an activation container other than uint8");
    return {s.item<float>(), static_cast<int32_t>(z.item<int64_t>()), 8};
  }

  // The float tensor of `value`: itself, or a Dequantize of its quantized
  // source (made once).
  int32_t float_tensor(const std::string& value, const onnx::NodeProto* reader) {
    if (auto it = ids_.find(value); it != ids_.end()) {
      if (spec_.tensors[it->second].dtype == DType::Float32) return it->second;
    }
    const std::string source = dequantized_from(value);
    if (source.empty()) {
      if (reader) refuse(*reader, "input '" + value + "' is neither computed nor dequantized");
      fail("{}: output '{}' is not computed by the native runtime", origin_, value);
    }
    const int32_t id = add_tensor(value, DType::Float32);
    OpSpec op;
    op.type = OpType::Dequantize;
    op.name = producers_.at(value)->name();
    op.inputs = {ids_.at(source)};
    op.outputs = {id};
    spec_.ops.push_back(std::move(op));
    return id;
  }

  // Follows `value` through absorbed Relu/Clip nodes (each the only reader)
  // to a QuantizeLinear that is its only reader. nullptr when there is none.
  const onnx::NodeProto* output_quantizer(const std::string& value, std::vector<const onnx::NodeProto*>& chain) const {
    std::string v = value;
    chain.clear();
    while (true) {
      if (graph_outputs_.count(v)) return nullptr;
      auto it = readers_.find(v);
      if (it == readers_.end() || it->second.size() != 1) return nullptr;
      const onnx::NodeProto* r = it->second[0];
      if (r->op_type() == "QuantizeLinear") return r;
      if (r->op_type() != "Relu" && r->op_type() != "Clip") return nullptr;
      chain.push_back(r);
      v = r->output(0);
    }
  }

  // The clamp an absorbed chain puts on the output codes.
  void apply_chain(const std::vector<const onnx::NodeProto*>& chain, const native::QuantGrid& grid, OpSpec& op) {
    auto code = [&](float v) { return static_cast<int32_t>(std::nearbyint(v / grid.scale)) + grid.zero_point; };
    for (const onnx::NodeProto* n : chain) {
      float lo = 0, hi = INFINITY;
      if (n->op_type() == "Clip") {
        lo = n->input_size() > 1 && !n->input(1).empty() ? constant(n->input(1), *n).item<float>() : -INFINITY;
        hi = n->input_size() > 2 && !n->input(2).empty() ? constant(n->input(2), *n).item<float>() : INFINITY;
      }
      if (std::isfinite(lo)) op.min_code = std::max(op.min_code, std::max(code(lo), 0));
      if (std::isfinite(hi)) {
        const int32_t top = std::clamp(code(hi), 0, 255);
        op.max_code = op.max_code < 0 ? top : std::min(op.max_code, top);
      }
      done_.insert(n);
    }
  }

  // Binds `node`'s (integer) output: to the QuantizeLinear after the chain,
  // or to a float tensor when there is none and `float_ok`.
  bool bind_integer_output(const onnx::NodeProto& node, OpSpec& op, bool float_ok) {
    std::vector<const onnx::NodeProto*> chain;
    const onnx::NodeProto* q = output_quantizer(node.output(0), chain);
    if (q) {
      const native::QuantGrid grid = grid_of(*q);
      apply_chain(chain, grid, op);
      done_.insert(q);
      op.outputs = {add_tensor(q->output(0), DType::Uint8, grid)};
      return true;
    }
    if (!float_ok) return false;
    op.outputs = {add_tensor(node.output(0), DType::Float32)};
    return true;
  }

  std::string layer_weight_bits_error(const std::string& name) const {
    return "no weight_bits for layer '" + name + "' in the file's autoprec.precision metadata";
  }

  // Weights and bias of a Conv (OIHW) or Gemm (N x K after transB), integer
  // when both are DequantizeLinear of integer initializers.
  void read_layer(const onnx::NodeProto& node, bool integer, OpSpec& op) {
    const bool gemm = node.op_type() == "Gemm";
    const bool trans_b = gemm && int_attribute(node, "transB", 0) != 0;
    const std::string& w_name = node.input(1);
    at::Tensor w;
    at::Tensor scale, zero;
    int64_t axis = 0;
    if (const onnx::NodeProto* dq = producer(w_name, "DequantizeLinear"); dq && initializers_.count(dq->input(0))) {
      w = constant(dq->input(0), *dq).to(at::kLong);
      scale = constant(dq->input(1), *dq).to(at::kFloat).reshape({-1});
      zero = dq->input_size() > 2 ? constant(dq->input(2), *dq).to(at::kLong).reshape({-1}) : at::zeros({1}, at::kLong);
      axis = int_attribute(*dq, "axis", 1);
      if (axis < 0) axis += w.dim();
    } else if (initializers_.count(w_name)) {
      if (integer) refuse(node, "an integer layer with float weights");
      w = constant(w_name, node).to(at::kFloat);
    } else {
      refuse(node, "its weights are not constant");
    }
    if (gemm && w.dim() != 2) refuse(node, "Gemm weights must be 2-D");
    if (!gemm && w.dim() != 4) refuse(node, "only 2-D convolutions are supported");
    const int64_t out_axis = gemm && !trans_b ? 1 : 0;
    if (!scale.defined() && integer) refuse(node, "an integer layer needs quantized weights");
    if (scale.defined()) {
      if (scale.numel() != 1 && axis != out_axis) refuse(node, "weight scales along another axis than the outputs");
      if (zero.numel() != 1 && zero.numel() != scale.numel()) refuse(node, "weight zero points of another shape than the scales");
    }
    const int64_t outputs = w.size(out_axis);
    auto per_output = [&](const at::Tensor& t) {
      return t.numel() == 1 ? t.expand({outputs}).contiguous() : t.contiguous();
    };
    at::Tensor w_rows = gemm && !trans_b ? w.t().contiguous() : w.contiguous();  // outputs first
    if (integer) {
      at::Tensor z = per_output(zero).reshape({outputs, 1});
      at::Tensor codes = (w_rows.reshape({outputs, -1}) - z).reshape({-1});
      auto it = precision_.find(node.name());
      if (it == precision_.end() || !it->contains("weight_bits")) refuse(node, layer_weight_bits_error(node.name()));
      op.weight_bits = (*it)["weight_bits"].get<int>();
      if (op.weight_bits < 1 || op.weight_bits > 8) refuse(node, "weight bits " + std::to_string(op.weight_bits));
      const int64_t limit = int64_t{1} << (op.weight_bits - 1);
      if (codes.min().item<int64_t>() < -limit || codes.max().item<int64_t>() >= limit) {
        refuse(node, "weight codes outside " + std::to_string(op.weight_bits) + " bits");
      }
      at::Tensor c8 = codes.to(at::kChar).contiguous();
      op.codes.assign(c8.data_ptr<int8_t>(), c8.data_ptr<int8_t>() + c8.numel());
      at::Tensor s = per_output(scale);
      op.weight_scales.assign(s.data_ptr<float>(), s.data_ptr<float>() + outputs);
    } else {
      at::Tensor f = w_rows.to(at::kFloat);
      if (scale.defined()) {
        at::Tensor z = per_output(zero).to(at::kFloat).reshape({outputs, 1});
        at::Tensor s = per_output(scale).reshape({outputs, 1});
        f = ((f.reshape({outputs, -1}) - z) * s).reshape(f.sizes());
      }
      f = f.contiguous();
      op.float_weights.assign(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
    }
    if (node.input_size() > 2 && !node.input(2).empty()) {
      const std::string& b_name = node.input(2);
      if (const onnx::NodeProto* dq = producer(b_name, "DequantizeLinear"); dq && initializers_.count(dq->input(0))) {
        at::Tensor q = constant(dq->input(0), *dq);
        if (integer) {
          if (q.scalar_type() != at::kInt) refuse(node, "an integer layer's bias must be int32");
          at::Tensor b = q.to(at::kInt).reshape({-1}).contiguous();
          if (b.numel() != outputs) refuse(node, "a bias of another size than the outputs");
          op.int_bias.assign(b.data_ptr<int32_t>(), b.data_ptr<int32_t>() + outputs);
        } else {
          at::Tensor s = constant(dq->input(1), *dq).to(at::kFloat);
          at::Tensor b = (q.to(at::kFloat) * s).reshape({-1}).contiguous();
          op.float_bias.assign(b.data_ptr<float>(), b.data_ptr<float>() + b.numel());
        }
      } else {
        if (integer) refuse(node, "an integer layer's bias must be a dequantized int32");
        at::Tensor b = constant(b_name, node).to(at::kFloat).reshape({-1}).contiguous();
        op.float_bias.assign(b.data_ptr<float>(), b.data_ptr<float>() + b.numel());
      }
      if (!integer && static_cast<int64_t>(op.float_bias.size()) != outputs) refuse(node, "a bias of another size than the outputs");
    }
    native::ConvGeometry& g = op.geometry;
    g.out_channels = outputs;
    if (gemm) {
      g.in_channels = w_rows.size(1);
    } else {
      g.groups = int_attribute(node, "group", 1);
      g.in_channels = w.size(1) * g.groups;
      g.kernel_h = w.size(2);
      g.kernel_w = w.size(3);
    }
  }

  void read_window(const onnx::NodeProto& node, native::ConvGeometry& g) const {
    for (int64_t d : ints_attribute(node, "dilations"))
      if (d != 1) refuse(node, "dilations are not supported");
    if (int_attribute(node, "ceil_mode", 0) != 0) refuse(node, "ceil_mode is not supported");
    if (has_attribute(node, "auto_pad")) {
      for (const auto& a : node.attribute())
        if (a.name() == "auto_pad" && a.s() != "NOTSET") refuse(node, "auto_pad is not supported");
    }
    if (node.op_type() == "MaxPool") {
      const auto k = ints_attribute(node, "kernel_shape");
      if (k.size() != 2) refuse(node, "only 2-D windows are supported");
      g.kernel_h = k[0];
      g.kernel_w = k[1];
    }
    const auto s = ints_attribute(node, "strides");
    if (s.size() == 2) {
      g.stride_h = s[0];
      g.stride_w = s[1];
    }
    const auto p = ints_attribute(node, "pads");
    if (p.size() == 4) {
      g.pad_top = p[0];
      g.pad_left = p[1];
      g.pad_bottom = p[2];
      g.pad_right = p[3];
    } else if (!p.empty()) {
      refuse(node, "pads of another rank than 2");
    }
  }

  void emit(OpSpec op) { spec_.ops.push_back(std::move(op)); }

  void convert_node(const onnx::NodeProto& node) {
    const std::string& type = node.op_type();
    if (!node.domain().empty() && node.domain() != "ai.onnx") refuse(node, "an operator of domain " + node.domain());
    if (type == "Constant") return;
    if (type == "DequantizeLinear") return;  // read where used
    OpSpec op;
    op.name = node.name();
    if (type == "QuantizeLinear") {
      op.type = OpType::Quantize;
      op.inputs = {float_tensor(node.input(0), &node)};
      op.outputs = {add_tensor(node.output(0), DType::Uint8, grid_of(node))};
      return emit(std::move(op));
    }
    if (type == "Conv" || type == "Gemm") {
      op.type = type == "Conv" ? OpType::Conv : OpType::Gemm;
      if (type == "Gemm") {
        if (int_attribute(node, "transA", 0) != 0) refuse(node, "transA is not supported");
        if (float_attribute(node, "alpha", 1) != 1 || float_attribute(node, "beta", 1) != 1) refuse(node, "alpha and beta must be 1");
      } else {
        read_window(node, op.geometry);
      }
      const std::string source = dequantized_from(node.input(0));
      const onnx::NodeProto* w_dq = producer(node.input(1), "DequantizeLinear");
      const bool bias_ok = node.input_size() < 3 || node.input(2).empty() || producer(node.input(2), "DequantizeLinear");
      const bool integer = !source.empty() && w_dq && initializers_.count(w_dq->input(0)) && bias_ok &&
                           constant(w_dq->input(0), *w_dq).scalar_type() != at::kFloat;
      read_layer(node, integer, op);
      if (op.geometry.groups != 1 && !(op.geometry.groups == op.geometry.in_channels &&
                                       op.geometry.groups == op.geometry.out_channels)) {
        refuse(node, std::to_string(op.geometry.groups) + " groups: only 1 or depthwise are supported");
      }
      if (integer) {
        op.inputs = {ids_.at(source)};
        bind_integer_output(node, op, true);
      } else {
        op.weight_bits = 32;
        op.inputs = {float_tensor(node.input(0), &node)};
        op.outputs = {add_tensor(node.output(0), DType::Float32)};
      }
      return emit(std::move(op));
    }
    if (type == "Add" || type == "GlobalAveragePool") {
      op.type = type == "Add" ? OpType::Add : OpType::GlobalAveragePool;
      bool integer = true;
      for (const auto& in : node.input()) integer = integer && !dequantized_from(in).empty();
      if (integer) {
        for (const auto& in : node.input()) op.inputs.push_back(ids_.at(dequantized_from(in)));
        if (bind_integer_output(node, op, false)) return emit(std::move(op));
        op.inputs.clear();
      }
      for (const auto& in : node.input()) {
        if (initializers_.count(in) || producer(in, "Constant")) refuse(node, "adding a constant is not supported");
        op.inputs.push_back(float_tensor(in, &node));
      }
      op.outputs = {add_tensor(node.output(0), DType::Float32)};
      return emit(std::move(op));
    }
    if (type == "MaxPool" || type == "Flatten" || type == "Reshape") {
      op.type = type == "MaxPool" ? OpType::MaxPool : OpType::Flatten;
      if (type == "MaxPool") {
        if (node.output_size() > 1 && !node.output(1).empty()) refuse(node, "MaxPool indices are not supported");
        read_window(node, op.geometry);
      } else if (type == "Flatten") {
        if (int_attribute(node, "axis", 1) != 1) refuse(node, "only Flatten with axis 1 is supported");
      } else {
        at::Tensor shape = constant(node.input(1), node).to(at::kLong).reshape({-1});
        if (shape.numel() != 2 || shape[1].item<int64_t>() != -1) refuse(node, "only a Reshape to [batch, -1] is supported");
      }
      const std::string source = dequantized_from(node.input(0));
      std::vector<const onnx::NodeProto*> chain;
      const onnx::NodeProto* q = source.empty() ? nullptr : output_quantizer(node.output(0), chain);
      if (q && chain.empty()) {
        const native::QuantGrid in = spec_.tensors[ids_.at(source)].grid, out = grid_of(*q);
        if (in.scale == out.scale && in.zero_point == out.zero_point) {
          done_.insert(q);
          op.inputs = {ids_.at(source)};
          op.outputs = {add_tensor(q->output(0), DType::Uint8, out)};
          return emit(std::move(op));
        }
      }
      op.inputs = {float_tensor(node.input(0), &node)};
      op.outputs = {add_tensor(node.output(0), DType::Float32)};
      return emit(std::move(op));
    }
    if (type == "Relu" || type == "Clip") {
      op.type = type == "Relu" ? OpType::Relu : OpType::Clip;
      if (type == "Clip") {
        op.clip_min = node.input_size() > 1 && !node.input(1).empty() ? constant(node.input(1), node).item<float>() : -INFINITY;
        op.clip_max = node.input_size() > 2 && !node.input(2).empty() ? constant(node.input(2), node).item<float>() : INFINITY;
      }
      op.inputs = {float_tensor(node.input(0), &node)};
      op.outputs = {add_tensor(node.output(0), DType::Float32)};
      return emit(std::move(op));
    }
    refuse(node, "not among the operators it runs (Conv, Gemm, Add, GlobalAveragePool, MaxPool, Flatten, Reshape, Relu, "
                 "Clip and the integer export's QuantizeLinear/DequantizeLinear)");
  }

  const onnx::ModelProto& model_;
  std::string origin_;
  std::map<std::string, const onnx::TensorProto*> initializers_;
  std::map<std::string, std::vector<const onnx::NodeProto*>> readers_;
  std::map<std::string, const onnx::NodeProto*> producers_;
  std::set<std::string> graph_outputs_;
  nlohmann::json precision_ = nlohmann::json::object();
  std::set<const onnx::NodeProto*> done_;
  std::map<std::string, int32_t> ids_;
  native::ModelSpec spec_;
};

}  // namespace

native::ModelSpec native_model_from_onnx(const onnx::ModelProto& model, const std::string& origin) {
  return Converter(model, origin).convert();
}

native::ModelSpec native_model_from_file(const std::string& path) {
  onnx::ModelProto model;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {}", path);
  if (!model.ParseFromIstream(&in)) fail("{} is not an ONNX model", path);
  return native_model_from_onnx(model, path);
}

native::ModelSpec read_native_spec(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {}", path);
  char magic[8] = {};
  in.read(magic, sizeof magic);
  in.close();
  native::ModelSpec spec;
  if (std::string(magic, sizeof magic) == "APNATIVE") {
    try {
      spec = native::load_model(path);
    } catch (const std::runtime_error& e) {
      fail("{}", e.what());
    }
  } else {
    spec = native_model_from_file(path);
  }
  return spec;
}

std::unique_ptr<native::Model> compile_native_model(native::ModelSpec spec, const std::string& origin, int threads) {
  try {
    return std::make_unique<native::Model>(std::move(spec), threads);
  } catch (const std::invalid_argument& e) {
    fail("{}: {}", origin, e.what());
  }
}

std::unique_ptr<native::Model> load_native_model(const std::string& path, int threads) {
  return compile_native_model(read_native_spec(path), path, threads);
}

void save_native_model(const native::ModelSpec& spec, const std::string& path) {
  try {
    native::save_model(spec, path);
  } catch (const std::runtime_error& e) {
    fail("{}", e.what());
  }
}

}  // namespace autoprec::deploy
