#include "search/pareto.h"
#include "util/error.h"

#include <cmath>
#include <stdexcept>

namespace autoprec::search {
namespace {

bool has_nan(const ParetoPoint& p) {
  if (std::isnan(p.accuracy)) return true;
  for (double c : p.costs) {
    if (std::isnan(c)) return true;
  }
  return false;
}

bool identical(const ParetoPoint& a, const ParetoPoint& b) { return a.accuracy == b.accuracy && a.costs == b.costs; }

}  // namespace

bool dominates(const ParetoPoint& a, const ParetoPoint& b) {
  if (a.costs.size() != b.costs.size()) throw InternalError("dominates: points have different cost counts");
  if (a.accuracy < b.accuracy) return false;
  bool strict = a.accuracy > b.accuracy;
  for (size_t k = 0; k < a.costs.size(); ++k) {
    if (a.costs[k] > b.costs[k]) return false;
    strict = strict || a.costs[k] < b.costs[k];
  }
  return strict;
}

std::vector<size_t> pareto_front(const std::vector<ParetoPoint>& points) {
  std::vector<size_t> front;
  for (size_t i = 0; i < points.size(); ++i) {
    if (has_nan(points[i])) continue;
    bool keep = true;
    for (size_t j = 0; j < points.size() && keep; ++j) {
      if (j == i || has_nan(points[j])) continue;
      if (dominates(points[j], points[i]) || (j < i && identical(points[j], points[i]))) keep = false;
    }
    if (keep) front.push_back(i);
  }
  return front;
}

}  // namespace autoprec::search
