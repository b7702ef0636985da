#include "search/greedy.h"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "util/error.h"

namespace autoprec::search {
namespace {

// Normalised saving from option `from` to option `to` on the violated resources.
double saving(const ChoiceProblem& problem, const std::vector<bool>& violated, const Option& from, const Option& to) {
  double s = 0;
  for (size_t k = 0; k < violated.size(); ++k) {
    if (!violated[k]) continue;
    double budget = problem.resources[k].budget;
    double scale = budget > 0 ? budget : 1.0;
    s += (from.costs[k] - to.costs[k]) / scale;
  }
  return s;
}

// Options of `layer` that `o` covers: strictly below it with nothing in between.
std::vector<int> one_step_lowerings(const LayerChoices& layer, int o) {
  const auto& opts = layer.options;
  std::vector<int> out;
  for (size_t p = 0; p < opts.size(); ++p) {
    if (!precision_lt(opts[p].precision, opts[o].precision)) continue;
    bool covered = true;
    for (size_t q = 0; q < opts.size() && covered; ++q) {
      if (precision_lt(opts[p].precision, opts[q].precision) && precision_lt(opts[q].precision, opts[o].precision)) {
        covered = false;
      }
    }
    if (covered) out.push_back(static_cast<int>(p));
  }
  return out;
}

// covers[o] = one_step_lowerings(layer, o) for every option o of one layer.
using Covers = std::vector<std::vector<int>>;

Covers all_covers(const LayerChoices& layer) {
  Covers covers(layer.options.size());
  for (size_t o = 0; o < covers.size(); ++o) covers[o] = one_step_lowerings(layer, static_cast<int>(o));
  return covers;
}

// Next lowerings of option `o` that save something (see greedy.h).
std::vector<int> saving_lowerings(const ChoiceProblem& problem, const std::vector<bool>& violated,
                                  const LayerChoices& layer, const Covers& covers, int o) {
  std::vector<int> found;
  std::vector<bool> seen(layer.options.size(), false);
  std::vector<int> frontier{o};
  seen[o] = true;
  while (!frontier.empty()) {
    int q = frontier.back();
    frontier.pop_back();
    for (int p : covers[q]) {
      if (seen[p]) continue;
      seen[p] = true;
      if (saving(problem, violated, layer.options[o], layer.options[p]) > 0) {
        found.push_back(p);
      } else {
        frontier.push_back(p);
      }
    }
  }
  return found;
}

}  // namespace

Choice project(const ChoiceProblem& problem, const Choice& start) {
  validate(problem);
  check_reachable(problem);
  if (start.size() != problem.layers.size()) {
    throw InternalError("project: the choice has a different number of layers than the problem");
  }
  Choice choice = start;
  for (size_t l = 0; l < choice.size(); ++l) {
    if (choice[l] < 0 || static_cast<size_t>(choice[l]) >= problem.layers[l].options.size()) {
      throw InternalError("project: option index out of range");
    }
  }
  std::vector<Covers> covers;
  covers.reserve(problem.layers.size());
  for (const LayerChoices& layer : problem.layers) covers.push_back(all_covers(layer));
  for (;;) {
    std::vector<double> sum = totals(problem, choice);
    std::vector<bool> violated(sum.size());
    bool any = false;
    for (size_t k = 0; k < sum.size(); ++k) {
      violated[k] = !fits(sum[k], problem.resources[k].budget);
      any = any || violated[k];
    }
    if (!any) return choice;

    double best_score = std::numeric_limits<double>::infinity();
    int best_layer = -1, best_option = -1;
    for (size_t l = 0; l < choice.size(); ++l) {
      const LayerChoices& layer = problem.layers[l];
      const Option& from = layer.options[choice[l]];
      for (int p : saving_lowerings(problem, violated, layer, covers[l], choice[l])) {
        double score = (layer.options[p].sensitivity - from.sensitivity) /
                       saving(problem, violated, from, layer.options[p]);
        if (score < best_score || best_layer < 0) {
          best_score = score;
          best_layer = static_cast<int>(l);
          best_option = p;
        }
      }
    }
    if (best_layer < 0) {
      std::string names;
      for (size_t k = 0; k < sum.size(); ++k) {
        if (!violated[k]) continue;
        names += fmt::format("{}{} ({:.6g} > {:.6g})", names.empty() ? "" : ", ", problem.resources[k].name, sum[k],
                             problem.resources[k].budget);
      }
      fail("infeasible: cannot meet {} by lowering precision below the given choice", names);
    }
    choice[best_layer] = best_option;
  }
}

Choice highest_choice(const ChoiceProblem& problem) {
  validate(problem);
  Choice choice(problem.layers.size());
  for (size_t l = 0; l < problem.layers.size(); ++l) {
    const auto& opts = problem.layers[l].options;
    int best = -1;
    for (size_t o = 0; o < opts.size(); ++o) {
      bool maximal = true;
      for (size_t q = 0; q < opts.size() && maximal; ++q) {
        if (precision_lt(opts[o].precision, opts[q].precision)) maximal = false;
      }
      if (maximal && (best < 0 || opts[o].sensitivity < opts[best].sensitivity)) best = static_cast<int>(o);
    }
    choice[l] = best;
  }
  return choice;
}

Choice greedy_lowering(const ChoiceProblem& problem) { return project(problem, highest_choice(problem)); }

}  // namespace autoprec::search
