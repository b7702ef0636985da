#include "target/measure.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <onnx/onnx_pb.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>

#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "deploy/layer_model.h"
#include "deploy/qdq_export.h"
#include "exec/summary.h"
#include "graph/qdq_format.h"
#include "graph/tensor_proto.h"
#include "quant/quantized_model.h"
#include "runtime/runner.h"
#include "util/error.h"
#include "util/file.h"

namespace autoprec::target {
namespace {

namespace fs = std::filesystem;
using onnx::TensorProto;

std::string dims(const std::vector<int64_t>& v) { return fmt::format("{}", fmt::join(v, "x")); }

std::string attribute_text(const graph::Attribute& a) {
  switch (a.kind) {
    case graph::Attribute::Kind::Int: return std::to_string(a.i);
    case graph::Attribute::Kind::Float: return fmt::format("{}", a.f);
    case graph::Attribute::Kind::String: return a.s;
    case graph::Attribute::Kind::Ints: return fmt::format("{}", fmt::join(a.ints, ","));
    case graph::Attribute::Kind::Floats: return fmt::format("{}", fmt::join(a.floats, ","));
    default: return "?";
  }
}

void copy_attribute(const std::string& name, const graph::Attribute& a, onnx::NodeProto* node) {
  auto* p = node->add_attribute();
  p->set_name(name);
  switch (a.kind) {
    case graph::Attribute::Kind::Int: p->set_type(onnx::AttributeProto::INT); p->set_i(a.i); break;
    case graph::Attribute::Kind::Float: p->set_type(onnx::AttributeProto::FLOAT); p->set_f(static_cast<float>(a.f)); break;
    case graph::Attribute::Kind::String: p->set_type(onnx::AttributeProto::STRING); p->set_s(a.s); break;
    case graph::Attribute::Kind::Ints:
      p->set_type(onnx::AttributeProto::INTS);
      for (auto v : a.ints) p->add_ints(v);
      break;
    case graph::Attribute::Kind::Floats:
      p->set_type(onnx::AttributeProto::FLOATS);
      for (auto v : a.floats) p->add_floats(static_cast<float>(v));
      break;
    default: fail("layer {}: attribute {} cannot be copied into a single-layer model", node->name(), name);
  }
}

void add_value(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& shape) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(TensorProto::FLOAT);
  for (int64_t d : shape) t->mutable_shape()->add_dim()->set_dim_value(d);
}

onnx::NodeProto* add_node(onnx::GraphProto* g, const std::string& op, std::vector<std::string> in, std::vector<std::string> out) {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(op + "_" + std::to_string(g->node_size()));
  for (auto& s : in) n->add_input(s);
  for (auto& s : out) n->add_output(s);
  return n;
}

void add_init(onnx::GraphProto* g, const std::string& name, const at::Tensor& t) {
  graph::tensor_to_proto(t, name, g->add_initializer());
}

// x -> QuantizeLinear(uint8) -> DequantizeLinear, returns the dequantized name.
std::string qdq(onnx::GraphProto* g, const std::string& x, double scale, int zero_point) {
  add_init(g, x + "_scale", at::full({}, scale, at::kFloat));
  add_init(g, x + "_zp", at::full({}, zero_point, at::kByte));
  add_node(g, "QuantizeLinear", {x, x + "_scale", x + "_zp"}, {x + "_q"});
  add_node(g, "DequantizeLinear", {x + "_q", x + "_scale", x + "_zp"}, {x + "_dq"});
  return x + "_dq";
}

bool quantized(int bits) { return bits <= 8; }

}  // namespace

std::string measurement_key(const Profile& profile, const LayerDesc& layer, int wb, int ab) {
  std::string attrs;
  if (layer.node) {
    for (const auto& [name, a] : layer.node->attributes) attrs += fmt::format("{}={};", name, attribute_text(a));
  }
  std::string bits;
  const bool integer_form = profile.format == quant::QuantForm::Int && profile.cost_model.export_form;
  if (profile.cost_model.type == CostModelType::CpuOrt && integer_form) {
    const bool integer = quantized(wb) && ab == 8;
    bits = fmt::format("int|{}", integer ? "i8u8" : fmt::format("island-w{}", quantized(wb) ? "i8" : "f32"));
  } else if (profile.cost_model.type != CostModelType::CpuOrt) {
    bits = fmt::format("w{}a{}|{}", wb, ab, profile.cost_model.export_form ? "export" : "kernel");
  } else if (profile.cost_model.export_form) {
    // What changes the exported layer: the weight container, and whether a
    // Clip holds the activation to fewer bits than its container.
    std::string w = quantized(wb) ? graph::container_type_name(graph::weight_container(wb)) : "f32";
    std::string a = quantized(ab) ? (ab < 8 ? "u8clip" : "u8") : "f32";
    bits = fmt::format("export|w{}a{}", w, a);
  } else {
    bits = fmt::format("w{}a{}", quantized(wb) ? "i8" : "f32", quantized(ab) ? "u8" : "f32");
  }
  // What ORT's integer kernels compute and how fast depends on the CPU's SIMD features.
  std::string cpu = profile.cost_model.type == CostModelType::CpuOrt ? "|cpu=" + cpu_features().text() : "";
  return fmt::format("{}|{}|x={}|w={}|b={}|{}|{}|t{}|{}{}", profile.name, layer.op, dims(layer.input_shape),
                     dims(layer.weight_shape), layer.has_bias ? 1 : 0, attrs, bits, profile.cost_model.threads,
                     profile.cost_model.kernel_timing ? "kernels" : "wall", cpu);
}

namespace {

void set_int_attribute(onnx::NodeProto* node, const std::string& name, int64_t value) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

// An empty single-layer model: float input "x" and output "y" of the layer's shapes.
onnx::ModelProto layer_model_shell(const LayerDesc& layer, int64_t ir_version, int64_t opset_version) {
  onnx::ModelProto model;
  model.set_ir_version(ir_version);
  model.set_producer_name("autoprec profile");
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(opset_version);
  onnx::GraphProto* g = model.mutable_graph();
  g->set_name(layer.name);
  add_value(g->add_input(), "x", layer.input_shape);
  add_value(g->add_output(), "y", layer.output_shape);
  return model;
}

// Symmetric per-output-channel quantization of `w` along `axis` to
// [-qmax, qmax]: the grid values (float) and the scales [C] (1 for an all-zero
// channel).
std::pair<at::Tensor, at::Tensor> quantize_per_channel(const at::Tensor& w, int64_t axis, double qmax) {
  std::vector<int64_t> reduce;
  for (int64_t d = 0; d < w.dim(); ++d) {
    if (d != axis) reduce.push_back(d);
  }
  at::Tensor scale = (reduce.empty() ? w.abs() : w.abs().amax(reduce)) / qmax;
  scale = at::where(scale > 0, scale, at::ones_like(scale));
  std::vector<int64_t> view(w.dim(), 1);
  view[axis] = w.size(axis);
  return {at::clamp(at::round(w / scale.view(view)), -qmax, qmax), scale};
}

// A b-bit integer initializer in `container` (INT4 packed, INT8 or UINT8).
void add_integer_init(onnx::GraphProto* g, const std::string& name, const at::Tensor& values, int32_t container) {
  if (container != graph::kOnnxInt4) {
    add_init(g, name, values.to(container == TensorProto::UINT8 ? at::kByte : at::kChar));
    return;
  }
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(container);
  for (int64_t d : values.sizes()) t->add_dims(d);
  at::Tensor flat = values.to(at::kLong).contiguous().view(-1);
  std::vector<int64_t> v(flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel());
  t->set_raw_data(graph::pack_4bit(v, true));
}

// The layer as `autoprec export` writes it (deploy/qdq_export.h): weights in
// their container with per-channel scales and DequantizeLinear; the input
// through [Clip] -> QuantizeLinear -> DequantizeLinear (uint8, a Clip when
// the activation has fewer than 8 bits); bias and output float.
std::string export_form_model(const graph::Graph& graph, const LayerDesc& layer, int wb, int ab) {
  const bool four_bit = quantized(wb) && graph::container_bits(graph::weight_container(wb)) == 4;
  onnx::ModelProto model = layer_model_shell(layer, four_bit ? graph::kIrVersion4Bit : 7,
                                              four_bit ? graph::kOpset4Bit : graph::kOpset8Bit);
  onnx::GraphProto* g = model.mutable_graph();

  const graph::Node& node = *layer.node;
  at::Tensor w = graph.initializers.at(node.inputs[1]).to(at::kFloat).contiguous();
  std::string x_name = "x", w_name = "w";
  if (quantized(ab)) {
    const double levels = std::pow(2.0, ab) - 1;  // inputs are uniform [0, 1): scale 1/levels, zero point 0
    if (ab < 8) {
      add_init(g, "x_clip_max", at::full({}, 1.0, at::kFloat));
      add_node(g, "Clip", {"x", "", "x_clip_max"}, {"x_clipped"});
      x_name = "x_clipped";
    }
    add_init(g, "x_scale", at::full({}, 1.0 / levels, at::kFloat));
    add_init(g, "x_zp", at::zeros({}, at::kByte));
    add_node(g, "QuantizeLinear", {x_name, "x_scale", "x_zp"}, {"x_q"});
    add_node(g, "DequantizeLinear", {"x_q", "x_scale", "x_zp"}, {"x_dq"});
    x_name = "x_dq";
  }
  if (quantized(wb)) {
    const int64_t axis = layer.channel_axis;
    auto [grid, scale] = quantize_per_channel(w, axis, std::pow(2.0, wb - 1) - 1);
    const int32_t container = graph::weight_container(wb);
    add_integer_init(g, "w_q", grid, container);
    add_init(g, "w_scale", scale);
    add_integer_init(g, "w_zp", at::zeros({w.size(axis)}, at::kLong), container);
    auto* dq = add_node(g, "DequantizeLinear", {"w_q", "w_scale", "w_zp"}, {"w_dq"});
    set_int_attribute(dq, "axis", axis);
    w_name = "w_dq";
  } else {
    add_init(g, "w", w);
  }
  std::vector<std::string> inputs = {x_name, w_name};
  if (layer.has_bias) {
    add_init(g, "b", graph.initializers.at(node.inputs[2]).to(at::kFloat).contiguous());
    inputs.push_back("b");
  }
  auto* n = add_node(g, layer.op, inputs, {"y"});
  n->set_name(layer.name);
  for (const auto& [name, a] : node.attributes) copy_attribute(name, a, n);
  return model.SerializeAsString();
}

}  // namespace

std::string single_layer_model(const graph::Graph& graph, const LayerDesc& layer, int wb, int ab, bool export_form) {
  if (layer.weight_shape.empty() || !layer.node) fail("layer {}: only layers with a weight initializer can be profiled", layer.name);
  if (export_form) return export_form_model(graph, layer, wb, ab);
  onnx::ModelProto model = layer_model_shell(layer, 7, graph::kOpset8Bit);
  onnx::GraphProto* g = model.mutable_graph();

  const graph::Node& node = *layer.node;
  at::Tensor w = graph.initializers.at(node.inputs[1]).to(at::kFloat).contiguous();
  std::string x_name = "x", w_name = "w", b_name;
  double x_scale = 1.0 / 255;  // inputs are uniform [0, 1)
  if (quantized(ab)) x_name = qdq(g, "x", x_scale, 0);
  at::Tensor w_scale;
  if (quantized(wb)) {
    int64_t axis = layer.channel_axis;
    at::Tensor grid;
    std::tie(grid, w_scale) = quantize_per_channel(w, axis, 127);
    add_init(g, "w_q", grid.to(at::kChar));
    add_init(g, "w_scale", w_scale);
    add_init(g, "w_zp", at::zeros({w.size(axis)}, at::kChar));
    set_int_attribute(add_node(g, "DequantizeLinear", {"w_q", "w_scale", "w_zp"}, {"w_dq"}), "axis", axis);
    w_name = "w_dq";
  } else {
    add_init(g, "w", w);
  }
  if (layer.has_bias) {
    at::Tensor b = graph.initializers.at(node.inputs[2]).to(at::kFloat).contiguous();
    if (quantized(wb) && quantized(ab) && b.dim() == 1 && b.size(0) == w_scale.numel()) {
      at::Tensor b_scale = (w_scale * x_scale).to(at::kFloat);
      add_init(g, "b_q", at::round(b / b_scale).to(at::kInt));
      add_init(g, "b_scale", b_scale);
      add_init(g, "b_zp", at::zeros({b.size(0)}, at::kInt));
      set_int_attribute(add_node(g, "DequantizeLinear", {"b_q", "b_scale", "b_zp"}, {"b_dq"}), "axis", 0);
      b_name = "b_dq";
    } else {
      add_init(g, "b", b);
      b_name = "b";
    }
  }
  std::vector<std::string> inputs = {x_name, w_name};
  if (!b_name.empty()) inputs.push_back(b_name);
  bool out_qdq = quantized(wb) && quantized(ab);
  auto* n = add_node(g, layer.op, inputs, {out_qdq ? "z" : "y"});
  n->set_name(layer.name);
  for (const auto& [name, a] : node.attributes) copy_attribute(name, a, n);
  if (out_qdq) {
    std::string z = qdq(g, "z", 0.05, 128);
    add_node(g, "Identity", {z}, {"y"});
  }
  return model.SerializeAsString();
}

MeasurementCache::MeasurementCache(std::string path) : path_(std::move(path)) {
  if (path_.empty() || !fs::exists(path_)) return;
  std::ifstream in(path_);
  if (!in) fail("cannot read measurement cache {}: {}", path_, std::strerror(errno));
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line == "key,latency_ms") continue;
    size_t comma = line.rfind(',');
    char* end = nullptr;
    double v = comma == std::string::npos ? -1 : std::strtod(line.c_str() + comma + 1, &end);
    if (comma == std::string::npos || end != line.c_str() + line.size() || !(v >= 0)) {
      fail("{}:{}: malformed measurement cache line (expected KEY,LATENCY_MS); delete the file to start over", path_, line_no);
    }
    values_[line.substr(0, comma)] = v;
  }
}

std::optional<double> MeasurementCache::find(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

void MeasurementCache::add(const std::string& key, double latency_ms) {
  values_[key] = latency_ms;
  if (path_.empty()) return;
  bool fresh = !fs::exists(path_);
  if (fresh && fs::path(path_).has_parent_path()) {
    std::error_code ec;
    fs::create_directories(fs::path(path_).parent_path(), ec);
  }
  std::ofstream out(path_, std::ios::app);
  if (fresh) out << "key,latency_ms\n";
  out << key << ',' << fmt::format("{:.6g}", latency_ms) << '\n';
  out.flush();
  if (!out) fail("cannot write measurement cache {}", path_);
}

namespace {

// The runner a measured profile describes.
runtime::RunnerOptions runner_options(const Profile& profile) {
  if (!profile.measured()) fail("target {} does not measure (cost model {})", profile.name, to_string(profile.cost_model.type));
  const CostModelSpec& spec = profile.cost_model;
  runtime::RunnerOptions options;
  options.threads = spec.threads;
  options.timeout_s = spec.timeout_s;
  options.profile_kernels = spec.kernel_timing;
  if (spec.type == CostModelType::Command) {
    options.command = spec.command;
    // "autoprec" is this very binary (its native runner), wherever it is installed.
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (options.command[0] == "autoprec" && !ec) options.command[0] = self.string();
    options.what = fmt::format("runner of target {}", profile.name);
  }
  return options;
}

ModelLatency latency_of(const CostModelSpec& spec, const runtime::TimeResult& t) {
  ModelLatency l;
  l.wall_ms = t.median_ms;
  l.kernel_ms = t.kernel_median_ms;
  l.ms = spec.kernel_timing && t.kernel_median_ms ? *t.kernel_median_ms : t.median_ms;
  if (spec.kernel_timing && !t.kernel_median_ms) spdlog::debug("the runner reports no kernel times; using wall time");
  return l;
}

}  // namespace

ModelLatency measure_model_file(const Profile& profile, const std::string& onnx_path, const at::Tensor& input) {
  runtime::OnnxRunner runner(runner_options(profile));
  runner.load(onnx_path);
  const CostModelSpec& spec = profile.cost_model;
  return latency_of(spec, runner.time({{runner.inputs().at(0).name, input}}, spec.warmup, spec.repeats));
}

namespace {

// "x" of `shape` -> Identity -> "y": the runner's fixed cost; with `perm`,
// a Transpose instead (ORT's layout change around an NHWC integer kernel).
std::string copy_model(const std::vector<int64_t>& shape, int32_t type = TensorProto::UINT8,
                       const std::vector<int64_t>& perm = {}) {
  onnx::ModelProto model;
  model.set_ir_version(7);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(graph::kOpset8Bit);
  onnx::GraphProto* g = model.mutable_graph();
  g->set_name("copy");
  for (auto* v : {g->add_input(), g->add_output()}) {
    v->set_name(v == &g->input(0) ? "x" : "y");
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(type);
    for (int64_t d : shape) t->mutable_shape()->add_dim()->set_dim_value(d);
  }
  if (perm.empty()) {
    add_node(g, "Identity", {"x"}, {"y"});
  } else {
    auto* t = g->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
    for (size_t i = 0; i < perm.size(); ++i) t->mutable_dim(static_cast<int>(i))->set_dim_value(shape[perm[i]]);
    auto* n = add_node(g, "Transpose", {"x"}, {"y"});
    auto* a = n->add_attribute();
    a->set_name("perm");
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t p : perm) a->add_ints(p);
  }
  return model.SerializeAsString();
}

}  // namespace

struct MeasuredSource::Impl {
  Profile profile;
  const ModelInfo* model;
  MeasurementCache cache;
  std::unique_ptr<runtime::OnnxRunner> runner;
  std::unique_ptr<TemporaryFile> model_file;
};

MeasuredSource::MeasuredSource(const Profile& profile, const ModelInfo& model, const std::string& cache_path)
    : impl_(std::make_unique<Impl>(Impl{profile, &model, MeasurementCache(cache_path), nullptr, nullptr})) {
  runner_options(profile);  // refuses a profile that does not measure
}

MeasuredSource::~MeasuredSource() { impl_->runner.reset(); }

double MeasuredSource::time_model(const std::string& key, const std::vector<int64_t>& shape, bool* from_cache,
                                  const std::function<std::string()>& build, bool uint8_input) {
  Impl& m = *impl_;
  if (auto hit = m.cache.find(key)) {
    *from_cache = true;
    return *hit;
  }
  *from_cache = false;
  const CostModelSpec& spec = m.profile.cost_model;
  if (!m.runner) {
    m.runner = std::make_unique<runtime::OnnxRunner>(runner_options(m.profile));
    m.model_file = std::make_unique<TemporaryFile>(".onnx");
  }
  write_file_atomically(m.model_file->path(), build(), "single-layer model");
  m.runner->load(m.model_file->path());
  at::Generator gen = at::detail::createCPUGenerator(0);
  at::Tensor x = uint8_input ? at::randint(0, 256, shape, gen, at::kByte) : at::rand(shape, gen, at::kFloat);
  runtime::TimeResult t = m.runner->time({{"x", x}}, spec.warmup, spec.repeats);
  const double ms = latency_of(spec, t).ms;
  std::string ops;
  for (const auto& [op, v] : t.op_ms) ops += fmt::format(" {} {:.4f}", op, v);
  spdlog::debug("measured {}: {:.4f} ms (wall {:.4f} ms;{})", key, ms, t.median_ms, ops);
  m.cache.add(key, ms);
  return ms;
}

LayerEstimate MeasuredSource::estimate(const LayerDesc& layer, int wb, int ab) {
  Impl& m = *impl_;
  bool from_cache = false;
  const bool integer_form = m.profile.format == quant::QuantForm::Int && m.profile.cost_model.export_form;
  double floor = 0;
  if (integer_form && !m.profile.cost_model.kernel_timing) {
    // Wall time holds the runner's fixed cost per inference, which a whole
    // model pays once: subtract the wall time of a model that only copies
    // the uint8 input through.
    bool floor_cached = false;
    auto floor_of = [&](const std::vector<int64_t>& shape, const std::vector<int64_t>& perm) {
      return time_model(fmt::format("{}|floor|x={}|perm={}|t{}|wall", m.profile.name, dims(shape), dims(perm),
                                    m.profile.cost_model.threads),
                        shape, &floor_cached, [&] { return copy_model(shape, TensorProto::UINT8, perm); }, true);
    };
    floor = floor_of(layer.input_shape, {});
    if (layer.op == "Conv" && quantized(wb) && ab == 8 && layer.input_shape.size() == 4 && layer.output_shape.size() == 4) {
      // ORT wraps a lone QLinearConv in NCHW<->NHWC transposes that a whole
      // model pays once, not per layer: subtract their time too.
      floor += floor_of(layer.input_shape, {0, 2, 3, 1}) - floor_of(layer.input_shape, {});
      floor += floor_of(layer.output_shape, {0, 2, 3, 1}) - floor_of(layer.output_shape, {});
    }
  }
  double raw = time_model(
      measurement_key(m.profile, layer, wb, ab), layer.input_shape, &from_cache,
      [&] {
        if (!integer_form) return single_layer_model(*m.model->graph, layer, wb, ab, m.profile.cost_model.export_form);
        return deploy::integer_layer_model(*m.model->graph, *layer.node, layer.input_shape, layer.output_shape, wb, ab);
      },
      integer_form);
  ++(from_cache ? cached_ : measured_);
  LayerEstimate e;
  e.latency_ms = std::max(0.0, raw - floor);
  if (in_integer_context() && !in_context_) {
    // Rows in context: the integer rows scaled so that they add up to the
    // whole model timed all integer (which also runs the Adds, pools and
    // Quantize the rows leave out); a float row is the layer's scaled
    // integer row plus what making it float does to the whole model.
    in_context_ = true;
    const double scale = integer_context().scale;
    double integer_row = (quantized(wb) && ab == 8) ? *e.latency_ms : *estimate(layer, 7, 8).latency_ms;
    e.latency_ms = scale * integer_row + ((quantized(wb) && ab == 8) ? 0.0 : island_cost(layer, wb, ab));
    in_context_ = false;
  }
  return e;
}

bool MeasuredSource::in_integer_context() const {
  const Impl& m = *impl_;
  return m.profile.format == quant::QuantForm::Int && m.profile.cost_model.export_form && !m.model->path.empty();
}

const MeasuredSource::IntegerContext& MeasuredSource::integer_context() {
  if (integer_context_) return *integer_context_;
  const bool was_in_context = in_context_;
  in_context_ = true;  // the raw rows
  double rows = 0;
  for (const LayerDesc& d : impl_->model->descs) rows += *estimate(d, 7, 8).latency_ms;
  in_context_ = was_in_context;
  const double whole = whole_integer_ms("");
  IntegerContext c;
  if (impl_->profile.native_runtime) {
    c.fixed_ms = std::max(0.0, whole - rows);
  } else if (rows > 0) {
    c.scale = whole / rows;
  }
  spdlog::debug("integer rows sum to {:.4f} ms, the whole model all integer takes {:.4f} ms: scale {:.3f}, fixed {:.4f} ms",
                rows, whole, c.scale, c.fixed_ms);
  integer_context_ = c;
  return *integer_context_;
}

double MeasuredSource::fixed_latency_ms() { return in_integer_context() ? integer_context().fixed_ms : 0.0; }

double MeasuredSource::whole_integer_ms(const std::string& layer, int wb, int ab) {
  Impl& m = *impl_;
  std::string which = "all-int";
  if (!layer.empty()) {
    which = quant::is_float_bits(wb) && quant::is_float_bits(ab) ? "float=" + layer : fmt::format("W{}A{}={}", wb, ab, layer);
  }
  const std::string key = fmt::format("{}|whole|{}|{}|{}|t{}|{}|cpu={}", m.profile.name, m.model->path,
                                      m.model->graph->nodes.size(), which,
                                      m.profile.cost_model.threads, m.profile.cost_model.kernel_timing ? "kernels" : "wall",
                                      cpu_features().text());
  {
    if (auto hit = m.cache.find(key)) return *hit;
    decltype(quant::PrecisionConfig::layers) only;
    if (!layer.empty()) only.push_back({layer, {wb, ab}});
    double ms = measure_integer_model(m.profile, *m.model, 7, 8, only).ms;
    m.cache.add(key, ms);
    ++measured_;
    return ms;
  }
}

ModelLatency measure_integer_model(const Profile& profile, const ModelInfo& model, int weight_bits, int activation_bits,
                                   const decltype(quant::PrecisionConfig::layers)& exceptions) {
  quant::PrecisionConfig config = quant::uniform(weight_bits, activation_bits);
  config.options.format = quant::QuantForm::Int;
  config.layers = exceptions;
  quant::QuantizedModel quantized(model.graph, config, model.path);
  at::Generator gen = at::detail::createCPUGenerator(0);
  // Uniform [0, 1) floats, or token id 0 for an integer input: latency does not depend on the values.
  auto input = [&](int64_t batch) {
    at::Tensor x = exec::example_input(*model.graph, 0, batch);
    return at::isFloatingType(x.scalar_type()) ? at::rand(x.sizes(), gen, x.scalar_type()) : x;
  };
  quantized.calibrate(input(8));
  TemporaryFile file(".onnx");
  deploy::save_qdq(deploy::export_qdq(quantized).model, file.path());
  return measure_model_file(profile, file.path(), input(1));
}

double MeasuredSource::island_cost(const LayerDesc& layer, int wb, int ab) {
  return std::max(0.0, whole_integer_ms(layer.name, wb, ab) - whole_integer_ms(""));
}

std::string default_cache_path(const Profile& profile) {
  std::string dir;
  if (const char* env = std::getenv("AUTOPREC_CACHE_DIR"); env && *env) {
    dir = env;
  } else if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
    dir = std::string(xdg) + "/autoprec";
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    dir = std::string(home) + "/.cache/autoprec";
  } else {
    dir = "/tmp/autoprec-cache";
  }
  return dir + "/" + profile.name + ".csv";
}

std::unique_ptr<LayerCostSource> make_source(const Profile& profile, const ModelInfo& model, const std::string& cache_path) {
  if (profile.measured()) {
    return std::make_unique<MeasuredSource>(profile, model, cache_path.empty() ? default_cache_path(profile) : cache_path);
  }
  return analytic_source(profile, model);
}

std::vector<std::pair<int, int>> supported_pairs(const Profile& profile, const std::string& op, const std::set<int>& only_w,
                                                 const std::set<int>& only_a) {
  const PrecisionSupport& s = profile.support(op);
  std::vector<std::pair<int, int>> pairs;
  std::set<int> weight_bits = s.weight_bits;
  if (s.weight_only_bits) weight_bits.insert(s.weight_only_bits->begin(), s.weight_only_bits->end());
  for (int wb : weight_bits) {
    if (!only_w.empty() && !only_w.count(wb)) continue;
    for (int ab : s.activation_bits) {
      if (!only_a.empty() && !only_a.count(ab)) continue;
      if (!s.mixed && wb != ab) continue;
      const bool weight_only = !quant::is_float_bits(wb) && quant::is_float_bits(ab);
      if (weight_only ? !s.allows_weight_only(wb) : !s.weight_bits.count(wb)) continue;
      if (!s.activation_only && quant::is_float_bits(wb) && !quant::is_float_bits(ab)) continue;
      pairs.emplace_back(wb, ab);
    }
  }
  return pairs;
}

std::vector<TableRow> build_table(const Profile& profile, const ModelInfo& model, LayerCostSource& source,
                                  const std::set<int>& only_w, const std::set<int>& only_a,
                                  const std::function<void(size_t, size_t)>& on_row) {
  size_t total = 0;
  for (const auto& d : model.descs) total += supported_pairs(profile, d.op, only_w, only_a).size();
  if (total == 0) fail("target {} supports none of the requested bit-width pairs", profile.name);
  std::vector<TableRow> rows;
  for (const auto& d : model.descs) {
    for (auto [wb, ab] : supported_pairs(profile, d.op, only_w, only_a)) {
      LayerEstimate e = source.estimate(d, wb, ab);
      if (!e.latency_ms) fail("target {} gives no latency for layer {}", profile.name, d.name);
      rows.push_back({d.name, wb, ab, *e.latency_ms, e.energy_mj});
      if (on_row) on_row(rows.size(), total);
    }
  }
  return rows;
}

void write_table(const std::string& path, const std::vector<TableRow>& rows) {
  std::string text = "layer,weight_bits,activation_bits,latency_ms,energy_mj\n";
  for (const auto& r : rows) {
    std::string name = r.layer;
    if (name.find_first_of(",\"") != std::string::npos) {
      std::string q = "\"";
      for (char c : name) q += c == '"' ? std::string("\"\"") : std::string(1, c);
      name = q + "\"";
    }
    text += fmt::format("{},{},{},{:.6g},{}\n", name, r.weight_bits, r.activation_bits, r.latency_ms,
                        r.energy_mj ? fmt::format("{:.6g}", *r.energy_mj) : "");
  }
  write_file_atomically(path, text, "cost table");
}

}  // namespace autoprec::target
