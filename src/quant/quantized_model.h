// The quantized network a precision configuration generates: the model's
// executor with a fake quantizer on the weight and on the input activation of
// every quantizable layer, each at its own bit-width. The network stays
// differentiable (straight-through estimator), so it can be fine-tuned.
//
// Weights: symmetric, narrow-range signed grid, per output channel (or per
// tensor), scales from min/max or from an MSE-optimal clipping search per
// channel. Activations: unsigned grid when the tensor is non-negative (its
// producer is ReLU/Clip(min>=0)/Sigmoid, or calibration saw no negative
// value), otherwise asymmetric with a zero point; ranges from calibration by
// min/max, percentile or MSE-optimal clipping. Bits 16/32 leave a tensor float.
//
// With options.format == Int the activations follow quant/integer_form.h
// instead: one 8-bit quantizer per quantized tensor, applied where the tensor
// is produced (every reader sees the same grid values), an integer layer's
// input quantizer is the quantizer of the tensor it reads, and its bias is
// rounded to the int32 grid of scale s_x * s_w[c] (straight-through in
// training), as the integer export stores it.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "exec/executor.h"
#include "quant/config.h"
#include "quant/fake_quant.h"
#include "quant/integer_form.h"
#include "quant/layers.h"

namespace autoprec::quant {

// Quantization parameters of one tensor.
struct TensorQuantizer {
  bool enabled = false;     // false: the tensor stays float
  QuantGrid grid;
  int64_t axis = -1;        // channel axis for per-channel, -1 for per-tensor
  // > 0: blocked (a 2-D weight, MatMulNBits layers: quant/matmul_nbits.h):
  // each channel's `block_axis` is cut into blocks of `block` values (the last
  // one may be partial), each block with its own scale.
  int64_t block = 0;
  int64_t block_axis = -1;
  at::Tensor scale;         // float32 [C], [1], or [C * ceil(K / block)] channel-major when blocked
  at::Tensor zero_point;    // int32, same shape
  bool learnable = false;   // LSQ: scale requires grad

  at::Tensor apply(const at::Tensor& x) const;
  // Like apply(), but under inference mode reuses the last result while `x`
  // is the same, unmodified tensor (weights between training steps).
  at::Tensor apply_cached(const at::Tensor& x) const;
  void clear_cache() const { cached_input_ = nullptr; cached_ = at::Tensor(); }

 private:
  mutable const void* cached_input_ = nullptr;
  mutable int64_t cached_version_ = -1;
  mutable at::Tensor cached_;
};

// What calibration observed about one activation tensor of the float model.
struct ActivationStats {
  double min = 0;
  double max = 0;
  at::Tensor samples;  // a deterministic strided subsample, float32 1-D
};
// Keyed by value name.
using CalibrationStats = std::map<std::string, ActivationStats>;

// Runs the float model over `inputs` (every graph input, [N, ...] each, as
// data::Dataset::inputs gives them) in batches and records the
// stats of every activation entering one of `layers` or, with `every_value`,
// of every value the graph computes and its input (what the integer form may
// quantize, whatever the configuration). Deterministic.
CalibrationStats collect_activation_stats(const exec::Executor& executor, const std::vector<QuantLayer>& layers,
                                          const std::vector<at::Tensor>& inputs, int64_t batch_size = 256,
                                          bool every_value = false);

class QuantizedModel {
 public:
  // Resolves `config` against the model's quantizable layers (UserError on an
  // invalid config) and attaches weight quantizers; activation quantizers are
  // attached once ranges are known (from the config's calibration section or
  // from calibrate()).
  QuantizedModel(std::shared_ptr<const graph::Graph> graph, const PrecisionConfig& config,
                 const std::string& origin = "model");

  // Runs the float graph over `inputs` (every graph input, [N, ...] each) in
  // batches and sets every quantized activation's range by the configured
  // method. Deterministic. A one-input model may be given its tensor alone.
  void calibrate(const std::vector<at::Tensor>& inputs, int64_t batch_size = 256);
  void calibrate(const at::Tensor& images, int64_t batch_size = 256) {
    calibrate(std::vector<at::Tensor>{images}, batch_size);
  }
  // The same from stats collected once (they depend only on the float model).
  void calibrate(const CalibrationStats& stats);

  // True when every quantized activation has a range.
  bool calibrated() const;

  // Recomputes weight scales from the executor's current weights (skips
  // learnable scales).
  void refresh_weight_scales();

  // LSQ: makes the scale of every enabled quantizer a learnable tensor
  // (requires_grad) and returns those tensors for an optimizer. Call once the
  // model is calibrated; calibrated_config() then reports the learned ranges.
  std::vector<at::Tensor> enable_learnable_scales();

  exec::Executor& executor() { return executor_; }
  const exec::Executor& executor() const { return executor_; }
  const std::vector<QuantLayer>& layers() const { return layers_; }
  const PrecisionConfig& config() const { return config_; }
  const std::map<std::string, LayerPrecision>& precision() const { return precision_; }
  const TensorQuantizer& weight_quantizer(const std::string& layer) const { return *weights_.at(layer); }
  const TensorQuantizer& activation_quantizer(const std::string& layer) const { return *activations_.at(layer); }

  QuantForm format() const { return config_.options.format; }
  // Format Int: the plan the simulation follows, and the quantizer of a
  // quantized tensor (by value name; aliases give their root's). nullptr /
  // UserError otherwise.
  const IntegerPlan* integer_plan() const { return plan_ ? &*plan_ : nullptr; }
  const TensorQuantizer& tensor_quantizer(const std::string& value) const;
  // Format Int: the int32 bias grid of an integer layer, s_x * s_w[c]
  // (float32 [C]); undefined when the layer has no bias or is not integer.
  at::Tensor bias_scale(const std::string& layer) const;

  // The input configuration plus a calibration section holding every
  // activation range and weight scale, so later steps reuse them.
  PrecisionConfig calibrated_config() const;

 private:
  void attach();
  void set_activation_range(const QuantLayer& layer, double lo, double hi);
  void set_tensor_range(const std::string& value, double lo, double hi);

  PrecisionConfig config_;
  std::string origin_;
  exec::Executor executor_;
  std::vector<QuantLayer> layers_;
  std::map<std::string, LayerPrecision> precision_;
  std::map<std::string, std::shared_ptr<TensorQuantizer>> weights_;
  std::map<std::string, std::shared_ptr<TensorQuantizer>> activations_;
  std::map<std::string, std::pair<double, double>> ranges_;  // layer -> activation range
  std::optional<IntegerPlan> plan_;                           // format Int
  std::map<std::string, std::shared_ptr<TensorQuantizer>> tensors_;  // format Int: root value -> quantizer
  std::map<std::string, std::pair<double, double>> tensor_ranges_;   // format Int: root value -> range
};

// Per-channel (axis >= 0) or per-tensor symmetric weight scales for `bits`,
// by min/max or by the MSE-optimal clipping search. Returns float32 [C] or [1].
at::Tensor weight_scales(const at::Tensor& weight, int bits, int64_t axis, RangeMethod method);

// The blocks of a 2-D weight as rows: [C * ceil(K / block), block], channel
// `axis`, K along `block_axis`, the last block of each channel zero padded.
// Row r is block r % kb of channel r / kb (the layout of a blocked scale).
at::Tensor weight_blocks(const at::Tensor& weight, int64_t axis, int64_t block_axis, int64_t block);
// The inverse: rows back to a weight shaped like `like`.
at::Tensor weight_from_blocks(const at::Tensor& rows, const at::Tensor& like, int64_t axis, int64_t block_axis);

// Clipping range [lo, hi] of activation samples (1-D float) for `bits`:
// min/max, percentile (p in (50, 100]) or MSE-optimal. The range always
// contains 0; with `unsigned_grid` lo is 0.
std::pair<double, double> activation_range(const at::Tensor& samples, double observed_min, double observed_max, int bits,
                                           bool unsigned_grid, RangeMethod method, double percentile);

}  // namespace autoprec::quant
