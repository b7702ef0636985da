#include "quant/config.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string_view>
#include <system_error>

#include <fmt/format.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include "util/error.h"
#include "util/file.h"
#include "util/text.h"
#include "util/yaml.h"

namespace autoprec::quant {

namespace {

std::string format_double(double v) { return fmt::format("{}", v); }

int read_bits(const yaml::Node& node) {
  const int64_t bits = node.integer();
  if (valid_bits().count(static_cast<int>(bits)) == 0 || bits < 0 || bits > 64) {
    node.fail(fmt::format("{} must be one of {} (16 and 32 keep float), got {}", node.what(), join_ints(valid_bits()),
                          bits));
  }
  return static_cast<int>(bits);
}

template <typename Enum>
Enum read_enum(const yaml::Node& node, std::initializer_list<Enum> allowed, const std::string& note = "") {
  std::vector<std::string> names;
  for (Enum e : allowed) names.emplace_back(to_string(e));
  if (!note.empty() && node.is_scalar() && std::find(names.begin(), names.end(), node.text("")) == names.end()) {
    node.fail(fmt::format("{} must be one of {}, got {}{}", node.what(), fmt::join(names, ", "), quote(node.text("")),
                          note));
  }
  return *(allowed.begin() + node.choice(names));
}

PartialPrecision read_partial(const yaml::Node& node) {
  if (!node.is_map() && !node.is_null()) {
    node.fail(fmt::format("{} must be a mapping like {{weight_bits: 4, activation_bits: 8}}, got {}", node.what(),
                          node.describe()));
  }
  PartialPrecision p;
  for (const auto& [key, value] : node.entries({"weight_bits", "activation_bits"})) {
    (key == "weight_bits" ? p.weight_bits : p.activation_bits) = read_bits(value);
  }
  return p;
}

TensorRange read_tensor_range(const yaml::Node& node) {
  std::optional<double> lo, hi;
  for (const auto& [key, value] : node.entries({"min", "max"})) (key == "min" ? lo : hi) = value.number();
  if (!lo || !hi) node.fail(fmt::format("{} must set min and max", node.what()));
  if (*lo > *hi) {
    node.fail(fmt::format("{}: min ({}) must not exceed max ({})", node.what(), format_double(*lo), format_double(*hi)));
  }
  return {*lo, *hi};
}

LayerCalibration read_layer_calibration(const yaml::Node& node) {
  LayerCalibration c;
  for (const auto& [key, value] : node.entries({"activation_min", "activation_max", "weight_scale"})) {
    if (key == "activation_min") {
      c.activation_min = value.number();
    } else if (key == "activation_max") {
      c.activation_max = value.number();
    } else {
      if (!value.is_list() && !value.is_null()) {
        value.fail(fmt::format("{} must be a list of positive numbers, got {}", value.what(), value.describe()));
      }
      for (const yaml::Node& element : value.items()) {
        const double scale = element.number();
        if (!(scale > 0)) {
          element.fail(fmt::format("{} must be a positive number, got {}", element.what(), element.text("")));
        }
        c.weight_scale.push_back(scale);
      }
    }
  }
  if (c.activation_min.has_value() != c.activation_max.has_value()) {
    node.fail(fmt::format("{} must set activation_min and activation_max together, or neither", node.what()));
  }
  if (c.activation_min && *c.activation_min > *c.activation_max) {
    node.fail(fmt::format("{}: activation_min ({}) must not exceed activation_max ({})", node.what(),
                          format_double(*c.activation_min), format_double(*c.activation_max)));
  }
  return c;
}

using PKey = yaml::Key<PrecisionConfig>;

const yaml::KeyFactory<PrecisionConfig> key;

const std::vector<PKey>& keys() {
  static const std::vector<PKey> all = [] {
    const std::string bits = "bit-width: 2..8, or 16/32 (float)";
    std::vector<PKey> k = {
        key("default.weight_bits", bits, "8", "bits of every layer's weights unless a `layers` entry sets them", "9",
            [](const yaml::Node& n, PrecisionConfig& c) { c.default_precision.weight_bits = read_bits(n); }),
        key("default.activation_bits", bits, "8", "bits of every layer's input activations", "1",
            [](const yaml::Node& n, PrecisionConfig& c) { c.default_precision.activation_bits = read_bits(n); }),
        key("layers", "mapping: layer name or glob pattern -> {weight_bits, activation_bits}", "{}",
            "per-layer overrides in file order, later entries win; a key naming no layer is an error", "[conv1]",
            [](const yaml::Node& n, PrecisionConfig& c) {
              for (const auto& [name, value] : n.entries({}, true)) c.layers.emplace_back(name, read_partial(value));
            }),
        key("layers.*.weight_bits", bits, "from earlier entries or default", "", "12", nullptr),
        key("layers.*.activation_bits", bits, "from earlier entries or default", "", "eight", nullptr),
        key("options.weight_granularity", "per_channel | per_tensor", "per_channel", "one weight scale per output channel or per layer",
            "per_row", [](const yaml::Node& n, PrecisionConfig& c) {
              c.options.weight_granularity = read_enum(n, {Granularity::PerChannel, Granularity::PerTensor});
            }),
        key("options.weight_clipping", "minmax | mse", "minmax", "how weight ranges are chosen", "percentile",
            [](const yaml::Node& n, PrecisionConfig& c) {
              c.options.weight_clipping = read_enum(n, {RangeMethod::MinMax, RangeMethod::Mse},
                                                    " (percentile applies to activation_calibration only)");
            }),
        key("options.activation_calibration", "minmax | percentile | mse", "minmax", "how activation ranges are calibrated",
            "max", [](const yaml::Node& n, PrecisionConfig& c) {
              c.options.activation_calibration =
                  read_enum(n, {RangeMethod::MinMax, RangeMethod::Percentile, RangeMethod::Mse});
            }),
        key("options.percentile", "number in (50, 100]", "99.99", "the percentile of activation_calibration: percentile",
            "50", [](const yaml::Node& n, PrecisionConfig& c) {
              c.options.percentile = n.number();
              if (!(c.options.percentile > 50 && c.options.percentile <= 100)) {
                n.fail(fmt::format("{} must be in (50, 100], got {}", n.what(), n.text("")));
              }
            }),
        key("options.lsq", "true | false", "false", "learnable step sizes during fine-tuning", "yes",
            [](const yaml::Node& n, PrecisionConfig& c) { c.options.lsq = n.boolean(); }),
        key("options.quantize_activation_matmul", "true | false", "false",
            "a MatMul of two activations quantizes both inputs", "1",
            [](const yaml::Node& n, PrecisionConfig& c) { c.options.quantize_activation_matmul = n.boolean(); }),
        key("options.format", "qdq | int", "qdq (a target names its own)",
            "the quantized form simulated and exported (docs/deploy.md)", "integer",
            [](const yaml::Node& n, PrecisionConfig& c) { c.options.format = read_enum(n, {QuantForm::Qdq, QuantForm::Int}); }),
        key("calibration.seed", "unsigned integer", "none", "seed of the calibration examples (written by quantize)", "-1",
            [](const yaml::Node& n, PrecisionConfig& c) { c.calibration_seed = n.unsigned_integer(); }),
        key("calibration.samples", "integer >= 1", "none", "number of calibration examples (written by quantize)", "0",
            [](const yaml::Node& n, PrecisionConfig& c) { c.calibration_samples = n.integer(1); }),
        key("calibration.layers", "mapping: exact layer name -> calibrated range and scales", "{}",
            "calibrated parameters; a config with them needs no data", "[]",
            [](const yaml::Node& n, PrecisionConfig& c) {
              for (const auto& [name, value] : n.entries({})) c.calibration[name] = read_layer_calibration(value);
            }),
        key("calibration.layers.*.activation_min", "number (with activation_max)", "none", "", ".nan", nullptr),
        key("calibration.layers.*.activation_max", "number >= activation_min", "none", "", "-.inf", nullptr),
        key("calibration.layers.*.weight_scale", "list of positive numbers", "none", "", "[0]", nullptr),
        key("calibration.tensors", "mapping: tensor name -> {min, max}", "{}",
            "calibrated ranges of the integer form's tensors", "3",
            [](const yaml::Node& n, PrecisionConfig& c) {
              for (const auto& [name, value] : n.entries({})) c.tensor_ranges[name] = read_tensor_range(value);
            }),
        key("calibration.tensors.*.min", "number <= max", "none", "", "low", nullptr),
        key("calibration.tensors.*.max", "number >= min", "none", "", "0x10", nullptr),
    };
    return k;
  }();
  return all;
}

// ---------------------------------------------------------------------------
// Writer

// A YAML double-quoted scalar: safe for any name.
std::string yaml_quoted(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

std::string partial_yaml(const PartialPrecision& p) {
  std::vector<std::string> fields;
  if (p.weight_bits) fields.push_back(fmt::format("weight_bits: {}", *p.weight_bits));
  if (p.activation_bits) fields.push_back(fmt::format("activation_bits: {}", *p.activation_bits));
  return fmt::format("{{{}}}", fmt::join(fields, ", "));
}

std::string calibration_yaml(const LayerCalibration& c) {
  std::vector<std::string> fields;
  if (c.activation_min) fields.push_back("activation_min: " + format_double(*c.activation_min));
  if (c.activation_max) fields.push_back("activation_max: " + format_double(*c.activation_max));
  if (!c.weight_scale.empty()) {
    std::vector<std::string> scales;
    scales.reserve(c.weight_scale.size());
    for (double s : c.weight_scale) scales.push_back(format_double(s));
    fields.push_back(fmt::format("weight_scale: [{}]", fmt::join(scales, ", ")));
  }
  return fmt::format("{{{}}}", fmt::join(fields, ", "));
}

bool matches(const std::string& key, const std::string& name) {
  return autoprec::is_pattern(key) ? autoprec::glob_match(key, name) : key == name;
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API

bool is_float_bits(int bits) { return bits == 16 || bits == 32; }

const std::set<int>& valid_bits() {
  static const std::set<int> bits = {2, 3, 4, 5, 6, 7, 8, 16, 32};
  return bits;
}

const char* to_string(Granularity granularity) {
  switch (granularity) {
    case Granularity::PerChannel:
      return "per_channel";
    case Granularity::PerTensor:
      return "per_tensor";
  }
  return "?";
}

const char* to_string(QuantForm form) { return form == QuantForm::Int ? "int" : "qdq"; }

QuantForm parse_quant_form(const std::string& text, const std::string& what) {
  if (text == "qdq") return QuantForm::Qdq;
  if (text == "int") return QuantForm::Int;
  fail("{} must be int or qdq, not '{}'", what, text);
}

bool operator==(const TensorRange& a, const TensorRange& b) { return a.min == b.min && a.max == b.max; }

const char* to_string(RangeMethod method) {
  switch (method) {
    case RangeMethod::MinMax:
      return "minmax";
    case RangeMethod::Percentile:
      return "percentile";
    case RangeMethod::Mse:
      return "mse";
  }
  return "?";
}

bool operator==(const LayerPrecision& a, const LayerPrecision& b) {
  return a.weight_bits == b.weight_bits && a.activation_bits == b.activation_bits;
}

bool operator==(const PartialPrecision& a, const PartialPrecision& b) {
  return a.weight_bits == b.weight_bits && a.activation_bits == b.activation_bits;
}

bool operator==(const QuantOptions& a, const QuantOptions& b) {
  return a.weight_granularity == b.weight_granularity && a.weight_clipping == b.weight_clipping &&
         a.activation_calibration == b.activation_calibration && a.percentile == b.percentile &&
         a.lsq == b.lsq && a.quantize_activation_matmul == b.quantize_activation_matmul && a.format == b.format;
}

bool operator==(const LayerCalibration& a, const LayerCalibration& b) {
  return a.activation_min == b.activation_min && a.activation_max == b.activation_max &&
         a.weight_scale == b.weight_scale;
}

bool operator==(const PrecisionConfig& a, const PrecisionConfig& b) {
  return a.default_precision == b.default_precision && a.layers == b.layers &&
         a.options == b.options && a.calibration == b.calibration && a.tensor_ranges == b.tensor_ranges &&
         a.calibration_seed == b.calibration_seed && a.calibration_samples == b.calibration_samples;
}

PrecisionConfig parse_precision_config(const std::string& yaml_text, const std::string& origin) {
  return read_precision_config(yaml::parse(yaml_text, origin, "precision config"));
}

PrecisionConfig read_precision_config(const yaml::Node& root) {
  PrecisionConfig config;
  config.origin = root.origin();
  if (root.is_null()) return config;
  if (!root.is_map()) {
    root.fail(fmt::format("a precision config must be a mapping with keys default, layers, options, calibration, got {}",
                          root.describe()));
  }
  yaml::read_keys(root, keys(), config);
  return config;
}

std::vector<yaml::KeyInfo> precision_config_schema() { return yaml::infos(keys()); }

PrecisionConfig load_precision_config(const std::string& path) {
  return read_precision_config(yaml::load_file(path, "precision config"));
}

std::string to_yaml(const PrecisionConfig& config) {
  std::string out;
  out += "# autoprec precision config\n";
  out += fmt::format("default: {{weight_bits: {}, activation_bits: {}}}\n",
                     config.default_precision.weight_bits,
                     config.default_precision.activation_bits);
  if (config.layers.empty()) {
    out += "layers: {}\n";
  } else {
    out += "layers:\n";
    for (const auto& [key, p] : config.layers) {
      out += fmt::format("  {}: {}\n", yaml_quoted(key), partial_yaml(p));
    }
  }
  const QuantOptions& o = config.options;
  out += fmt::format(
      "options: {{weight_granularity: {}, weight_clipping: {}, activation_calibration: {}, "
      "percentile: {}, lsq: {}, quantize_activation_matmul: {}, format: {}}}\n",
      to_string(o.weight_granularity), to_string(o.weight_clipping),
      to_string(o.activation_calibration), format_double(o.percentile), o.lsq,
      o.quantize_activation_matmul, to_string(o.format));
  if (config.calibration_seed || config.calibration_samples || !config.calibration.empty() ||
      !config.tensor_ranges.empty()) {
    out += "calibration:\n";
    if (config.calibration_seed) out += fmt::format("  seed: {}\n", *config.calibration_seed);
    if (config.calibration_samples) {
      out += fmt::format("  samples: {}\n", *config.calibration_samples);
    }
    if (!config.calibration.empty()) {
      out += "  layers:\n";
      for (const auto& [name, c] : config.calibration) {
        out += fmt::format("    {}: {}\n", yaml_quoted(name), calibration_yaml(c));
      }
    }
    if (!config.tensor_ranges.empty()) {
      out += "  tensors:\n";
      for (const auto& [name, r] : config.tensor_ranges) {
        out += fmt::format("    {}: {{min: {}, max: {}}}\n", yaml_quoted(name), format_double(r.min), format_double(r.max));
      }
    }
  }
  return out;
}

void save_precision_config(const PrecisionConfig& config, const std::string& path) {
  write_file_atomically(path, to_yaml(config), "precision config");
}

bool is_pattern(const std::string& key) { return autoprec::is_pattern(key); }
bool glob_match(const std::string& pattern, const std::string& name) { return autoprec::glob_match(pattern, name); }

std::map<std::string, LayerPrecision> resolve(const PrecisionConfig& config,
                                              const std::vector<std::string>& layer_names,
                                              const std::set<int>& allowed_bits) {
  const std::string origin = config.origin.empty() ? "precision config" : config.origin;
  const auto available = [&] {
    if (layer_names.empty()) return std::string("the model has no quantizable layers");
    return "quantizable layers are: " + list_names(layer_names);
  };

  // Which key last set each field of each layer ("" = the default).
  struct Resolved {
    LayerPrecision precision;
    std::string weight_source, activation_source;
  };
  std::map<std::string, Resolved> resolved;
  for (const std::string& name : layer_names) resolved[name].precision = config.default_precision;

  for (const auto& [key, p] : config.layers) {
    bool any = false;
    for (const std::string& name : layer_names) {
      if (!matches(key, name)) continue;
      any = true;
      Resolved& r = resolved[name];
      if (p.weight_bits) {
        r.precision.weight_bits = *p.weight_bits;
        r.weight_source = key;
      }
      if (p.activation_bits) {
        r.precision.activation_bits = *p.activation_bits;
        r.activation_source = key;
      }
    }
    if (any) continue;
    if (is_pattern(key)) {
      fail("{}: layer pattern {} matches no layer; {}", origin, quote(key), available());
    }
    fail("{}: unknown layer {}{}; {}", origin, quote(key), did_you_mean(key, layer_names),
         available());
  }

  const auto check = [&](const std::string& name, const char* field, int bits,
                         const std::string& source) {
    if (allowed_bits.count(bits)) return;
    const std::string from = source.empty() ? std::string("default")
                                            : fmt::format("layers[{}]", quote(source));
    fail("{}: layer {} gets {} {} from {}, which is not supported here; allowed bit-widths: {}",
         origin, quote(name), field, bits, from, join_ints(allowed_bits));
  };
  std::map<std::string, LayerPrecision> out;
  for (const std::string& name : layer_names) {
    const Resolved& r = resolved[name];
    check(name, "weight_bits", r.precision.weight_bits, r.weight_source);
    check(name, "activation_bits", r.precision.activation_bits, r.activation_source);
    out[name] = r.precision;
  }
  return out;
}

PrecisionConfig uniform(int weight_bits, int activation_bits) {
  for (const auto& [field, bits] : {std::pair{"weight_bits", weight_bits},
                                    std::pair{"activation_bits", activation_bits}}) {
    if (!valid_bits().count(bits)) {
      fail("{} must be one of {} (16 and 32 keep float), got {}", field, join_ints(valid_bits()),
           bits);
    }
  }
  PrecisionConfig config;
  config.default_precision = {weight_bits, activation_bits};
  return config;
}

}  // namespace autoprec::quant
