#include "target/cost_model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "target/measure.h"


#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "exec/executor.h"
#include "exec/model.h"
#include "util/error.h"
#include "util/yaml.h"

namespace autoprec::target {
namespace {

int64_t product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

double ceil_half(int bits) { return std::ceil(bits / 2.0); }

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(trim(field));
      field.clear();
    } else {
      field += c;
    }
  }
  out.push_back(trim(field));
  return out;
}

}  // namespace

ModelInfo load_model_info(const std::string& path, bool include_activation_matmul) {
  ModelInfo m;
  m.path = path;
  m.graph = exec::load_model(path);
  exec::Executor executor(m.graph, path);
  m.summary = exec::summarize(executor);
  m.layers = quant::find_quantizable_layers(*m.graph, include_activation_matmul);
  std::map<std::string, const exec::LayerInfo*> info;
  for (const auto& l : m.summary.layers) info[l.name] = &l;
  for (const auto& layer : m.layers) {
    LayerDesc d;
    d.name = layer.name;
    d.op = layer.op;
    d.node = m.graph->find_node(layer.name);
    d.channel_axis = layer.channel_axis;
    d.has_bias = d.node->inputs.size() > 2 && m.graph->initializers.count(d.node->inputs[2]);
    auto it = info.find(layer.name);
    if (it != info.end()) {
      d.input_shape = it->second->input_shape;
      d.weight_shape = it->second->weight_shape;
      d.output_shape = it->second->output_shape;
      d.macs = it->second->macs;
    }
    if (layer.weight_input >= 0) {
      const at::Tensor& w = m.graph->initializers.at(d.node->inputs[layer.weight_input]);
      d.weight_shape = w.sizes().vec();
      d.weights = w.numel();
    }
    d.input_elements = product(d.input_shape);
    d.output_elements = product(d.output_shape);
    m.descs.push_back(d);
  }
  return m;
}

LayerEstimate analytic_estimate(const CostModelSpec& spec, const LayerDesc& layer, int wb, int ab) {
  double macs = static_cast<double>(layer.macs);
  double bytes = (static_cast<double>(layer.weights) * wb + static_cast<double>(layer.input_elements) * ab +
                  static_cast<double>(layer.output_elements) * spec.output_bits) /
                 8.0;
  double memory_cycles = bytes / spec.bandwidth_bytes_per_cycle;
  double ops = 0, compute_cycles = 0, energy_per_op = 0;
  if (spec.type == CostModelType::BitFusion) {
    ops = macs * ceil_half(wb) * ceil_half(ab);
    compute_cycles = ops / spec.bricks;
    energy_per_op = spec.energy_pj_per_brick_op;
  } else if (spec.type == CostModelType::Bismo) {
    ops = macs * wb * ab;
    compute_cycles = ops / (spec.dm * spec.dn * spec.dk);
    energy_per_op = spec.energy_pj_per_binary_op;
  } else {
    fail("cost model {} has no analytic formula", to_string(spec.type));
  }
  LayerEstimate e;
  e.latency_ms = std::max(compute_cycles, memory_cycles) / (spec.frequency_mhz * 1e3);
  e.energy_mj = (ops * energy_per_op + bytes * (spec.energy_onchip_pj_per_byte + spec.energy_offchip_pj_per_byte)) * 1e-9;
  return e;
}

LutTable LutTable::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read cost table {}: {}", path, std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

LutTable LutTable::parse(const std::string& text, const std::string& origin) {
  LutTable t;
  t.origin_ = origin;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  std::map<std::string, size_t> col;
  size_t width = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (trim(line).empty() || trim(line)[0] == '#') continue;
    std::vector<std::string> f = split_csv(line);
    if (col.empty()) {
      for (size_t i = 0; i < f.size(); ++i) col[f[i]] = i;
      width = f.size();
      for (const char* need : {"layer", "weight_bits", "activation_bits", "latency_ms"}) {
        if (!col.count(need)) {
          fail("{}:{}: cost table lacks column '{}'; the header needs layer,weight_bits,activation_bits,latency_ms[,energy_mj]",
               origin, line_no, need);
        }
      }
      t.has_energy_ = col.count("energy_mj") != 0;
      continue;
    }
    if (f.size() != width) fail("{}:{}: {} fields, the header has {}", origin, line_no, f.size(), width);
    auto number = [&](const char* name, bool optional) -> std::optional<double> {
      const std::string& s = f[col.at(name)];
      if (s.empty() && optional) return std::nullopt;
      double d = 0;
      if (!yaml::parse_number(s, &d)) fail("{}:{}: {} must be a finite number, got '{}'", origin, line_no, name, s);
      if (d < 0) fail("{}:{}: {} must not be negative, got {}", origin, line_no, name, s);
      return d;
    };
    auto bits = [&](const char* name) {
      double d = *number(name, false);
      if (d != std::floor(d) || d > 64 || !quant::valid_bits().count(static_cast<int>(d))) {
        fail("{}:{}: {} must be one of 2..8, 16, 32, got {}", origin, line_no, name, f[col.at(name)]);
      }
      return static_cast<int>(d);
    };
    std::string layer = f[col.at("layer")];
    if (layer.empty()) fail("{}:{}: empty layer name", origin, line_no);
    int wb = bits("weight_bits"), ab = bits("activation_bits");
    LayerEstimate e;
    e.latency_ms = number("latency_ms", false);
    if (t.has_energy_) e.energy_mj = number("energy_mj", true);
    auto key = std::make_tuple(layer, wb, ab);
    if (t.lines_.count(key)) {
      fail("{}:{}: layer '{}' at W{}A{} is already given on line {}", origin, line_no, layer, wb, ab, t.lines_.at(key));
    }
    t.rows_[key] = e;
    t.lines_[key] = line_no;
  }
  if (col.empty()) fail("{}: empty cost table; the header needs layer,weight_bits,activation_bits,latency_ms[,energy_mj]", origin);
  return t;
}

void LutTable::check_layers(const std::vector<std::string>& layer_names) const {
  std::set<std::string> known(layer_names.begin(), layer_names.end());
  for (const auto& [key, line] : lines_) {
    if (!known.count(std::get<0>(key))) {
      fail("{}:{}: unknown layer '{}'; the model's quantizable layers are {}", origin_, line, std::get<0>(key),
           fmt::format("{}", fmt::join(layer_names, ", ")));
    }
  }
}

LayerEstimate LutTable::lookup(const std::string& layer, int wb, int ab) const {
  auto it = rows_.find(std::make_tuple(layer, wb, ab));
  if (it == rows_.end()) fail("no entry for layer '{}' at W{}A{} in cost table {}", layer, wb, ab, origin_);
  return it->second;
}

namespace {

class AnalyticSource : public LayerCostSource {
 public:
  explicit AnalyticSource(CostModelSpec spec) : spec_(std::move(spec)) {}
  LayerEstimate estimate(const LayerDesc& layer, int wb, int ab) override { return analytic_estimate(spec_, layer, wb, ab); }

 private:
  CostModelSpec spec_;
};

class LutSource : public LayerCostSource {
 public:
  explicit LutSource(LutTable table) : table_(std::move(table)) {}
  LayerEstimate estimate(const LayerDesc& layer, int wb, int ab) override { return table_.lookup(layer.name, wb, ab); }

 private:
  LutTable table_;
};

}  // namespace

std::unique_ptr<LayerCostSource> analytic_source(const Profile& profile, const ModelInfo& model) {
  switch (profile.cost_model.type) {
    case CostModelType::Generic:
      return nullptr;
    case CostModelType::BitFusion:
    case CostModelType::Bismo:
      return std::make_unique<AnalyticSource>(profile.cost_model);
    case CostModelType::Lut: {
      LutTable table = LutTable::load(profile.cost_model.table);
      table.check_layers(quant::layer_names(model.layers));
      return std::make_unique<LutSource>(std::move(table));
    }
    default:
      fail("target {} measures its costs (cost model {}); use target::measured_source", profile.name,
           to_string(profile.cost_model.type));
  }
}

TargetCosts evaluate(const Profile& profile, const ModelInfo& model,
                     const std::map<std::string, quant::LayerPrecision>& precision, quant::Granularity granularity,
                     LayerCostSource* source) {
  TargetCosts out;
  out.target = profile.name;
  out.bits = cost::compute_costs(*model.graph, model.summary, model.layers, precision, granularity);
  bool latency = source != nullptr, energy = source != nullptr;
  double total_latency = 0, total_energy = 0;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    TargetLayerCost c;
    c.bits = out.bits.layers[i];
    const LayerDesc& d = model.descs[i];
    c.allowed = allows(profile, d.op, c.bits.weight_bits, c.bits.activation_bits,
                       granularity == quant::Granularity::PerChannel, &c.why_not);
    if (source) {
      LayerEstimate e = source->estimate(d, c.bits.weight_bits, c.bits.activation_bits);
      c.latency_ms = e.latency_ms;
      c.energy_mj = e.energy_mj;
      if (e.latency_ms) total_latency += *e.latency_ms; else latency = false;
      if (e.energy_mj) total_energy += *e.energy_mj; else energy = false;
    }
    out.layers.push_back(c);
  }
  if (latency) out.latency_ms = total_latency + source->fixed_latency_ms();
  if (energy) out.energy_mj = total_energy;
  return out;
}

TargetCosts evaluate_reference(const Profile& profile, const ModelInfo& model,
                               const std::map<std::string, quant::LayerPrecision>& precision,
                               quant::Granularity granularity, LayerCostSource* source) {
  try {
    bool all_float = std::all_of(precision.begin(), precision.end(), [](const auto& p) {
      return quant::is_float_bits(p.second.weight_bits) && quant::is_float_bits(p.second.activation_bits);
    });
    if (source && all_float && profile.measured() && profile.format == quant::QuantForm::Int && !model.path.empty()) {
      TargetCosts out = evaluate(profile, model, precision, granularity, nullptr);
      at::Tensor input = at::rand(model.summary.input_shape, at::detail::createCPUGenerator(0), at::kFloat);
      out.latency_ms = measure_model_file(profile, model.path, input).ms;
      return out;
    }
    return evaluate(profile, model, precision, granularity, source);
  } catch (const UserError& e) {
    TargetCosts out = evaluate(profile, model, precision, granularity, nullptr);
    out.missing_reason = e.what();
    return out;
  }
}

}  // namespace autoprec::target
