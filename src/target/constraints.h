// Deployment constraints: `METRIC OP VALUE` bounds on a precision
// configuration's costs on a target and on its accuracy.
//
//   METRIC  weight_memory | bops | latency | energy | accuracy_drop | accuracy | fidelity
//   OP      <= | >=
//   VALUE   absolute with a unit:
//             weight_memory  B, KiB, MiB, GiB or bits     (64KiB, 12000B)
//             bops           a count, optionally K, M, G, T (1.5G)
//             latency        ms, us or s                 (1.5ms)
//             energy         mJ, uJ or J                 (2mJ)
//             accuracy, accuracy_drop  a fraction or a percentage (0.01, 1%)
//             fidelity       the label-free metric's value: agreement a
//                            fraction or percentage (0.98, 98%), kl nats
//                            (fidelity<=0.02), sqnr dB (fidelity>=30dB)
//           or relative, FACTOR*REF: `0.125*fp32` (the model entirely in
//           float32) or `0.6*int8` (uniform 8-bit on the same target);
//           accuracy takes `0.99*fp32` only, accuracy_drop and fidelity no reference.
// Spaces are allowed anywhere. Internally weight memory is in bits, latency
// in ms, energy in mJ, accuracy a fraction in [0, 1].
//
// Every error is a one-line UserError naming the expression (and, from YAML,
// FILE:LINE): unknown metric, missing/unknown unit, bad number, a reference
// the metric cannot take, a latency or energy bound on a target whose cost
// model has none.
#pragma once

#include <optional>
#include <string>
#include <vector>


#include "target/cost_model.h"
#include "target/profile.h"
#include "util/yaml.h"

namespace autoprec::target {

enum class Metric { WeightMemory, Bops, Latency, Energy, AccuracyDrop, Accuracy, Fidelity };
enum class Reference { Absolute, Fp32, Int8 };

const char* to_string(Metric metric);
// Whether the metric bounds the model's score (accuracy, accuracy_drop,
// fidelity) rather than a cost on the target.
bool is_score_metric(Metric metric);

struct Constraint {
  std::string text;    // as written
  std::string origin;  // "FILE:LINE" or "--constraint"
  Metric metric = Metric::WeightMemory;
  bool at_most = true;  // <= (false: >=)
  Reference reference = Reference::Absolute;
  double value = 0;     // absolute bound in internal units, or the factor of `reference`
  std::optional<double> bound;  // absolute bound once resolved
};

// Parses one expression; `origin` prefixes error messages.
Constraint parse_constraint(const std::string& text, const std::string& origin = "--constraint");

// A YAML list of expression strings (the run configuration's `constraints:`);
// a null node is empty. Errors name ORIGIN:LINE.
std::vector<Constraint> parse_constraints(const yaml::Node& list);

// Fills `bound` of every non-accuracy constraint: relative values multiply the
// same metric of `fp32` (the model at 32 bits) or `int8` (uniform W8A8) on
// `profile`. UserError for latency/energy on a target without them.
std::vector<Constraint> resolve(std::vector<Constraint> constraints, const Profile& profile, const TargetCosts& fp32,
                                const TargetCosts& int8);

struct ConstraintResult {
  Constraint constraint;
  bool holds = false;
  double value = 0;  // the configuration's metric, internal units
  double bound = 0;  // the absolute bound, internal units
  double slack = 0;  // bound - value for <=, value - bound for >=; >= 0 when it holds
};

// Checks resolved constraints against `costs` and the scores: `score` and
// `fp32_score` are top-1 fractions for accuracy constraints and the
// label-free metric's values for fidelity (needed only by score
// constraints, UserError when missing).
std::vector<ConstraintResult> check(const std::vector<Constraint>& constraints, const TargetCosts& costs,
                                    std::optional<double> score, std::optional<double> fp32_score);

// A value in the metric's display unit: "12.5 KiB", "1.23G", "0.412 ms",
// "0.031 mJ", "91.20%".
std::string format_metric(Metric metric, double value);

}  // namespace autoprec::target
