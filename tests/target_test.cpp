// Targets: profiles, analytic cost models against hand-computed values, cost
// tables, constraints, and the runner protocol (fake runners and ONNX Runtime).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "graph/qdq_format.h"
#include "graph/tensor_proto.h"
#include "onnx_builder.h"
#include "runtime/runner.h"
#include "target/constraints.h"
#include "target/cost_model.h"
#include "target/measure.h"
#include "target/profile.h"
#include "temp_dir.h"
#include "util/error.h"
#include "test_helpers.h"

namespace autoprec {
namespace {

using testing::op_types;

using testing::ModelBuilder;
using testing::TempDir;

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// conv (3x3, 1->2, no padding) on 1x1x4x4 -> flatten -> gemm (8 -> 3).
//   conv: MACs = 2*2*2 outputs * 9 = 72, weights 18, inputs 16, outputs 8
//   fc:   MACs = 8*3 = 24,               weights 24, inputs 8,  outputs 3
std::string two_layer_model(const TempDir& dir) {
  ModelBuilder b;
  b.input("x", {-1, 1, 4, 4}).output("y", {-1, 3});
  at::manual_seed(5);
  b.initializer("w1", at::randn({2, 1, 3, 3})).initializer("b1", at::randn({2}) * 0.1);
  b.initializer("w2", at::randn({3, 8}) * 0.2).initializer("b2", at::zeros({3}));
  b.node("Conv", {"x", "w1", "b1"}, {"c"}, "conv");
  b.node("Flatten", {"c"}, {"f"}, "flatten");
  auto& gemm = b.node("Gemm", {"f", "w2", "b2"}, {"y"}, "fc");
  ModelBuilder::attr(gemm, "transB", int64_t{1});
  std::string path = dir.file("two_layer.onnx");
  write(path, b.bytes());
  return path;
}

target::CostModelSpec unit_spec(target::CostModelType type) {
  target::CostModelSpec s;
  s.type = type;
  s.frequency_mhz = 1;  // 1 cycle = 1e-3 ms
  s.bandwidth_bytes_per_cycle = 2;
  s.output_bits = 8;
  s.energy_onchip_pj_per_byte = 1;
  s.energy_offchip_pj_per_byte = 1;
  s.bricks = 4;
  s.energy_pj_per_brick_op = 1;
  s.dm = 1, s.dn = 1, s.dk = 8;
  s.energy_pj_per_binary_op = 1;
  return s;
}

TEST(TargetModel, DescribesTheTwoLayers) {
  TempDir dir;
  target::ModelInfo m = target::load_model_info(two_layer_model(dir));
  ASSERT_EQ(m.descs.size(), 2u);
  EXPECT_EQ(m.descs[0].macs, 72);
  EXPECT_EQ(m.descs[0].weights, 18);
  EXPECT_EQ(m.descs[0].input_elements, 16);
  EXPECT_EQ(m.descs[0].output_elements, 8);
  EXPECT_TRUE(m.descs[0].has_bias);
  EXPECT_EQ(m.descs[1].macs, 24);
  EXPECT_EQ(m.descs[1].weights, 24);
  EXPECT_EQ(m.descs[1].input_elements, 8);
  EXPECT_EQ(m.descs[1].output_elements, 3);
}

TEST(TargetModel, BitFusionMatchesHandComputedValues) {
  TempDir dir;
  target::ModelInfo m = target::load_model_info(two_layer_model(dir));
  auto spec = unit_spec(target::CostModelType::BitFusion);
  // conv W4A8: brick ops 72*2*4 = 576 -> 144 cycles; bytes (18*4+16*8+8*8)/8 = 33 -> 16.5 cycles.
  auto conv = target::analytic_estimate(spec, m.descs[0], 4, 8);
  EXPECT_DOUBLE_EQ(*conv.latency_ms, 0.144);
  EXPECT_DOUBLE_EQ(*conv.energy_mj, (576 + 33 * 2) * 1e-9);
  // conv W3A3 rounds up to 2x2 bricks: 72*2*2 = 288 -> 72 cycles.
  EXPECT_DOUBLE_EQ(*target::analytic_estimate(spec, m.descs[0], 3, 3).latency_ms, 0.072);
  // fc W2A2: 24 brick ops -> 6 cycles; bytes (24*2+8*2+3*8)/8 = 11 -> 5.5 cycles; at 1 B/cycle 11: memory-bound.
  EXPECT_DOUBLE_EQ(*target::analytic_estimate(spec, m.descs[1], 2, 2).latency_ms, 0.006);
  spec.bandwidth_bytes_per_cycle = 1;
  EXPECT_DOUBLE_EQ(*target::analytic_estimate(spec, m.descs[1], 2, 2).latency_ms, 0.011);
}

TEST(TargetModel, BismoMatchesHandComputedValues) {
  TempDir dir;
  target::ModelInfo m = target::load_model_info(two_layer_model(dir));
  auto spec = unit_spec(target::CostModelType::Bismo);
  // conv W4A8: 72*32 = 2304 binary ops / 8 per cycle = 288 cycles.
  auto conv = target::analytic_estimate(spec, m.descs[0], 4, 8);
  EXPECT_DOUBLE_EQ(*conv.latency_ms, 0.288);
  EXPECT_DOUBLE_EQ(*conv.energy_mj, (2304 + 33 * 2) * 1e-9);
  // fc W2A2: 96 ops -> 12 cycles vs 5.5 memory cycles.
  EXPECT_DOUBLE_EQ(*target::analytic_estimate(spec, m.descs[1], 2, 2).latency_ms, 0.012);
}

TEST(TargetModel, EvaluateAddsLayersAndFlagsUnsupportedPrecisions) {
  TempDir dir;
  target::ModelInfo m = target::load_model_info(two_layer_model(dir));
  target::Profile p;
  p.name = "t";
  p.cost_model = unit_spec(target::CostModelType::BitFusion);
  p.default_support.weight_bits = {4, 8};
  auto source = target::analytic_source(p, m);
  std::map<std::string, quant::LayerPrecision> precision = {{"conv", {4, 8}}, {"fc", {2, 2}}};
  auto c = target::evaluate(p, m, precision, quant::Granularity::PerChannel, source.get());
  ASSERT_EQ(c.layers.size(), 2u);
  EXPECT_DOUBLE_EQ(*c.latency_ms, 0.144 + 0.006);
  EXPECT_DOUBLE_EQ(*c.energy_mj, (576 + 66) * 1e-9 + (24 + 22) * 1e-9);
  EXPECT_DOUBLE_EQ(c.bits.bops, 72 * 32 + 24 * 4);
  EXPECT_TRUE(c.layers[0].allowed);
  EXPECT_FALSE(c.layers[1].allowed);
  EXPECT_NE(c.layers[1].why_not.find("4, 8 bits, not 2"), std::string::npos) << c.layers[1].why_not;

  target::Profile generic;
  generic.name = "g";
  EXPECT_EQ(target::analytic_source(generic, m), nullptr);
  auto g = target::evaluate(generic, m, precision, quant::Granularity::PerChannel, nullptr);
  EXPECT_FALSE(g.latency_ms);
  EXPECT_FALSE(g.energy_mj);
}

TEST(TargetProfile, FormatAndWeightBitsWithoutVnniFollowThisCpu) {
  target::Profile p = target::parse_profile(
      "name: d\nformat: int\nprecisions:\n  default: {weight_bits: [4, 7, 8, 32], weight_bits_without_vnni: [4, 7, 32], "
      "activation_bits: [8, 32]}\ncost_model: {type: cpu-ort}\n",
      "dev.yaml");
  EXPECT_EQ(p.format, quant::QuantForm::Int);
  const bool vnni = target::cpu_features().vnni();
  EXPECT_EQ(p.default_support.weight_bits, vnni ? (std::set<int>{4, 7, 8, 32}) : (std::set<int>{4, 7, 32}));
  std::string why;
  EXPECT_EQ(target::allows(p, "Conv", 8, 8, true, &why), vnni);
  if (!vnni) EXPECT_NE(why.find("no VNNI"), std::string::npos) << why;
  EXPECT_EQ(target::parse_profile("name: d\n", "dev.yaml").format, quant::QuantForm::Qdq);
  EXPECT_THROW(target::parse_profile("name: d\nformat: fast\n", "dev.yaml"), UserError);
  // The built-in integer profile: its form, and a layer is integer or float.
  target::Profile cpu = target::load_target("cpu-ort-int");
  EXPECT_EQ(cpu.format, quant::QuantForm::Int);
  EXPECT_FALSE(target::allows(cpu, "Conv", 7, 32, true, &why));
  EXPECT_NE(why.find("quantized weights only on quantized activations"), std::string::npos) << why;
  EXPECT_FALSE(target::allows(cpu, "Conv", 32, 8, true, &why));
  EXPECT_TRUE(target::allows(cpu, "Conv", 32, 32, true, &why));
  EXPECT_TRUE(target::allows(cpu, "Conv", 4, 8, true, &why));
  for (auto [wb, ab] : target::supported_pairs(cpu, "Conv")) {
    EXPECT_EQ(quant::is_float_bits(wb), quant::is_float_bits(ab)) << wb << " " << ab;
  }
  // MatMul/Gemm weights on float activations at 4 bits (MatMulNBits, the
  // width ORT runs fast here); Conv stays integer or float.
  for (const char* op : {"MatMul", "Gemm"}) {
    EXPECT_TRUE(target::allows(cpu, op, 4, 32, true, &why)) << op << ": " << why;
    EXPECT_FALSE(target::allows(cpu, op, 2, 32, true, &why));
    EXPECT_EQ(why, fmt::format("cpu-ort-int runs {} weights on float activations at 4 bits, not 2", op));
    auto pairs = target::supported_pairs(cpu, op);
    EXPECT_EQ(std::count(pairs.begin(), pairs.end(), std::make_pair(4, 32)), 1);
    EXPECT_EQ(std::count(pairs.begin(), pairs.end(), std::make_pair(2, 32)), 0);
    EXPECT_EQ(std::count(pairs.begin(), pairs.end(), std::make_pair(8, 8)), vnni ? 1 : 0);
  }
  EXPECT_FALSE(target::allows(cpu, "Conv", 4, 32, true, &why));
  // weight_only_bits overrides weight_bits for weight-only pairs: 8 bits even without VNNI.
  target::Profile nbits = target::parse_profile(
      "name: d\nprecisions:\n  default: {weight_bits: [4, 32], activation_bits: [8, 32], weight_only: false}\n"
      "  MatMul: {weight_only_bits: [2, 8]}\n",
      "dev.yaml");
  EXPECT_TRUE(target::allows(nbits, "MatMul", 8, 32, true, &why)) << why;
  EXPECT_TRUE(target::allows(nbits, "MatMul", 4, 8, true, &why)) << why;
  EXPECT_FALSE(target::allows(nbits, "MatMul", 4, 32, true, &why));
  EXPECT_FALSE(target::allows(nbits, "Gemm", 8, 32, true, &why));
  EXPECT_THROW(target::parse_profile("name: d\nprecisions:\n  MatMul: {weight_only_bits: [4, 32]}\n", "dev.yaml"),
               UserError);
}

TEST(TargetProfile, RequireAllowedNamesTheLayer) {
  target::Profile p;
  p.name = "dev";
  p.default_support.activation_bits = {8, 32};
  TempDir dir;
  auto m = target::load_model_info(two_layer_model(dir));
  std::map<std::string, quant::LayerPrecision> precision;
  for (const auto& l : m.layers) precision[l.name] = {8, 8};
  target::require_allowed(p, m.layers, precision, quant::Granularity::PerChannel);
  precision[m.layers.back().name] = {8, 4};
  try {
    target::require_allowed(p, m.layers, precision, quant::Granularity::PerChannel);
    FAIL() << "4-bit activations allowed";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("layer '" + m.layers.back().name + "': dev runs"), std::string::npos) << e.what();
  }
}

TEST(TargetProfile, AllowsSaysWhy) {
  target::Profile p;
  p.name = "dev";
  p.default_support.weight_bits = {4, 8};
  p.default_support.activation_bits = {8};
  target::PrecisionSupport gemm = p.default_support;
  gemm.mixed = false;
  gemm.per_channel = false;
  p.per_op["Gemm"] = gemm;
  std::string why;
  EXPECT_TRUE(target::allows(p, "Conv", 4, 8, true, &why));
  EXPECT_TRUE(why.empty());
  EXPECT_FALSE(target::allows(p, "Conv", 3, 8, true, &why));
  EXPECT_EQ(why, "dev runs Conv weights at 4, 8 bits, not 3");
  EXPECT_FALSE(target::allows(p, "Conv", 8, 4, true, &why));
  EXPECT_EQ(why, "dev runs Conv activations at 8 bits, not 4");
  EXPECT_FALSE(target::allows(p, "Gemm", 4, 8, false, &why));
  EXPECT_NE(why.find("equal weight and activation bits"), std::string::npos);
  EXPECT_FALSE(target::allows(p, "Gemm", 8, 8, true, &why));
  EXPECT_NE(why.find("per-channel"), std::string::npos);
}

TEST(TargetProfile, BuiltinsLoad) {
  auto names = target::builtin_target_names();
  for (const char* want : {"generic", "bitfusion", "bismo", "cpu-ort"}) {
    ASSERT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
    target::Profile p = target::load_target(want);
    EXPECT_EQ(p.name, want);
  }
  EXPECT_EQ(target::load_target("bitfusion").cost_model.bricks, 4096);
  EXPECT_THROW(target::load_target("tpu9000"), UserError);
  const target::Profile native = target::load_target("cpu-native");
  EXPECT_TRUE(native.native_runtime);
  EXPECT_EQ(native.format, quant::QuantForm::Int);
  EXPECT_EQ(native.cost_model.command, (std::vector<std::string>{"autoprec", "native-runner"}));
  EXPECT_FALSE(target::load_target("cpu-ort-int").native_runtime);
}

TEST(TargetProfile, TheNativeRuntimeNeedsTheIntegerForm) {
  try {
    target::parse_profile("name: x\nruntime: native\n", "dev.yaml");
    ADD_FAILURE() << "runtime: native accepted without format: int";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("format: int"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(target::parse_profile("name: x\nformat: int\nruntime: native\n", "dev.yaml").native_runtime);
  EXPECT_THROW(target::parse_profile("name: x\nformat: int\nruntime: tvm\n", "dev.yaml"), UserError);
}

void expect_profile_error(const std::string& yaml, const std::string& substring) {
  try {
    target::parse_profile(yaml, "dev.yaml");
    ADD_FAILURE() << "no error for: " << yaml;
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(substring), std::string::npos) << e.what();
  }
}

TEST(TargetProfile, StrictValidationWithLines) {
  target::Profile p = target::parse_profile(
      "name: d\nprecisions:\n  Gemm: {weight_bits: [8]}\n  default: {weight_bits: [4, 8], mixed: false}\n"
      "cost_model: {type: lut, table: t.csv}\n",
      "/x/dev.yaml");
  EXPECT_EQ(p.support("Gemm").weight_bits, (std::set<int>{8}));
  EXPECT_FALSE(p.support("Gemm").mixed);  // inherits from default
  EXPECT_EQ(p.support("Conv").weight_bits, (std::set<int>{4, 8}));
  EXPECT_EQ(p.cost_model.table, "/x/t.csv");
  expect_profile_error("name: d\nfoo: 1\n", "dev.yaml:2: unknown key 'foo'");
  expect_profile_error("name: d\nprecisions:\n  default: {weight_bits: [4, 9]}\n", "dev.yaml:3: precisions.default.weight_bits[1] must be one of 2, 3, 4, 5, 6, 7, 8, 16, 32 (16 and 32: float), got 9");
  expect_profile_error("name: d\nprecisions:\n  Relu: {}\n", "unknown key 'Relu' in precisions");
  expect_profile_error("name: d\nprecisions:\n  default: {weight_bits: []}\n", "must not be empty");
  expect_profile_error("name: d\ncost_model: {type: tpu}\n", "cost_model.type must be one of generic, bitfusion, bismo, cpu-ort, lut, command, got 'tpu'");
  expect_profile_error("name: d\ncost_model:\n  type: bitfusion\n  bricks: -3\n", "dev.yaml:4: cost_model.bricks must be an integer >= 1, got -3");
  expect_profile_error("name: d\ncost_model:\n  type: bitfusion\n  dk: 3\n", "unknown key 'dk' in cost_model of type bitfusion");
  expect_profile_error("name: d\ncost_model: {type: lut}\n", "needs `table");
  expect_profile_error("name: d\ncost_model: {type: command}\n", "needs `command");
  EXPECT_TRUE(target::parse_profile("name: d\ncost_model: {type: cpu-ort}\n", "dev.yaml").cost_model.export_form);
  EXPECT_FALSE(target::parse_profile("name: d\ncost_model: {type: cpu-ort, form: kernel}\n", "dev.yaml").cost_model.export_form);
  expect_profile_error("name: d\ncost_model:\n  type: cpu-ort\n  form: fast\n", "dev.yaml:4: cost_model.form must be one of export, kernel, got 'fast'");
  expect_profile_error("name: d\ncost_model: {type: bismo, form: kernel}\n", "unknown key 'form' in cost_model of type bismo");
  expect_profile_error("description: x\n", "needs a `name`");
  expect_profile_error("name: [d\n", "malformed YAML");
}

void expect_lut_error(const std::string& csv, const std::string& substring) {
  try {
    target::LutTable::parse(csv, "t.csv");
    ADD_FAILURE() << "no error for: " << csv;
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(substring), std::string::npos) << e.what();
  }
}

TEST(TargetLut, ParsesAndLooksUp) {
  auto t = target::LutTable::parse(
      "layer,weight_bits,activation_bits,latency_ms,energy_mj\nconv,8,8,0.5,0.01\n\"fc,1\",4,8,0.25,\n", "t.csv");
  EXPECT_DOUBLE_EQ(*t.lookup("conv", 8, 8).latency_ms, 0.5);
  EXPECT_DOUBLE_EQ(*t.lookup("conv", 8, 8).energy_mj, 0.01);
  EXPECT_FALSE(t.lookup("fc,1", 4, 8).energy_mj);
  try {
    t.lookup("conv", 4, 8);
    ADD_FAILURE();
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), "no entry for layer 'conv' at W4A8 in cost table t.csv");
  }
  try {
    t.check_layers({"conv", "fc"});
    ADD_FAILURE();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("t.csv:3: unknown layer 'fc,1'"), std::string::npos) << e.what();
  }
}

TEST(TargetLut, ClearErrors) {
  expect_lut_error("layer,weight_bits,latency_ms\nconv,8,1\n", "t.csv:1: cost table lacks column 'activation_bits'");
  expect_lut_error("layer,weight_bits,activation_bits,latency_ms\nconv,8,8,-1\n", "t.csv:2: latency_ms must not be negative");
  expect_lut_error("layer,weight_bits,activation_bits,latency_ms\nconv,8,8,fast\n", "t.csv:2: latency_ms must be a finite number, got 'fast'");
  expect_lut_error("layer,weight_bits,activation_bits,latency_ms\nconv,9,8,1\n", "t.csv:2: weight_bits must be one of");
  expect_lut_error("layer,weight_bits,activation_bits,latency_ms\nconv,8,8\n", "t.csv:2: 3 fields, the header has 4");
  expect_lut_error("layer,weight_bits,activation_bits,latency_ms\nconv,8,8,1\nconv,8,8,2\n", "already given on line 2");
  expect_lut_error("", "empty cost table");
}

TEST(TargetConstraints, ParsesUnitsAndReferences) {
  auto c = target::parse_constraint("weight_memory <= 64KiB");
  EXPECT_EQ(c.metric, target::Metric::WeightMemory);
  EXPECT_TRUE(c.at_most);
  EXPECT_DOUBLE_EQ(*c.bound, 64 * 1024 * 8.0);
  EXPECT_DOUBLE_EQ(*target::parse_constraint("latency<=1500us").bound, 1.5);
  EXPECT_DOUBLE_EQ(*target::parse_constraint("energy<=2J").bound, 2000);
  EXPECT_DOUBLE_EQ(*target::parse_constraint("bops<=1.5G").bound, 1.5e9);
  EXPECT_DOUBLE_EQ(*target::parse_constraint("accuracy_drop<=1%").bound, 0.01);
  auto a = target::parse_constraint("accuracy>=0.9");
  EXPECT_FALSE(a.at_most);
  EXPECT_DOUBLE_EQ(*a.bound, 0.9);
  auto r = target::parse_constraint("latency<=0.6*int8");
  EXPECT_EQ(r.reference, target::Reference::Int8);
  EXPECT_DOUBLE_EQ(r.value, 0.6);
  EXPECT_FALSE(r.bound);

  auto err = [](const std::string& text, const std::string& substring) {
    try {
      target::parse_constraint(text);
      ADD_FAILURE() << text;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(substring), std::string::npos) << e.what();
    }
  };
  err("speed<=3ms", "unknown metric 'speed'");
  err("latency<=3", "latency needs a unit (ms, us, s)");
  err("latency<=3kg", "unknown unit 'kg' for latency; units: ms, us, s");
  err("weight_memory<=0.5*fp16", "unknown reference 'fp16'");
  err("accuracy_drop<=0.5*fp32", "accuracy_drop takes an absolute value");
  err("accuracy>=0.9*int8", "relative to fp32 only");
  err("accuracy>=91", "fractions in [0, 1]");
  err("latency=3ms", "expected METRIC<=VALUE");
  err("fidelity>=0.9*fp32", "fidelity takes the metric's own value");
  EXPECT_DOUBLE_EQ(*target::parse_constraint("fidelity>=98%").bound, 0.98);
  EXPECT_DOUBLE_EQ(*target::parse_constraint("fidelity>=30dB").bound, 30);
  auto kl = target::parse_constraint("fidelity<=0.02");
  EXPECT_TRUE(kl.at_most);
  EXPECT_TRUE(target::is_score_metric(kl.metric));
  EXPECT_FALSE(target::is_score_metric(target::Metric::Latency));
  target::TargetCosts none;
  auto checked = target::check({kl}, none, 0.015, std::nullopt);
  EXPECT_TRUE(checked[0].holds);
  EXPECT_NEAR(checked[0].slack, 0.005, 1e-12);
  EXPECT_FALSE(target::check({kl}, none, 0.03, std::nullopt)[0].holds);
}

TEST(TargetConstraints, ResolvesAndChecksWithSlack) {
  TempDir dir;
  target::ModelInfo m = target::load_model_info(two_layer_model(dir));
  target::Profile p;
  p.name = "t";
  p.cost_model = unit_spec(target::CostModelType::BitFusion);
  auto source = target::analytic_source(p, m);
  auto costs_of = [&](int wb, int ab) {
    std::map<std::string, quant::LayerPrecision> prec = {{"conv", {wb, ab}}, {"fc", {wb, ab}}};
    return target::evaluate(p, m, prec, quant::Granularity::PerChannel, source.get());
  };
  auto fp32 = costs_of(32, 32), int8 = costs_of(8, 8), w4 = costs_of(4, 4);
  yaml::Node list = yaml::parse("- weight_memory<=0.5*fp32\n- latency<=0.5*int8\n- accuracy_drop<=0.01\n- energy>=1J\n",
                                "run.yaml", "run configuration");
  auto constraints = target::resolve(target::parse_constraints(list), p, fp32, int8);
  EXPECT_EQ(constraints[1].origin, "run.yaml:2");
  EXPECT_DOUBLE_EQ(*constraints[0].bound, 0.5 * fp32.bits.weight_memory_bits);
  auto results = target::check(constraints, w4, 0.90, 0.905);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].holds);
  EXPECT_DOUBLE_EQ(results[0].slack, 0.5 * fp32.bits.weight_memory_bits - w4.bits.weight_memory_bits);
  // W4A4 on 2x2 bricks: 4x fewer brick ops than W8A8, latency 0.25 of int8 (compute-bound).
  EXPECT_TRUE(results[1].holds);
  EXPECT_NEAR(results[1].value, 0.25 * *int8.latency_ms, 1e-12);
  EXPECT_TRUE(results[2].holds);
  EXPECT_NEAR(results[2].slack, 0.005, 1e-12);
  EXPECT_FALSE(results[3].holds);
  EXPECT_LT(results[3].slack, 0);
  EXPECT_THROW(target::check(constraints, w4, std::nullopt, std::nullopt), UserError);

  target::Profile generic;
  generic.name = "generic";
  try {
    target::resolve({target::parse_constraint("latency<=1ms")}, generic, fp32, int8);
    ADD_FAILURE();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("target generic has no latency model"), std::string::npos) << e.what();
  }
  EXPECT_THROW(target::parse_constraints(yaml::parse("- [1]\n", "run.yaml", "run configuration")), UserError);
}

// ---- runners ---------------------------------------------------------------

std::string script(const TempDir& dir, const std::string& name, const std::string& body) {
  std::string path = dir.file(name);
  write(path, "#!/bin/sh\n" + body);
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path;
}

void expect_runner_error(const std::string& path, double timeout, const std::string& substring) {
  runtime::RunnerProcess p({"/bin/sh", path}, "fake runner");
  try {
    p.request({{"cmd", "load"}, {"model", "m.onnx"}}, timeout);
    ADD_FAILURE() << "no error from " << path;
  } catch (const UserError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(substring), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  EXPECT_FALSE(p.alive());
}

TEST(Runner, AnswersAndReportsRunnerErrors) {
  TempDir dir;
  std::string ok = script(dir, "ok.sh",
                          "while read line; do case \"$line\" in *quit*) echo '{\"ok\":true}'; exit 0;; "
                          "*bad*) echo '{\"ok\":false,\"error\":\"no such model\"}';; "
                          "*) echo '{\"ok\":true,\"median_ms\":1.5}';; esac; done\n");
  runtime::RunnerProcess p({"/bin/sh", ok}, "fake runner");
  EXPECT_DOUBLE_EQ(p.request({{"cmd", "time"}}, 5)["median_ms"].get<double>(), 1.5);
  try {
    p.request({{"cmd", "bad"}}, 5);
    ADD_FAILURE();
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), "fake runner failed on 'bad': no such model");
  }
  EXPECT_TRUE(p.alive());
  EXPECT_DOUBLE_EQ(p.request({{"cmd", "time"}}, 5)["median_ms"].get<double>(), 1.5);
  p.close();
  EXPECT_FALSE(p.alive());
}

TEST(Runner, CrashHangAndGarbageGiveClearErrors) {
  TempDir dir;
  expect_runner_error(script(dir, "crash.sh", "read line\necho 'Segmentation fault (core dumped)' >&2\nexit 139\n"), 5,
                      "fake runner exited with code 139 while answering 'load' (stderr: Segmentation fault (core dumped))");
  expect_runner_error(script(dir, "kill.sh", "read line\nkill -9 $$\n"), 5, "was killed by signal 9");
  expect_runner_error(script(dir, "hang.sh", "read line\nexec sleep 30\n"), 0.3,
                      "fake runner did not answer 'load' within 0.3 s and was killed");
  expect_runner_error(script(dir, "garbage.sh", "read line\necho 'loading model...'\nsleep 5\n"), 5,
                      "printed something other than a JSON response to 'load': 'loading model...'");
  try {
    runtime::RunnerProcess p({dir.file("no-such-runner")}, "fake runner");
    ADD_FAILURE();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot start fake runner"), std::string::npos) << e.what();
  }
}

TEST(Runner, MeasuredProfileResumesFromItsCache) {
  TempDir dir;
  target::ModelInfo m = target::load_model_info(two_layer_model(dir));
  target::Profile p;
  p.name = "phone";
  p.cost_model.type = target::CostModelType::Command;
  p.cost_model.command = {"/bin/sh", script(dir, "crash.sh", "read line\nexit 1\n")};
  std::string cache = dir.file("cache.csv");
  // An earlier, interrupted run measured the conv layer.
  write(cache, "key,latency_ms\n" + target::measurement_key(p, m.descs[0], 8, 8) + ",0.25\n");
  target::MeasuredSource source(p, m, cache);
  EXPECT_DOUBLE_EQ(*source.estimate(m.descs[0], 8, 8).latency_ms, 0.25);
  EXPECT_EQ(source.cached(), 1);
  try {
    source.estimate(m.descs[1], 8, 8);
    ADD_FAILURE();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("runner of target phone exited with code 1"), std::string::npos) << e.what();
  }
  write(cache, "key,latency_ms\nbroken line\n");
  EXPECT_THROW(target::MeasuredSource(p, m, cache), UserError);
}

// The integer form puts the rows in context with one whole-model timing: ORT
// rows are scaled to add up to it, native rows stay as measured and the rest
// is a fixed cost every total adds once.
TEST(TargetMeasure, IntegerRowsInContextScaledOnOrtFixedCostOnNative) {
  TempDir dir;
  target::ModelInfo m = target::load_model_info(two_layer_model(dir));
  // Answers every request with 1 ms: the whole model all integer.
  std::string runner = script(dir, "runner.sh",
                              "while read line; do case \"$line\" in *quit*) echo '{\"ok\":true}'; exit 0;; "
                              "*) echo '{\"ok\":true,\"inputs\":[{\"name\":\"x\",\"type\":\"float32\",\"shape\":[1,1,4,4]}],"
                              "\"outputs\":[{\"name\":\"y\",\"type\":\"float32\",\"shape\":[1,3]}],\"median_ms\":1.0,"
                              "\"kernel_ms\":1.0}';; esac; done\n");
  for (bool native : {false, true}) {
    target::Profile p;
    p.name = native ? "native-dev" : "ort-dev";
    p.format = quant::QuantForm::Int;
    p.native_runtime = native;
    p.cost_model.type = target::CostModelType::Command;
    p.cost_model.command = {"/bin/sh", runner};
    std::string cache = dir.file(p.name + ".csv");
    // The rows at W7A8 (which set the context) and W4A8, measured earlier.
    write(cache, "key,latency_ms\n" + target::measurement_key(p, m.descs[0], 7, 8) + ",0.25\n" +
                     target::measurement_key(p, m.descs[1], 7, 8) + ",0.5\n" +
                     target::measurement_key(p, m.descs[0], 4, 8) + ",0.125\n");
    target::MeasuredSource source(p, m, cache);
    const double conv_w4 = *source.estimate(m.descs[0], 4, 8).latency_ms;
    const double fc_w7 = *source.estimate(m.descs[1], 7, 8).latency_ms;
    std::map<std::string, quant::LayerPrecision> precision = {{"conv", {4, 8}}, {"fc", {7, 8}}};
    const double total = *target::evaluate(p, m, precision, quant::Granularity::PerChannel, &source).latency_ms;
    if (native) {
      EXPECT_DOUBLE_EQ(source.fixed_latency_ms(), 0.25);
      EXPECT_DOUBLE_EQ(conv_w4, 0.125);
      EXPECT_DOUBLE_EQ(fc_w7, 0.5);
      EXPECT_DOUBLE_EQ(total, 0.125 + 0.5 + 0.25);
    } else {
      EXPECT_DOUBLE_EQ(source.fixed_latency_ms(), 0.0);
      EXPECT_DOUBLE_EQ(conv_w4, 0.125 / 0.75);
      EXPECT_DOUBLE_EQ(fc_w7, 0.5 / 0.75);
      EXPECT_DOUBLE_EQ(total, (0.125 + 0.5) / 0.75);
    }
  }
}

// ---- ONNX Runtime ------------------------------------------------------------

#define SKIP_WITHOUT_ORT()                                  \
  do {                                                      \
    std::string why;                                        \
    if (!runtime::ort_available(&why)) GTEST_SKIP() << why; \
  } while (0)

const char* kConformance = "/usr/share/libonnx-testdata/data/node/test_conv_with_strides_padding";

// The op types of a serialized model, in order.
int32_t initializer_type(const onnx::ModelProto& model, const std::string& name) {
  for (const auto& t : model.graph().initializer()) {
    if (t.name() == name) return t.data_type();
  }
  return -1;
}

TEST(TargetMeasure, ExportFormIsTheLayerAsExported) {
  TempDir dir;
  target::ModelInfo m = target::load_model_info(two_layer_model(dir));
  const target::LayerDesc& conv = m.descs.at(0);
  auto parse = [&](int wb, int ab, bool export_form) {
    onnx::ModelProto model;
    EXPECT_TRUE(model.ParseFromString(target::single_layer_model(*m.graph, conv, wb, ab, export_form)));
    return model;
  };
  onnx::ModelProto w4a6 = parse(4, 6, true);
  EXPECT_EQ(w4a6.opset_import(0).version(), graph::kOpset4Bit);
  EXPECT_EQ(w4a6.ir_version(), graph::kIrVersion4Bit);
  EXPECT_EQ(op_types(w4a6), (std::vector<std::string>{"Clip", "QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Conv"}));
  EXPECT_EQ(initializer_type(w4a6, "w_q"), graph::kOnnxInt4);
  EXPECT_EQ(initializer_type(w4a6, "b"), onnx::TensorProto::FLOAT);  // bias stays float, as exported

  onnx::ModelProto w6a8 = parse(6, 8, true);
  EXPECT_EQ(w6a8.opset_import(0).version(), graph::kOpset8Bit);
  EXPECT_EQ(op_types(w6a8), (std::vector<std::string>{"QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Conv"}));
  EXPECT_EQ(initializer_type(w6a8, "w_q"), onnx::TensorProto::INT8);

  EXPECT_EQ(op_types(parse(32, 32, true)), std::vector<std::string>{"Conv"});
  // The kernel form adds Q/DQ on the output so ORT fuses an integer kernel.
  std::vector<std::string> kernel = op_types(parse(4, 6, false));
  EXPECT_EQ(std::count(kernel.begin(), kernel.end(), "QuantizeLinear"), 2);
  EXPECT_EQ(std::count(kernel.begin(), kernel.end(), "Clip"), 0);

  target::Profile p = target::load_target("cpu-ort");
  EXPECT_NE(target::measurement_key(p, conv, 4, 8), target::measurement_key(p, conv, 8, 8));
  EXPECT_EQ(target::measurement_key(p, conv, 3, 8), target::measurement_key(p, conv, 4, 8));
  EXPECT_NE(target::measurement_key(p, conv, 8, 6), target::measurement_key(p, conv, 8, 8));
  EXPECT_EQ(target::measurement_key(p, conv, 8, 6), target::measurement_key(p, conv, 8, 2));
  target::Profile kernel_profile = p;
  kernel_profile.cost_model.export_form = false;
  EXPECT_EQ(target::measurement_key(kernel_profile, conv, 4, 8), target::measurement_key(kernel_profile, conv, 8, 8));
  EXPECT_NE(target::measurement_key(kernel_profile, conv, 8, 8), target::measurement_key(p, conv, 8, 8));
}

TEST(OrtRunner, RunsAConformanceModel) {
  SKIP_WITHOUT_ORT();
  if (!std::filesystem::exists(kConformance)) GTEST_SKIP() << kConformance << " missing (libonnx-testdata)";
  std::string dir = kConformance;
  at::Tensor x = graph::read_tensor_file(dir + "/test_data_set_0/input_0.pb");
  at::Tensor w = graph::read_tensor_file(dir + "/test_data_set_0/input_1.pb");
  at::Tensor expected = graph::read_tensor_file(dir + "/test_data_set_0/output_0.pb");
  runtime::OnnxRunner runner;
  runner.load(dir + "/model.onnx");
  ASSERT_EQ(runner.inputs().size(), 2u);
  EXPECT_EQ(runner.inputs()[0].type, "float32");
  std::map<std::string, at::Tensor> inputs = {{runner.inputs()[0].name, x}, {runner.inputs()[1].name, w}};
  double ms = -1;
  auto outputs = runner.run(inputs, &ms);
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_TRUE(at::allclose(outputs.begin()->second, expected, 1e-4, 1e-5));
  EXPECT_GE(ms, 0);
  runtime::TimeResult t = runner.time(inputs, 1, 5);
  EXPECT_EQ(t.times_ms.size(), 5u);
  EXPECT_GT(t.median_ms, 0);
  EXPECT_THROW(runner.run({{runner.inputs()[0].name, x}}), UserError);  // missing input: ok:false
  EXPECT_GT(runtime::time_onnx(dir + "/model.onnx", inputs, 0, 3), 0);

  runtime::RunnerOptions options;
  options.profile_kernels = true;
  runtime::OnnxRunner profiled(options);
  profiled.load(dir + "/model.onnx");
  runtime::TimeResult k = profiled.time(inputs, 1, 5);
  ASSERT_TRUE(k.kernel_median_ms);
  EXPECT_GT(*k.kernel_median_ms, 0);
  EXPECT_LE(*k.kernel_median_ms, k.median_ms);
  EXPECT_EQ(k.op_ms.count("Conv"), 1u);
}

TEST(OrtRunner, ExchangesIntegerTensors) {
  SKIP_WITHOUT_ORT();
  TempDir dir;
  ModelBuilder b;
  b.input("a", {2, 3}, onnx::TensorProto::INT64).output("y", {2, 3}, onnx::TensorProto::INT64);
  b.input("q", {4}, onnx::TensorProto::UINT8).output("r", {4}, onnx::TensorProto::UINT8);
  b.input("s", {4}, onnx::TensorProto::INT8).output("t", {4}, onnx::TensorProto::INT8);
  b.node("Neg", {"a"}, {"y"});
  b.node("Identity", {"q"}, {"r"});
  b.node("Identity", {"s"}, {"t"});
  write(dir.file("ints.onnx"), b.bytes());
  at::Tensor a = at::arange(6, at::kLong).view({2, 3}) * static_cast<int64_t>(1000000000000);
  at::Tensor q = at::tensor({0, 1, 200, 255}, at::kByte), s = at::tensor({-128, -1, 0, 127}, at::kChar);
  auto out = runtime::run_onnx(dir.file("ints.onnx"), {{"a", a}, {"q", q}, {"s", s}});
  EXPECT_TRUE(at::equal(out.at("y"), -a));
  EXPECT_TRUE(at::equal(out.at("r"), q));
  EXPECT_TRUE(at::equal(out.at("t"), s));
}

TEST(OrtRunner, MeasuresSingleLayerQdqModelsOnceAndCaches) {
  SKIP_WITHOUT_ORT();
  TempDir dir;
  target::ModelInfo m = target::load_model_info(two_layer_model(dir));
  target::Profile p = target::load_target("cpu-ort");
  p.cost_model.warmup = 1;
  p.cost_model.repeats = 3;
  std::string cache = dir.file("cache.csv");
  {
    target::MeasuredSource source(p, m, cache);
    for (const auto& d : m.descs) {
      for (auto [wb, ab] : std::vector<std::pair<int, int>>{{8, 8}, {4, 8}, {32, 8}, {8, 32}, {32, 32}}) {
        auto e = source.estimate(d, wb, ab);
        ASSERT_TRUE(e.latency_ms);
        EXPECT_GE(*e.latency_ms, 0);
        EXPECT_FALSE(e.energy_mj);
      }
    }
    EXPECT_EQ(source.measured(), 10);  // export form: W4A8 has INT4 weights, a form of its own
    EXPECT_EQ(source.cached(), 0);
  }
  {
    target::Profile kernel = p;
    kernel.cost_model.export_form = false;
    target::MeasuredSource source(kernel, m, dir.file("kernel_cache.csv"));
    for (const auto& d : m.descs) {
      for (auto [wb, ab] : std::vector<std::pair<int, int>>{{8, 8}, {4, 8}}) ASSERT_TRUE(source.estimate(d, wb, ab).latency_ms);
    }
    EXPECT_EQ(source.measured(), 2);  // kernel form: W4A8 runs in the W8A8 containers
    EXPECT_EQ(source.cached(), 2);
  }
  target::MeasuredSource again(p, m, cache);
  auto rows = target::build_table(p, m, again, {4, 8}, {8});
  EXPECT_EQ(rows.size(), 4u);
  EXPECT_EQ(again.measured(), 0);
  target::write_table(dir.file("table.csv"), rows);
  auto table = target::LutTable::load(dir.file("table.csv"));
  table.check_layers({"conv", "fc"});
  EXPECT_DOUBLE_EQ(*table.lookup("fc", 4, 8).latency_ms, rows[2].latency_ms);
}

}  // namespace
}  // namespace autoprec
