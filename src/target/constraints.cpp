#include "target/constraints.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "util/error.h"

namespace autoprec::target {
namespace {

struct MetricName {
  const char* name;
  Metric metric;
};
const MetricName kMetrics[] = {{"weight_memory", Metric::WeightMemory}, {"bops", Metric::Bops},
                               {"latency", Metric::Latency},            {"energy", Metric::Energy},
                               {"accuracy_drop", Metric::AccuracyDrop}, {"accuracy", Metric::Accuracy},
                               {"fidelity", Metric::Fidelity}};

struct Unit {
  const char* name;
  double factor;  // to internal units
};

std::vector<Unit> units_of(Metric m) {
  switch (m) {
    case Metric::WeightMemory: return {{"bits", 1}, {"B", 8}, {"KiB", 8 * 1024.0}, {"MiB", 8 * 1048576.0}, {"GiB", 8 * 1073741824.0}};
    case Metric::Bops: return {{"", 1}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}};
    case Metric::Latency: return {{"ms", 1}, {"us", 1e-3}, {"s", 1e3}};
    case Metric::Energy: return {{"mJ", 1}, {"uJ", 1e-3}, {"J", 1e3}};
    case Metric::Accuracy:
    case Metric::AccuracyDrop: return {{"", 1}, {"%", 0.01}};
    case Metric::Fidelity: return {{"", 1}, {"%", 0.01}, {"dB", 1}, {"nats", 1}};
  }
  return {};
}

std::string unit_list(Metric m) {
  std::string s;
  for (const auto& u : units_of(m)) {
    if (*u.name) s += (s.empty() ? "" : ", ") + std::string(u.name);
  }
  return s;
}

double parse_number(const std::string& s, size_t* used) {
  const char* begin = s.c_str();
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(begin, &end);
  *used = static_cast<size_t>(end - begin);
  if (*used == 0 || errno != 0 || !std::isfinite(d)) return NAN;
  return d;
}

[[noreturn]] void fail_missing(const TargetCosts& c, const std::string& where, const char* what, const char* unit) {
  if (c.missing_reason.empty()) fail("{}: target {} gives no {} for this model", where, c.target, what);
  fail("{}: target {} gives no {} for this reference configuration: {}; give the bound in {} instead", where, c.target,
       what, c.missing_reason, unit);
}

double metric_value(Metric m, const TargetCosts& c, const std::string& where) {
  switch (m) {
    case Metric::WeightMemory: return c.bits.weight_memory_bits;
    case Metric::Bops: return c.bits.bops;
    case Metric::Latency:
      if (!c.latency_ms) fail_missing(c, where, "latency", "ms");
      return *c.latency_ms;
    case Metric::Energy:
      if (!c.energy_mj) fail_missing(c, where, "energy", "mJ");
      return *c.energy_mj;
    default: return 0;
  }
}

}  // namespace

const char* to_string(Metric metric) {
  for (const auto& m : kMetrics) {
    if (m.metric == metric) return m.name;
  }
  return "?";
}

bool is_score_metric(Metric metric) {
  return metric == Metric::Accuracy || metric == Metric::AccuracyDrop || metric == Metric::Fidelity;
}

Constraint parse_constraint(const std::string& text, const std::string& origin) {
  std::string s;
  for (char c : text) {
    if (!std::isspace(static_cast<unsigned char>(c))) s += c;
  }
  Constraint c;
  c.text = text;
  c.origin = origin;
  auto bad = [&](const std::string& why) -> UserError {
    return UserError(fmt::format("{}: constraint '{}': {}", origin, text, why));
  };
  size_t op = s.find("<=");
  size_t ge = s.find(">=");
  if (op == std::string::npos && ge == std::string::npos) {
    throw bad("expected METRIC<=VALUE or METRIC>=VALUE (e.g. weight_memory<=64KiB, latency<=0.6*int8)");
  }
  c.at_most = op != std::string::npos;
  if (!c.at_most) op = ge;
  std::string metric = s.substr(0, op), value = s.substr(op + 2);
  bool found = false;
  for (const auto& m : kMetrics) {
    if (metric == m.name) {
      c.metric = m.metric;
      found = true;
    }
  }
  if (!found) {
    throw bad(fmt::format("unknown metric '{}'; metrics: weight_memory, bops, latency, energy, accuracy_drop, accuracy, fidelity", metric));
  }
  if (value.empty()) throw bad("missing value after the operator");
  size_t star = value.find('*');
  if (star != std::string::npos) {
    std::string factor = value.substr(0, star), ref = value.substr(star + 1);
    size_t used = 0;
    double f = parse_number(factor, &used);
    if (std::isnan(f) || used != factor.size() || f < 0) throw bad(fmt::format("'{}' is not a non-negative factor", factor));
    if (ref == "fp32") {
      c.reference = Reference::Fp32;
    } else if (ref == "int8") {
      c.reference = Reference::Int8;
    } else {
      throw bad(fmt::format("unknown reference '{}'; relative values are FACTOR*fp32 or FACTOR*int8", ref));
    }
    if (c.metric == Metric::AccuracyDrop) throw bad("accuracy_drop takes an absolute value (0.01 or 1%), not a reference");
    if (c.metric == Metric::Fidelity)
      throw bad("fidelity takes the metric's own value (0.98 for agreement, 0.02 for kl, 30dB for sqnr), not a reference");
    if (c.metric == Metric::Accuracy && c.reference == Reference::Int8) {
      throw bad("accuracy can be relative to fp32 only (e.g. accuracy>=0.99*fp32)");
    }
    c.value = f;
    return c;
  }
  size_t used = 0;
  double v = parse_number(value, &used);
  if (std::isnan(v)) throw bad(fmt::format("'{}' is not a number with a unit", value));
  if (v < 0) throw bad("the bound must not be negative");
  std::string unit = value.substr(used);
  for (const auto& u : units_of(c.metric)) {
    if (unit == u.name) {
      c.value = v * u.factor;
      if ((c.metric == Metric::Accuracy || c.metric == Metric::AccuracyDrop) && c.value > 1) {
        throw bad("accuracy bounds are fractions in [0, 1] (or percentages like 1%)");
      }
      c.bound = c.value;
      return c;
    }
  }
  if (unit.empty()) {
    throw bad(fmt::format("{} needs a unit ({}) or a relative value like 0.5*int8", to_string(c.metric), unit_list(c.metric)));
  }
  std::string valid = unit_list(c.metric);
  throw bad(fmt::format("unknown unit '{}' for {}; {}", unit, to_string(c.metric),
                        valid.empty() ? "it takes a plain number" : "units: " + valid));
}

std::vector<Constraint> parse_constraints(const yaml::Node& list) {
  std::vector<Constraint> out;
  if (!list.is_list() && !list.is_null()) {
    list.fail(fmt::format("{} must be a list of strings like \"latency<=0.6*int8\", got {}", list.what(), list.describe()));
  }
  for (const yaml::Node& item : list.items()) out.push_back(parse_constraint(item.text("a string like \"weight_memory<=64KiB\""), item.where()));
  return out;
}

std::vector<Constraint> resolve(std::vector<Constraint> constraints, const Profile& profile, const TargetCosts& fp32,
                                const TargetCosts& int8) {
  for (Constraint& c : constraints) {
    std::string where = fmt::format("{}: constraint '{}'", c.origin, c.text);
    if (c.metric == Metric::Latency && !profile.has_latency()) {
      fail("{}: target {} has no latency model (cost model {}); use a target with one (bitfusion, bismo, cpu-ort, lut)", where,
           profile.name, to_string(profile.cost_model.type));
    }
    if (c.metric == Metric::Energy && !profile.has_energy()) {
      fail("{}: target {} has no energy model (cost model {}); use bitfusion, bismo or a lut with energy_mj", where,
           profile.name, to_string(profile.cost_model.type));
    }
    if (is_score_metric(c.metric)) continue;
    if (c.reference == Reference::Fp32) c.bound = c.value * metric_value(c.metric, fp32, where);
    if (c.reference == Reference::Int8) c.bound = c.value * metric_value(c.metric, int8, where);
  }
  return constraints;
}

std::vector<ConstraintResult> check(const std::vector<Constraint>& constraints, const TargetCosts& costs,
                                    std::optional<double> score, std::optional<double> fp32_score) {
  std::vector<ConstraintResult> out;
  for (const Constraint& c : constraints) {
    std::string where = fmt::format("{}: constraint '{}'", c.origin, c.text);
    ConstraintResult r;
    r.constraint = c;
    if (c.metric == Metric::Fidelity) {
      if (!score) fail("{}: needs the configuration's score", where);
      r.value = *score;
      r.bound = c.value;
    } else if (c.metric == Metric::Accuracy || c.metric == Metric::AccuracyDrop) {
      if (!score) fail("{}: needs the configuration's accuracy", where);
      bool needs_fp32 = c.metric == Metric::AccuracyDrop || c.reference == Reference::Fp32;
      if (needs_fp32 && !fp32_score) fail("{}: needs the FP32 accuracy", where);
      r.value = c.metric == Metric::Accuracy ? *score : *fp32_score - *score;
      r.bound = c.reference == Reference::Fp32 ? c.value * *fp32_score : c.value;
    } else {
      if (!c.bound) fail("{}: relative bound not resolved (call target::resolve first)", where);
      r.value = metric_value(c.metric, costs, where);
      r.bound = *c.bound;
    }
    r.slack = c.at_most ? r.bound - r.value : r.value - r.bound;
    r.holds = r.slack >= 0;
    out.push_back(r);
  }
  return out;
}

std::string format_metric(Metric metric, double v) {
  switch (metric) {
    case Metric::WeightMemory: {
      double bytes = v / 8;
      if (std::abs(bytes) >= 1048576.0) return fmt::format("{:.3f} MiB", bytes / 1048576.0);
      if (std::abs(bytes) >= 1024.0) return fmt::format("{:.2f} KiB", bytes / 1024.0);
      return fmt::format("{:.0f} B", bytes);
    }
    case Metric::Bops: return fmt::format("{:.4g}", v);
    case Metric::Latency: return fmt::format("{:.4g} ms", v);
    case Metric::Energy: return fmt::format("{:.4g} mJ", v);
    case Metric::Accuracy:
    case Metric::AccuracyDrop: return fmt::format("{:.2f}%", 100 * v);
    case Metric::Fidelity: return fmt::format("{:.4g}", v);
  }
  return "?";
}

}  // namespace autoprec::target
