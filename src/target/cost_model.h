// Latency and energy of a precision configuration on a target device.
//
// Per quantizable layer, batch 1, wb/ab = weight/activation bits (16 and 32
// are float and enter the formulas as their width):
//
//   generic     no latency or energy; weight memory and BOPs only
//               (cost::compute_costs).
//   bitfusion   brick_ops      = MACs * ceil(wb/2) * ceil(ab/2)
//               compute_cycles = brick_ops / bricks
//               bytes          = (weights*wb + inputs*ab + outputs*output_bits) / 8
//               memory_cycles  = bytes / bandwidth_bytes_per_cycle
//               latency_ms     = max(compute_cycles, memory_cycles) / (frequency_mhz * 1e3)
//               energy_mj      = (brick_ops * energy_pj_per_brick_op
//                                 + bytes * (energy_onchip_pj_per_byte + energy_offchip_pj_per_byte)) * 1e-9
//   bismo       binary_ops     = MACs * wb * ab
//               compute_cycles = binary_ops / (dm * dn * dk)
//               memory, latency as bitfusion
//               energy_mj      = (binary_ops * energy_pj_per_binary_op + bytes * (...)) * 1e-9
//   lut         latency_ms and energy_mj of (layer name, wb, ab) from a CSV
//               table (LutTable); a missing pair is an error.
//   cpu-ort,    latency_ms measured by a runner (target/measure.h); no energy.
//   command
//
// Totals add the layers (layers run one after another) and the source's
// fixed_latency_ms().
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "cost/metrics.h"
#include "exec/summary.h"
#include "graph/ir.h"
#include "quant/config.h"
#include "quant/layers.h"
#include "target/profile.h"

namespace autoprec::target {

// What the cost models need to know about one quantizable layer (batch 1).
struct LayerDesc {
  std::string name;
  std::string op;                     // Conv | Gemm | MatMul
  std::vector<int64_t> input_shape;   // activation input
  std::vector<int64_t> weight_shape;  // empty for an activation-only MatMul
  std::vector<int64_t> output_shape;
  int64_t macs = 0;
  int64_t weights = 0;          // weight elements
  int64_t input_elements = 0;   // activation elements read
  int64_t output_elements = 0;  // elements written
  int64_t channel_axis = 0;           // output-channel axis of the weight
  bool has_bias = false;              // a bias initializer (input 2)
  const graph::Node* node = nullptr;  // attributes, for building single-layer models
};

// A model loaded once for costing: graph, shapes (one zero example through
// the executor) and quantizable layers.
struct ModelInfo {
  std::string path;
  std::shared_ptr<const graph::Graph> graph;
  exec::ModelSummary summary;
  std::vector<quant::QuantLayer> layers;
  std::vector<LayerDesc> descs;  // parallel to `layers`
};
ModelInfo load_model_info(const std::string& path, bool include_activation_matmul = false);

// Latency (ms) and energy (mJ) of one layer; nullopt where the model has none.
struct LayerEstimate {
  std::optional<double> latency_ms;
  std::optional<double> energy_mj;
};

// bitfusion and bismo formulas above; UserError for other types.
LayerEstimate analytic_estimate(const CostModelSpec& spec, const LayerDesc& layer, int weight_bits, int activation_bits);

// A user-measured table: CSV with header
//   layer,weight_bits,activation_bits,latency_ms,energy_mj
// (columns in any order; energy_mj may be empty or absent). Errors name the
// file and line: missing column, wrong field count, non-numeric or negative
// value, bits outside 2..8/16/32, duplicate (layer, wb, ab).
class LutTable {
 public:
  static LutTable load(const std::string& path);
  static LutTable parse(const std::string& text, const std::string& origin);

  // UserError naming the first table layer that is not in `layer_names`.
  void check_layers(const std::vector<std::string>& layer_names) const;
  // UserError "no entry for layer L at W4A8 in FILE" when absent.
  LayerEstimate lookup(const std::string& layer, int weight_bits, int activation_bits) const;
  bool has_energy() const { return has_energy_; }
  const std::string& origin() const { return origin_; }

 private:
  std::string origin_;
  bool has_energy_ = false;
  std::map<std::tuple<std::string, int, int>, LayerEstimate> rows_;
  std::map<std::tuple<std::string, int, int>, int> lines_;
};

// Per-layer latency/energy source for one (profile, model). Measured models
// (cpu-ort, command) are in target/measure.h and plug in here.
class LayerCostSource {
 public:
  virtual ~LayerCostSource() = default;
  virtual LayerEstimate estimate(const LayerDesc& layer, int weight_bits, int activation_bits) = 0;
  // Latency (ms) of the whole model that no layer row holds and no layer
  // choice changes (its Adds, pools, input Quantize), added once to a total.
  virtual double fixed_latency_ms() { return 0; }
};

// The source for an analytic or lut profile (nullptr for generic). For
// measured profiles use target::measured_source (measure.h).
std::unique_ptr<LayerCostSource> analytic_source(const Profile& profile, const ModelInfo& model);

struct TargetLayerCost {
  cost::LayerCost bits;  // weight memory, BOPs, MACs
  std::optional<double> latency_ms;
  std::optional<double> energy_mj;
  bool allowed = true;   // allows() for this layer's bits and granularity
  std::string why_not;   // the reason when not allowed
};

struct TargetCosts {
  std::string target;
  std::vector<TargetLayerCost> layers;
  cost::CostSummary bits;             // totals of the bit budget
  std::optional<double> latency_ms;   // sum over layers, when the target has latency
  std::optional<double> energy_mj;
  // evaluate_reference(): why latency and energy are missing ("" otherwise).
  std::string missing_reason;
};

// Costs of `precision` (resolved per layer name) on `profile`. `source` may be
// nullptr for generic targets.
TargetCosts evaluate(const Profile& profile, const ModelInfo& model,
                     const std::map<std::string, quant::LayerPrecision>& precision, quant::Granularity granularity,
                     LayerCostSource* source);

// evaluate() for a reference configuration (uniform FP32 or W8A8, which
// relative bounds scale): when `source` cannot cost it (a cost table without
// those bit-widths) the result has no latency and energy and says why in
// missing_reason, instead of a UserError; only a latency or energy bound
// relative to it then fails (target::resolve names the reason). On a
// measured target in the integer form the all-float reference latency is the
// whole FP32 file timed on the target's runner: the form's float rows include
// the boundaries a float layer adds to an integer chain, which an all-float
// model does not have.
TargetCosts evaluate_reference(const Profile& profile, const ModelInfo& model,
                               const std::map<std::string, quant::LayerPrecision>& precision,
                               quant::Granularity granularity, LayerCostSource* source);

}  // namespace autoprec::target
