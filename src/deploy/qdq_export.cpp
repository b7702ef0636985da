#include "deploy/qdq_export.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "graph/onnx_export.h"
#include "graph/tensor_proto.h"
#include "quant/matmul_nbits.h"
#include "util/error.h"

namespace autoprec::deploy {
namespace {

using onnx::TensorProto;

std::string type_name(int32_t type) { return graph::container_type_name(type); }

// Unique names for what export adds, never clashing with the model's names.
class Names {
 public:
  explicit Names(const graph::Graph& g) {
    for (const auto& [name, t] : g.initializers) used_.insert(name);
    for (const auto& v : g.inputs) used_.insert(v.name);
    for (const auto& v : g.outputs) used_.insert(v.name);
    for (const auto& n : g.nodes) {
      used_.insert(n.name);
      used_.insert(n.inputs.begin(), n.inputs.end());
      used_.insert(n.outputs.begin(), n.outputs.end());
    }
  }
  std::string make(const std::string& base) {
    std::string name = base;
    for (int i = 1; used_.count(name); ++i) name = base + "_" + std::to_string(i);
    used_.insert(name);
    return name;
  }

 private:
  std::set<std::string> used_;
};

graph::Node make_node(const std::string& name, const std::string& op, std::vector<std::string> inputs,
                      std::vector<std::string> outputs) {
  graph::Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  return n;
}

graph::Attribute int_attribute(int64_t v) {
  graph::Attribute a;
  a.kind = graph::Attribute::Kind::Int;
  a.i = v;
  return a;
}

// The rewrite of one model: new initializers, 4-bit ones to pack, new nodes.
struct Rewrite {
  graph::Graph graph;
  Names names;
  std::map<std::string, int32_t> packed;  // initializer -> INT4/UINT4
  explicit Rewrite(const graph::Graph& g) : graph(g), names(g) {}

  std::string add_initializer(const std::string& base, const at::Tensor& t, int32_t container = 0) {
    std::string name = names.make(base);
    graph.initializers[name] = t;
    if (container == kOnnxInt4 || container == kOnnxUint4) packed[name] = container;
    return name;
  }
};

// Activation quantization parameters of one layer.
struct ActivationQdq {
  std::string scale, zero_point, clip_max;  // initializer names; clip_max empty without Clip
};


// Replaces the weight input of `node` (layer `layer`) by DequantizeLinear of
// its b-bit integers in `container` (INT8 becomes UINT8 + 128 with
// `uint8_weights`), scales from `wq`; appends the DequantizeLinear to `nodes`
// and returns the stored bytes. `container` is updated to what was written.
int64_t emit_weight(Rewrite& rw, std::vector<graph::Node>& nodes, const quant::QuantLayer& layer, graph::Node& node,
                    const quant::TensorQuantizer& wq, int32_t& container, bool uint8_weights) {
  const std::string& weight_name = node.inputs[static_cast<size_t>(layer.weight_input)];
  at::Tensor w = rw.graph.initializers.at(weight_name).to(at::kFloat);
  at::Tensor simulated = wq.apply(w).to(at::kFloat).contiguous();
  at::Tensor scale = wq.scale.detach().abs().to(at::kFloat).contiguous();
  at::Tensor broadcast = scale;
  if (wq.axis >= 0) {
    std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
    shape[static_cast<size_t>(wq.axis)] = scale.numel();
    broadcast = scale.reshape(shape);
  } else {
    scale = scale.reshape({});
    broadcast = scale;
  }
  at::Tensor q = at::round(simulated / broadcast).clamp_(wq.grid.qmin, wq.grid.qmax).to(at::kChar);
  at::Tensor zero = at::zeros(scale.sizes(), at::TensorOptions().dtype(at::kChar));
  if (uint8_weights && container == TensorProto::INT8) {
    container = TensorProto::UINT8;
    q = (q.to(at::kShort) + 128).to(at::kByte);
    zero = at::full(scale.sizes(), 128, at::TensorOptions().dtype(at::kByte));
  }
  std::string q_name = rw.add_initializer(weight_name + "_quantized", q, container);
  std::string s_name = rw.add_initializer(weight_name + "_scale", scale);
  std::string z_name = rw.add_initializer(weight_name + "_zero_point", zero, container);
  std::string dq_out = rw.names.make(weight_name + "_dequantized");
  graph::Node dq = make_node(rw.names.make(layer.name + "/weight_dequantize"), "DequantizeLinear", {q_name, s_name, z_name},
                             {dq_out});
  if (wq.axis >= 0) dq.attributes["axis"] = int_attribute(wq.axis);
  nodes.push_back(std::move(dq));
  node.inputs[static_cast<size_t>(layer.weight_input)] = dq_out;
  return container == kOnnxInt4 ? (q.numel() + 1) / 2 : q.numel();
}

// Rewrites `node`, a layer that runs as MatMulNBits (quant/matmul_nbits.h),
// into that contrib op: its input as is, the simulation's codes q + 2^(b-1)
// packed low-first along K into uint8 [N, blocks, block * b / 8], one scale
// per (channel, block), Gemm's bias as the kernel's bias. Returns the stored
// bytes of the packed weight.
int64_t emit_matmul_nbits(Rewrite& rw, const quant::QuantLayer& layer, graph::Node& node,
                          const quant::TensorQuantizer& wq, int bits) {
  const std::string weight_name = node.inputs.at(1);
  at::Tensor w = rw.graph.initializers.at(weight_name).to(at::kFloat);
  const int64_t k_axis = quant::matmul_nbits_k_axis(layer);
  const int64_t n = w.size(layer.channel_axis), k = w.size(k_axis);
  const int64_t block = wq.block > 0 ? wq.block : quant::matmul_nbits_block_size(k);
  const int64_t blocks = (k + block - 1) / block;
  at::Tensor scale = wq.scale.detach().abs().to(at::kFloat).reshape({-1});
  if (wq.block == 0) {
    if (scale.numel() != 1) fail("layer '{}': MatMulNBits needs blocked or per-tensor weight scales", layer.name);
    scale = scale.expand({n * blocks});
  }
  at::Tensor rows = quant::weight_blocks(wq.apply(w).to(at::kFloat), layer.channel_axis, k_axis, block);
  at::Tensor q = at::round(rows / scale.unsqueeze(1)).clamp_(wq.grid.qmin, wq.grid.qmax).to(at::kInt);
  // Padding of a partial last block holds code 2^(b-1), which dequantizes to 0.
  at::Tensor codes = q + (1 << (bits - 1));
  const int per_byte = 8 / bits;
  codes = codes.reshape({n * blocks, block / per_byte, per_byte});
  at::Tensor packed = at::zeros({n * blocks, block / per_byte}, at::TensorOptions().dtype(at::kInt));
  for (int i = 0; i < per_byte; ++i) packed.bitwise_or_(codes.select(2, i).bitwise_left_shift(bits * i));
  packed = packed.to(at::kByte).reshape({n, blocks, block * bits / 8}).contiguous();

  std::string b_name = rw.add_initializer(weight_name + "_nbits", packed);
  std::string s_name = rw.add_initializer(weight_name + "_nbits_scale", scale.contiguous());
  std::vector<std::string> inputs = {node.inputs[0], b_name, s_name};
  if (node.op_type == "Gemm" && node.inputs.size() > 2 && !node.inputs[2].empty()) {
    at::Tensor bias = rw.graph.initializers.at(node.inputs[2]).to(at::kFloat).reshape({n}).contiguous();
    inputs.insert(inputs.end(), {"", "", rw.add_initializer(node.inputs[2] + "_nbits_bias", bias)});
  }
  node.op_type = "MatMulNBits";
  node.domain = "com.microsoft";
  node.inputs = std::move(inputs);
  node.attributes.clear();
  node.attributes["K"] = int_attribute(k);
  node.attributes["N"] = int_attribute(n);
  node.attributes["bits"] = int_attribute(bits);
  node.attributes["block_size"] = int_attribute(block);
  node.attributes["accuracy_level"] = int_attribute(0);  // float arithmetic: exactly the simulation's products
  return packed.numel();
}

// Drops initializers nobody reads, converts the rewritten graph to a model
// with `metadata` at `opset` and packs the 4-bit initializers.
onnx::ModelProto finish_model(Rewrite& rw, int64_t opset, const std::map<std::string, std::string>& metadata) {
  std::set<std::string> read;
  for (const graph::Node& n : rw.graph.nodes) read.insert(n.inputs.begin(), n.inputs.end());
  for (const auto& v : rw.graph.outputs) read.insert(v.name);
  for (auto it = rw.graph.initializers.begin(); it != rw.graph.initializers.end();) {
    it = read.count(it->first) ? std::next(it) : rw.graph.initializers.erase(it);
  }
  onnx::ModelProto model = graph::to_model_proto(rw.graph, {}, metadata, opset);
  if (opset >= kOpset4Bit) model.set_ir_version(graph::kIrVersion4Bit);
  for (TensorProto& init : *model.mutable_graph()->mutable_initializer()) {
    auto packed = rw.packed.find(init.name());
    if (packed == rw.packed.end()) continue;
    at::Tensor t = rw.graph.initializers.at(init.name()).to(at::kLong).contiguous().reshape({-1});
    std::vector<int64_t> values(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
    init.set_data_type(packed->second);
    init.set_raw_data(pack_4bit(values, packed->second == kOnnxInt4));
  }
  return model;
}

}  // namespace

void upgrade_opset(graph::Graph& g, int64_t target) {
  static const std::set<std::string> reduce_ops = {"ReduceL1",  "ReduceL2",  "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                                                   "ReduceMean", "ReduceMin", "ReduceProd",   "ReduceSumSquare"};
  Names names(g);
  for (graph::Node& node : g.nodes) {
    if (!node.domain.empty() && node.domain != "ai.onnx") continue;
    if ((node.op_type == "GridSample" || node.op_type == "DFT") && target >= 20) {
      fail("node '{}' ({}) changed meaning at opset 20; export at opset {} cannot rewrite it", node.name, node.op_type,
           target);
    }
    if (g.opset < 18 && target >= 18 && reduce_ops.count(node.op_type) && node.has("axes")) {
      std::vector<int64_t> axes = node.get_ints("axes");
      std::string name = names.make(node.name + "_axes");
      g.initializers[name] = at::tensor(axes, at::TensorOptions().dtype(at::kLong));
      node.inputs.resize(1);
      node.inputs.push_back(name);
      node.attributes.erase("axes");
    }
    if (g.opset < 18 && target >= 18 && node.op_type == "Split" && (node.inputs.size() < 2 || node.inputs[1].empty())) {
      node.attributes["num_outputs"] = int_attribute(static_cast<int64_t>(node.outputs.size()));
    }
  }
  g.opset = target;
}

void check_exportable(const graph::Graph& graph, const std::string& origin) {
  if (graph.metadata.count("autoprec.format")) {
    auto source = graph.metadata.find("autoprec.source_model");
    fail("{} is already a QDQ export; export the float model it came from{}", origin,
         source == graph.metadata.end() ? "" : " (" + source->second + ")");
  }
  if (graph.opset < kOpset8Bit) {
    fail("QDQ export needs a model at opset {} or later; {} is at opset {} (re-export it with a newer opset)",
         kOpset8Bit, origin, graph.opset);
  }
}

namespace {

// The integer form (quant/integer_form.h): one QuantizeLinear per quantized
// tensor where it is produced, one DequantizeLinear per reader, int8 weights,
// int32 biases; the layers and operators the plan leaves float stay float.
QdqExport export_integer_form(const quant::QuantizedModel& model, const ExportOptions& options) {
  const graph::Graph& source = model.executor().graph();
  const quant::IntegerPlan& plan = *model.integer_plan();
  const auto& precision = model.precision();
  for (const std::string& root : plan.roots()) {
    if (!model.tensor_quantizer(root).enabled) {
      fail("tensor '{}' of the integer form has no calibrated range; give --data to calibrate or a config with ranges",
           root);
    }
  }
  const int64_t opset = std::max(kOpset8Bit, source.opset);
  Rewrite rw(source);
  if (opset > rw.graph.opset) upgrade_opset(rw.graph, opset);
  for (const auto& [name, t] : model.executor().parameters()) rw.graph.initializers[name] = t.detach().contiguous();

  QdqExport out;
  out.opset = opset;
  out.format = quant::QuantForm::Int;
  out.float_nodes = plan.float_nodes;
  out.integer_nodes = static_cast<int>(plan.integer_nodes.size());
  out.quantized_tensors = static_cast<int>(plan.roots().size());
  std::map<std::string, std::pair<std::string, std::string>> qparams;  // root -> scale, zero point initializers
  auto params_of = [&](const std::string& value) -> const std::pair<std::string, std::string>& {
    const std::string& root = plan.find(value)->root;
    auto it = qparams.find(root);
    if (it != qparams.end()) return it->second;
    const quant::TensorQuantizer& q = model.tensor_quantizer(root);
    float scale = std::abs(q.scale.detach().reshape({-1})[0].item<float>());
    int64_t zero_point = std::clamp<int64_t>(q.zero_point.reshape({-1})[0].item<int64_t>(), q.grid.qmin, q.grid.qmax);
    std::string s_name = rw.add_initializer(root + "_scale", at::full({}, scale, at::kFloat));
    std::string z_name = rw.add_initializer(root + "_zero_point", at::full({}, zero_point, at::TensorOptions().dtype(at::kByte)));
    return qparams.emplace(root, std::make_pair(s_name, z_name)).first->second;
  };
  std::map<std::string, std::string> quantized_name;  // value -> its uint8 tensor
  std::vector<graph::Node> nodes;
  auto quantize = [&](const std::string& value, const std::string& float_value) {
    auto [s_name, z_name] = params_of(value);
    std::string q = rw.names.make(value + "_quantized");
    nodes.push_back(make_node(rw.names.make(value + "/quantize"), "QuantizeLinear", {float_value, s_name, z_name}, {q}));
    quantized_name[value] = q;
  };
  auto dequantize = [&](const std::string& value, const std::string& reader, std::string result = "") {
    auto [s_name, z_name] = params_of(value);
    if (result.empty()) result = rw.names.make(value + "_dequantized");
    nodes.push_back(make_node(rw.names.make(reader + "/dequantize"), "DequantizeLinear",
                              {quantized_name.at(value), s_name, z_name}, {result}));
    return result;
  };
  // ORT quantizes the float weights of a Conv/Gemm whose input comes from a
  // per-tensor DequantizeLinear (WeightBiasQuantization) and then fuses it
  // into an integer kernel. A layer the plan keeps float therefore reads its
  // input through a per-axis DequantizeLinear holding the same scale and
  // zero point once per channel: the same values, and ORT leaves it float.
  auto dequantize_for_float_layer = [&](const std::string& value, const graph::Node& reader) {
    const at::Tensor& w = rw.graph.initializers.at(reader.inputs.at(1));
    int64_t axis = 1, channels = 0;
    if (reader.op_type == "Conv") {
      channels = w.size(1) * reader.get_int("group", 1);
    } else if (reader.op_type == "Gemm") {
      channels = reader.get_int("transB", 0) ? w.size(1) : w.size(0);
    } else {
      axis = -1;
      channels = w.size(0);
    }
    const quant::TensorQuantizer& q = model.tensor_quantizer(value);
    float scale = std::abs(q.scale.detach().reshape({-1})[0].item<float>());
    int64_t zero_point = std::clamp<int64_t>(q.zero_point.reshape({-1})[0].item<int64_t>(), q.grid.qmin, q.grid.qmax);
    std::string s_name = rw.add_initializer(value + "_scale_per_channel", at::full({channels}, scale, at::kFloat));
    std::string z_name = rw.add_initializer(value + "_zero_point_per_channel",
                                            at::full({channels}, zero_point, at::TensorOptions().dtype(at::kByte)));
    std::string result = rw.names.make(value + "_dequantized");
    graph::Node dq = make_node(rw.names.make(reader.name + "/dequantize"), "DequantizeLinear",
                               {quantized_name.at(value), s_name, z_name}, {result});
    dq.attributes["axis"] = int_attribute(axis);
    nodes.push_back(std::move(dq));
    return result;
  };
  std::set<std::string> graph_outputs;
  for (const auto& v : rw.graph.outputs) graph_outputs.insert(v.name);
  std::map<std::string, const quant::QuantLayer*> by_name;
  for (const quant::QuantLayer& layer : model.layers()) by_name[layer.name] = &layer;
  nlohmann::json layers_json = nlohmann::json::object();

  for (const auto& v : rw.graph.inputs) {
    if (plan.find(v.name)) quantize(v.name, v.name);
  }
  for (graph::Node node : rw.graph.nodes) {
    auto found = by_name.find(node.name);
    const bool float_layer = found != by_name.end() && found->second->weight_input == 1 &&
                             !plan.integer_layers.count(node.name);
    const bool nbits = found != by_name.end() &&
                       quant::runs_as_matmul_nbits(source, *found->second, precision.at(node.name));
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      std::string& in = node.inputs[i];
      if (in.empty() || !plan.find(in)) continue;
      in = float_layer && i == 0 && !nbits ? dequantize_for_float_layer(in, node) : dequantize(in, node.name);
    }
    if (found != by_name.end()) {
      const quant::QuantLayer& layer = *found->second;
      const quant::LayerPrecision& p = precision.at(layer.name);
      const bool integer = plan.integer_layers.count(layer.name) > 0;
      LayerExport info;
      info.name = layer.name;
      info.weight_bits = p.weight_bits;
      info.activation_bits = p.activation_bits;
      info.integer = integer;
      const quant::TensorQuantizer& wq = model.weight_quantizer(layer.name);
      if (nbits && wq.enabled) {
        info.weight_type = TensorProto::UINT8;
        info.matmul_nbits = true;
        out.quantized_weight_bytes += emit_matmul_nbits(rw, layer, node, wq, p.weight_bits);
      } else if (layer.weight_input >= 0 && wq.enabled) {
        info.weight_type = TensorProto::INT8;  // ORT has no integer kernel for INT4 Conv weights
        out.quantized_weight_bytes += emit_weight(rw, nodes, layer, node, wq, info.weight_type, options.uint8_weights);
      }
      if (integer) info.activation_type = TensorProto::UINT8;
      at::Tensor bias_scale = model.bias_scale(layer.name);
      if (integer && bias_scale.defined() && node.inputs.size() > 2 && !node.inputs[2].empty() &&
          rw.graph.initializers.count(node.inputs[2]) && rw.graph.initializers.at(node.inputs[2]).dim() == 1) {
        const std::string bias_name = node.inputs[2];
        at::Tensor b = rw.graph.initializers.at(bias_name).to(at::kFloat);
        at::Tensor scale = bias_scale.numel() == 1 ? at::full({b.numel()}, bias_scale.item<float>()) : bias_scale;
        at::Tensor q = at::round(b / scale).clamp_(-2147483648.0, 2147483647.0).to(at::kInt);
        std::string q_name = rw.add_initializer(bias_name + "_int32", q);
        std::string s_name = rw.add_initializer(bias_name + "_scale", scale.contiguous());
        std::string z_name = rw.add_initializer(bias_name + "_zero_point", at::zeros({b.numel()}, at::TensorOptions().dtype(at::kInt)));
        std::string dq_out = rw.names.make(bias_name + "_dequantized");
        graph::Node dq = make_node(rw.names.make(layer.name + "/bias_dequantize"), "DequantizeLinear",
                                   {q_name, s_name, z_name}, {dq_out});
        dq.attributes["axis"] = int_attribute(0);
        nodes.push_back(std::move(dq));
        node.inputs[2] = dq_out;
        info.integer_bias = true;
      }
      layers_json[layer.name] = {{"weight_bits", info.weight_bits},
                                 {"activation_bits", info.activation_bits},
                                 {"weight_type", type_name(info.weight_type)},
                                 {"activation_type", type_name(info.activation_type)},
                                 {"integer", integer}};
      if (info.matmul_nbits) layers_json[layer.name]["kernel"] = "MatMulNBits";
      out.layers.push_back(info);
    }
    std::vector<std::pair<std::string, std::string>> produced;  // quantized output, float tensor it is computed as
    for (std::string& o : node.outputs) {
      if (o.empty() || !plan.find(o)) continue;
      std::string value = o;
      if (graph_outputs.count(o)) o = rw.names.make(o + "_float");
      produced.emplace_back(value, o);
    }
    nodes.push_back(std::move(node));
    for (const auto& [value, float_value] : produced) {
      quantize(value, float_value);
      if (graph_outputs.count(value)) dequantize(value, value + "/output", value);
    }
  }
  rw.graph.nodes = std::move(nodes);

  // A MatMulNBits layer computes on its 2-8-bit codes: not a float island.
  std::set<std::string> nbits_layers;
  for (const LayerExport& l : out.layers) {
    if (l.matmul_nbits) nbits_layers.insert(l.name);
  }
  out.float_nodes.erase(std::remove_if(out.float_nodes.begin(), out.float_nodes.end(),
                                       [&](const std::string& n) { return nbits_layers.count(n) > 0; }),
                        out.float_nodes.end());

  std::map<std::string, std::string> metadata = {
      {"autoprec.format", "int-1"},
      {"autoprec.precision", layers_json.dump()},
      {"autoprec.precision_config", quant::to_yaml(model.calibrated_config())},
  };
  if (!options.source_model.empty()) metadata["autoprec.source_model"] = options.source_model;
  out.model = finish_model(rw, opset, metadata);
  return out;
}

}  // namespace

QdqExport export_qdq(const quant::QuantizedModel& model, const ExportOptions& options) {
  c10::InferenceMode guard;
  check_exportable(model.executor().graph(), options.source_model.empty() ? "the model" : options.source_model);
  if (model.format() == quant::QuantForm::Int) return export_integer_form(model, options);
  const graph::Graph& source = model.executor().graph();
  const auto& precision = model.precision();

  // Containers first: one 4-bit container sets the opset of the whole file.
  bool any_4bit = false;
  for (const quant::QuantLayer& layer : model.layers()) {
    const quant::LayerPrecision& p = precision.at(layer.name);
    if (layer.weight_input >= 0 && !quant::is_float_bits(p.weight_bits) && container_bits(weight_container(p.weight_bits)) == 4 &&
        !quant::runs_as_matmul_nbits(source, layer, p)) {
      any_4bit = true;
    }
    if (!quant::is_float_bits(p.activation_bits)) {
      if (!model.activation_quantizer(layer.name).enabled) {
        fail("the input of layer '{}' has no calibrated range; give --data to calibrate or a config with ranges",
             layer.name);
      }
      if (container_bits(activation_container(p.activation_bits)) == 4) any_4bit = true;
    }
  }
  int64_t opset = any_4bit ? kOpset4Bit : std::max(kOpset8Bit, source.opset);

  Rewrite rw(source);
  if (opset > rw.graph.opset) upgrade_opset(rw.graph, opset);
  for (const auto& [name, t] : model.executor().parameters()) rw.graph.initializers[name] = t.detach().contiguous();

  QdqExport out;
  out.opset = opset;
  std::map<std::string, const quant::QuantLayer*> by_name;
  for (const quant::QuantLayer& layer : model.layers()) by_name[layer.name] = &layer;
  std::vector<graph::Node> nodes;
  nlohmann::json layers_json = nlohmann::json::object();

  for (graph::Node node : rw.graph.nodes) {
    auto found = by_name.find(node.name);
    if (found == by_name.end()) {
      nodes.push_back(std::move(node));
      continue;
    }
    const quant::QuantLayer& layer = *found->second;
    const quant::LayerPrecision& p = precision.at(layer.name);
    LayerExport info;
    info.name = layer.name;
    info.weight_bits = p.weight_bits;
    info.activation_bits = p.activation_bits;

    const quant::TensorQuantizer& wq = model.weight_quantizer(layer.name);
    if (wq.enabled && quant::runs_as_matmul_nbits(source, layer, p)) {
      info.weight_type = TensorProto::UINT8;
      info.matmul_nbits = true;
      out.quantized_weight_bytes += emit_matmul_nbits(rw, layer, node, wq, p.weight_bits);
    } else if (layer.weight_input >= 0 && wq.enabled) {
      info.weight_type = weight_container(p.weight_bits);
      out.quantized_weight_bytes += emit_weight(rw, nodes, layer, node, wq, info.weight_type, options.uint8_weights);
    }

    if (!quant::is_float_bits(p.activation_bits)) {
      const quant::TensorQuantizer& aq = model.activation_quantizer(layer.name);
      float scale = std::abs(aq.scale.detach().reshape({-1})[0].item<float>());
      int64_t zero_point = static_cast<int64_t>(std::nearbyint(aq.zero_point.detach().reshape({-1})[0].item<double>()));
      zero_point = std::clamp(zero_point, aq.grid.qmin, aq.grid.qmax);
      info.activation_type = activation_container(p.activation_bits);
      info.activation_clip = container_bits(info.activation_type) > p.activation_bits;
      std::string prefix = layer.name + "/input";
      std::string s_name = rw.add_initializer(prefix + "_scale", at::full({}, scale, at::kFloat));
      std::string z_name = rw.add_initializer(prefix + "_zero_point",
                                              at::full({}, zero_point, at::TensorOptions().dtype(at::kByte)),
                                              info.activation_type);
      std::string clip_max;
      if (info.activation_clip) {
        // The largest float the b-bit grid represents; round(max/s) + zp must be qmax exactly.
        auto steps = static_cast<float>(aq.grid.qmax - zero_point);
        float max = steps * scale;
        while (std::nearbyint(max / scale) > steps) max = std::nextafter(max, -INFINITY);
        clip_max = rw.add_initializer(prefix + "_clip_max", at::full({}, max, at::kFloat));
      }
      std::vector<size_t> inputs = {0};
      if (layer.weight_input < 0) inputs.push_back(1);
      for (size_t index : inputs) {
        std::string value = node.inputs[index];
        std::string tag = layer.name + (index == 0 ? "/input" : "/input1");
        if (!clip_max.empty()) {
          std::string clipped = rw.names.make(tag + "_clipped");
          nodes.push_back(make_node(rw.names.make(tag + "_clip"), "Clip", {value, "", clip_max}, {clipped}));
          value = clipped;
        }
        std::string quantized = rw.names.make(tag + "_quantized");
        std::string dequantized = rw.names.make(tag + "_dequantized");
        nodes.push_back(make_node(rw.names.make(tag + "_quantize"), "QuantizeLinear", {value, s_name, z_name}, {quantized}));
        nodes.push_back(
            make_node(rw.names.make(tag + "_dequantize"), "DequantizeLinear", {quantized, s_name, z_name}, {dequantized}));
        node.inputs[index] = dequantized;
      }
    }
    nlohmann::json entry = {{"weight_bits", info.weight_bits},
                            {"activation_bits", info.activation_bits},
                            {"weight_type", type_name(info.weight_type)},
                            {"activation_type", type_name(info.activation_type)}};
    if (layer.weight_input < 0) {
      entry["weight_type"] = "none";
      entry["activation_only"] = true;
    }
    if (info.matmul_nbits) entry["kernel"] = "MatMulNBits";
    layers_json[layer.name] = entry;
    out.layers.push_back(info);
    nodes.push_back(std::move(node));
  }
  rw.graph.nodes = std::move(nodes);

  std::map<std::string, std::string> metadata = {
      {"autoprec.format", "qdq-1"},
      {"autoprec.precision", layers_json.dump()},
      {"autoprec.precision_config", quant::to_yaml(model.calibrated_config())},
  };
  if (!options.source_model.empty()) metadata["autoprec.source_model"] = options.source_model;
  out.model = finish_model(rw, opset, metadata);
  return out;
}

// ---- validation ------------------------------------------------------------
namespace {

template <typename... Args>
[[noreturn]] void invalid(fmt::format_string<Args...> format, Args&&... args) {
  fail("QDQ model check: {}", fmt::format(format, std::forward<Args>(args)...));
}

int64_t element_bytes(int32_t type) {
  switch (type) {
    case TensorProto::FLOAT:
    case TensorProto::INT32:
    case TensorProto::UINT32: return 4;
    case TensorProto::DOUBLE:
    case TensorProto::INT64:
    case TensorProto::UINT64: return 8;
    case TensorProto::FLOAT16:
    case TensorProto::BFLOAT16:
    case TensorProto::INT16:
    case TensorProto::UINT16: return 2;
    case TensorProto::INT8:
    case TensorProto::UINT8:
    case TensorProto::BOOL: return 1;
    default: return 0;
  }
}

int64_t element_count(const TensorProto& t) {
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0) invalid("initializer '{}' has a negative dimension", t.name());
    n *= d;
  }
  return n;
}

bool is_4bit(int32_t type) { return type == kOnnxInt4 || type == kOnnxUint4; }

std::vector<double> values_of(const TensorProto& t) {
  if (is_4bit(t.data_type())) {
    std::vector<int64_t> v = unpack_4bit(t.raw_data(), element_count(t), t.data_type() == kOnnxInt4);
    return std::vector<double>(v.begin(), v.end());
  }
  at::Tensor x = graph::tensor_from_proto(t).to(at::kDouble).contiguous().reshape({-1});
  return std::vector<double>(x.data_ptr<double>(), x.data_ptr<double>() + x.numel());
}

struct ModelIndex {
  std::map<std::string, const TensorProto*> initializers;
  std::map<std::string, const onnx::NodeProto*> producers;
  std::map<std::string, const onnx::NodeProto*> nodes;

  const TensorProto* initializer(const std::string& name) const {
    auto it = initializers.find(name);
    return it == initializers.end() ? nullptr : it->second;
  }
  const onnx::NodeProto* producer(const std::string& value) const {
    auto it = producers.find(value);
    return it == producers.end() ? nullptr : it->second;
  }
};

int64_t axis_attribute(const onnx::NodeProto& node) {
  for (const auto& a : node.attribute()) {
    if (a.name() == "axis") return a.i();
  }
  return 1;
}

void check_qdq_node(const onnx::NodeProto& node, const ModelIndex& index, int64_t opset) {
  if (node.input_size() < 2 || node.input_size() > 3) invalid("node '{}' ({}) needs 2 or 3 inputs", node.name(), node.op_type());
  const TensorProto* scale = index.initializer(node.input(1));
  if (!scale) invalid("node '{}' ({}): the scale '{}' is not an initializer", node.name(), node.op_type(), node.input(1));
  if (scale->data_type() != TensorProto::FLOAT) invalid("node '{}': the scale is not FLOAT", node.name());
  for (double s : values_of(*scale)) {
    if (!(s > 0) || !std::isfinite(s)) invalid("node '{}': scale {} is not positive and finite", node.name(), s);
  }
  const TensorProto* zero = node.input_size() > 2 && !node.input(2).empty() ? index.initializer(node.input(2)) : nullptr;
  if (node.input_size() > 2 && !node.input(2).empty() && !zero) {
    invalid("node '{}': the zero point '{}' is not an initializer", node.name(), node.input(2));
  }
  if (zero) {
    if (element_count(*zero) != element_count(*scale) || zero->dims_size() != scale->dims_size()) {
      invalid("node '{}': the zero point's shape differs from the scale's", node.name());
    }
    if (is_4bit(zero->data_type()) && opset < kOpset4Bit) {
      invalid("node '{}': {} needs opset {} (the model has {})", node.name(), type_name(zero->data_type()), kOpset4Bit,
              opset);
    }
  }
  if (scale->dims_size() > 1) invalid("node '{}': the scale must be a scalar or 1-D", node.name());
  const TensorProto* data = index.initializer(node.input(0));
  if (node.op_type() == "DequantizeLinear" && data && zero && data->data_type() != zero->data_type()) {
    invalid("node '{}': data {} and zero point {} differ in type", node.name(), type_name(data->data_type()),
            type_name(zero->data_type()));
  }
  if (scale->dims_size() == 1 && data) {
    int64_t rank = data->dims_size();
    int64_t axis = axis_attribute(node);
    if (axis < -rank || axis >= rank) invalid("node '{}': axis {} is out of range for rank {}", node.name(), axis, rank);
    if (axis < 0) axis += rank;
    if (data->dims(static_cast<int>(axis)) != element_count(*scale)) {
      invalid("node '{}': {} scales along axis {} of size {}", node.name(), element_count(*scale), axis,
              data->dims(static_cast<int>(axis)));
    }
  }
}

const onnx::NodeProto* find_consumer_input(const onnx::NodeProto& layer, int input, const ModelIndex& index) {
  if (input >= layer.input_size()) invalid("layer '{}' has no input {}", layer.name(), input);
  return index.producer(layer.input(input));
}

void check_weight(const onnx::NodeProto& layer, int bits, const ModelIndex& index) {
  const onnx::NodeProto* dq = find_consumer_input(layer, 1, index);
  bool quantized = dq && dq->op_type() == "DequantizeLinear";
  if (quant::is_float_bits(bits)) {
    if (quantized) invalid("layer '{}' is float ({} bits) but its weight is dequantized", layer.name(), bits);
    return;
  }
  if (!quantized) invalid("layer '{}' has {}-bit weights but no DequantizeLinear feeds its weight", layer.name(), bits);
  const TensorProto* q = index.initializer(dq->input(0));
  if (!q) invalid("layer '{}': the quantized weight '{}' is not an initializer", layer.name(), dq->input(0));
  if ((q->data_type() != TensorProto::UINT8 && q->data_type() != TensorProto::INT8 && q->data_type() != kOnnxInt4) ||
      container_bits(q->data_type()) < bits) {
    invalid("layer '{}': {} cannot hold {}-bit weights", layer.name(), type_name(q->data_type()), bits);
  }
  // Symmetric grid: zero point 0 in signed containers, 128 in UINT8.
  double expected_zero = q->data_type() == TensorProto::UINT8 ? 128 : 0;
  if (dq->input_size() > 2 && !dq->input(2).empty()) {
    for (double z : values_of(*index.initializer(dq->input(2)))) {
      if (z != expected_zero) invalid("layer '{}': the weight zero point is {}, not {}", layer.name(), z, expected_zero);
    }
  } else if (expected_zero != 0) {
    invalid("layer '{}': UINT8 weights without a zero point", layer.name());
  }
  quant::QuantGrid grid = quant::signed_grid(bits);
  for (double stored : values_of(*q)) {
    double v = stored - expected_zero;
    if (v < static_cast<double>(grid.qmin) || v > static_cast<double>(grid.qmax)) {
      invalid("layer '{}': weight value {} is outside the {}-bit grid [{}, {}]", layer.name(), v, bits, grid.qmin, grid.qmax);
    }
  }
}

int64_t int_attr(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& a : node.attribute()) {
    if (a.name() == name && a.type() == onnx::AttributeProto::INT) return a.i();
  }
  invalid("node '{}' ({}) has no integer attribute {}", node.name(), node.op_type(), name);
}

// A layer exported as MatMulNBits: its attributes, the packed codes' shape
// and grid (every code in [1, 2^b - 1]: q + 2^(b-1) of the narrow grid), one
// positive scale per (channel, block), no zero points.
void check_matmul_nbits(const onnx::NodeProto& layer, int bits, const ModelIndex& index) {
  if (layer.op_type() != "MatMulNBits" || layer.domain() != "com.microsoft") {
    invalid("layer '{}' is listed as MatMulNBits but is a {} node", layer.name(), layer.op_type());
  }
  const int64_t k = int_attr(layer, "K"), n = int_attr(layer, "N"), block = int_attr(layer, "block_size");
  if (int_attr(layer, "bits") != bits || !quant::matmul_nbits_bits(bits)) {
    invalid("layer '{}': MatMulNBits bits {} does not match its {}-bit weights", layer.name(), int_attr(layer, "bits"), bits);
  }
  if (block < 16 || block > 256 || (block & (block - 1))) {
    invalid("layer '{}': MatMulNBits block_size {} is not a power of two in [16, 256]", layer.name(), block);
  }
  if (layer.input_size() < 3) invalid("layer '{}': MatMulNBits needs A, B and scales", layer.name());
  if (layer.input_size() > 3 && !layer.input(3).empty()) invalid("layer '{}': MatMulNBits with zero points", layer.name());
  const TensorProto* b = index.initializer(layer.input(1));
  const TensorProto* scales = index.initializer(layer.input(2));
  const int64_t blocks = (k + block - 1) / block;
  if (!b || b->data_type() != TensorProto::UINT8 || b->dims_size() != 3 || b->dims(0) != n || b->dims(1) != blocks ||
      b->dims(2) != block * bits / 8) {
    invalid("layer '{}': MatMulNBits weights must be a UINT8 initializer [{}, {}, {}]", layer.name(), n, blocks,
            block * bits / 8);
  }
  if (!scales || scales->data_type() != TensorProto::FLOAT || element_count(*scales) != n * blocks) {
    invalid("layer '{}': MatMulNBits needs {} float scales", layer.name(), n * blocks);
  }
  for (double s : values_of(*scales)) {
    if (!(s > 0) || !std::isfinite(s)) invalid("layer '{}': MatMulNBits scale {} is not positive", layer.name(), s);
  }
  const int mask = (1 << bits) - 1;
  for (double byte : values_of(*b)) {
    const int v = static_cast<int>(byte);
    for (int shift = 0; shift < 8; shift += bits) {
      if (((v >> shift) & mask) == 0) {
        invalid("layer '{}': MatMulNBits code 0 is outside the {}-bit grid [1, {}]", layer.name(), bits, mask);
      }
    }
  }
}

void check_activation(const onnx::NodeProto& layer, int input, int bits, const ModelIndex& index) {
  const onnx::NodeProto* dq = find_consumer_input(layer, input, index);
  bool quantized = dq && dq->op_type() == "DequantizeLinear";
  if (quant::is_float_bits(bits)) {
    if (quantized) invalid("layer '{}' has float activations but its input is dequantized", layer.name());
    return;
  }
  const onnx::NodeProto* q = quantized ? index.producer(dq->input(0)) : nullptr;
  if (!q || q->op_type() != "QuantizeLinear") {
    invalid("layer '{}' has {}-bit activations but no QuantizeLinear -> DequantizeLinear feeds input {}", layer.name(),
            bits, input);
  }
  if (q->input_size() < 3 || dq->input_size() < 3) invalid("layer '{}': activation Q/DQ without a zero point", layer.name());
  const TensorProto* zero = index.initializer(q->input(2));
  const TensorProto* scale = index.initializer(q->input(1));
  if (values_of(*zero) != values_of(*index.initializer(dq->input(2))) ||
      values_of(*scale) != values_of(*index.initializer(dq->input(1)))) {
    invalid("layer '{}': QuantizeLinear and DequantizeLinear disagree on scale or zero point", layer.name());
  }
  if (zero->data_type() != kOnnxUint4 && zero->data_type() != TensorProto::UINT8) {
    invalid("layer '{}': activation container {} is not unsigned", layer.name(), type_name(zero->data_type()));
  }
  int container = container_bits(zero->data_type());
  if (container < bits) invalid("layer '{}': {} cannot hold {}-bit activations", layer.name(), type_name(zero->data_type()), bits);
  double qmax = static_cast<double>(quant::unsigned_grid(bits).qmax);
  double zp = values_of(*zero).at(0);
  if (zp < 0 || zp > qmax) invalid("layer '{}': activation zero point {} is outside [0, {}]", layer.name(), zp, qmax);
  if (container == bits) return;
  const onnx::NodeProto* clip = index.producer(q->input(0));
  if (!clip || clip->op_type() != "Clip" || clip->input_size() < 3 || !index.initializer(clip->input(2))) {
    invalid("layer '{}': {}-bit activations in {} need a Clip with a constant max before QuantizeLinear", layer.name(),
            bits, type_name(zero->data_type()));
  }
  auto max = static_cast<float>(values_of(*index.initializer(clip->input(2))).at(0));
  auto s = static_cast<float>(values_of(*scale).at(0));
  if (std::nearbyint(max / s) + zp > qmax) {
    invalid("layer '{}': the Clip max {} lets activations past the {}-bit grid", layer.name(), max, bits);
  }
}

// An integer layer's bias, when it has one: INT32 through DequantizeLinear
// with zero point 0 and scale s_x * s_w[c] (what ORT's integer kernels assume).
void check_integer_bias(const onnx::NodeProto& layer, const ModelIndex& index) {
  if (layer.input_size() < 3 || layer.input(2).empty()) return;
  const onnx::NodeProto* dq = index.producer(layer.input(2));
  if (!dq || dq->op_type() != "DequantizeLinear") invalid("integer layer '{}': no DequantizeLinear feeds its bias", layer.name());
  const TensorProto* q = index.initializer(dq->input(0));
  if (!q || q->data_type() != TensorProto::INT32) invalid("integer layer '{}': its bias is not INT32", layer.name());
  const onnx::NodeProto* x_dq = index.producer(layer.input(0));
  const onnx::NodeProto* w_dq = index.producer(layer.input(1));
  if (!x_dq || !w_dq || x_dq->op_type() != "DequantizeLinear" || w_dq->op_type() != "DequantizeLinear") {
    invalid("integer layer '{}': input and weight are not both dequantized", layer.name());
  }
  std::vector<double> bias_scale = values_of(*index.initializer(dq->input(1)));
  double x_scale = values_of(*index.initializer(x_dq->input(1))).at(0);
  std::vector<double> w_scale = values_of(*index.initializer(w_dq->input(1)));
  for (size_t c = 0; c < bias_scale.size(); ++c) {
    double expected = static_cast<double>(static_cast<float>(x_scale) * static_cast<float>(w_scale[w_scale.size() == 1 ? 0 : c]));
    if (std::abs(bias_scale[c] - expected) > 1e-6 * expected) {
      invalid("integer layer '{}': bias scale {} of channel {} is not s_x * s_w = {}", layer.name(), bias_scale[c], c, expected);
    }
  }
  if (dq->input_size() > 2 && !dq->input(2).empty()) {
    for (double z : values_of(*index.initializer(dq->input(2)))) {
      if (z != 0) invalid("integer layer '{}': the bias zero point is {}, not 0", layer.name(), z);
    }
  }
}

}  // namespace

void validate_qdq(const onnx::ModelProto& model) {
  int64_t opset = 0;
  for (const auto& entry : model.opset_import()) {
    if (entry.domain().empty() || entry.domain() == "ai.onnx") {
      if (opset != 0) invalid("more than one default-domain opset");
      opset = entry.version();
    }
  }
  if (opset < kOpset8Bit) invalid("opset {} is below {}, the first with per-axis DequantizeLinear", opset, kOpset8Bit);
  const onnx::GraphProto& g = model.graph();
  ModelIndex index;
  std::set<std::string> defined;
  bool uses_4bit = false;
  for (const TensorProto& t : g.initializer()) {
    if (t.name().empty()) invalid("an initializer has no name");
    if (!index.initializers.emplace(t.name(), &t).second) invalid("initializer '{}' appears twice", t.name());
    defined.insert(t.name());
    int64_t n = element_count(t);
    if (is_4bit(t.data_type())) {
      uses_4bit = true;
      if (static_cast<int64_t>(t.raw_data().size()) != (n + 1) / 2) {
        invalid("initializer '{}' ({}) holds {} bytes; {} values need {}", t.name(), type_name(t.data_type()),
                t.raw_data().size(), n, (n + 1) / 2);
      }
      if (n % 2 && (static_cast<unsigned char>(t.raw_data().back()) >> 4) != 0) {
        invalid("initializer '{}': the padding nibble is not 0", t.name());
      }
    } else if (t.has_raw_data()) {
      int64_t bytes = element_bytes(t.data_type());
      if (bytes == 0) invalid("initializer '{}' has unsupported type {}", t.name(), type_name(t.data_type()));
      if (static_cast<int64_t>(t.raw_data().size()) != n * bytes) {
        invalid("initializer '{}' holds {} bytes; {} {} values need {}", t.name(), t.raw_data().size(), n,
                type_name(t.data_type()), n * bytes);
      }
    }
  }
  if (uses_4bit && (opset < kOpset4Bit || model.ir_version() < graph::kIrVersion4Bit)) {
    invalid("INT4/UINT4 tensors need opset {} and IR version 10 (the model has opset {}, IR {})", kOpset4Bit, opset,
            model.ir_version());
  }
  for (const auto& input : g.input()) defined.insert(input.name());
  for (const onnx::NodeProto& node : g.node()) {
    for (const std::string& input : node.input()) {
      if (!input.empty() && !defined.count(input)) {
        invalid("node '{}' ({}) reads '{}' before it is defined", node.name(), node.op_type(), input);
      }
    }
    for (const std::string& output : node.output()) {
      if (output.empty()) continue;
      if (!defined.insert(output).second) invalid("value '{}' is defined twice", output);
      index.producers[output] = &node;
    }
    if (!node.name().empty()) index.nodes[node.name()] = &node;
    if (node.op_type() == "QuantizeLinear" || node.op_type() == "DequantizeLinear") check_qdq_node(node, index, opset);
  }
  for (const auto& output : g.output()) {
    if (!defined.count(output.name())) invalid("graph output '{}' is never computed", output.name());
  }

  std::string precision_text, format_text;
  for (const auto& prop : model.metadata_props()) {
    if (prop.key() == "autoprec.precision") precision_text = prop.value();
    if (prop.key() == "autoprec.format") format_text = prop.value();
  }
  const bool integer_form = format_text == "int-1";
  if (precision_text.empty()) invalid("metadata autoprec.precision is missing");
  nlohmann::json precision = nlohmann::json::parse(precision_text, nullptr, false);
  if (!precision.is_object()) invalid("metadata autoprec.precision is not a JSON object");
  for (const auto& [name, entry] : precision.items()) {
    auto node = index.nodes.find(name);
    if (node == index.nodes.end()) invalid("metadata names layer '{}', which the graph does not have", name);
    if (!entry.is_object() || !entry.contains("weight_bits") || !entry.contains("activation_bits") ||
        !entry["weight_bits"].is_number_integer() || !entry["activation_bits"].is_number_integer()) {
      invalid("metadata entry of layer '{}' needs integer weight_bits and activation_bits", name);
    }
    int weight_bits = entry["weight_bits"].get<int>();
    int activation_bits = entry["activation_bits"].get<int>();
    for (int bits : {weight_bits, activation_bits}) {
      if (!quant::valid_bits().count(bits)) invalid("layer '{}': {} bits is not a valid bit-width", name, bits);
    }
    bool activation_only = entry.value("activation_only", false);
    if (entry.value("kernel", "") == "MatMulNBits") {
      check_matmul_nbits(*node->second, weight_bits, index);
      continue;
    }
    if (integer_form) {
      // Layers the integer form leaves float may read dequantized tensors.
      if (entry.value("integer", false)) {
        check_activation(*node->second, 0, activation_bits, index);
        check_integer_bias(*node->second, index);
      }
      check_weight(*node->second, weight_bits, index);
      continue;
    }
    check_activation(*node->second, 0, activation_bits, index);
    if (activation_only) {
      check_activation(*node->second, 1, activation_bits, index);
    } else {
      check_weight(*node->second, weight_bits, index);
    }
  }
}

void save_qdq(const onnx::ModelProto& model, const std::string& path) {
  validate_qdq(model);
  int64_t opset = 0;
  for (const auto& entry : model.opset_import()) {
    if (entry.domain().empty() || entry.domain() == "ai.onnx") opset = entry.version();
  }
  graph::save_model_proto(model, path, opset < kOpset4Bit);
}

}  // namespace autoprec::deploy
