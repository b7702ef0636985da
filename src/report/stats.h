// Small statistics the report prints: bootstrap intervals of accuracies and
// the rank correlation of two series.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace autoprec::report {

struct Interval {
  double value = 0;  // the statistic on the whole sample
  double low = 0;    // 2.5th percentile of the bootstrap distribution
  double high = 0;   // 97.5th percentile
};

// Mean of `outcomes` (0/1 per example) with a 95% percentile bootstrap
// interval from `resamples` resamples of the examples drawn with `seed`.
// Empty input gives nullopt.
std::optional<Interval> bootstrap_mean(const std::vector<uint8_t>& outcomes, int resamples, uint64_t seed);

// mean(b) - mean(a) with a 95% paired bootstrap interval: each resample draws
// example indices once and applies them to both (the two models were scored
// on the same examples). nullopt when the sizes differ or are zero.
std::optional<Interval> bootstrap_paired_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b,
                                                    int resamples, uint64_t seed);

// Spearman's rank correlation of x and y (average ranks for ties), in
// [-1, 1]; nullopt with fewer than 3 pairs, different sizes or a constant series.
std::optional<double> spearman(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace autoprec::report
