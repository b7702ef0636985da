// Pareto front of evaluated configurations: accuracy (higher is better)
// against any number of costs (lower is better; e.g. weight memory in bits,
// latency in ms). Point a dominates b when a is at least as good in every
// coordinate and strictly better in one.
#pragma once

#include <cstddef>
#include <vector>

namespace autoprec::search {

struct ParetoPoint {
  double accuracy = 0;        // higher is better
  std::vector<double> costs;  // lower is better; every point of one front has the same number
};

// True when a dominates b. std::invalid_argument if the cost counts differ.
bool dominates(const ParetoPoint& a, const ParetoPoint& b);

// Indices (ascending) of the non-dominated points. Of several identical
// points only the first is kept; points with a NaN coordinate never enter
// the front. O(n^2) comparisons: meant for the hundreds to thousands of
// evaluations of one search.
std::vector<size_t> pareto_front(const std::vector<ParetoPoint>& points);

}  // namespace autoprec::search
