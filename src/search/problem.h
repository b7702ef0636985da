// The option table shared by every precision-selection algorithm (ILP, greedy,
// projection): each quantizable layer picks exactly one option from its list;
// an option names the precision it sets, an additive sensitivity (lower is
// better, e.g. the accuracy drop or logit KL from the sensitivity table) and
// one additive cost per resource (weight memory in bits, bit operations,
// latency in ms, energy in mJ: whatever the caller's units, the same as the
// budget's). A choice is feasible when, for every resource k,
// sum over layers of cost_k <= budget_k (see fits()). The table knows nothing
// about models or targets; the search environment builds it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "quant/config.h"

namespace autoprec::search {

struct Option {
  quant::LayerPrecision precision;  // the (weight_bits, activation_bits) this option sets
  double sensitivity = 0;           // additive, lower is better; may be negative
  std::vector<double> costs;        // one per resource (ChoiceProblem::resources), >= 0 not required
};

struct LayerChoices {
  std::string layer;            // layer name, for messages
  std::vector<Option> options;  // any order; at least one option
};

struct Resource {
  std::string name;  // e.g. "weight_memory", used in messages
  double budget = 0;  // upper bound on the summed cost; +infinity means unconstrained
  std::string unit;   // e.g. "bits", for messages only; may be empty
};

struct ChoiceProblem {
  std::vector<Resource> resources;
  std::vector<LayerChoices> layers;  // graph order
};

// One option index per layer, in ChoiceProblem::layers order.
using Choice = std::vector<int>;

// Relative slack allowed on a budget: a total t fits budget b when
// t <= b + kBudgetTolerance * max(|b|, 1). Absorbs floating-point summation
// order and the ILP solver's feasibility tolerance, nothing more.
inline constexpr double kBudgetTolerance = 1e-9;
bool fits(double total, double budget);

// UserError (one line) for: no layers, a layer without options, an option
// whose cost vector's size differs from the number of resources, a non-finite
// sensitivity or cost, or a NaN budget.
void validate(const ChoiceProblem& problem);

// Summed cost per resource of `choice` (one index per layer, each in range;
// std::out_of_range otherwise).
std::vector<double> totals(const ChoiceProblem& problem, const Choice& choice);
// Summed sensitivity of `choice`.
double total_sensitivity(const ChoiceProblem& problem, const Choice& choice);
// True when every resource fits its budget.
bool is_feasible(const ChoiceProblem& problem, const Choice& choice);

// The smallest reachable total per resource, each resource on its own (sum of
// the per-layer minima). If any exceeds its budget no choice is feasible.
std::vector<double> min_totals(const ChoiceProblem& problem);

// Throws UserError "infeasible: the smallest possible <resource> is X <unit>,
// budget Y <unit> (Z% over)" naming every resource whose minimum exceeds its
// budget. Passing this check is necessary, not sufficient, for feasibility
// when costs are not monotone in precision.
void check_reachable(const ChoiceProblem& problem);

// Precision partial order: a <= b when a.weight_bits <= b.weight_bits and
// a.activation_bits <= b.activation_bits (16/32 = float sit above 8).
bool precision_le(const quant::LayerPrecision& a, const quant::LayerPrecision& b);
// a <= b and a != b.
bool precision_lt(const quant::LayerPrecision& a, const quant::LayerPrecision& b);

}  // namespace autoprec::search
