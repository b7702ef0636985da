#include "report/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace autoprec::report {
namespace {

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

double mean(const std::vector<uint8_t>& v) {
  return static_cast<double>(std::accumulate(v.begin(), v.end(), int64_t{0})) / static_cast<double>(v.size());
}

std::vector<double> ranks(const std::vector<double>& x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> r(x.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    const double average = (static_cast<double>(i) + static_cast<double>(j)) / 2 + 1;
    for (size_t k = i; k <= j; ++k) r[order[k]] = average;
    i = j + 1;
  }
  return r;
}

}  // namespace

std::optional<Interval> bootstrap_mean(const std::vector<uint8_t>& outcomes, int resamples, uint64_t seed) {
  if (outcomes.empty() || resamples < 1) return std::nullopt;
  return bootstrap_paired_difference(std::vector<uint8_t>(outcomes.size(), 0), outcomes, resamples, seed);
}

std::optional<Interval> bootstrap_paired_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b,
                                                    int resamples, uint64_t seed) {
  if (a.empty() || a.size() != b.size() || resamples < 1) return std::nullopt;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, a.size() - 1);
  std::vector<double> stats(static_cast<size_t>(resamples));
  for (auto& s : stats) {
    int64_t diff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const size_t k = pick(rng);
      diff += static_cast<int64_t>(b[k]) - static_cast<int64_t>(a[k]);
    }
    s = static_cast<double>(diff) / static_cast<double>(a.size());
  }
  return Interval{mean(b) - mean(a), percentile(stats, 0.025), percentile(stats, 0.975)};
}

std::optional<double> spearman(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size() || x.size() < 3) return std::nullopt;
  const std::vector<double> rx = ranks(x), ry = ranks(y);
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(rx.begin(), rx.end(), 0.0) / n;
  const double my = std::accumulate(ry.begin(), ry.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < rx.size(); ++i) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) * (rx[i] - mx);
    syy += (ry[i] - my) * (ry[i] - my);
  }
  if (sxx == 0 || syy == 0) return std::nullopt;
  return sxy / std::sqrt(sxx * syy);
}

}  // namespace autoprec::report
