// Tests for src/quant/config: the precision-config YAML schema (parsing,
// validation messages, serialization round trip, atomic save), glob matching
// and resolution of per-layer bit-widths.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "temp_dir.h"

#include "quant/config.h"
#include "util/error.h"

namespace autoprec::quant {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The UserError message `f` throws; fails the test if it throws nothing or
// something else, or if the message is not one line.
std::string user_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    return message;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected UserError, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected UserError, nothing thrown";
  return "";
}

std::string parse_error(const std::string& yaml) {
  return user_error([&] { parse_precision_config(yaml, "cfg.yaml"); });
}

// Asserts `message` contains every one of `parts`.
void expect_contains(const std::string& message, const std::vector<std::string>& parts) {
  for (const std::string& part : parts) {
    EXPECT_NE(message.find(part), std::string::npos)
        << "message lacks \"" << part << "\": " << message;
  }
}

const char* const kExample = R"(default: {weight_bits: 8, activation_bits: 8}
layers:
  "conv1": {weight_bits: 8, activation_bits: 8}
  "layer3.*": {weight_bits: 4}
options: {weight_granularity: per_channel, weight_clipping: mse, activation_calibration: percentile, percentile: 99.99, lsq: false, quantize_activation_matmul: false}
calibration:
  seed: 0
  samples: 512
  layers:
    "/conv1/Conv": {activation_min: 0.0, activation_max: 1.0, weight_scale: [0.01, 0.02]}
)";

// Field-by-field comparison, so that a wrong operator== cannot hide a
// difference.
void expect_same(const PrecisionConfig& a, const PrecisionConfig& b) {
  EXPECT_EQ(a.default_precision.weight_bits, b.default_precision.weight_bits);
  EXPECT_EQ(a.default_precision.activation_bits, b.default_precision.activation_bits);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(a.layers[i].first, b.layers[i].first) << "entry " << i;
    EXPECT_EQ(a.layers[i].second.weight_bits, b.layers[i].second.weight_bits) << "entry " << i;
    EXPECT_EQ(a.layers[i].second.activation_bits, b.layers[i].second.activation_bits)
        << "entry " << i;
  }
  EXPECT_EQ(a.options.weight_granularity, b.options.weight_granularity);
  EXPECT_EQ(a.options.weight_clipping, b.options.weight_clipping);
  EXPECT_EQ(a.options.activation_calibration, b.options.activation_calibration);
  EXPECT_EQ(a.options.percentile, b.options.percentile);
  EXPECT_EQ(a.options.lsq, b.options.lsq);
  EXPECT_EQ(a.options.quantize_activation_matmul, b.options.quantize_activation_matmul);
  ASSERT_EQ(a.calibration.size(), b.calibration.size());
  for (auto ia = a.calibration.begin(), ib = b.calibration.begin(); ia != a.calibration.end();
       ++ia, ++ib) {
    EXPECT_EQ(ia->first, ib->first);
    EXPECT_EQ(ia->second.activation_min, ib->second.activation_min) << ia->first;
    EXPECT_EQ(ia->second.activation_max, ib->second.activation_max) << ia->first;
    ASSERT_EQ(ia->second.weight_scale.size(), ib->second.weight_scale.size()) << ia->first;
    for (size_t i = 0; i < ia->second.weight_scale.size(); ++i) {
      // Exact: the writer must not lose a single bit.
      EXPECT_EQ(ia->second.weight_scale[i], ib->second.weight_scale[i]) << ia->first << "[" << i
                                                                        << "]";
    }
  }
  EXPECT_EQ(a.calibration_seed, b.calibration_seed);
  EXPECT_EQ(a.calibration_samples, b.calibration_samples);
  EXPECT_TRUE(a == b);
}

// ---------------------------------------------------------------------------
// Parsing

TEST(QuantConfigParse, SchemaExample) {
  const PrecisionConfig c = parse_precision_config(kExample, "example.yaml");
  EXPECT_EQ(c.origin, "example.yaml");
  EXPECT_EQ(c.default_precision.weight_bits, 8);
  EXPECT_EQ(c.default_precision.activation_bits, 8);
  ASSERT_EQ(c.layers.size(), 2u);
  EXPECT_EQ(c.layers[0].first, "conv1");
  EXPECT_EQ(c.layers[0].second.weight_bits, 8);
  EXPECT_EQ(c.layers[0].second.activation_bits, 8);
  EXPECT_EQ(c.layers[1].first, "layer3.*");
  EXPECT_EQ(c.layers[1].second.weight_bits, 4);
  EXPECT_FALSE(c.layers[1].second.activation_bits.has_value());
  EXPECT_EQ(c.options.weight_granularity, Granularity::PerChannel);
  EXPECT_EQ(c.options.weight_clipping, RangeMethod::Mse);
  EXPECT_EQ(c.options.activation_calibration, RangeMethod::Percentile);
  EXPECT_EQ(c.options.percentile, 99.99);
  EXPECT_FALSE(c.options.lsq);
  EXPECT_FALSE(c.options.quantize_activation_matmul);
  EXPECT_EQ(c.calibration_seed, std::optional<uint64_t>(0));
  EXPECT_EQ(c.calibration_samples, std::optional<int64_t>(512));
  ASSERT_EQ(c.calibration.size(), 1u);
  const LayerCalibration& cal = c.calibration.at("/conv1/Conv");
  EXPECT_EQ(cal.activation_min, std::optional<double>(0.0));
  EXPECT_EQ(cal.activation_max, std::optional<double>(1.0));
  EXPECT_EQ(cal.weight_scale, (std::vector<double>{0.01, 0.02}));
}

TEST(QuantConfigParse, CliMdExampleWithFloatLayer) {
  const PrecisionConfig c = parse_precision_config(R"(
default: {weight_bits: 8, activation_bits: 8}
layers:                       # keys: layer (node) names or glob patterns; later entries win
  "conv1": {weight_bits: 8, activation_bits: 8}
  "layer3.*": {weight_bits: 4}
  "fc": {weight_bits: 16, activation_bits: 16}   # 16/32: keep float
)",
                                                   "cli.yaml");
  ASSERT_EQ(c.layers.size(), 3u);
  EXPECT_EQ(c.layers[2].second.weight_bits, 16);
  EXPECT_TRUE(is_float_bits(*c.layers[2].second.weight_bits));
}

TEST(QuantConfigParse, EmptyAndMissingSectionsGiveDefaults) {
  for (const std::string text : {"", "\n\n", "# only a comment\n", "---\n", "~\n",
                                 "default:\nlayers:\noptions:\ncalibration:\n", "{}"}) {
    SCOPED_TRACE(text);
    const PrecisionConfig c = parse_precision_config(text, "empty.yaml");
    EXPECT_EQ(c.default_precision, (LayerPrecision{8, 8}));
    EXPECT_TRUE(c.layers.empty());
    EXPECT_EQ(c.options, QuantOptions{});
    EXPECT_EQ(c.options.weight_granularity, Granularity::PerChannel);
    EXPECT_EQ(c.options.weight_clipping, RangeMethod::MinMax);
    EXPECT_EQ(c.options.activation_calibration, RangeMethod::MinMax);
    EXPECT_EQ(c.options.percentile, 99.99);
    EXPECT_TRUE(c.calibration.empty());
    EXPECT_FALSE(c.calibration_seed.has_value());
    EXPECT_FALSE(c.calibration_samples.has_value());
  }
}

TEST(QuantConfigParse, PartialDefaultKeepsOtherField) {
  const PrecisionConfig c = parse_precision_config("default: {weight_bits: 4}\n", "d.yaml");
  EXPECT_EQ(c.default_precision.weight_bits, 4);
  EXPECT_EQ(c.default_precision.activation_bits, 8);
  const PrecisionConfig d = parse_precision_config("default:\n  activation_bits: 32\n", "d.yaml");
  EXPECT_EQ(d.default_precision.weight_bits, 8);
  EXPECT_EQ(d.default_precision.activation_bits, 32);
}

TEST(QuantConfigParse, BlockStyleBooleansAndNumbers) {
  const PrecisionConfig c = parse_precision_config(R"(
options:
  weight_granularity: per_tensor
  weight_clipping: minmax
  activation_calibration: mse
  percentile: 100
  lsq: true
  quantize_activation_matmul: true
calibration:
  seed: 18446744073709551615
  layers:
    a: {activation_min: -1.5e-3, activation_max: +2}
    b: {}
)",
                                                   "b.yaml");
  EXPECT_EQ(c.options.weight_granularity, Granularity::PerTensor);
  EXPECT_EQ(c.options.weight_clipping, RangeMethod::MinMax);
  EXPECT_EQ(c.options.activation_calibration, RangeMethod::Mse);
  EXPECT_EQ(c.options.percentile, 100.0);
  EXPECT_TRUE(c.options.lsq);
  EXPECT_TRUE(c.options.quantize_activation_matmul);
  EXPECT_EQ(c.calibration_seed, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(c.calibration.at("a").activation_min, -1.5e-3);
  EXPECT_EQ(c.calibration.at("a").activation_max, 2.0);
  EXPECT_TRUE(c.calibration.at("a").weight_scale.empty());
  EXPECT_EQ(c.calibration.at("b"), LayerCalibration{});
}

TEST(QuantConfigParse, LayerOrderAndDuplicateLayerKeysKept) {
  const PrecisionConfig c = parse_precision_config(R"(layers:
  zeta: {weight_bits: 2}
  "alpha*": {weight_bits: 3}
  mid: {activation_bits: 4}
  zeta: {weight_bits: 5}
)",
                                                   "o.yaml");
  ASSERT_EQ(c.layers.size(), 4u);
  EXPECT_EQ(c.layers[0].first, "zeta");
  EXPECT_EQ(c.layers[1].first, "alpha*");
  EXPECT_EQ(c.layers[2].first, "mid");
  EXPECT_EQ(c.layers[3].first, "zeta");
  EXPECT_EQ(resolve(c, {"zeta", "alpha1", "mid"}).at("zeta").weight_bits, 5);
}

TEST(QuantConfigParse, IsFloatBits) {
  EXPECT_TRUE(is_float_bits(16));
  EXPECT_TRUE(is_float_bits(32));
  for (int b : {0, 1, 2, 4, 8, 15, 17, 31, 64}) EXPECT_FALSE(is_float_bits(b)) << b;
}

// ---------------------------------------------------------------------------
// Parse errors: each names the file, the line, the bad value and what is valid.

TEST(QuantConfigErrors, MalformedYaml) {
  // FILE:LINE:COL (1-based) and yaml-cpp's description.
  EXPECT_EQ(parse_error("default: {weight_bits: 8}\nlayers:\n  a: b: c\n"),
            "cfg.yaml:3:7: malformed YAML: illegal map value");
  expect_contains(parse_error("a: 1\n\tb: 2\n"),
                  {"cfg.yaml:2:1: malformed YAML:", "tab"});
  expect_contains(parse_error("default: {weight_bits: 8\nlayers:\n  a: [1, 2\n"),
                  {"cfg.yaml:", "malformed YAML"});
}

TEST(QuantConfigErrors, WrongTypes) {
  expect_contains(parse_error("layers:\n  conv1: {weight_bits: abc}\n"),
                  {"cfg.yaml:2:", "weight_bits must be an integer, got 'abc'", "conv1"});
  expect_contains(parse_error("default:\n  weight_bits: 8\n  activation_bits: 4.0\n"),
                  {"cfg.yaml:3:", "default.activation_bits must be an integer, got '4.0'"});
  expect_contains(parse_error("default:\n  weight_bits: [8]\n"),
                  {"cfg.yaml:2:", "weight_bits must be an integer, got a list"});
  expect_contains(parse_error("default:\n  weight_bits:\n"),
                  {"cfg.yaml:2:", "weight_bits must be an integer, got nothing"});
  expect_contains(parse_error("options:\n  percentile: high\n"),
                  {"cfg.yaml:2:", "options.percentile must be a finite number, got 'high'"});
  expect_contains(parse_error("options: {lsq: maybe}\n"),
                  {"cfg.yaml:1:", "options.lsq must be true or false, got 'maybe'"});
  expect_contains(parse_error("\n\ncalibration: {seed: -1}\n"),
                  {"cfg.yaml:3:", "calibration.seed must be an unsigned integer, got '-1'"});
  expect_contains(parse_error("calibration: {samples: 0}\n"),
                  {"cfg.yaml:1:", "calibration.samples must be an integer >= 1, got 0"});
  expect_contains(parse_error("layers:\n  conv1: 4\n"),
                  {"cfg.yaml:2:", "layers['conv1'] must be a mapping", "got '4'"});
  expect_contains(parse_error("layers: [conv1]\n"), {"cfg.yaml:1:", "layers must be a mapping"});
  expect_contains(parse_error("- a\n- b\n"),
                  {"cfg.yaml:1:", "must be a mapping", "default, layers, options, calibration"});
  expect_contains(parse_error("calibration:\n  layers:\n    a: {weight_scale: 0.5}\n"),
                  {"cfg.yaml:3:", "weight_scale must be a list of positive numbers"});
  expect_contains(parse_error("calibration:\n  layers:\n    a: {activation_min: .inf, "
                              "activation_max: 1}\n"),
                  {"cfg.yaml:3:", "activation_min must be a finite number, got '.inf'"});
}

TEST(QuantConfigErrors, BitsOutOfRange) {
  expect_contains(parse_error("\nlayers:\n  \"layer3.*\": {weight_bits: 99999999999999999999}\n"),
                  {"cfg.yaml:3:", "layers['layer3.*'].weight_bits", "99999999999999999999"});
  for (const std::string bad : {"1", "0", "9", "12", "64", "-4"}) {
    SCOPED_TRACE(bad);
    const std::string m = parse_error("\nlayers:\n  \"layer3.*\": {weight_bits: " + bad + "}\n");
    expect_contains(m, {"cfg.yaml:3:", "layers['layer3.*'].weight_bits", "got " + bad,
                        "2, 3, 4, 5, 6, 7, 8, 16, 32"});
  }
  expect_contains(parse_error("default: {activation_bits: 1}\n"),
                  {"cfg.yaml:1:", "default.activation_bits", "got 1", "2, 3, 4, 5, 6, 7, 8, 16, 32"});
  // All valid values parse.
  for (int b : {2, 3, 4, 5, 6, 7, 8, 16, 32}) {
    const PrecisionConfig c = parse_precision_config(
        "default: {weight_bits: " + std::to_string(b) + ", activation_bits: " +
            std::to_string(b) + "}\n",
        "ok.yaml");
    EXPECT_EQ(c.default_precision, (LayerPrecision{b, b}));
  }
}

TEST(QuantConfigErrors, UnknownKeysEverywhere) {
  expect_contains(parse_error("default: {weight_bits: 8}\nlayer:\n  conv1: {weight_bits: 4}\n"),
                  {"cfg.yaml:2:", "unknown key 'layer'", "did you mean 'layers'",
                   "default, layers, options, calibration"});
  expect_contains(parse_error("layers:\n  conv1: {weigth_bits: 4}\n"),
                  {"cfg.yaml:2:", "unknown key 'weigth_bits'", "layers['conv1']",
                   "did you mean 'weight_bits'", "weight_bits, activation_bits"});
  expect_contains(parse_error("default: {bits: 4}\n"),
                  {"cfg.yaml:1:", "unknown key 'bits'", "weight_bits, activation_bits"});
  expect_contains(parse_error("options:\n  lsq: true\n  granularity: per_tensor\n"),
                  {"cfg.yaml:3:", "unknown key 'granularity'", "options",
                   "weight_granularity, weight_clipping, activation_calibration, percentile, lsq, "
                   "quantize_activation_matmul"});
  expect_contains(parse_error("calibration:\n  seed: 1\n  sample: 4\n"),
                  {"cfg.yaml:3:", "unknown key 'sample'", "calibration",
                   "did you mean 'samples'", "seed, samples, layers"});
  expect_contains(
      parse_error("calibration:\n  layers:\n    \"/conv1/Conv\": {activation_mn: 0}\n"),
      {"cfg.yaml:3:", "unknown key 'activation_mn'", "calibration.layers['/conv1/Conv']",
       "activation_min, activation_max, weight_scale"});
}

TEST(QuantConfigErrors, DuplicateKeysOutsideLayers) {
  expect_contains(parse_error("default: {weight_bits: 4}\ndefault: {weight_bits: 2}\n"),
                  {"cfg.yaml:2:", "duplicate key 'default'"});
  expect_contains(parse_error("options: {lsq: true, lsq: false}\n"),
                  {"cfg.yaml:1:", "duplicate key 'lsq'", "options"});
}

TEST(QuantConfigErrors, EnumValues) {
  expect_contains(parse_error("options: {weight_granularity: per_chanel}\n"),
                  {"cfg.yaml:1:", "options.weight_granularity", "'per_chanel'",
                   "per_channel, per_tensor", "did you mean 'per_channel'"});
  expect_contains(parse_error("options:\n  weight_clipping: percentile\n"),
                  {"cfg.yaml:2:", "options.weight_clipping", "one of minmax, mse",
                   "got 'percentile'", "activation_calibration only"});
  expect_contains(parse_error("options: {activation_calibration: kl}\n"),
                  {"cfg.yaml:1:", "options.activation_calibration", "got 'kl'",
                   "minmax, percentile, mse"});
}

TEST(QuantConfigErrors, PercentileRange) {
  for (const std::string bad : {"50", "10", "100.5", "-1"}) {
    SCOPED_TRACE(bad);
    expect_contains(parse_error("options:\n  percentile: " + bad + "\n"),
                    {"cfg.yaml:2:", "options.percentile must be in (50, 100]", "got " + bad});
  }
  EXPECT_EQ(parse_precision_config("options: {percentile: 50.001}", "p.yaml").options.percentile,
            50.001);
}

TEST(QuantConfigErrors, CalibrationValues) {
  expect_contains(parse_error("calibration:\n  layers:\n    \"/c/Conv\": {activation_min: 2.5, "
                              "activation_max: 1}\n"),
                  {"cfg.yaml:3:", "calibration.layers['/c/Conv']", "activation_min (2.5)",
                   "must not exceed activation_max (1)"});
  expect_contains(parse_error("calibration:\n  layers:\n    c: {activation_min: 0}\n"),
                  {"cfg.yaml:3:", "activation_min and activation_max together"});
  expect_contains(parse_error("calibration:\n  layers:\n    c:\n      weight_scale:\n        - 0.1\n"
                              "        - -0.5\n"),
                  {"cfg.yaml:6:", "calibration.layers['c'].weight_scale[1]",
                   "must be a positive number", "got -0.5"});
  expect_contains(parse_error("calibration:\n  layers:\n    c: {weight_scale: [0.1, 0]}\n"),
                  {"cfg.yaml:3:", "weight_scale[1] must be a positive number, got 0"});
  expect_contains(parse_error("calibration:\n  layers:\n    c: {weight_scale: [0.1, x]}\n"),
                  {"cfg.yaml:3:", "weight_scale[1] must be a finite number, got 'x'"});
  // Equal bounds are a valid (degenerate) range.
  const PrecisionConfig c = parse_precision_config(
      "calibration: {layers: {c: {activation_min: 0, activation_max: 0}}}", "eq.yaml");
  EXPECT_EQ(c.calibration.at("c").activation_min, 0.0);
}

TEST(QuantConfigErrors, MultipleDocuments) {
  expect_contains(parse_error("default: {weight_bits: 4}\n---\ndefault: {weight_bits: 2}\n"),
                  {"cfg.yaml:2", "more than one YAML document"});
}

// ---------------------------------------------------------------------------
// Serialization

TEST(QuantConfigYaml, RoundTripExample) {
  const PrecisionConfig c = parse_precision_config(kExample, "example.yaml");
  const std::string text = to_yaml(c);
  expect_same(parse_precision_config(text, "round.yaml"), c);
}

TEST(QuantConfigYaml, RoundTripEverythingExactly) {
  PrecisionConfig c;
  c.default_precision = {3, 16};
  c.layers.push_back({"conv1", {4, std::nullopt}});
  c.layers.push_back({"layer3.*", {std::nullopt, 5}});
  c.layers.push_back({"/layer1/layer1.0/conv1/Conv", {32, 32}});
  c.layers.push_back({"odd \"name\" with \\ back: slash # hash", {2, 7}});
  c.layers.push_back({"tab\tnewline\ncontrol\x01 end", {6, 6}});
  c.layers.push_back({"ünïcödé-名前", {8, 8}});
  c.layers.push_back({"", {}});
  c.layers.push_back({"  spaces  ", {std::nullopt, std::nullopt}});
  c.layers.push_back({"conv1", {2, std::nullopt}});  // repeated key, kept in place
  c.layers.push_back({"true", {4, 4}});
  c.layers.push_back({"123", {4, 4}});
  c.options.weight_granularity = Granularity::PerTensor;
  c.options.weight_clipping = RangeMethod::Mse;
  c.options.activation_calibration = RangeMethod::Percentile;
  c.options.percentile = 99.999999999999;
  c.options.lsq = true;
  c.options.quantize_activation_matmul = true;
  c.calibration_seed = std::numeric_limits<uint64_t>::max();
  c.calibration_samples = std::numeric_limits<int64_t>::max();
  LayerCalibration a;
  a.activation_min = -1.0 / 3.0;
  a.activation_max = 0.1 + 0.2;
  a.weight_scale = {0.1,
                    1.0 / 3.0,
                    1e-300,
                    std::numeric_limits<double>::denorm_min(),
                    std::numeric_limits<double>::max(),
                    123456789.123456789,
                    2.0 / 7.0 * 1e-7};
  c.calibration["/conv1/Conv"] = a;
  LayerCalibration b;
  b.activation_min = -0.0;
  b.activation_max = 6.0;
  c.calibration["relu \"x\""] = b;
  c.calibration["empty"] = LayerCalibration{};
  c.calibration["scales only"].weight_scale = {0.5};

  const std::string text = to_yaml(c);
  const PrecisionConfig back = parse_precision_config(text, "round.yaml");
  expect_same(back, c);
  // And the writer is stable: serializing again gives the same text.
  EXPECT_EQ(to_yaml(back), text);
}

TEST(QuantConfigYaml, RoundTripUniformAndDefaults) {
  for (const PrecisionConfig& c : {PrecisionConfig{}, uniform(4, 8), uniform(2, 32)}) {
    expect_same(parse_precision_config(to_yaml(c), "u.yaml"), c);
  }
  // A config without calibration has no calibration section.
  EXPECT_EQ(to_yaml(uniform(4, 8)).find("\ncalibration:"), std::string::npos);
  EXPECT_NE(to_yaml(parse_precision_config(kExample, "e.yaml")).find("\ncalibration:"),
            std::string::npos);
}

TEST(QuantConfigYaml, LayersWrittenInOrder) {
  PrecisionConfig c;
  c.layers.push_back({"zzz", {2, std::nullopt}});
  c.layers.push_back({"aaa", {3, std::nullopt}});
  c.layers.push_back({"mmm*", {4, std::nullopt}});
  const std::string text = to_yaml(c);
  const size_t z = text.find("\"zzz\""), a = text.find("\"aaa\""), m = text.find("\"mmm*\"");
  ASSERT_NE(z, std::string::npos) << text;
  ASSERT_NE(a, std::string::npos) << text;
  ASSERT_NE(m, std::string::npos) << text;
  EXPECT_LT(z, a);
  EXPECT_LT(a, m);
  EXPECT_NE(text.find("default: {weight_bits: 8, activation_bits: 8}"), std::string::npos) << text;
}

TEST(QuantConfigYaml, SaveAndLoad) {
  TempDir dir;
  const std::string path = dir.file("best.yaml");
  PrecisionConfig c = parse_precision_config(kExample, "example.yaml");
  save_precision_config(c, path);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  const PrecisionConfig loaded = load_precision_config(path);
  expect_same(loaded, c);
  EXPECT_EQ(loaded.origin, path);

  // Overwriting replaces the whole file.
  save_precision_config(uniform(2, 4), path);
  expect_same(load_precision_config(path), uniform(2, 4));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(QuantConfigYaml, SaveIntoMissingDirectoryFailsAndLeavesNothing) {
  TempDir dir;
  const std::string path = (dir.path() / "no_such_dir" / "best.yaml").string();
  const std::string m = user_error([&] { save_precision_config(uniform(4, 8), path); });
  expect_contains(m, {"cannot write precision config", "no_such_dir"});
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(QuantConfigYaml, SaveFailureKeepsOldFile) {
  TempDir dir;
  const std::string path = dir.file("best.yaml");
  save_precision_config(uniform(4, 8), path);
  const std::string before = read_text(path);
  // A directory where the temporary file would go makes the save fail.
  fs::create_directory(path + ".tmp");
  user_error([&] { save_precision_config(uniform(2, 2), path); });
  EXPECT_EQ(read_text(path), before);
}

TEST(QuantConfigYaml, LoadErrors) {
  TempDir dir;
  expect_contains(user_error([&] { load_precision_config(dir.file("missing.yaml")); }),
                  {"missing.yaml", "does not exist"});
  expect_contains(user_error([&] { load_precision_config(dir.path().string()); }),
                  {dir.path().string(), "directory"});
  const std::string bad = dir.file("bad.yaml");
  write_text(bad, "default:\n  weight_bits: abc\n");
  expect_contains(user_error([&] { load_precision_config(bad); }),
                  {bad + ":2:", "weight_bits must be an integer, got 'abc'"});
}

// ---------------------------------------------------------------------------
// Glob matching and resolution

TEST(QuantConfigGlob, IsPattern) {
  EXPECT_FALSE(is_pattern("conv1"));
  EXPECT_FALSE(is_pattern("/layer1/conv1/Conv"));
  EXPECT_FALSE(is_pattern("a\\b"));
  EXPECT_TRUE(is_pattern("layer3.*"));
  EXPECT_TRUE(is_pattern("conv?"));
  EXPECT_TRUE(is_pattern("conv[12]"));
}

TEST(QuantConfigGlob, Match) {
  EXPECT_TRUE(glob_match("layer3.*", "layer3.0.conv1"));
  EXPECT_TRUE(glob_match("layer3.*", "layer3."));
  EXPECT_FALSE(glob_match("layer3.*", "layer3"));
  EXPECT_FALSE(glob_match("layer3.*", "layer30.conv"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*", "/a/b/c"));  // '*' crosses '/' (no FNM_PATHNAME)
  EXPECT_TRUE(glob_match("/layer1/*/Conv", "/layer1/layer1.0/conv1/Conv"));
  EXPECT_TRUE(glob_match("*Conv", "/x/Conv"));
  EXPECT_FALSE(glob_match("*Conv", "/x/Conv_1"));
  EXPECT_TRUE(glob_match("*a*b*c*", "xxaxxbxxcxx"));
  EXPECT_FALSE(glob_match("*a*b*c*", "xxaxxcxxbxx"));
  EXPECT_TRUE(glob_match("conv?", "conv1"));
  EXPECT_FALSE(glob_match("conv?", "conv"));
  EXPECT_FALSE(glob_match("conv?", "conv12"));
  EXPECT_TRUE(glob_match("conv[12]", "conv2"));
  EXPECT_FALSE(glob_match("conv[12]", "conv3"));
  EXPECT_TRUE(glob_match("conv[0-9]", "conv7"));
  EXPECT_FALSE(glob_match("conv[0-9]", "convx"));
  EXPECT_TRUE(glob_match("conv[!0-9]", "convx"));
  EXPECT_FALSE(glob_match("conv[!0-9]", "conv5"));
  EXPECT_TRUE(glob_match("conv[^0-9]", "conv_"));
  EXPECT_TRUE(glob_match("a[]]b", "a]b"));
  EXPECT_TRUE(glob_match("a[!]]b", "axb"));
  EXPECT_FALSE(glob_match("a[!]]b", "a]b"));
  EXPECT_TRUE(glob_match("a[-x]b", "a-b"));
  EXPECT_TRUE(glob_match("a[x-]b", "a-b"));
  EXPECT_TRUE(glob_match("a[b", "a[b"));  // unclosed bracket is literal
  EXPECT_FALSE(glob_match("a[b", "ab"));
  EXPECT_TRUE(glob_match("a\\*", "a*"));
  EXPECT_FALSE(glob_match("a\\*", "ab"));
  EXPECT_TRUE(glob_match("x\\?*", "x?yz"));
  EXPECT_TRUE(glob_match("exact", "exact"));
  EXPECT_FALSE(glob_match("exact", "exactly"));
  EXPECT_FALSE(glob_match("", "a"));
  EXPECT_TRUE(glob_match("", ""));
  // Pathological backtracking stays fast.
  EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*a*b", std::string(200, 'a')));
}

const std::vector<std::string> kLayers = {"conv1",          "layer3.0.conv1", "layer3.0.conv2",
                                          "layer3.1.conv1", "layer4.0.conv1", "fc"};

TEST(QuantConfigResolve, DefaultsOnly) {
  const auto r = resolve(uniform(4, 8), kLayers);
  ASSERT_EQ(r.size(), kLayers.size());
  for (const auto& name : kLayers) EXPECT_EQ(r.at(name), (LayerPrecision{4, 8})) << name;
  EXPECT_TRUE(resolve(uniform(4, 8), {}).empty());
}

TEST(QuantConfigResolve, LiteralAndGlobEntries) {
  const PrecisionConfig c = parse_precision_config(R"(
default: {weight_bits: 6, activation_bits: 7}
layers:
  "layer3.*": {weight_bits: 4}
  conv1: {activation_bits: 16}
  "layer3.?.conv2": {activation_bits: 5}
  fc: {weight_bits: 32, activation_bits: 32}
)",
                                                   "r.yaml");
  const auto r = resolve(c, kLayers);
  EXPECT_EQ(r.at("conv1"), (LayerPrecision{6, 16}));  // literal: only that layer
  EXPECT_EQ(r.at("layer3.0.conv1"), (LayerPrecision{4, 7}));
  EXPECT_EQ(r.at("layer3.0.conv2"), (LayerPrecision{4, 5}));  // two entries combine
  EXPECT_EQ(r.at("layer3.1.conv1"), (LayerPrecision{4, 7}));
  EXPECT_EQ(r.at("layer4.0.conv1"), (LayerPrecision{6, 7}));
  EXPECT_EQ(r.at("fc"), (LayerPrecision{32, 32}));
}

TEST(QuantConfigResolve, LaterEntriesWin) {
  PrecisionConfig c = uniform(8, 8);
  c.layers.push_back({"layer3.*", {4, std::nullopt}});
  c.layers.push_back({"layer3.0.conv1", {2, std::nullopt}});
  auto r = resolve(c, kLayers);
  EXPECT_EQ(r.at("layer3.0.conv1").weight_bits, 2);
  EXPECT_EQ(r.at("layer3.0.conv2").weight_bits, 4);

  // Reversed order: the pattern comes last and overrides the literal.
  std::swap(c.layers[0], c.layers[1]);
  r = resolve(c, kLayers);
  EXPECT_EQ(r.at("layer3.0.conv1").weight_bits, 4);
  EXPECT_EQ(r.at("layer3.0.conv2").weight_bits, 4);
}

TEST(QuantConfigResolve, LiteralKeyIsNotAGlob) {
  // A key without *?[ matches only the identical name, even with a backslash.
  PrecisionConfig c = uniform(8, 8);
  c.layers.push_back({"a\\b", {4, std::nullopt}});
  const auto r = resolve(c, {"a\\b", "ab"});
  EXPECT_EQ(r.at("a\\b").weight_bits, 4);
  EXPECT_EQ(r.at("ab").weight_bits, 8);
}

TEST(QuantConfigResolve, UnknownLayer) {
  PrecisionConfig c = parse_precision_config("layers:\n  conv2: {weight_bits: 4}\n", "net.yaml");
  expect_contains(user_error([&] { resolve(c, kLayers); }),
                  {"net.yaml", "unknown layer 'conv2'", "quantizable layers are: conv1, "
                   "layer3.0.conv1", "fc", "did you mean 'conv1'"});

  // Long lists are cut after 8 names.
  std::vector<std::string> many;
  for (int i = 0; i < 20; ++i) many.push_back("layer_" + std::to_string(i));
  const std::string m = user_error([&] { resolve(c, many); });
  expect_contains(m, {"layer_0, layer_1", "layer_7 and 12 more"});
  EXPECT_EQ(m.find("layer_8"), std::string::npos) << m;

  expect_contains(user_error([&] { resolve(c, {}); }), {"no quantizable layers"});
}

TEST(QuantConfigResolve, UnmatchedPattern) {
  PrecisionConfig c = parse_precision_config("layers:\n  \"layer9.*\": {weight_bits: 4}\n",
                                             "net.yaml");
  expect_contains(user_error([&] { resolve(c, kLayers); }),
                  {"net.yaml", "pattern 'layer9.*' matches no layer", "quantizable layers are:"});
}

TEST(QuantConfigResolve, BitsNotAllowedByTarget) {
  const std::set<int> allowed = {2, 4, 8, 16, 32};
  PrecisionConfig c = parse_precision_config("layers:\n  \"layer3.*\": {weight_bits: 3}\n",
                                             "net.yaml");
  expect_contains(user_error([&] { resolve(c, kLayers, allowed); }),
                  {"net.yaml", "layer3.0.conv1", "weight_bits 3", "layers['layer3.*']",
                   "2, 4, 8, 16, 32"});

  PrecisionConfig d = uniform(8, 6);
  d.origin = "d.yaml";
  expect_contains(user_error([&] { resolve(d, kLayers, allowed); }),
                  {"d.yaml", "layer 'conv1'", "activation_bits 6", "default", "2, 4, 8, 16, 32"});

  // An unsupported value overridden everywhere by a later entry is harmless.
  PrecisionConfig e = uniform(3, 8);
  e.layers.push_back({"*", {4, std::nullopt}});
  EXPECT_EQ(resolve(e, kLayers, allowed).at("fc").weight_bits, 4);

  // Default allowed set accepts every valid bit-width.
  EXPECT_EQ(resolve(uniform(5, 7), kLayers).at("fc"), (LayerPrecision{5, 7}));
}

TEST(QuantConfigUniform, Basics) {
  const PrecisionConfig c = uniform(4, 8);
  EXPECT_EQ(c.default_precision.weight_bits, 4);
  EXPECT_EQ(c.default_precision.activation_bits, 8);
  EXPECT_TRUE(c.layers.empty());
  EXPECT_TRUE(c.calibration.empty());
  EXPECT_EQ(c.options, QuantOptions{});
  expect_contains(user_error([] { uniform(1, 8); }), {"weight_bits", "got 1", "2, 3, 4"});
  expect_contains(user_error([] { uniform(8, 12); }), {"activation_bits", "got 12"});
}

}  // namespace
}  // namespace autoprec::quant
