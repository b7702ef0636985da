// Target device profiles: which precisions a device runs, and how a layer's
// latency and energy are estimated or measured there.
//
// A profile is a YAML file:
//
//   name: bitfusion
//   description: "bit-flexible accelerator, 2x2-bit bricks"
//   precisions:                   # per operator kind: default, Conv, Gemm, MatMul
//     default:                    # every key optional; op entries inherit from default
//       weight_bits: [2, 4, 8]    # bit-widths in 2..8, 16 or 32 (16/32: float)
//       activation_bits: [2, 4, 8]
//       mixed: true               # weight bits may differ from activation bits
//       per_channel: true         # per-output-channel weight scales allowed
//     Gemm: {weight_bits: [8]}
//     # weight_bits_without_vnni: [2, 3, 4, 5, 6, 7]  replaces weight_bits on a
//     #   CPU without VNNI (cpu_features())
//     # weight_only: false       quantized weights need quantized activations
//     # weight_only_bits: [2, 4, 8]  the weight bits allowed on float activations
//     # activation_only: false   quantized activations need quantized weights
//   format: int                   # the export form deploy and search use: qdq (default) | int
//   cost_model:
//     type: bitfusion             # generic | bitfusion | bismo | cpu-ort | lut | command
//     bricks: 4096                # the parameters of the type (cost_model.h)
//
// The grammar is util/yaml.h's. Validation is strict: unknown keys, wrong types, duplicate keys, empty bit
// sets, out-of-range bits, missing or non-positive parameters are UserErrors
// "FILE:LINE: what; what is valid". The built-in profiles live in the
// targets/ folder of the source tree (or $AUTOPREC_TARGETS_DIR).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "quant/config.h"
#include "quant/layers.h"
#include "util/yaml.h"

namespace autoprec::target {

// What a device runs for one operator kind.
struct PrecisionSupport {
  std::set<int> weight_bits = quant::valid_bits();
  std::set<int> activation_bits = quant::valid_bits();
  bool mixed = true;        // false: weight bits must equal activation bits
  bool per_channel = true;  // false: per-tensor weight scales only
  // false: quantized weights only with quantized activations (weight-only
  // layers run DequantizeLinear + a float kernel, slower than float on a CPU)
  bool weight_only = true;
  // false: quantized activations only with quantized weights
  bool activation_only = true;
  // When set, the weight bit-widths allowed on float activations, whatever
  // weight_bits and weight_only say (cpu-ort-int: MatMul/Gemm weights at 2, 4
  // or 8 bits run as MatMulNBits, quant/matmul_nbits.h).
  std::optional<std::set<int>> weight_only_bits;
  // True when W`weight_bits` on float activations is allowed.
  bool allows_weight_only(int weight_bits) const {
    return weight_only_bits ? weight_only_bits->count(weight_bits) > 0 : weight_only && this->weight_bits.count(weight_bits) > 0;
  }
  // weight_bits came from weight_bits_without_vnni (this CPU has no VNNI).
  bool without_vnni = false;
};

// The x86 SIMD features of this machine that change what and how fast ONNX
// Runtime's integer kernels compute, read once from /proc/cpuinfo (all false
// elsewhere). Without VNNI the U8S8 kernels sum pairs of u8*s8 products in
// int16 (vpmaddubsw), which saturates with 8-bit weights; 7-bit weights
// (|q| <= 63) cannot saturate.
struct CpuFeatures {
  bool avx2 = false, fma = false, avx512f = false, avx512_vnni = false, avx_vnni = false;
  bool vnni() const { return avx512_vnni || avx_vnni; }
  std::string text() const;  // "avx2 fma" ...; "none" when there is none of them
};
const CpuFeatures& cpu_features();

enum class CostModelType { Generic, BitFusion, Bismo, CpuOrt, Lut, Command };

// "generic", "bitfusion", ... and back (nullopt for an unknown name).
const char* to_string(CostModelType type);
std::optional<CostModelType> cost_model_type(const std::string& name);

// The cost model and its parameters. Only the fields of `type` are used; the
// defaults below are what a profile gets when it leaves a parameter out.
struct CostModelSpec {
  CostModelType type = CostModelType::Generic;

  // bitfusion and bismo: the memory side of the roofline and its energy.
  double frequency_mhz = 500;              // clock
  double bandwidth_bytes_per_cycle = 16;   // off-chip bandwidth
  int output_bits = 8;                     // bits of each output element written back
  double energy_onchip_pj_per_byte = 1.0;  // buffer access, per byte moved
  double energy_offchip_pj_per_byte = 100; // DRAM access, per byte moved

  // bitfusion: 2-bit x 2-bit bricks working in parallel each cycle.
  double bricks = 4096;
  double energy_pj_per_brick_op = 0.05;

  // bismo: Dm x Dn dot-product units, each Dk bits wide (binary ops per cycle
  // = dm * dn * dk).
  double dm = 8, dn = 8, dk = 256;
  double energy_pj_per_binary_op = 0.01;

  // cpu-ort and command: how layers are measured.
  int threads = 1;          // runtime intra-op threads
  int warmup = 5;           // untimed runs per measurement
  int repeats = 30;         // timed runs; the median is kept
  double timeout_s = 120;   // per runner request
  bool kernel_timing = true;  // timing: kernels (profiled operator time) | wall (measure.h)
  bool export_form = true;    // form: export (the layer as `autoprec export` writes it) | kernel (measure.h)
  std::vector<std::string> command;  // command: the runner's argv

  // lut: the table, relative paths resolved against the profile's folder.
  std::string table;
};

struct Profile {
  std::string name;
  std::string description;
  PrecisionSupport default_support;                // precisions.default
  std::map<std::string, PrecisionSupport> per_op;  // precisions.Conv / Gemm / MatMul
  CostModelSpec cost_model;
  quant::QuantForm format = quant::QuantForm::Qdq;  // yaml: format
  bool native_runtime = false;  // yaml: runtime: native (deploy and search run the result on autoprec's runtime)
  std::string origin;  // file it came from

  // The support for `op` (its own entry or the default).
  const PrecisionSupport& support(const std::string& op) const;
  bool has_latency() const { return cost_model.type != CostModelType::Generic; }
  bool has_energy() const;  // bitfusion, bismo, lut
  bool measured() const {   // cpu-ort or command
    return cost_model.type == CostModelType::CpuOrt || cost_model.type == CostModelType::Command;
  }
};

// Every key of the format (docs/configuration.md, `autoprec schema target`).
std::vector<yaml::KeyInfo> profile_schema();

// Reads a parsed document (util/yaml.h); its origin anchors relative paths.
Profile read_profile(const yaml::Node& root);
// Parses YAML text; `origin` names it in errors and anchors relative paths.
Profile parse_profile(const std::string& yaml_text, const std::string& origin);
Profile load_profile_file(const std::string& path);

// Folder of the built-in profiles: $AUTOPREC_TARGETS_DIR or SOURCE/targets.
std::string builtin_targets_dir();
// Built-in profile names (file stems), sorted.
std::vector<std::string> builtin_target_names();
// A built-in name ("bitfusion") or a path to a .yaml file. UserError naming
// the built-in profiles when it is neither.
Profile load_target(const std::string& name_or_path);

// Whether `profile` runs an `op` layer with these bits and weight
// granularity. When it does not, `why` (if given) gets the reason, e.g.
// "bitfusion runs Conv weights at 2, 4, 8 bits, not 3".
bool allows(const Profile& profile, const std::string& op, int weight_bits, int activation_bits, bool per_channel,
            std::string* why = nullptr);

// UserError (one line) naming the first layer whose bits `profile` does not
// run: "layer 'conv1': cpu-ort-int runs Conv activations at 8, 32 bits, not 4".
void require_allowed(const Profile& profile, const std::vector<quant::QuantLayer>& layers,
                     const std::map<std::string, quant::LayerPrecision>& precision, quant::Granularity granularity);

}  // namespace autoprec::target
