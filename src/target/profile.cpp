#include "target/profile.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "graph/op_traits.h"
#include "util/error.h"
#include "util/text.h"
#include "util/yaml.h"

namespace autoprec::target {
namespace {

namespace fs = std::filesystem;

// precisions keys: default, then one per quantizable operator kind (graph/op_traits.h).
std::vector<std::string> precision_keys() {
  std::vector<std::string> keys = {"default"};
  for (const std::string& op : graph::weighted_op_names()) keys.push_back(op);
  return keys;
}

std::string join(const std::vector<std::string>& v) { return fmt::format("{}", fmt::join(v, ", ")); }
std::string join_bits(const std::set<int>& v) { return fmt::format("{}", fmt::join(v, ", ")); }

// Parameters each cost model accepts (besides `type`).
std::vector<std::string> params_of(CostModelType type) {
  const std::vector<std::string> roofline = {"frequency_mhz", "bandwidth_bytes_per_cycle", "output_bits",
                                             "energy_onchip_pj_per_byte", "energy_offchip_pj_per_byte"};
  std::vector<std::string> p;
  switch (type) {
    case CostModelType::Generic:
      return {};
    case CostModelType::BitFusion:
      p = roofline;
      p.insert(p.end(), {"bricks", "energy_pj_per_brick_op"});
      return p;
    case CostModelType::Bismo:
      p = roofline;
      p.insert(p.end(), {"dm", "dn", "dk", "energy_pj_per_binary_op"});
      return p;
    case CostModelType::CpuOrt:
      return {"threads", "warmup", "repeats", "timeout_s", "timing", "form"};
    case CostModelType::Command:
      return {"command", "threads", "warmup", "repeats", "timeout_s", "timing", "form"};
    case CostModelType::Lut:
      return {"table"};
  }
  return {};
}

std::set<int> read_bits(const yaml::Node& n) {
  if (!n.is_list()) n.fail(fmt::format("{} must be a list of bit-widths like [2, 4, 8], got {}", n.what(), n.describe()));
  std::set<int> out;
  for (const yaml::Node& b : n.items()) {
    const int64_t bits = b.integer();
    if (!quant::valid_bits().count(static_cast<int>(bits)) || bits < 0 || bits > 64) {
      b.fail(fmt::format("{} must be one of {} (16 and 32: float), got {}", b.what(), join_bits(quant::valid_bits()), bits));
    }
    if (!out.insert(static_cast<int>(bits)).second) b.fail(fmt::format("{} lists {} twice", n.what(), bits));
  }
  if (out.empty()) n.fail(fmt::format("{} must not be empty", n.what()));
  return out;
}

double positive(const yaml::Node& n) {
  const double v = n.number();
  if (!(v > 0)) n.fail(fmt::format("{} must be a positive number, got {}", n.what(), n.text("")));
  return v;
}

void read_precisions(const yaml::Node& node, Profile& p) {
  const auto ops = node.entries(precision_keys());
  // default first, so that op entries inherit from it whatever the file order.
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& [op, entry] : ops) {
      if ((op == "default") != (pass == 0)) continue;
      PrecisionSupport s = pass == 0 ? PrecisionSupport{} : p.default_support;
      std::optional<std::set<int>> without_vnni;
      for (const auto& [key, v] : entry.entries({"weight_bits", "weight_bits_without_vnni", "activation_bits", "mixed",
                                                 "per_channel", "weight_only", "weight_only_bits", "activation_only"})) {
        if (key == "weight_bits") s.weight_bits = read_bits(v);
        if (key == "weight_bits_without_vnni") without_vnni = read_bits(v);
        if (key == "activation_bits") s.activation_bits = read_bits(v);
        if (key == "mixed") s.mixed = v.boolean();
        if (key == "per_channel") s.per_channel = v.boolean();
        if (key == "weight_only") s.weight_only = v.boolean();
        if (key == "weight_only_bits") {
          s.weight_only_bits = read_bits(v);
          for (int b : *s.weight_only_bits) {
            if (quant::is_float_bits(b)) v.fail(fmt::format("{} lists weight bits on float activations; {} is float", v.what(), b));
          }
        }
        if (key == "activation_only") s.activation_only = v.boolean();
      }
      if (without_vnni && !cpu_features().vnni()) {
        s.weight_bits = *without_vnni;
        s.without_vnni = true;
      }
      if (pass == 0) {
        p.default_support = s;
      } else {
        p.per_op[op] = s;
      }
    }
  }
}

const std::vector<std::string>& cost_model_names() {
  static const std::vector<std::string> names = {"generic", "bitfusion", "bismo", "cpu-ort", "lut", "command"};
  return names;
}

CostModelSpec read_cost_model(const yaml::Node& node, const std::string& origin) {
  if (!node.is_map()) node.fail(fmt::format("cost_model must be a mapping with a `type`, got {}", node.describe()));
  const std::optional<yaml::Node> type_node = node.find("type");
  if (!type_node) node.fail("cost_model needs a `type`: " + join(cost_model_names()));
  CostModelSpec spec;
  spec.type = *cost_model_type(cost_model_names()[type_node->choice(cost_model_names())]);
  std::vector<std::string> valid = params_of(spec.type);
  valid.insert(valid.begin(), "type");
  for (const auto& [key, v] : node.entries({})) {
    if (std::find(valid.begin(), valid.end(), key) == valid.end()) {
      v.fail(fmt::format("unknown key {} in cost_model of type {}{}; its keys are: {}", quote(key),
                         to_string(spec.type), did_you_mean(key, valid), join(valid)));
    }
  }
  for (const auto& [key, v] : node.entries(valid)) {
    if (key == "type") continue;
    if (key == "table") {
      spec.table = v.string();
      if (spec.table.empty()) v.fail("cost_model.table must name a CSV file");
      if (fs::path(spec.table).is_relative()) spec.table = (fs::path(origin).parent_path() / spec.table).string();
    } else if (key == "command") {
      if (!v.is_list() || v.items().empty()) v.fail("cost_model.command must be a non-empty list: [program, arg, ...]");
      for (const yaml::Node& a : v.items()) spec.command.push_back(a.string());
    } else if (key == "timing") {
      spec.kernel_timing = v.choice({"kernels", "wall"}) == 0;
    } else if (key == "form") {
      spec.export_form = v.choice({"export", "kernel"}) == 0;
    } else if (key == "threads") {
      spec.threads = static_cast<int>(v.integer(0, 1024));
    } else if (key == "warmup") {
      spec.warmup = static_cast<int>(v.integer(0, 1000000));
    } else if (key == "repeats") {
      spec.repeats = static_cast<int>(v.integer(1, 1000000));
    } else if (key == "output_bits") {
      spec.output_bits = static_cast<int>(v.integer(1, 64));
    } else if (key == "bricks") {
      spec.bricks = static_cast<double>(v.integer(1));
    } else {
      const double d = positive(v);
      if (key == "timeout_s") spec.timeout_s = d;
      if (key == "frequency_mhz") spec.frequency_mhz = d;
      if (key == "bandwidth_bytes_per_cycle") spec.bandwidth_bytes_per_cycle = d;
      if (key == "energy_onchip_pj_per_byte") spec.energy_onchip_pj_per_byte = d;
      if (key == "energy_offchip_pj_per_byte") spec.energy_offchip_pj_per_byte = d;
      if (key == "energy_pj_per_brick_op") spec.energy_pj_per_brick_op = d;
      if (key == "dm") spec.dm = d;
      if (key == "dn") spec.dn = d;
      if (key == "dk") spec.dk = d;
      if (key == "energy_pj_per_binary_op") spec.energy_pj_per_binary_op = d;
    }
  }
  if (spec.type == CostModelType::Lut && spec.table.empty()) node.fail("cost_model of type lut needs `table: FILE.csv`");
  if (spec.type == CostModelType::Command && spec.command.empty()) {
    node.fail("cost_model of type command needs `command: [program, arg, ...]`");
  }
  return spec;
}

using TKey = yaml::Key<Profile>;

const yaml::KeyFactory<Profile> key;

const std::vector<TKey>& keys() {
  static const std::vector<TKey> all = [] {
    const CostModelSpec d;
    const auto num = [](double v) { return fmt::format("{}", v); };
    const std::string bits = "list of bit-widths (2..8, 16, 32)";
    const std::string positive_number = "positive number";
    std::vector<TKey> k = {
        key("name", "non-empty string", "required", "the target's name", "''",
            [](const yaml::Node& n, Profile& p) {
              p.name = n.string();
              if (p.name.empty()) n.fail("name must not be empty");
            }),
        key("description", "string", "''", "one line for `autoprec targets`", "[a]",
            [](const yaml::Node& n, Profile& p) { p.description = n.string(); }),
        key("format", "qdq | int", "qdq", "the export form deploy and search use (docs/deploy.md)", "fp8",
            [](const yaml::Node& n, Profile& p) {
              p.format = n.choice({"qdq", "int"}) == 0 ? quant::QuantForm::Qdq : quant::QuantForm::Int;
            }),
        key("runtime", "onnxruntime | native", "onnxruntime",
            "what deploy and the end of search verify and time the result on; native (autoprec's own runtime, "
            "docs/native.md) needs format: int",
            "tvm", [](const yaml::Node& n, Profile& p) { p.native_runtime = n.choice({"onnxruntime", "native"}) == 1; }),
        key("precisions", "mapping: default | Conv | Gemm | MatMul -> support", "everything",
            "what the device runs per operator kind; op entries inherit from default", "[8]",
            [](const yaml::Node& n, Profile& p) { read_precisions(n, p); }),
        key("precisions.*.weight_bits", bits, "2..8, 16, 32", "", "[]", nullptr),
        key("precisions.*.weight_bits_without_vnni", bits, "weight_bits", "replaces weight_bits on a CPU without VNNI",
            "[9]", nullptr),
        key("precisions.*.activation_bits", bits, "2..8, 16, 32", "", "[8, 8]", nullptr),
        key("precisions.*.mixed", "true | false", "true", "weight bits may differ from activation bits", "yes", nullptr),
        key("precisions.*.per_channel", "true | false", "true", "per-output-channel weight scales allowed", "1", nullptr),
        key("precisions.*.weight_only", "true | false", "true", "quantized weights on float activations allowed", "no",
            nullptr),
        key("precisions.*.weight_only_bits", bits, "weight_bits if weight_only",
            "the weight bits allowed on float activations (overrides weight_only)", "[32]", nullptr),
        key("precisions.*.activation_only", "true | false", "true", "quantized activations on float weights allowed",
            "on", nullptr),
        key("cost_model", "mapping with a type and its parameters", "{type: generic}",
            "how latency and energy are estimated or measured (docs/targets.md)", "generic",
            [](const yaml::Node& n, Profile& p) { p.cost_model = read_cost_model(n, p.origin); }),
        key("cost_model.type", "generic | bitfusion | bismo | cpu-ort | lut | command", "generic", "", "gpu", nullptr),
        key("cost_model.frequency_mhz", positive_number, num(d.frequency_mhz), "bitfusion, bismo: clock", "0", nullptr,
            "{type: bitfusion}"),
        key("cost_model.bandwidth_bytes_per_cycle", positive_number, num(d.bandwidth_bytes_per_cycle),
            "bitfusion, bismo: off-chip bandwidth", "-16", nullptr, "{type: bismo}"),
        key("cost_model.output_bits", "integer in [1, 64]", num(d.output_bits),
            "bitfusion, bismo: bits per output element written", "0", nullptr, "{type: bitfusion}"),
        key("cost_model.energy_onchip_pj_per_byte", positive_number, num(d.energy_onchip_pj_per_byte),
            "bitfusion, bismo", ".nan", nullptr, "{type: bitfusion}"),
        key("cost_model.energy_offchip_pj_per_byte", positive_number, num(d.energy_offchip_pj_per_byte),
            "bitfusion, bismo", "0", nullptr, "{type: bismo}"),
        key("cost_model.bricks", "integer >= 1", num(d.bricks), "bitfusion: 2x2-bit bricks", "1.5", nullptr,
            "{type: bitfusion}"),
        key("cost_model.energy_pj_per_brick_op", positive_number, num(d.energy_pj_per_brick_op), "bitfusion", "0",
            nullptr, "{type: bitfusion}"),
        key("cost_model.dm", positive_number, num(d.dm), "bismo: dot-product array rows", "0", nullptr, "{type: bismo}"),
        key("cost_model.dn", positive_number, num(d.dn), "bismo: columns", "-1", nullptr, "{type: bismo}"),
        key("cost_model.dk", positive_number, num(d.dk), "bismo: bits per dot product", "x", nullptr, "{type: bismo}"),
        key("cost_model.energy_pj_per_binary_op", positive_number, num(d.energy_pj_per_binary_op), "bismo", "0", nullptr,
            "{type: bismo}"),
        key("cost_model.threads", "integer in [0, 1024]", num(d.threads), "cpu-ort, command: runtime threads", "-1",
            nullptr, "{type: cpu-ort}"),
        key("cost_model.warmup", "integer in [0, 1000000]", num(d.warmup), "cpu-ort, command: untimed runs", "-1", nullptr,
            "{type: cpu-ort}"),
        key("cost_model.repeats", "integer in [1, 1000000]", num(d.repeats), "cpu-ort, command: timed runs (median kept)",
            "0", nullptr, "{type: cpu-ort}"),
        key("cost_model.timeout_s", positive_number, num(d.timeout_s), "cpu-ort, command: per runner request", "0",
            nullptr, "{type: cpu-ort}"),
        key("cost_model.timing", "kernels | wall", "kernels", "cpu-ort, command (docs/targets.md)", "cpu", nullptr,
            "{type: cpu-ort}"),
        key("cost_model.form", "export | kernel", "export", "cpu-ort, command: what is timed", "int", nullptr,
            "{type: cpu-ort}"),
        key("cost_model.command", "non-empty list of strings", "required for command", "command: the runner's argv",
            "[]", nullptr, "{type: command}"),
        key("cost_model.table", "path of a CSV file", "required for lut", "lut: the table (relative to the profile)",
            "''", nullptr, "{type: lut}"),
    };
    return k;
  }();
  return all;
}

}  // namespace

const char* to_string(CostModelType type) {
  switch (type) {
    case CostModelType::Generic: return "generic";
    case CostModelType::BitFusion: return "bitfusion";
    case CostModelType::Bismo: return "bismo";
    case CostModelType::CpuOrt: return "cpu-ort";
    case CostModelType::Lut: return "lut";
    case CostModelType::Command: return "command";
  }
  return "?";
}

std::optional<CostModelType> cost_model_type(const std::string& name) {
  for (auto t : {CostModelType::Generic, CostModelType::BitFusion, CostModelType::Bismo, CostModelType::CpuOrt,
                 CostModelType::Lut, CostModelType::Command}) {
    if (name == to_string(t)) return t;
  }
  return std::nullopt;
}

const PrecisionSupport& Profile::support(const std::string& op) const {
  auto it = per_op.find(op);
  return it == per_op.end() ? default_support : it->second;
}

bool Profile::has_energy() const {
  return cost_model.type == CostModelType::BitFusion || cost_model.type == CostModelType::Bismo ||
         cost_model.type == CostModelType::Lut;
}

Profile read_profile(const yaml::Node& root) {
  if (!root.is_map()) {
    root.fail(fmt::format("a target profile must be a mapping with keys name, description, precisions, format, cost_model, got {}",
                          root.describe()));
  }
  Profile p;
  p.origin = root.origin();
  yaml::read_keys(root, keys(), p);
  if (p.name.empty()) root.fail("a target profile needs a `name`");
  if (p.native_runtime && p.format != quant::QuantForm::Int) {
    root.fail("runtime: native runs the integer form; the profile needs format: int");
  }
  return p;
}

Profile parse_profile(const std::string& yaml_text, const std::string& origin) {
  return read_profile(yaml::parse(yaml_text, origin, "target profile"));
}

Profile load_profile_file(const std::string& path) { return read_profile(yaml::load_file(path, "target profile")); }

std::vector<yaml::KeyInfo> profile_schema() { return yaml::infos(keys()); }

std::string builtin_targets_dir() {
  if (const char* env = std::getenv("AUTOPREC_TARGETS_DIR"); env && *env) return env;
  return std::string(AUTOPREC_SOURCE_DIR) + "/targets";
}

std::vector<std::string> builtin_target_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(builtin_targets_dir(), ec)) {
    if (e.path().extension() == ".yaml") names.push_back(e.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

Profile load_target(const std::string& name_or_path) {
  bool looks_like_path = name_or_path.find('/') != std::string::npos ||
                         (name_or_path.size() > 5 && name_or_path.substr(name_or_path.size() - 5) == ".yaml");
  if (looks_like_path) return load_profile_file(name_or_path);
  std::string file = builtin_targets_dir() + "/" + name_or_path + ".yaml";
  if (fs::exists(file)) return load_profile_file(file);
  std::vector<std::string> names = builtin_target_names();
  fail("unknown target '{}'; built-in targets: {} (or give a profile .yaml path)", name_or_path,
       names.empty() ? std::string("none found in ") + builtin_targets_dir() : join(names));
}

std::string CpuFeatures::text() const {
  std::string out;
  auto add = [&out](bool on, const char* name) {
    if (on) out += (out.empty() ? "" : " ") + std::string(name);
  };
  add(avx2, "avx2");
  add(fma, "fma");
  add(avx512f, "avx512f");
  add(avx512_vnni, "avx512_vnni");
  add(avx_vnni, "avx_vnni");
  return out.empty() ? "none" : out;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream words(line.substr(line.find(':') + 1));
      std::set<std::string> flags{std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
      f.avx2 = flags.count("avx2");
      f.fma = flags.count("fma");
      f.avx512f = flags.count("avx512f");
      f.avx512_vnni = flags.count("avx512_vnni");
      f.avx_vnni = flags.count("avx_vnni");
      break;
    }
    return f;
  }();
  return features;
}

bool allows(const Profile& profile, const std::string& op, int weight_bits, int activation_bits, bool per_channel,
            std::string* why) {
  const PrecisionSupport& s = profile.support(op);
  std::string reason;
  const bool weight_only = !quant::is_float_bits(weight_bits) && quant::is_float_bits(activation_bits);
  if (weight_only && s.weight_only_bits) {
    if (!s.weight_only_bits->count(weight_bits)) {
      reason = fmt::format("{} runs {} weights on float activations at {} bits, not {}", profile.name, op,
                           join_bits(*s.weight_only_bits), weight_bits);
    } else if (!s.activation_bits.count(activation_bits)) {
      reason = fmt::format("{} runs {} activations at {} bits, not {}", profile.name, op, join_bits(s.activation_bits),
                           activation_bits);
    }
  } else if (!s.weight_bits.count(weight_bits)) {
    reason = fmt::format("{} runs {} weights at {} bits, not {}{}", profile.name, op, join_bits(s.weight_bits), weight_bits,
                         s.without_vnni ? " (this CPU has no VNNI: 8-bit weights saturate ONNX Runtime's integer kernels)" : "");
  } else if (!s.activation_bits.count(activation_bits)) {
    reason = fmt::format("{} runs {} activations at {} bits, not {}", profile.name, op, join_bits(s.activation_bits),
                         activation_bits);
  } else if (!s.mixed && weight_bits != activation_bits) {
    reason = fmt::format("{} runs {} with equal weight and activation bits only, not W{}A{}", profile.name, op, weight_bits,
                         activation_bits);
  } else if (!s.weight_only && !quant::is_float_bits(weight_bits) && quant::is_float_bits(activation_bits)) {
    reason = fmt::format("{} runs {} with quantized weights only on quantized activations, not W{}A{} (a weight-only "
                         "layer runs DequantizeLinear and a float kernel)",
                         profile.name, op, weight_bits, activation_bits);
  } else if (!s.activation_only && quant::is_float_bits(weight_bits) && !quant::is_float_bits(activation_bits)) {
    reason = fmt::format("{} runs {} with quantized activations only with quantized weights, not W{}A{}", profile.name, op,
                         weight_bits, activation_bits);
  } else if (!s.per_channel && per_channel) {
    reason = fmt::format("{} has no per-channel weight scales for {}; use weight_granularity: per_tensor", profile.name, op);
  }
  if (why) *why = reason;
  return reason.empty();
}

void require_allowed(const Profile& profile, const std::vector<quant::QuantLayer>& layers,
                     const std::map<std::string, quant::LayerPrecision>& precision, quant::Granularity granularity) {
  for (const quant::QuantLayer& layer : layers) {
    const quant::LayerPrecision& p = precision.at(layer.name);
    std::string why;
    if (!allows(profile, layer.op, p.weight_bits, p.activation_bits, granularity == quant::Granularity::PerChannel, &why)) {
      fail("layer '{}': {}", layer.name, why);
    }
  }
}

}  // namespace autoprec::target
