// Sensitivity-ordered precision lowering (the AIMET automatic-mixed-precision
// idea) and the projection of a policy's choice onto the feasible set, over
// the option table of search/problem.h.
//
// Rule (both functions). While some budget is exceeded, consider for every
// layer the "next lowerings" of its current option o: options p with p's
// precision strictly below o's (precision_lt) that save something on the
// currently violated resources, reachable from o by one-step lowerings whose
// intermediate options save nothing (so lowering activation bits, which saves
// no weight memory, does not hide the weight-bit step behind it). One step is
// p covering o: no option lies strictly between them. Each candidate is scored
//
//   score = (sensitivity(p) - sensitivity(o)) / saving,
//   saving = sum over violated resources k of (cost_k(o) - cost_k(p)) / budget_k
//
// and the candidate with the smallest score is applied (ties: lower layer
// index, then lower option index). A layer is only ever lowered, never raised.
// When costs do not increase with lower precision and the all-lowest choice is
// feasible, the loop always ends feasible: while a budget is exceeded some
// layer still costs more than its lowest option on that resource, so a saving
// candidate exists, and every step strictly descends a finite order.
#pragma once

#include "search/problem.h"

namespace autoprec::search {

// Lowers layers of `start` (one option index per layer) by the rule above
// until every budget holds. Layers are never set above their option in
// `start`; an already feasible `start` is returned unchanged. UserError from
// check_reachable() when a budget is below the smallest reachable total, or
// "infeasible: cannot meet <resource> by lowering below the given choice"
// when no lowering can reduce a still-violated resource (possible only with
// non-monotone costs or a start that is already at the lowest options).
Choice project(const ChoiceProblem& problem, const Choice& start);

// The highest-precision choice: per layer, an option not below any other
// (precision_lt); among several, the least sensitive, then the first.
Choice highest_choice(const ChoiceProblem& problem);

// AIMET-like greedy baseline: project(problem, highest_choice(problem)).
Choice greedy_lowering(const ChoiceProblem& problem);

}  // namespace autoprec::search
