#include "quant/quantized_model.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <limits>
#include <tuple>

#include "quant/matmul_nbits.h"
#include "util/error.h"

namespace autoprec::quant {
namespace {

constexpr int64_t kSamplesPerBatch = 8192;
constexpr int64_t kMaxSamples = 1 << 18;

// Quantization error of x under a per-tensor grid, for the clipping searches.
double quant_error(const at::Tensor& x, double scale, int64_t zero_point, QuantGrid grid) {
  at::Tensor y = at::fake_quantize_per_tensor_affine(x, scale, zero_point, grid.qmin, grid.qmax);
  return (y - x).pow(2).mean().item<double>();
}

std::pair<double, int64_t> affine_params(double lo, double hi, QuantGrid grid) {
  double scale = (hi - lo) / static_cast<double>(grid.qmax - grid.qmin);
  if (!(scale > 0) || !std::isfinite(scale)) scale = 1e-8;
  int64_t zero_point = grid.qmin - static_cast<int64_t>(std::nearbyint(lo / scale));
  zero_point = std::clamp(zero_point, grid.qmin, grid.qmax);
  return {scale, zero_point};
}

}  // namespace

namespace {
// The weight scales `q`'s layout asks for: per block, per channel or per tensor.
at::Tensor scales_of(const TensorQuantizer& q, const at::Tensor& weight, int bits, RangeMethod method) {
  if (q.block > 0) return weight_scales(weight_blocks(weight, q.axis, q.block_axis, q.block), bits, 0, method);
  return weight_scales(weight, bits, q.axis, method);
}
}  // namespace

at::Tensor TensorQuantizer::apply(const at::Tensor& x) const {
  if (!enabled) return x;
  if (block > 0) {
    at::Tensor rows = weight_blocks(x, axis, block_axis, block);
    at::Tensor q = learnable ? fake_quantize_learnable(rows, scale, zero_point.to(at::kFloat), 0, grid)
                             : fake_quantize_per_channel(rows, scale, zero_point, 0, grid);
    return weight_from_blocks(q, x, axis, block_axis);
  }
  if (learnable) return fake_quantize_learnable(x, scale, zero_point.to(at::kFloat), axis, grid);
  if (axis >= 0) return fake_quantize_per_channel(x, scale, zero_point, axis, grid);
  return fake_quantize_per_tensor(x, scale.item<double>(), zero_point.item<int64_t>(), grid);
}

at::Tensor TensorQuantizer::apply_cached(const at::Tensor& x) const {
  if (!c10::InferenceMode::is_enabled() || x.is_inference()) return apply(x);
  const void* identity = x.unsafeGetTensorImpl();
  int64_t version = static_cast<int64_t>(x._version());
  if (!cached_.defined() || identity != cached_input_ || version != cached_version_) {
    cached_ = apply(x);
    cached_input_ = identity;
    cached_version_ = version;
  }
  return cached_;
}

at::Tensor weight_scales(const at::Tensor& weight, int bits, int64_t axis, RangeMethod method) {
  c10::InferenceMode guard;
  QuantGrid grid = signed_grid(bits);
  at::Tensor w = weight.detach().to(at::kFloat);
  at::Tensor rows = axis >= 0 ? w.movedim(axis, 0).reshape({w.size(axis), -1}) : w.reshape({1, -1});
  at::Tensor max_abs = rows.abs().amax(1).clamp_min(1e-12);
  at::Tensor best = max_abs / static_cast<double>(grid.qmax);
  if (method == RangeMethod::Mse) {
    // Per-channel grid search over clipping ratios; low bit-widths gain most.
    at::Tensor best_error = at::full({rows.size(0)}, std::numeric_limits<float>::infinity());
    for (int step = 0; step <= 50; ++step) {
      double ratio = 0.2 + 0.8 * step / 50.0;
      at::Tensor scale = max_abs * ratio / static_cast<double>(grid.qmax);
      at::Tensor zero = at::zeros({rows.size(0)}, at::TensorOptions().dtype(at::kInt));
      at::Tensor q = at::fake_quantize_per_channel_affine(rows, scale, zero, 0, grid.qmin, grid.qmax);
      at::Tensor error = (q - rows).pow(2).mean(1);
      at::Tensor better = error < best_error;
      best = at::where(better, scale, best);
      best_error = at::where(better, error, best_error);
    }
  }
  return best.contiguous();
}

at::Tensor weight_blocks(const at::Tensor& weight, int64_t axis, int64_t block_axis, int64_t block) {
  TORCH_CHECK(weight.dim() == 2 && axis != block_axis && block > 0, "weight_blocks: a 2-D weight and two axes");
  at::Tensor w = axis == 0 ? weight : weight.t();  // [C, K]
  const int64_t channels = w.size(0), k = w.size(1);
  const int64_t blocks = (k + block - 1) / block;
  if (blocks * block != k) w = at::constant_pad_nd(w, {0, blocks * block - k});
  return w.reshape({channels * blocks, block});
}

at::Tensor weight_from_blocks(const at::Tensor& rows, const at::Tensor& like, int64_t axis, int64_t block_axis) {
  const int64_t channels = like.size(axis), k = like.size(block_axis);
  at::Tensor w = rows.reshape({channels, -1}).narrow(1, 0, k);
  return axis == 0 ? w : w.t();
}

std::pair<double, double> activation_range(const at::Tensor& samples, double observed_min, double observed_max, int bits,
                                           bool unsigned_grid, RangeMethod method, double percentile) {
  c10::InferenceMode guard;
  double lo = unsigned_grid ? 0.0 : std::min(observed_min, 0.0);
  double hi = std::max(observed_max, 0.0);
  if (method == RangeMethod::Percentile && samples.numel() > 0) {
    at::Tensor s = samples.to(at::kDouble);
    hi = std::max(0.0, at::quantile(s, percentile / 100.0).item<double>());
    if (!unsigned_grid) lo = std::min(0.0, at::quantile(s, 1.0 - percentile / 100.0).item<double>());
  } else if (method == RangeMethod::Mse && samples.numel() > 0) {
    QuantGrid grid = quant::unsigned_grid(bits);
    double best_error = std::numeric_limits<double>::infinity();
    double best_lo = lo;
    double best_hi = hi;
    for (int step = 0; step <= 70; ++step) {
      double ratio = 0.3 + 0.01 * step;
      auto [scale, zero_point] = affine_params(lo * ratio, hi * ratio, grid);
      double error = quant_error(samples, scale, zero_point, grid);
      if (error < best_error) {
        best_error = error;
        best_lo = lo * ratio;
        best_hi = hi * ratio;
      }
    }
    lo = best_lo;
    hi = best_hi;
  }
  if (hi <= lo) hi = lo + 1e-6;
  return {lo, hi};
}

QuantizedModel::QuantizedModel(std::shared_ptr<const graph::Graph> graph, const PrecisionConfig& config,
                               const std::string& origin)
    : config_(config), origin_(origin), executor_(graph, origin) {
  layers_ = find_quantizable_layers(*graph, config.options.quantize_activation_matmul);
  if (layers_.empty()) fail("{} has no quantizable layer (Conv, Gemm or MatMul with a weight initializer)", origin);
  precision_ = resolve(config, layer_names(layers_));
  for (const QuantLayer& layer : layers_) {
    const LayerPrecision& p = precision_.at(layer.name);
    auto wq = std::make_shared<TensorQuantizer>();
    if (layer.weight_input >= 0 && !is_float_bits(p.weight_bits)) {
      wq->enabled = true;
      wq->grid = signed_grid(p.weight_bits);
      wq->axis = config.options.weight_granularity == Granularity::PerChannel ? layer.channel_axis : -1;
      auto calibration = config.calibration.find(layer.name);
      const at::Tensor& weight = executor_.parameters().at(graph->find_node(layer.name)->inputs[layer.weight_input]);
      int64_t channels = wq->axis >= 0 ? weight.size(wq->axis) : 1;
      std::string what = fmt::format("{} channel(s)", channels);
      if (wq->axis >= 0 && runs_as_matmul_nbits(*graph, layer, p)) {
        wq->block_axis = matmul_nbits_k_axis(layer);
        const int64_t k = weight.size(wq->block_axis);
        wq->block = matmul_nbits_block_size(k);
        const int64_t blocks = (k + wq->block - 1) / wq->block;
        what = fmt::format("{} channel(s) x {} block(s) of {} along K", channels, blocks, wq->block);
        channels *= blocks;
      }
      if (calibration != config.calibration.end() && !calibration->second.weight_scale.empty()) {
        const auto& s = calibration->second.weight_scale;
        if (static_cast<int64_t>(s.size()) != channels) {
          fail("calibrated weight_scale of layer '{}' has {} values; the layer has {}", layer.name, s.size(), what);
        }
        wq->scale = at::tensor(std::vector<float>(s.begin(), s.end()));
      } else {
        wq->scale = scales_of(*wq, weight, p.weight_bits, config.options.weight_clipping);
      }
      wq->zero_point = at::zeros({channels}, at::TensorOptions().dtype(at::kInt));
    }
    weights_[layer.name] = wq;

    auto aq = std::make_shared<TensorQuantizer>();
    activations_[layer.name] = aq;
    auto calibration = config.calibration.find(layer.name);
    if (config.options.format == QuantForm::Qdq && !is_float_bits(p.activation_bits) &&
        calibration != config.calibration.end() &&
        calibration->second.activation_min && calibration->second.activation_max) {
      set_activation_range(layer, *calibration->second.activation_min, *calibration->second.activation_max);
    }
  }
  if (config.options.format == QuantForm::Int) {
    plan_ = plan_integer_form(*graph, layers_, precision_);
    for (const std::string& root : plan_->roots()) {
      tensors_[root] = std::make_shared<TensorQuantizer>();
      auto range = config.tensor_ranges.find(root);
      if (range != config.tensor_ranges.end()) set_tensor_range(root, range->second.min, range->second.max);
    }
    for (const QuantLayer& layer : layers_) {
      if (plan_->integer_layers.count(layer.name)) activations_[layer.name] = tensors_.at(plan_->find(layer.activation)->root);
    }
  }
  attach();
}

const TensorQuantizer& QuantizedModel::tensor_quantizer(const std::string& value) const {
  const IntegerTensor* t = plan_ ? plan_->find(value) : nullptr;
  if (!t) fail("tensor '{}' is not quantized in this configuration", value);
  return *tensors_.at(t->root);
}

at::Tensor QuantizedModel::bias_scale(const std::string& layer) const {
  if (!plan_ || !plan_->integer_layers.count(layer)) return {};
  const TensorQuantizer& aq = *activations_.at(layer);
  const TensorQuantizer& wq = *weights_.at(layer);
  return (aq.scale.detach().abs() * wq.scale.detach().abs()).to(at::kFloat).contiguous();
}

void QuantizedModel::set_tensor_range(const std::string& value, double lo, double hi) {
  TensorQuantizer& q = *tensors_.at(value);
  q.enabled = true;
  q.axis = -1;
  q.grid = unsigned_grid(8);
  auto [scale, zero_point] = lo >= 0 ? affine_params(0.0, hi, q.grid) : affine_params(lo, hi, q.grid);
  q.scale = at::full({1}, scale, at::TensorOptions().dtype(at::kFloat));
  q.zero_point = at::full({1}, zero_point, at::TensorOptions().dtype(at::kInt));
  tensor_ranges_[value] = {lo, hi};
}

void QuantizedModel::set_activation_range(const QuantLayer& layer, double lo, double hi) {
  const LayerPrecision& p = precision_.at(layer.name);
  TensorQuantizer& aq = *activations_.at(layer.name);
  bool is_unsigned = lo >= 0;
  aq.enabled = true;
  aq.axis = -1;
  aq.grid = unsigned_grid(p.activation_bits);
  auto [scale, zero_point] = is_unsigned ? affine_params(0.0, hi, aq.grid) : affine_params(lo, hi, aq.grid);
  aq.scale = at::full({1}, scale, at::TensorOptions().dtype(at::kFloat));
  aq.zero_point = at::full({1}, zero_point, at::TensorOptions().dtype(at::kInt));
  ranges_[layer.name] = {lo, hi};
}

void QuantizedModel::attach() {
  executor_.clear_input_transforms();
  executor_.clear_value_transforms();
  for (const QuantLayer& layer : layers_) {
    std::shared_ptr<TensorQuantizer> wq = weights_.at(layer.name);
    std::shared_ptr<TensorQuantizer> aq = activations_.at(layer.name);
    if (wq->enabled) {
      executor_.set_input_transform(layer.name, static_cast<size_t>(layer.weight_input),
                                    [wq](const at::Tensor& w) { return wq->apply_cached(w); });
    }
    if (plan_) {
      const graph::Node* node = executor_.graph().find_node(layer.name);
      if (plan_->integer_layers.count(layer.name) && node->inputs.size() > 2 && !node->inputs[2].empty() &&
          executor_.parameters().count(node->inputs[2]) && executor_.parameters().at(node->inputs[2]).dim() == 1) {
        // int32 bias grid s_x * s_w[c]; straight-through so the bias still trains.
        executor_.set_input_transform(layer.name, 2, [aq, wq](const at::Tensor& b) {
          at::Tensor s = (aq->scale.abs() * wq->scale.abs()).to(b.scalar_type());
          at::Tensor q = at::round(b / s).clamp_(-2147483648.0, 2147483647.0) * s;
          return b.requires_grad() || s.requires_grad() ? b + (q - b).detach() : q;
        });
      }
      continue;
    }
    if (!is_float_bits(precision_.at(layer.name).activation_bits)) {
      executor_.set_input_transform(layer.name, 0, [aq](const at::Tensor& x) { return aq->apply(x); });
      if (layer.weight_input < 0) {
        executor_.set_input_transform(layer.name, 1, [aq](const at::Tensor& x) { return aq->apply(x); });
      }
    }
  }
  for (const auto& [value, q] : tensors_) {
    std::shared_ptr<TensorQuantizer> tq = q;
    executor_.set_value_transform(value, [tq](const at::Tensor& x) { return tq->apply(x); });
  }
}

bool QuantizedModel::calibrated() const {
  for (const auto& [value, q] : tensors_) {
    if (!q->enabled) return false;
  }
  if (plan_) return true;  // the integer form quantizes tensors, not layer inputs
  for (const QuantLayer& layer : layers_) {
    if (!is_float_bits(precision_.at(layer.name).activation_bits) && !activations_.at(layer.name)->enabled) return false;
  }
  return true;
}

CalibrationStats collect_activation_stats(const exec::Executor& executor, const std::vector<QuantLayer>& layers,
                                          const std::vector<at::Tensor>& inputs, int64_t batch_size, bool every_value) {
  struct Accumulator {
    double min = std::numeric_limits<double>::infinity();
    double max = -std::numeric_limits<double>::infinity();
    std::vector<at::Tensor> samples;
    int64_t sampled = 0;
  };
  std::map<std::string, Accumulator> acc;
  for (const QuantLayer& layer : layers) {
    acc[layer.activation];
    if (!layer.second_activation.empty()) acc[layer.second_activation];
  }
  const graph::Graph& g = executor.graph();
  if (every_value) {
    for (const graph::ValueInfo& v : g.inputs) acc[v.name];
    for (const graph::Node& node : g.nodes) {
      for (const std::string& out : node.outputs) {
        if (!out.empty()) acc[out];
      }
    }
  }
  exec::Executor probe = executor;
  probe.clear_input_transforms();
  probe.clear_value_transforms();
  probe.set_training(false);
  auto observe = [&acc](const std::string& name, const at::Tensor& t) {
    auto it = acc.find(name);
    if (it == acc.end()) return;
    Accumulator& a = it->second;
    at::Tensor flat = t.detach().reshape({-1}).to(at::kFloat);
    a.min = std::min(a.min, flat.min().item<double>());
    a.max = std::max(a.max, flat.max().item<double>());
    if (a.sampled < kMaxSamples) {
      int64_t step = std::max<int64_t>(1, flat.numel() / kSamplesPerBatch);
      at::Tensor picked = flat.slice(0, 0, flat.numel(), step).clone();
      a.sampled += picked.numel();
      a.samples.push_back(picked);
    }
  };
  probe.set_observer(observe);
  const int64_t n = inputs.empty() ? 0 : inputs.front().size(0);
  for (int64_t start = 0; start < n; start += batch_size) {
    std::vector<at::Tensor> batch;
    for (const at::Tensor& x : inputs) batch.push_back(x.slice(0, start, std::min(n, start + batch_size)));
    // Graph inputs are not produced by a node, so the observer does not see them.
    for (size_t i = 0; i < batch.size() && i < g.inputs.size(); ++i) observe(g.inputs[i].name, batch[i]);
    probe.run(batch);
  }
  CalibrationStats stats;
  for (auto& [name, a] : acc) {
    if (!std::isfinite(a.min)) continue;
    stats[name] = {a.min, a.max, a.samples.empty() ? at::empty({0}) : at::cat(a.samples)};
  }
  return stats;
}

void QuantizedModel::calibrate(const std::vector<at::Tensor>& inputs, int64_t batch_size) {
  calibrate(collect_activation_stats(executor_, layers_, inputs, batch_size, plan_.has_value()));
  config_.calibration_samples = inputs.empty() ? 0 : inputs.front().size(0);
}

void QuantizedModel::calibrate(const CalibrationStats& stats) {
  if (plan_) {
    for (const IntegerTensor& t : plan_->tensors) {
      if (t.root != t.value) continue;
      auto found = stats.find(t.value);
      if (found == stats.end()) fail("calibration never saw tensor '{}' (collect the stats of every value)", t.value);
      const ActivationStats& s = found->second;
      bool is_unsigned = t.nonnegative || s.min >= 0;
      auto [lo, hi] = activation_range(s.samples, s.min, s.max, 8, is_unsigned, config_.options.activation_calibration,
                                       config_.options.percentile);
      set_tensor_range(t.value, lo, hi);
    }
    return;
  }
  for (const QuantLayer& layer : layers_) {
    const LayerPrecision& p = precision_.at(layer.name);
    if (is_float_bits(p.activation_bits)) continue;
    auto found = stats.find(layer.activation);
    if (found == stats.end()) fail("calibration never saw the input of layer '{}'", layer.name);
    ActivationStats s = found->second;
    if (!layer.second_activation.empty() && stats.count(layer.second_activation)) {
      // One quantizer serves both inputs of an activation MatMul.
      const ActivationStats& other = stats.at(layer.second_activation);
      s.min = std::min(s.min, other.min);
      s.max = std::max(s.max, other.max);
      s.samples = at::cat({s.samples, other.samples});
    }
    bool is_unsigned = layer.nonnegative_input || s.min >= 0;
    auto [lo, hi] = activation_range(s.samples, s.min, s.max, p.activation_bits, is_unsigned,
                                     config_.options.activation_calibration, config_.options.percentile);
    set_activation_range(layer, lo, hi);
  }
}

void QuantizedModel::refresh_weight_scales() {
  for (const QuantLayer& layer : layers_) {
    TensorQuantizer& wq = *weights_.at(layer.name);
    if (!wq.enabled || wq.learnable) continue;
    const at::Tensor& weight = executor_.parameters().at(executor_.graph().find_node(layer.name)->inputs[1]);
    const int bits = precision_.at(layer.name).weight_bits;
    wq.scale = scales_of(wq, weight, bits, config_.options.weight_clipping);
    wq.clear_cache();
  }
}

std::vector<at::Tensor> QuantizedModel::enable_learnable_scales() {
  std::vector<at::Tensor> scales;
  auto make_learnable = [&](TensorQuantizer& q) {
    if (!q.enabled || q.learnable) return;
    q.learnable = true;
    q.scale = q.scale.detach().clone().requires_grad_(true);
    q.clear_cache();
    scales.push_back(q.scale);
  };
  for (const QuantLayer& layer : layers_) {
    make_learnable(*weights_.at(layer.name));
    make_learnable(*activations_.at(layer.name));
  }
  for (const auto& [value, q] : tensors_) make_learnable(*q);
  return scales;
}

namespace {

// The range a learnable quantizer's current scale and zero point cover.
std::pair<double, double> learned_range(const TensorQuantizer& q) {
  double scale = std::abs(q.scale.detach().item<double>());
  auto zero_point = static_cast<double>(q.zero_point.item<int64_t>());
  return {scale * (static_cast<double>(q.grid.qmin) - zero_point), scale * (static_cast<double>(q.grid.qmax) - zero_point)};
}

}  // namespace

PrecisionConfig QuantizedModel::calibrated_config() const {
  PrecisionConfig out = config_;
  out.calibration.clear();
  out.tensor_ranges.clear();
  for (const auto& [value, q] : tensors_) {
    if (!q->enabled) continue;
    auto [lo, hi] = q->learnable ? learned_range(*q) : tensor_ranges_.at(value);
    out.tensor_ranges[value] = {lo, hi};
  }
  for (const QuantLayer& layer : layers_) {
    LayerCalibration c;
    auto range = ranges_.find(layer.name);
    const TensorQuantizer& aq = *activations_.at(layer.name);
    if (plan_) {
      // Format Int: activation ranges are the tensors'.
    } else if (aq.enabled && aq.learnable) {
      std::tie(c.activation_min, c.activation_max) = learned_range(aq);
    } else if (range != ranges_.end()) {
      c.activation_min = range->second.first;
      c.activation_max = range->second.second;
    }
    const TensorQuantizer& wq = *weights_.at(layer.name);
    if (wq.enabled) {
      at::Tensor s = wq.scale.detach().to(at::kDouble).contiguous();
      c.weight_scale.assign(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
    }
    if (c.activation_min || !c.weight_scale.empty()) out.calibration[layer.name] = c;
  }
  return out;
}

}  // namespace autoprec::quant
