#include "search/problem.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "util/error.h"

namespace autoprec::search {

bool fits(double total, double budget) {
  if (std::isinf(budget) && budget > 0) return true;
  return total <= budget + kBudgetTolerance * std::max(std::abs(budget), 1.0);
}

void validate(const ChoiceProblem& problem) {
  if (problem.layers.empty()) fail("precision search: the option table has no layers");
  for (const Resource& r : problem.resources) {
    if (std::isnan(r.budget)) fail("precision search: the budget of {} is not a number", r.name);
  }
  for (const LayerChoices& layer : problem.layers) {
    if (layer.options.empty()) fail("precision search: layer {} has no precision option", layer.layer);
    for (const Option& o : layer.options) {
      if (o.costs.size() != problem.resources.size()) {
        fail("precision search: layer {} option w{}a{} has {} costs for {} resources", layer.layer,
             o.precision.weight_bits, o.precision.activation_bits, o.costs.size(), problem.resources.size());
      }
      if (!std::isfinite(o.sensitivity)) {
        fail("precision search: layer {} option w{}a{} has a non-finite sensitivity", layer.layer,
             o.precision.weight_bits, o.precision.activation_bits);
      }
      for (double c : o.costs) {
        if (!std::isfinite(c)) {
          fail("precision search: layer {} option w{}a{} has a non-finite cost", layer.layer,
               o.precision.weight_bits, o.precision.activation_bits);
        }
      }
    }
  }
}

std::vector<double> totals(const ChoiceProblem& problem, const Choice& choice) {
  if (choice.size() != problem.layers.size()) throw InternalError("choice size differs from the layer count");
  std::vector<double> sum(problem.resources.size(), 0.0);
  for (size_t l = 0; l < choice.size(); ++l) {
    const Option& o = problem.layers[l].options.at(static_cast<size_t>(choice[l]));
    for (size_t k = 0; k < sum.size(); ++k) sum[k] += o.costs[k];
  }
  return sum;
}

double total_sensitivity(const ChoiceProblem& problem, const Choice& choice) {
  if (choice.size() != problem.layers.size()) throw InternalError("choice size differs from the layer count");
  double sum = 0;
  for (size_t l = 0; l < choice.size(); ++l) sum += problem.layers[l].options.at(static_cast<size_t>(choice[l])).sensitivity;
  return sum;
}

bool is_feasible(const ChoiceProblem& problem, const Choice& choice) {
  std::vector<double> sum = totals(problem, choice);
  for (size_t k = 0; k < sum.size(); ++k) {
    if (!fits(sum[k], problem.resources[k].budget)) return false;
  }
  return true;
}

std::vector<double> min_totals(const ChoiceProblem& problem) {
  std::vector<double> sum(problem.resources.size(), 0.0);
  for (const LayerChoices& layer : problem.layers) {
    for (size_t k = 0; k < sum.size(); ++k) {
      double lowest = layer.options.at(0).costs.at(k);
      for (const Option& o : layer.options) lowest = std::min(lowest, o.costs[k]);
      sum[k] += lowest;
    }
  }
  return sum;
}

void check_reachable(const ChoiceProblem& problem) {
  std::vector<double> lowest = min_totals(problem);
  std::string message;
  for (size_t k = 0; k < lowest.size(); ++k) {
    const Resource& r = problem.resources[k];
    if (fits(lowest[k], r.budget)) continue;
    std::string unit = r.unit.empty() ? "" : " " + r.unit;
    std::string over = r.budget > 0 ? fmt::format(" ({:.3g}% over)", 100.0 * (lowest[k] - r.budget) / r.budget) : "";
    message += fmt::format("{}the smallest possible {} is {:.6g}{}, budget {:.6g}{}{}", message.empty() ? "" : "; ",
                           r.name, lowest[k], unit, r.budget, unit, over);
  }
  if (!message.empty()) fail("infeasible: {}", message);
}

bool precision_le(const quant::LayerPrecision& a, const quant::LayerPrecision& b) {
  return a.weight_bits <= b.weight_bits && a.activation_bits <= b.activation_bits;
}

bool precision_lt(const quant::LayerPrecision& a, const quant::LayerPrecision& b) {
  return precision_le(a, b) && !(a == b);
}

}  // namespace autoprec::search
