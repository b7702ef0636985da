// Per-layer costs measured on a real runtime (cpu-ort: ONNX Runtime on this
// machine; command: any runner speaking the protocol of runtime/runner.h),
// and the per-layer cost table that `autoprec profile` writes.
//
// A layer is measured as a single-layer ONNX model, in one of two forms
// (cost_model.form):
//   export (default)  the layer exactly as `autoprec export` writes it
//       (deploy/qdq_export.h): weights (wb <= 8) in their container (INT4 at
//       opset 21 for 2-4 bits, INT8 otherwise) with per-output-channel scales
//       and DequantizeLinear; the input (ab <= 8) through [Clip] ->
//       QuantizeLinear -> DequantizeLinear to uint8, the Clip when ab < 8;
//       bias and output float. This is what a deployed search result runs, so
//       the per-layer sum tracks the exported model's latency.
//   kernel  the best case of an integer kernel (QDQ, opset 13): int8 weights
//       with per-output-channel scales, an int32 bias with scale s_x * s_w,
//       uint8 Q/DQ on the input and, when both sides are quantized, on the
//       output too, so that ORT fuses the group into QLinearConv/QGemm.
//       Widths below 8 bits use 8-bit containers.
// 16 and 32 bits run in float32 in both forms.
// A profile with `format: int` measures form export as the integer form
// writes the layer (deploy/layer_model.h, the export's own code path): uint8
// in and out, integer kernel between, or, for a layer kept float, the float
// layer with the DequantizeLinear and QuantizeLinear it adds to an integer
// chain. The rows are then put in context: the integer rows are scaled so
// that they add up to the whole model timed all integer (W7A8, which also
// runs the Adds, pools and QuantizeLinear no row holds), and a float row is
// the layer's scaled integer row plus the whole model with only that layer
// float (or weight-only: MatMulNBits) minus the whole model all integer
// (island_cost): what an island costs is what it does to the chain.
// On autoprec's native runtime (`runtime: native`) a row is the very kernel
// the whole model runs, in the same layout, so the rows are not scaled: the
// whole model all integer minus the sum of its rows is a fixed cost
// (fixed_latency_ms: the Adds, pools and input Quantize) that every total
// adds once, and the float islands are added as above.
// The cpu-ort keys include the CPU's SIMD features (target::cpu_features()).
// Inputs are uniform [0, 1) from a fixed seed; the latency is the median of
// `repeats` runs after `warmup` runs.
//
// The runner's fixed cost per inference (copying the input in and the output
// out, session dispatch: ~0.1 ms in onnxruntime-node, as much as a whole
// small layer) is not the layer's. With `timing: kernels` (the default) the
// latency is the median over runs of the summed operator kernel times that
// ORT's profiler reports (the layer with its Q/DQ and layout transposes);
// `timing: wall` keeps the runner's wall time per inference.
//
// Measurements are cached in a CSV (key,latency_ms) keyed by what determines
// the time: target, operator, input/weight shapes, attributes, form and
// containers (cpu-ort) or form and bits (command), threads and timing. Each new measurement is appended
// and flushed at once, so an interrupted profile run resumes from the cache.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "target/cost_model.h"

namespace autoprec::target {

// The cache key of `layer` at these bits on `profile`.
std::string measurement_key(const Profile& profile, const LayerDesc& layer, int weight_bits, int activation_bits);

// The serialized single-layer ONNX model described above (input "x", output
// "y"), in the export form or the kernel form.
std::string single_layer_model(const graph::Graph& graph, const LayerDesc& layer, int weight_bits, int activation_bits,
                               bool export_form = true);


// CSV cache "key,latency_ms". A missing file is an empty cache; malformed
// lines are UserErrors naming FILE:LINE.
class MeasurementCache {
 public:
  explicit MeasurementCache(std::string path);  // empty path: in memory only
  std::optional<double> find(const std::string& key) const;
  void add(const std::string& key, double latency_ms);  // appends and flushes
  const std::string& path() const { return path_; }
  size_t size() const { return values_.size(); }

 private:
  std::string path_;
  std::map<std::string, double> values_;
};

// Measures through a runner (started on first use) with a cache. UserError
// when `profile` is not cpu-ort or command.
class MeasuredSource : public LayerCostSource {
 public:
  MeasuredSource(const Profile& profile, const ModelInfo& model, const std::string& cache_path);
  ~MeasuredSource() override;
  LayerEstimate estimate(const LayerDesc& layer, int weight_bits, int activation_bits) override;
  double fixed_latency_ms() override;
  int measured() const { return measured_; }  // runner measurements so far
  int cached() const { return cached_; }      // answers from the cache so far

 private:
  // The cached median of `key`, else measures the model `build` returns on a
  // uniform [0, 1) input of `shape` and caches it.
  double time_model(const std::string& key, const std::vector<int64_t>& shape, bool* from_cache,
                    const std::function<std::string()>& build, bool uint8_input = false);

  // Integer form: the whole model with only `layer` at W`wb`A`ab` (float,
  // or weight-only MatMulNBits) minus the whole model all integer (W7A8),
  // timed on the runner, cached per model, layer and bits.
  double island_cost(const LayerDesc& layer, int wb, int ab);
  // The whole model in the integer form at W7A8 with `layer` (if any) at
  // W`wb`A`ab`, timed on the runner; cached per model, layer and bits.
  double whole_integer_ms(const std::string& layer, int wb = 32, int ab = 32);
  // The rows in context (integer form with a model file): the factor on the
  // integer rows (ORT: whole_integer_ms("") over the sum of the layers'
  // integer rows; native: 1) and the fixed cost (native: the whole minus
  // that sum; ORT: 0).
  struct IntegerContext {
    double scale = 1;
    double fixed_ms = 0;
  };
  const IntegerContext& integer_context();
  bool in_integer_context() const;
  std::optional<IntegerContext> integer_context_;
  bool in_context_ = false;

  struct Impl;
  std::unique_ptr<Impl> impl_;
  int measured_ = 0;
  int cached_ = 0;
};

// Latency of a whole model file on a measured target.
struct ModelLatency {
  double ms = 0;        // by the profile's timing: summed kernel times (kernels) or wall time (wall)
  double wall_ms = 0;   // median wall time of one inference as the runner sees it
  std::optional<double> kernel_ms;  // median summed kernel time, when the runner reports it
};

// Times `onnx_path` on batch-1 input `input` through the runner of `profile`
// (cpu-ort: ONNX Runtime; command: the profile's runner) with its threads,
// warm-up, repeats, timeout and timing: the number a per-layer table only
// approximates by a sum (a whole model keeps layouts between layers and fuses
// across them). Not cached. UserError when the profile does not measure or
// the runner fails.
ModelLatency measure_model_file(const Profile& profile, const std::string& onnx_path, const at::Tensor& input);

// Times `model` exported in the integer form at uniform W`weight_bits`A
// `activation_bits` (with `exceptions`, as PrecisionConfig::layers), its
// ranges calibrated on uniform [0, 1) inputs (latency does not depend on the
// values), through the runner of `profile` like measure_model_file. Not cached.
ModelLatency measure_integer_model(const Profile& profile, const ModelInfo& model, int weight_bits, int activation_bits,
                                   const decltype(quant::PrecisionConfig::layers)& exceptions = {});
// Where `autoprec cost` keeps measurements for a measured target:
// $AUTOPREC_CACHE_DIR, else $XDG_CACHE_HOME/autoprec, else ~/.cache/autoprec;
// file TARGET.csv.
std::string default_cache_path(const Profile& profile);

// Any profile's per-layer source: analytic_source() or a MeasuredSource
// with `cache_path` (default_cache_path() when empty).
std::unique_ptr<LayerCostSource> make_source(const Profile& profile, const ModelInfo& model,
                                             const std::string& cache_path = "");

// The (weight bits, activation bits) pairs `profile` supports for `op`,
// restricted to the given sets when they are non-empty.
std::vector<std::pair<int, int>> supported_pairs(const Profile& profile, const std::string& op,
                                                 const std::set<int>& only_weight_bits = {},
                                                 const std::set<int>& only_activation_bits = {});

struct TableRow {
  std::string layer;
  int weight_bits = 8;
  int activation_bits = 8;
  double latency_ms = 0;
  std::optional<double> energy_mj;
};

// The cost table: every layer x supported pair, in model order. `on_row` is
// called after each row (for progress). UserError for a generic target.
std::vector<TableRow> build_table(const Profile& profile, const ModelInfo& model, LayerCostSource& source,
                                  const std::set<int>& only_weight_bits, const std::set<int>& only_activation_bits,
                                  const std::function<void(size_t done, size_t total)>& on_row = {});

// Writes the rows as a lut CSV (layer,weight_bits,activation_bits,latency_ms,energy_mj), atomically.
void write_table(const std::string& path, const std::vector<TableRow>& rows);

}  // namespace autoprec::target
