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

namespace autoprec::quant {

namespace {

// ---------------------------------------------------------------------------
// Message helpers

// Quotes a user-supplied string for a one-line message: 'name', with control
// characters, quotes and backslashes escaped.
std::string quote(std::string_view s) {
  std::string out = "'";
  for (unsigned char c : s) {
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '\'';
  return out;
}

std::string join_ints(const std::set<int>& values) {
  return fmt::format("{}", fmt::join(values, ", "));
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" for the closest candidate if it is close enough.
template <typename Range>
std::string suggestion(std::string_view key, const Range& candidates) {
  const size_t threshold = std::max<size_t>(2, key.size() / 3);
  size_t best = threshold + 1;
  std::string_view best_name;
  for (const auto& candidate : candidates) {
    const size_t d = edit_distance(key, candidate);
    if (d < best) {
      best = d;
      best_name = candidate;
    }
  }
  if (best > threshold) return "";
  return fmt::format(" (did you mean {}?)", quote(best_name));
}

// "a, b, c, ... and N more" (at most `limit` names).
std::string list_names(const std::vector<std::string>& names, size_t limit = 8) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) {
    if (i) out += ", ";
    out += names[i];
  }
  if (names.size() > limit) out += fmt::format(" and {} more", names.size() - limit);
  return out;
}

// ---------------------------------------------------------------------------
// Number formatting and parsing (locale-independent, exact).

std::string format_double(double v) { return fmt::format("{}", v); }

std::optional<double> to_double(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty() || s.front() == '+') return std::nullopt;
  double v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

template <typename Int>
std::optional<Int> to_integer(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty() || s.front() == '+') return std::nullopt;
  Int v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// ---------------------------------------------------------------------------
// Parser

constexpr std::initializer_list<const char*> kTopKeys = {"default", "layers", "options",
                                                         "calibration"};
constexpr std::initializer_list<const char*> kPrecisionKeys = {"weight_bits", "activation_bits"};
constexpr std::initializer_list<const char*> kOptionKeys = {
    "weight_granularity", "weight_clipping", "activation_calibration",
    "percentile",         "lsq",             "quantize_activation_matmul", "format"};
constexpr std::initializer_list<const char*> kCalibrationKeys = {"seed", "samples", "layers", "tensors"};
constexpr std::initializer_list<const char*> kTensorRangeKeys = {"min", "max"};
constexpr std::initializer_list<const char*> kLayerCalibrationKeys = {
    "activation_min", "activation_max", "weight_scale"};

// A node and the node whose position locates it in messages.
struct Item {
  YAML::Node value;
  YAML::Node at;
};

class Parser {
 public:
  explicit Parser(std::string origin) : origin_(std::move(origin)) {}

  PrecisionConfig parse(const std::string& text) {
    std::vector<YAML::Node> documents;
    try {
      documents = YAML::LoadAll(text);
    } catch (const YAML::Exception& e) {
      if (e.mark.is_null()) throw UserError(fmt::format("{}: malformed YAML: {}", origin_, e.msg));
      throw UserError(fmt::format("{}:{}:{}: malformed YAML: {}", origin_, e.mark.line + 1,
                                  e.mark.column + 1, e.msg));
    }
    if (documents.size() > 1) {
      error(Item{documents[1], documents[1]},
            fmt::format("the file holds {} YAML documents; a precision config is one document",
                        documents.size()));
    }
    PrecisionConfig config;
    config.origin = origin_;
    if (documents.empty() || documents[0].IsNull()) return config;
    const Item root{documents[0], documents[0]};
    if (!root.value.IsMap()) {
      error(root, fmt::format("a precision config must be a mapping with keys {}, got {}",
                              fmt::join(kTopKeys, ", "), describe(root.value)));
    }
    try {
      for (const auto& [key, item] : entries(root, "the top level", kTopKeys, false)) {
        if (key == "default") {
          config.default_precision = parse_default(item);
        } else if (key == "layers") {
          parse_layers(item, config);
        } else if (key == "options") {
          config.options = parse_options(item);
        } else if (key == "calibration") {
          parse_calibration(item, config);
        }
      }
    } catch (const YAML::Exception& e) {
      // Not expected (nodes are only read through checked accessors), but
      // never let a yaml-cpp exception escape as a non-user error.
      throw UserError(fmt::format("{}:{}: invalid precision config: {}", origin_,
                                  e.mark.line + 1, e.msg));
    }
    return config;
  }

 private:
  std::string origin_;

  [[noreturn]] void error(const Item& item, const std::string& message) const {
    const YAML::Mark mark = item.at.Mark();
    if (mark.is_null() || mark.line < 0) throw UserError(fmt::format("{}: {}", origin_, message));
    throw UserError(fmt::format("{}:{}: {}", origin_, mark.line + 1, message));
  }

  static std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
      case YAML::NodeType::Scalar:
        return quote(node.Scalar());
      case YAML::NodeType::Sequence:
        return "a list";
      case YAML::NodeType::Map:
        return "a mapping";
      default:
        return "nothing";
    }
  }

  // The (key, value) pairs of a mapping (nothing for null), checking that
  // keys are scalars, known (when `valid` is non-empty) and, unless
  // `allow_duplicates`, unique.
  std::vector<std::pair<std::string, Item>> entries(const Item& map, const std::string& where,
                                                    std::initializer_list<const char*> valid,
                                                    bool allow_duplicates) const {
    std::vector<std::pair<std::string, Item>> out;
    if (map.value.IsNull()) return out;
    if (!map.value.IsMap()) {
      error(map, fmt::format("{} must be a mapping, got {}", where, describe(map.value)));
    }
    std::set<std::string> seen;
    for (const auto& kv : map.value) {
      const Item key_item{kv.first, kv.first};
      if (!kv.first.IsScalar()) {
        error(key_item,
              fmt::format("keys of {} must be names, got {}", where, describe(kv.first)));
      }
      const std::string& key = kv.first.Scalar();
      if (valid.size() != 0 &&
          std::none_of(valid.begin(), valid.end(), [&](const char* k) { return key == k; })) {
        error(key_item, fmt::format("unknown key {} in {}{}; valid keys are: {}", quote(key), where,
                                    suggestion(key, valid), fmt::join(valid, ", ")));
      }
      if (!allow_duplicates && !seen.insert(key).second) {
        error(key_item, fmt::format("duplicate key {} in {}", quote(key), where));
      }
      // yaml-cpp places an empty (null) value after its key, possibly on a
      // later line: report problems with it at the key.
      out.emplace_back(key, Item{kv.second, kv.second.IsNull() ? kv.first : kv.second});
    }
    return out;
  }

  const std::string& scalar(const Item& item, const std::string& what,
                            const std::string& expected) const {
    if (!item.value.IsScalar()) {
      error(item, fmt::format("{} must be {}, got {}", what, expected, describe(item.value)));
    }
    return item.value.Scalar();
  }

  int parse_bits(const Item& item, const std::string& what) const {
    const std::string& text = scalar(item, what, "an integer");
    const auto v = to_integer<long long>(text);
    const bool digits = !text.empty() && text.find_first_not_of("+-0123456789") ==
                                             std::string::npos;
    if (!v && !digits) error(item, fmt::format("{} must be an integer, got {}", what, quote(text)));
    if (!v || *v < 0 || *v > 64 || valid_bits().count(static_cast<int>(*v)) == 0) {
      error(item, fmt::format("{} must be one of {} (16 and 32 keep float), got {}", what,
                              join_ints(valid_bits()), text));
    }
    return static_cast<int>(*v);
  }

  double parse_number(const Item& item, const std::string& what) const {
    const std::string& text = scalar(item, what, "a number");
    const auto v = to_double(text);
    if (!v || !std::isfinite(*v)) {
      error(item, fmt::format("{} must be a finite number, got {}", what, quote(text)));
    }
    return *v;
  }

  bool parse_bool(const Item& item, const std::string& what) const {
    const std::string& text = scalar(item, what, "true or false");
    for (const char* t : {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"}) {
      if (text == t) return true;
    }
    for (const char* f : {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"}) {
      if (text == f) return false;
    }
    error(item, fmt::format("{} must be true or false, got {}", what, quote(text)));
  }

  template <typename Enum>
  Enum parse_enum(const Item& item, const std::string& what, std::initializer_list<Enum> allowed,
                  const std::string& note = "") const {
    std::vector<std::string> names;
    for (Enum e : allowed) names.emplace_back(to_string(e));
    const std::string expected = fmt::format("one of {}", fmt::join(names, ", "));
    const std::string& text = scalar(item, what, expected);
    for (Enum e : allowed) {
      if (text == to_string(e)) return e;
    }
    error(item, fmt::format("{} must be {}, got {}{}{}", what, expected, quote(text),
                            suggestion(text, names), note));
  }

  PartialPrecision parse_partial(const Item& item, const std::string& where) const {
    if (!item.value.IsMap() && !item.value.IsNull()) {
      error(item, fmt::format("{} must be a mapping like {{weight_bits: 4, activation_bits: 8}}, "
                              "got {}",
                              where, describe(item.value)));
    }
    PartialPrecision p;
    for (const auto& [key, value] : entries(item, where, kPrecisionKeys, false)) {
      const std::string what = fmt::format("{}.{}", where, key);
      if (key == "weight_bits") {
        p.weight_bits = parse_bits(value, what);
      } else {
        p.activation_bits = parse_bits(value, what);
      }
    }
    return p;
  }

  LayerPrecision parse_default(const Item& item) const {
    const PartialPrecision p = parse_partial(item, "default");
    LayerPrecision out;
    if (p.weight_bits) out.weight_bits = *p.weight_bits;
    if (p.activation_bits) out.activation_bits = *p.activation_bits;
    return out;
  }

  void parse_layers(const Item& item, PrecisionConfig& config) const {
    for (const auto& [key, value] : entries(item, "layers", {}, true)) {
      config.layers.emplace_back(key, parse_partial(value, fmt::format("layers[{}]", quote(key))));
    }
  }

  QuantOptions parse_options(const Item& item) const {
    QuantOptions o;
    for (const auto& [key, value] : entries(item, "options", kOptionKeys, false)) {
      const std::string what = "options." + key;
      if (key == "weight_granularity") {
        o.weight_granularity =
            parse_enum(value, what, {Granularity::PerChannel, Granularity::PerTensor});
      } else if (key == "weight_clipping") {
        const std::string note =
            value.value.IsScalar() && value.value.Scalar() == "percentile"
                ? " (percentile applies to activation_calibration only)"
                : "";
        o.weight_clipping = parse_enum(value, what, {RangeMethod::MinMax, RangeMethod::Mse}, note);
      } else if (key == "activation_calibration") {
        o.activation_calibration = parse_enum(
            value, what, {RangeMethod::MinMax, RangeMethod::Percentile, RangeMethod::Mse});
      } else if (key == "percentile") {
        o.percentile = parse_number(value, what);
        if (!(o.percentile > 50 && o.percentile <= 100)) {
          error(value, fmt::format("{} must be in (50, 100], got {}", what, value.value.Scalar()));
        }
      } else if (key == "lsq") {
        o.lsq = parse_bool(value, what);
      } else if (key == "quantize_activation_matmul") {
        o.quantize_activation_matmul = parse_bool(value, what);
      } else if (key == "format") {
        o.format = parse_enum(value, what, {QuantForm::Qdq, QuantForm::Int});
      }
    }
    return o;
  }

  void parse_calibration(const Item& item, PrecisionConfig& config) const {
    for (const auto& [key, value] : entries(item, "calibration", kCalibrationKeys, false)) {
      if (key == "seed") {
        const std::string& text = scalar(value, "calibration.seed", "an unsigned integer");
        const auto v = to_integer<uint64_t>(text);
        if (!v) {
          error(value, fmt::format("calibration.seed must be an unsigned integer, got {}",
                                   quote(text)));
        }
        config.calibration_seed = *v;
      } else if (key == "samples") {
        const std::string& text = scalar(value, "calibration.samples", "a positive integer");
        const auto v = to_integer<int64_t>(text);
        if (!v || *v <= 0) {
          error(value, fmt::format("calibration.samples must be a positive integer, got {}",
                                   quote(text)));
        }
        config.calibration_samples = *v;
      } else if (key == "layers") {
        for (const auto& [name, entry] : entries(value, "calibration.layers", {}, false)) {
          config.calibration[name] = parse_layer_calibration(
              entry, fmt::format("calibration.layers[{}]", quote(name)));
        }
      } else if (key == "tensors") {
        for (const auto& [name, entry] : entries(value, "calibration.tensors", {}, false)) {
          config.tensor_ranges[name] = parse_tensor_range(entry, fmt::format("calibration.tensors[{}]", quote(name)));
        }
      }
    }
  }

  TensorRange parse_tensor_range(const Item& item, const std::string& where) const {
    std::optional<double> lo, hi;
    for (const auto& [key, value] : entries(item, where, kTensorRangeKeys, false)) {
      const double v = parse_number(value, fmt::format("{}.{}", where, key));
      (key == "min" ? lo : hi) = v;
    }
    if (!lo || !hi) error(item, fmt::format("{} must set min and max", where));
    if (*lo > *hi) {
      error(item, fmt::format("{}: min ({}) must not exceed max ({})", where, format_double(*lo), format_double(*hi)));
    }
    return {*lo, *hi};
  }

  LayerCalibration parse_layer_calibration(const Item& item, const std::string& where) const {
    LayerCalibration c;
    for (const auto& [key, value] : entries(item, where, kLayerCalibrationKeys, false)) {
      const std::string what = fmt::format("{}.{}", where, key);
      if (key == "activation_min") {
        c.activation_min = parse_number(value, what);
      } else if (key == "activation_max") {
        c.activation_max = parse_number(value, what);
      } else if (key == "weight_scale") {
        if (!value.value.IsSequence() && !value.value.IsNull()) {
          error(value, fmt::format("{} must be a list of positive numbers, got {}", what,
                                   describe(value.value)));
        }
        for (size_t i = 0; i < value.value.size(); ++i) {
          const YAML::Node node = value.value[i];
          const Item element{node, node};
          const std::string element_what = fmt::format("{}[{}]", what, i);
          const double s = parse_number(element, element_what);
          if (!(s > 0)) {
            error(element, fmt::format("{} must be a positive number, got {}", element_what,
                                       node.Scalar()));
          }
          c.weight_scale.push_back(s);
        }
      }
    }
    if (c.activation_min.has_value() != c.activation_max.has_value()) {
      error(item, fmt::format("{} must set activation_min and activation_max together, or neither",
                              where));
    }
    if (c.activation_min && *c.activation_min > *c.activation_max) {
      error(item, fmt::format("{}: activation_min ({}) must not exceed activation_max ({})", where,
                              format_double(*c.activation_min), format_double(*c.activation_max)));
    }
    return c;
  }
};

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
  return is_pattern(key) ? glob_match(key, name) : key == name;
}

// Matches one bracket expression starting at pattern[i] == '['. Returns the
// index just past the closing ']' and sets `matched`, or npos if the bracket
// is not closed (then '[' is literal).
size_t match_bracket(const std::string& pattern, size_t i, unsigned char c, bool& matched) {
  size_t j = i + 1;
  bool negate = false;
  if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) {
    negate = true;
    ++j;
  }
  bool found = false;
  bool first = true;
  while (j < pattern.size()) {
    if (pattern[j] == ']' && !first) {
      matched = found != negate;
      return j + 1;
    }
    first = false;
    unsigned char lo = static_cast<unsigned char>(pattern[j]);
    if (lo == '\\' && j + 1 < pattern.size()) lo = static_cast<unsigned char>(pattern[++j]);
    ++j;
    unsigned char hi = lo;
    if (j + 1 < pattern.size() && pattern[j] == '-' && pattern[j + 1] != ']') {
      hi = static_cast<unsigned char>(pattern[j + 1]);
      j += 2;
      if (hi == '\\' && j < pattern.size()) hi = static_cast<unsigned char>(pattern[j++]);
    }
    if (lo <= c && c <= hi) found = true;
  }
  return std::string::npos;
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
  return Parser(origin).parse(yaml_text);
}

PrecisionConfig load_precision_config(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    fail("cannot read precision config {}: it is a directory", path);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read precision config {}: {}", path, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail("cannot read precision config {}: read error", path);
  return parse_precision_config(text.str(), path);
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

bool is_pattern(const std::string& key) {
  return key.find_first_of("*?[") != std::string::npos;
}

bool glob_match(const std::string& pattern, const std::string& name) {
  // Iterative matcher: on a mismatch, retry from the last '*' with it
  // consuming one more character (linear backtracking, no recursion).
  size_t p = 0, n = 0;
  size_t star_p = std::string::npos, star_n = 0;
  while (n < name.size()) {
    bool advanced = false;
    if (p < pattern.size()) {
      const char pc = pattern[p];
      if (pc == '*') {
        star_p = p++;
        star_n = n;
        continue;
      }
      if (pc == '?') {
        ++p;
        ++n;
        advanced = true;
      } else if (pc == '[') {
        bool matched = false;
        const size_t end = match_bracket(pattern, p, static_cast<unsigned char>(name[n]), matched);
        if (end == std::string::npos) {
          if (name[n] == '[') {
            ++p;
            ++n;
            advanced = true;
          }
        } else if (matched) {
          p = end;
          ++n;
          advanced = true;
        }
      } else {
        char literal = pc;
        size_t next = p + 1;
        if (pc == '\\' && p + 1 < pattern.size()) {
          literal = pattern[p + 1];
          next = p + 2;
        }
        if (literal == name[n]) {
          p = next;
          ++n;
          advanced = true;
        }
      }
    }
    if (!advanced) {
      if (star_p == std::string::npos) return false;
      p = star_p + 1;
      n = ++star_n;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

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
    fail("{}: unknown layer {}{}; {}", origin, quote(key), suggestion(key, layer_names),
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
