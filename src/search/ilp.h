// HAWQ-V3-style integer program over the option table (search/problem.h):
//
//   minimise    sum_l sum_o  sensitivity(l,o) * x(l,o)
//   subject to  sum_o x(l,o) = 1                               for every layer l
//               sum_l sum_o (cost_k(l,o) / B_k) * x(l,o) <= 1   for every resource k
//               x(l,o) in {0, 1}
//
// (each resource row is scaled by its budget B_k so that GLPK's feasibility
// tolerance is relative; unconstrained resources, B_k = +inf, get no row).
// Solved with GLPK's branch-and-cut (glp_intopt, MIP presolve on, terminal
// output off). HAWQ-V3 reports well under a second for network-sized
// instances; here only small instances are measured so far (400 random
// instances of up to 5 layers in ~40 ms), hence the time limit.
#pragma once

#include "search/problem.h"

namespace autoprec::search {

struct IlpOptions {
  double time_limit_seconds = 60;  // GLPK's tm_lim; on expiry the best integer solution found is returned
  double mip_gap = 0;              // relative optimality gap at which GLPK stops (0 = prove optimality)
};

struct IlpResult {
  Choice choice;             // one option index per layer
  double objective = 0;      // summed sensitivity of `choice`
  std::vector<double> totals;  // summed cost per resource
  bool optimal = false;      // false when the time limit or the gap stopped GLPK first
};

// Validates the problem (validate()), rejects budgets below the smallest
// reachable total (check_reachable()'s UserError, naming the resource and by
// how much), then solves. UserError "infeasible: no precision choice meets
// every budget together ..." when each resource is reachable on its own but
// not all at once, or when the time limit expires before any feasible choice
// is found. The returned choice always satisfies is_feasible().
IlpResult solve_ilp(const ChoiceProblem& problem, const IlpOptions& options = {});

}  // namespace autoprec::search
