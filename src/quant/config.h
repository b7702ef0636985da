// Precision configuration: how many bits each layer's weights and input
// activations get, the quantizer options, and (after `autoprec quantize`) the
// calibrated quantization parameters. The file format is YAML:
//
//   default: {weight_bits: 8, activation_bits: 8}
//   layers:                      # names or glob patterns; later entries win
//     "conv1": {weight_bits: 8, activation_bits: 8}
//     "layer3.*": {weight_bits: 4}
//     "fc": {weight_bits: 16, activation_bits: 16}    # 16/32: keep float
//   options: {weight_granularity: per_channel,        # | per_tensor
//             weight_clipping: mse,                   # minmax | mse
//             activation_calibration: percentile,     # minmax | percentile | mse
//             percentile: 99.99,                      # in (50, 100]
//             lsq: false, quantize_activation_matmul: false,
//             format: qdq}                            # | int (see integer_form.h)
//   calibration:                 # written by `quantize`; exact layer names
//     seed: 0                    # unsigned integer
//     samples: 512               # positive integer
//     layers:
//       "/conv1/Conv": {activation_min: 0.0, activation_max: 1.0,
//                       weight_scale: [0.01, 0.02]}
//     tensors:                   # format int: ranges of the quantized tensors
//       "/Relu_output_0": {min: 0.0, max: 4.5}
//
// Every section and every key is optional (an empty file is W8A8 with default
// options); a null section (`layers:` with nothing after it) is empty. Bits
// are integers in {2..8, 16, 32}. The grammar is util/yaml.h's (booleans
// true/false, decimal numbers). Unknown keys, duplicate keys (outside
// `layers`), wrong types, out-of-range values, activation_min >
// activation_max, non-positive or non-finite weight scales and files with
// more than one YAML document are errors. Every error is an
// autoprec::UserError whose message is one line "FILE:LINE: what; what is
// valid" (LINE is 1-based and present when the YAML node has a position).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "util/yaml.h"

namespace autoprec::quant {

// Bits 16 and 32 mean "keep this tensor in floating point".
bool is_float_bits(int bits);  // 16 or 32

// Every bit-width the file format accepts: 2..8, 16, 32.
const std::set<int>& valid_bits();

enum class Granularity { PerChannel, PerTensor };    // yaml: per_channel | per_tensor
enum class RangeMethod { MinMax, Percentile, Mse };  // yaml: minmax | percentile | mse
// Where activations are quantized (what the simulation computes and what
// `autoprec export` writes):
//   Qdq  on each quantized layer's input only; everything else float.
//   Int  the integer form: every tensor an integer-capable operator reads or
//        writes is quantized once (8-bit), biases on the int32 grid
//        (quant/integer_form.h).
enum class QuantForm { Qdq, Int };  // yaml: qdq | int

// The YAML spelling ("per_channel", "mse", ...).
const char* to_string(Granularity granularity);
const char* to_string(RangeMethod method);
const char* to_string(QuantForm form);
// "qdq" | "int"; UserError naming `what` otherwise.
QuantForm parse_quant_form(const std::string& text, const std::string& what);

struct LayerPrecision {
  int weight_bits = 8;
  int activation_bits = 8;
};

// One `layers` entry: fields it does not set come from earlier entries or the
// default.
struct PartialPrecision {
  std::optional<int> weight_bits;
  std::optional<int> activation_bits;
};

struct QuantOptions {
  Granularity weight_granularity = Granularity::PerChannel;
  // Min/max by default: on resnet20_fmnist it beat MSE clipping at every
  // bit-width for weights (W3A8 89.85% vs 84.74%) and activations (W8A8
  // 93.83% vs 93.35%); MSE wins for 2-bit weights on small_cnn (64.7% vs
  // 38.6%). Table in docs/quantization.md.
  RangeMethod weight_clipping = RangeMethod::MinMax;  // MinMax or Mse (Percentile is rejected)
  RangeMethod activation_calibration = RangeMethod::MinMax;
  double percentile = 99.99;  // for activation_calibration == Percentile; in (50, 100]
  bool lsq = false;           // learnable step size during fine-tuning
  bool quantize_activation_matmul = false;  // MatMul between two activations quantizes both inputs
  QuantForm format = QuantForm::Qdq;
};

// Calibrated quantization parameters of one layer (written by `quantize`,
// reused later). activation_min/max are both set or both unset.
struct LayerCalibration {
  std::optional<double> activation_min, activation_max;  // range of the tensor entering the layer
  std::vector<double> weight_scale;  // one per output channel (or one for per-tensor); empty = none
};

// Calibrated range of one quantized tensor of the integer form.
struct TensorRange {
  double min = 0;
  double max = 0;
};
bool operator==(const TensorRange& a, const TensorRange& b);

struct PrecisionConfig {
  LayerPrecision default_precision;  // yaml: default
  // yaml: layers, file order kept; keys are names or glob patterns; later
  // entries win. The same key may appear twice (the later one wins).
  std::vector<std::pair<std::string, PartialPrecision>> layers;
  QuantOptions options;                                 // yaml: options
  std::map<std::string, LayerCalibration> calibration;  // yaml: calibration.layers, exact layer names
  std::map<std::string, TensorRange> tensor_ranges;     // yaml: calibration.tensors, value names (format int)
  std::optional<uint64_t> calibration_seed;             // yaml: calibration.seed
  std::optional<int64_t> calibration_samples;           // yaml: calibration.samples
  // Where the config came from (the file name given to parse/load), used to
  // name the file in resolve()'s errors. Not serialized, not compared.
  std::string origin;
};

// Field-by-field equality (PrecisionConfig ignores `origin`).
bool operator==(const LayerPrecision& a, const LayerPrecision& b);
bool operator==(const PartialPrecision& a, const PartialPrecision& b);
bool operator==(const QuantOptions& a, const QuantOptions& b);
bool operator==(const LayerCalibration& a, const LayerCalibration& b);
bool operator==(const PrecisionConfig& a, const PrecisionConfig& b);
inline bool operator!=(const LayerPrecision& a, const LayerPrecision& b) { return !(a == b); }
inline bool operator!=(const PartialPrecision& a, const PartialPrecision& b) { return !(a == b); }
inline bool operator!=(const QuantOptions& a, const QuantOptions& b) { return !(a == b); }
inline bool operator!=(const LayerCalibration& a, const LayerCalibration& b) { return !(a == b); }
inline bool operator!=(const PrecisionConfig& a, const PrecisionConfig& b) { return !(a == b); }

// Parses and validates YAML text; `origin` names it in error messages.
PrecisionConfig parse_precision_config(const std::string& yaml_text, const std::string& origin);

// Reads a parsed document (util/yaml.h) as a precision config.
PrecisionConfig read_precision_config(const yaml::Node& root);

// Every key of the format (docs/configuration.md, `autoprec schema precision`).
std::vector<yaml::KeyInfo> precision_config_schema();

// Reads and parses a file; UserError if it is missing, unreadable or invalid.
PrecisionConfig load_precision_config(const std::string& path);

// Serializes in the schema above (sections default, layers, options and, when
// non-empty, calibration). Layers are written in order; doubles in the
// shortest form that parses back to the same value, so
// parse_precision_config(to_yaml(c)) == c for any valid c.
std::string to_yaml(const PrecisionConfig& config);

// Writes to_yaml(config) to `path` + ".tmp", flushes it and renames it over
// `path`, so `path` is never half-written. UserError if that fails (the .tmp
// file is removed).
void save_precision_config(const PrecisionConfig& config, const std::string& path);

// Layer keys are globs (util/text.h).
bool is_pattern(const std::string& key);
bool glob_match(const std::string& pattern, const std::string& name);

// Resolves the config for the model's quantizable layer names (in graph
// order): every layer starts from the default, then each `layers` entry that
// names it (literal key) or matches it (pattern) overrides the fields it sets,
// in file order. The result has one element per name. UserError (one line,
// naming config.origin) for a literal key naming no layer, a pattern matching
// no layer, or a resolved bit-width not in `allowed_bits` (naming the layer
// and the key that set it, and listing the allowed set).
std::map<std::string, LayerPrecision> resolve(const PrecisionConfig& config,
                                              const std::vector<std::string>& layer_names,
                                              const std::set<int>& allowed_bits = valid_bits());

// Config with one default and no layer entries, e.g. uniform(4, 8) = W4A8.
// UserError if a bit-width is not in valid_bits().
PrecisionConfig uniform(int weight_bits, int activation_bits);

}  // namespace autoprec::quant
