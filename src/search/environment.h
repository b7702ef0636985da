// The search environment: how a policy walks a precision problem layer by
// layer and what it sees at each step.
//
// Steps: one per layer for its weight bits, then one for its activation bits;
// a step is left out when the layer has a single choice for it. An action
// a in [0, 1] picks entry floor(a·n) (clamped to n-1) of the step's n
// supported bit-widths, in increasing order. Bits never decided take their
// layer's highest value; the resulting pair is mapped to the nearest option
// the layer has and the whole configuration is projected onto the budgets
// (project() in greedy.h), so an episode always ends feasible when any
// configuration is.
//
// State (kStateDim values, each in [0, 1]):
//   0 layer index, 1 Conv, 2 depthwise, 3 input channels, 4 output channels,
//   5 kernel size, 6 stride / 2, 7 log parameters, 8 log MACs, 9 input
//   feature-map size, 10 weight step, 11 previous action, 12 budget used,
//   13 budget remaining, 14 layer sensitivity at its lowest precision,
//   15 fraction of steps taken.
// Sizes are scaled by their maximum over layers. "Budget used" is the
// smallest total of the first resource reachable given the bits decided so
// far, divided by twice its budget and clipped to [0, 1] (so 0.5 means the
// budget is exactly met); "remaining" is 1 minus it. Without a finite
// positive budget both are 0 and 1.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "search/problem.h"

namespace autoprec::target {
struct ModelInfo;
}

namespace autoprec::search {

inline constexpr int kStateDim = 16;

// What the state tells about one layer; sizes in elements.
struct LayerFeatures {
  bool conv = false;
  bool depthwise = false;
  double input_channels = 0;
  double output_channels = 0;
  double kernel = 1;       // spatial kernel height (1 for Gemm/MatMul)
  double stride = 1;
  double parameters = 0;   // weight elements
  double macs = 0;
  double feature_map = 1;  // input height x width (1 for Gemm/MatMul)
};

// One feature record per quantizable layer of `model`, in its layer order.
std::vector<LayerFeatures> layer_features(const target::ModelInfo& model);

struct EnvironmentStep {
  size_t layer;
  bool weight;  // false: the activation step
};

// Bits decided so far per layer; 0 = not decided yet.
struct Decisions {
  std::vector<int> weight_bits;
  std::vector<int> activation_bits;
};

class Environment {
 public:
  // `problem`: validated option table (resource 0, if any, drives the budget
  // features); `features`: one per problem layer. UserError otherwise.
  Environment(ChoiceProblem problem, std::vector<LayerFeatures> features);

  const ChoiceProblem& problem() const { return problem_; }
  const std::vector<EnvironmentStep>& steps() const { return steps_; }
  // Supported bit-widths of a layer, increasing.
  const std::vector<int>& weight_set(size_t layer) const { return weight_sets_.at(layer); }
  const std::vector<int>& activation_set(size_t layer) const { return activation_sets_.at(layer); }
  const std::vector<int>& bit_set(size_t step) const;

  // The state before `step` (0-based) given `decided` (sized to the layers)
  // and the action taken at the previous step (0 at the first).
  std::vector<double> state(size_t step, const Decisions& decided, double previous_action) const;
  // Bit-width an action in [0, 1] selects at `step`; values outside are clamped.
  int bits_of_action(size_t step, double action) const;
  // The action at the centre of the interval that selects `bits` at `step`
  // (std::invalid_argument when `bits` is not in the step's set).
  double action_of_bits(size_t step, int bits) const;
  // Per layer, the option equal to (weight_bits, activation_bits), otherwise
  // the nearest one, preferring lower precision. Undecided bits (0) count as
  // the layer's highest.
  Choice nearest_choice(const Decisions& decided) const;

  struct Episode {
    std::vector<std::vector<double>> states;  // one per step
    std::vector<double> actions;              // one per step, as returned by the policy
    Choice policy_choice;                     // the policy's configuration before projection
    Choice choice;                            // after projection onto the budgets
  };
  // Plays one episode: `act(step, state)` returns the action for each step.
  Episode play(const std::function<double(size_t, const std::vector<double>&)>& act) const;
  // The actions (bin centres) that reproduce `choice` step by step.
  std::vector<double> actions_of(const Choice& choice) const;

 private:
  ChoiceProblem problem_;
  std::vector<LayerFeatures> features_;
  std::vector<std::vector<int>> weight_sets_, activation_sets_;
  std::vector<EnvironmentStep> steps_;
  // Maxima over layers, for scaling.
  double max_channels_ = 1, max_kernel_ = 1, max_parameters_ = 1, max_macs_ = 1, max_feature_map_ = 1;
  double max_sensitivity_ = 1e-12;
};

}  // namespace autoprec::search
