#include "search/environment.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>

#include "search/greedy.h"
#include "target/cost_model.h"
#include "util/error.h"

namespace autoprec::search {

std::vector<LayerFeatures> layer_features(const target::ModelInfo& model) {
  std::vector<LayerFeatures> out;
  for (size_t l = 0; l < model.layers.size(); ++l) {
    const auto& desc = model.descs[l];
    const auto& layer = model.layers[l];
    const bool conv = layer.op == "Conv";
    auto channels = [&](const std::vector<int64_t>& shape) -> double {
      if (shape.empty()) return 0;
      return static_cast<double>(conv && shape.size() > 1 ? shape[1] : shape.back());
    };
    LayerFeatures f;
    f.conv = conv;
    f.depthwise = layer.depthwise;
    f.input_channels = channels(desc.input_shape);
    f.output_channels = channels(desc.output_shape);
    if (desc.weight_shape.size() == 4) f.kernel = static_cast<double>(desc.weight_shape[2]);
    if (desc.node != nullptr && desc.node->has("strides")) f.stride = static_cast<double>(desc.node->get_ints("strides")[0]);
    f.parameters = static_cast<double>(desc.weights);
    f.macs = static_cast<double>(desc.macs);
    if (desc.input_shape.size() == 4) f.feature_map = static_cast<double>(desc.input_shape[2] * desc.input_shape[3]);
    out.push_back(f);
  }
  return out;
}

Environment::Environment(ChoiceProblem problem, std::vector<LayerFeatures> features)
    : problem_(std::move(problem)), features_(std::move(features)) {
  validate(problem_);
  if (features_.size() != problem_.layers.size()) {
    fail("search environment: {} layer feature records for {} layers", features_.size(), problem_.layers.size());
  }
  for (size_t l = 0; l < problem_.layers.size(); ++l) {
    std::set<int> ws, as;
    for (const Option& o : problem_.layers[l].options) {
      ws.insert(o.precision.weight_bits);
      as.insert(o.precision.activation_bits);
      max_sensitivity_ = std::max(max_sensitivity_, o.sensitivity);
    }
    weight_sets_.emplace_back(ws.begin(), ws.end());
    activation_sets_.emplace_back(as.begin(), as.end());
    if (ws.size() > 1) steps_.push_back({l, true});
    if (as.size() > 1) steps_.push_back({l, false});
  }
  for (const LayerFeatures& f : features_) {
    max_channels_ = std::max({max_channels_, f.input_channels, f.output_channels});
    max_kernel_ = std::max(max_kernel_, f.kernel);
    max_parameters_ = std::max(max_parameters_, f.parameters);
    max_macs_ = std::max(max_macs_, f.macs);
    max_feature_map_ = std::max(max_feature_map_, f.feature_map);
  }
}

const std::vector<int>& Environment::bit_set(size_t step) const {
  const EnvironmentStep& s = steps_.at(step);
  return s.weight ? weight_sets_[s.layer] : activation_sets_[s.layer];
}

std::vector<double> Environment::state(size_t step, const Decisions& decided, double previous_action) const {
  const size_t l = steps_.at(step).layer;
  const LayerFeatures& f = features_[l];
  const size_t layers = problem_.layers.size();

  double used = 0, remaining = 1;
  if (!problem_.resources.empty() && std::isfinite(problem_.resources[0].budget) && problem_.resources[0].budget > 0) {
    double total = 0;
    for (size_t j = 0; j < layers; ++j) {
      const int w = decided.weight_bits.at(j), a = decided.activation_bits.at(j);
      double cheapest = std::numeric_limits<double>::infinity();
      for (const Option& o : problem_.layers[j].options) {
        if (w > 0 && o.precision.weight_bits != w) continue;
        if (a > 0 && o.precision.activation_bits != a) continue;
        cheapest = std::min(cheapest, o.costs[0]);
      }
      if (!std::isfinite(cheapest)) {  // a decided pair the layer lacks: nearest_choice will move it
        for (const Option& o : problem_.layers[j].options) cheapest = std::min(cheapest, o.costs[0]);
      }
      total += cheapest;
    }
    used = std::clamp(total / problem_.resources[0].budget, 0.0, 2.0) / 2.0;
    remaining = 1.0 - used;
  }
  double sensitivity = 0;
  for (const Option& o : problem_.layers[l].options) sensitivity = std::max(sensitivity, o.sensitivity);
  auto log_scaled = [](double v, double max) { return std::log1p(v) / std::log1p(max); };
  return {layers > 1 ? static_cast<double>(l) / static_cast<double>(layers - 1) : 0.0,
          f.conv ? 1.0 : 0.0,
          f.depthwise ? 1.0 : 0.0,
          f.input_channels / max_channels_,
          f.output_channels / max_channels_,
          f.kernel / max_kernel_,
          std::min(f.stride, 2.0) / 2.0,
          log_scaled(f.parameters, max_parameters_),
          log_scaled(f.macs, max_macs_),
          f.feature_map / max_feature_map_,
          steps_[step].weight ? 1.0 : 0.0,
          std::clamp(previous_action, 0.0, 1.0),
          used,
          remaining,
          std::max(0.0, sensitivity) / max_sensitivity_,
          static_cast<double>(step) / static_cast<double>(std::max<size_t>(1, steps_.size()))};
}

int Environment::bits_of_action(size_t step, double action) const {
  const std::vector<int>& set = bit_set(step);
  double a = std::isfinite(action) ? std::clamp(action, 0.0, 1.0) : 0.0;
  size_t idx = std::min(set.size() - 1, static_cast<size_t>(a * static_cast<double>(set.size())));
  return set[idx];
}

double Environment::action_of_bits(size_t step, int bits) const {
  const std::vector<int>& set = bit_set(step);
  auto it = std::find(set.begin(), set.end(), bits);
  if (it == set.end()) throw InternalError("bit-width not supported at this step");
  return (static_cast<double>(it - set.begin()) + 0.5) / static_cast<double>(set.size());
}

Choice Environment::nearest_choice(const Decisions& decided) const {
  Choice choice;
  for (size_t l = 0; l < problem_.layers.size(); ++l) {
    const int w = decided.weight_bits.at(l) > 0 ? decided.weight_bits[l] : weight_sets_[l].back();
    const int a = decided.activation_bits.at(l) > 0 ? decided.activation_bits[l] : activation_sets_[l].back();
    int best = 0;
    double best_distance = std::numeric_limits<double>::infinity();
    const auto& options = problem_.layers[l].options;
    for (size_t o = 0; o < options.size(); ++o) {
      double dw = options[o].precision.weight_bits - w, da = options[o].precision.activation_bits - a;
      double distance = std::abs(dw) + std::abs(da) + (dw > 0 || da > 0 ? 0.5 : 0.0);
      if (distance < best_distance) {
        best_distance = distance;
        best = static_cast<int>(o);
      }
    }
    choice.push_back(best);
  }
  return choice;
}

Environment::Episode Environment::play(const std::function<double(size_t, const std::vector<double>&)>& act) const {
  const size_t layers = problem_.layers.size();
  Decisions decided{std::vector<int>(layers, 0), std::vector<int>(layers, 0)};
  Episode episode;
  double previous = 0;
  for (size_t s = 0; s < steps_.size(); ++s) {
    std::vector<double> st = state(s, decided, previous);
    double a = act(s, st);
    const EnvironmentStep& step = steps_[s];
    (step.weight ? decided.weight_bits : decided.activation_bits)[step.layer] = bits_of_action(s, a);
    episode.states.push_back(std::move(st));
    episode.actions.push_back(a);
    previous = a;
  }
  episode.policy_choice = nearest_choice(decided);
  episode.choice = project(problem_, episode.policy_choice);
  return episode;
}

std::vector<double> Environment::actions_of(const Choice& choice) const {
  std::vector<double> actions;
  for (size_t s = 0; s < steps_.size(); ++s) {
    const EnvironmentStep& step = steps_[s];
    const auto& p = problem_.layers[step.layer].options.at(choice.at(step.layer)).precision;
    actions.push_back(action_of_bits(s, step.weight ? p.weight_bits : p.activation_bits));
  }
  return actions;
}

}  // namespace autoprec::search
