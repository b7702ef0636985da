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

#include "util/error.h"

namespace autoprec::target {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kOps = {"default", "Conv", "Gemm", "MatMul"};
const std::set<int> kValidBits = {2, 3, 4, 5, 6, 7, 8, 16, 32};

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

class Parser {
 public:
  explicit Parser(std::string origin) : origin_(std::move(origin)) {}

  Profile parse(const std::string& text) {
    YAML::Node root;
    try {
      std::vector<YAML::Node> docs = YAML::LoadAll(text);
      if (docs.size() > 1) fail("{}: the file holds {} YAML documents; a target profile is one document", origin_, docs.size());
      if (!docs.empty()) root = docs[0];
    } catch (const YAML::Exception& e) {
      if (e.mark.is_null()) fail("{}: malformed YAML: {}", origin_, e.msg);
      fail("{}:{}:{}: malformed YAML: {}", origin_, e.mark.line + 1, e.mark.column + 1, e.msg);
    }
    if (!root.IsMap()) error(root, "a target profile must be a mapping with keys name, description, precisions, cost_model");
    Profile p;
    p.origin = origin_;
    bool has_name = false;
    try {
      for (const auto& [key, value, at] : entries(root, "the top level", {"name", "description", "precisions", "format", "cost_model"})) {
        if (key == "name") {
          p.name = string(value, at, "name");
          has_name = true;
          if (p.name.empty()) error(at, "name must not be empty");
        } else if (key == "description") {
          p.description = string(value, at, "description");
        } else if (key == "precisions") {
          parse_precisions(value, at, p);
        } else if (key == "cost_model") {
          p.cost_model = parse_cost_model(value, at);
        } else if (key == "format") {
          std::string f = string(value, at, "format");
          if (f != "int" && f != "qdq") error(at, fmt::format("format must be int or qdq, got '{}'", f));
          p.format = quant::parse_quant_form(f, "format");
        }
      }
    } catch (const YAML::Exception& e) {
      fail("{}:{}: invalid target profile: {}", origin_, e.mark.line + 1, e.msg);
    }
    if (!has_name) fail("{}: a target profile needs a `name`", origin_);
    return p;
  }

 private:
  struct Entry {
    std::string key;
    YAML::Node value;
    YAML::Node at;  // where to point errors
  };

  [[noreturn]] void error(const YAML::Node& at, const std::string& message) const {
    YAML::Mark mark = at.Mark();
    if (mark.is_null() || mark.line < 0) throw UserError(fmt::format("{}: {}", origin_, message));
    throw UserError(fmt::format("{}:{}: {}", origin_, mark.line + 1, message));
  }

  std::vector<Entry> entries(const YAML::Node& map, const std::string& where, const std::vector<std::string>& valid) const {
    std::vector<Entry> out;
    if (map.IsNull()) return out;
    if (!map.IsMap()) error(map, fmt::format("{} must be a mapping", where));
    std::set<std::string> seen;
    for (const auto& kv : map) {
      if (!kv.first.IsScalar()) error(kv.first, fmt::format("keys of {} must be names", where));
      std::string key = kv.first.Scalar();
      if (std::find(valid.begin(), valid.end(), key) == valid.end()) {
        error(kv.first, fmt::format("unknown key '{}' in {}; valid keys are: {}", key, where, join(valid)));
      }
      if (!seen.insert(key).second) error(kv.first, fmt::format("duplicate key '{}' in {}", key, where));
      out.push_back({key, kv.second, kv.second.IsNull() ? kv.first : kv.second});
    }
    return out;
  }

  std::string string(const YAML::Node& v, const YAML::Node& at, const std::string& what) const {
    if (!v.IsScalar()) error(at, fmt::format("{} must be a string", what));
    return v.Scalar();
  }

  bool boolean(const YAML::Node& v, const YAML::Node& at, const std::string& what) const {
    if (v.IsScalar()) {
      const std::string& s = v.Scalar();
      if (s == "true" || s == "True" || s == "yes") return true;
      if (s == "false" || s == "False" || s == "no") return false;
    }
    error(at, fmt::format("{} must be true or false", what));
  }

  double number(const YAML::Node& v, const YAML::Node& at, const std::string& what, bool integer) const {
    if (v.IsScalar()) {
      const std::string& s = v.Scalar();
      char* end = nullptr;
      errno = 0;
      double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && end == s.c_str() + s.size() && errno == 0 && std::isfinite(d) && (!integer || d == std::floor(d))) {
        if (d <= 0) error(at, fmt::format("{} must be positive, got {}", what, s));
        return d;
      }
      error(at, fmt::format("{} must be a positive {}, got '{}'", what, integer ? "integer" : "number", s));
    }
    error(at, fmt::format("{} must be a positive {}", what, integer ? "integer" : "number"));
  }

  std::set<int> bits(const YAML::Node& v, const YAML::Node& at, const std::string& what) const {
    if (!v.IsSequence()) error(at, fmt::format("{} must be a list of bit-widths like [2, 4, 8]", what));
    std::set<int> out;
    for (const auto& b : v) {
      double d = number(b, b, what, true);
      if (!kValidBits.count(static_cast<int>(d)) || d > 64) {
        error(b, fmt::format("{} holds {}; bit-widths are {} (16 and 32: float)", what, b.Scalar(), join_bits(kValidBits)));
      }
      if (!out.insert(static_cast<int>(d)).second) error(b, fmt::format("{} lists {} twice", what, b.Scalar()));
    }
    if (out.empty()) error(at, fmt::format("{} must not be empty", what));
    return out;
  }

  void parse_precisions(const YAML::Node& v, const YAML::Node& at, Profile& p) const {
    std::vector<Entry> ops = entries(v, "precisions", kOps);
    // default first, so that op entries inherit from it whatever the file order.
    for (int pass = 0; pass < 2; ++pass) {
      for (const auto& e : ops) {
        if ((e.key == "default") != (pass == 0)) continue;
        PrecisionSupport s = pass == 0 ? PrecisionSupport{} : p.default_support;
        std::string where = "precisions." + e.key;
        std::optional<std::set<int>> without_vnni;
        for (const auto& f : entries(e.value, where,
                                     {"weight_bits", "weight_bits_without_vnni", "activation_bits", "mixed", "per_channel",
                                      "weight_only", "activation_only"})) {
          if (f.key == "weight_bits") s.weight_bits = bits(f.value, f.at, where + ".weight_bits");
          if (f.key == "weight_bits_without_vnni") without_vnni = bits(f.value, f.at, where + ".weight_bits_without_vnni");
          if (f.key == "activation_bits") s.activation_bits = bits(f.value, f.at, where + ".activation_bits");
          if (f.key == "mixed") s.mixed = boolean(f.value, f.at, where + ".mixed");
          if (f.key == "per_channel") s.per_channel = boolean(f.value, f.at, where + ".per_channel");
          if (f.key == "weight_only") s.weight_only = boolean(f.value, f.at, where + ".weight_only");
          if (f.key == "activation_only") s.activation_only = boolean(f.value, f.at, where + ".activation_only");
        }
        if (without_vnni && !cpu_features().vnni()) {
          s.weight_bits = *without_vnni;
          s.without_vnni = true;
        }
        if (pass == 0) {
          p.default_support = s;
        } else {
          p.per_op[e.key] = s;
        }
      }
    }
  }

  CostModelSpec parse_cost_model(const YAML::Node& v, const YAML::Node& at) const {
    if (!v.IsMap()) error(at, "cost_model must be a mapping with a `type`");
    CostModelSpec spec;
    YAML::Node type = v["type"];
    if (!type) error(at, "cost_model needs a `type`: generic, bitfusion, bismo, cpu-ort, lut or command");
    std::string name = string(type, type, "cost_model.type");
    auto t = cost_model_type(name);
    if (!t) error(type, fmt::format("unknown cost model '{}'; valid: generic, bitfusion, bismo, cpu-ort, lut, command", name));
    spec.type = *t;
    std::vector<std::string> valid = params_of(*t);
    valid.insert(valid.begin(), "type");
    for (const auto& e : entries(v, fmt::format("cost_model ({})", name), valid)) {
      const std::string what = "cost_model." + e.key;
      if (e.key == "type") continue;
      if (e.key == "table") {
        spec.table = string(e.value, e.at, what);
        if (spec.table.empty()) error(e.at, "cost_model.table must name a CSV file");
        if (fs::path(spec.table).is_relative()) spec.table = (fs::path(origin_).parent_path() / spec.table).string();
      } else if (e.key == "command") {
        if (!e.value.IsSequence() || e.value.size() == 0) error(e.at, "cost_model.command must be a non-empty list: [program, arg, ...]");
        for (const auto& a : e.value) spec.command.push_back(string(a, a, what));
      } else if (e.key == "timing") {
        std::string t = string(e.value, e.at, what);
        if (t != "kernels" && t != "wall") error(e.at, fmt::format("cost_model.timing must be kernels or wall, got '{}'", t));
        spec.kernel_timing = t == "kernels";
      } else if (e.key == "form") {
        std::string f = string(e.value, e.at, what);
        if (f != "export" && f != "kernel") error(e.at, fmt::format("cost_model.form must be export or kernel, got '{}'", f));
        spec.export_form = f == "export";
      } else if (e.key == "threads") {
        if (e.value.IsScalar() && e.value.Scalar() == "0") spec.threads = 0;
        else spec.threads = static_cast<int>(number(e.value, e.at, what, true));
      } else if (e.key == "warmup") {
        if (e.value.IsScalar() && e.value.Scalar() == "0") spec.warmup = 0;
        else spec.warmup = static_cast<int>(number(e.value, e.at, what, true));
      } else if (e.key == "repeats") {
        spec.repeats = static_cast<int>(number(e.value, e.at, what, true));
      } else if (e.key == "output_bits") {
        spec.output_bits = static_cast<int>(number(e.value, e.at, what, true));
      } else {
        double d = number(e.value, e.at, what, e.key == "bricks");
        if (e.key == "timeout_s") spec.timeout_s = d;
        if (e.key == "frequency_mhz") spec.frequency_mhz = d;
        if (e.key == "bandwidth_bytes_per_cycle") spec.bandwidth_bytes_per_cycle = d;
        if (e.key == "energy_onchip_pj_per_byte") spec.energy_onchip_pj_per_byte = d;
        if (e.key == "energy_offchip_pj_per_byte") spec.energy_offchip_pj_per_byte = d;
        if (e.key == "bricks") spec.bricks = d;
        if (e.key == "energy_pj_per_brick_op") spec.energy_pj_per_brick_op = d;
        if (e.key == "dm") spec.dm = d;
        if (e.key == "dn") spec.dn = d;
        if (e.key == "dk") spec.dk = d;
        if (e.key == "energy_pj_per_binary_op") spec.energy_pj_per_binary_op = d;
      }
    }
    if (spec.type == CostModelType::Lut && spec.table.empty()) error(at, "cost_model of type lut needs `table: FILE.csv`");
    if (spec.type == CostModelType::Command && spec.command.empty()) {
      error(at, "cost_model of type command needs `command: [program, arg, ...]`");
    }
    return spec;
  }

  std::string origin_;
};

std::string read_text(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("target profile {} does not exist", path);
  if (fs::is_directory(path, ec)) fail("cannot read target profile {}: it is a directory", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read target profile {}: {}", path, std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
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

Profile parse_profile(const std::string& yaml_text, const std::string& origin) { return Parser(origin).parse(yaml_text); }

Profile load_profile_file(const std::string& path) { return parse_profile(read_text(path), path); }

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
  if (!s.weight_bits.count(weight_bits)) {
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
