#include "report/report.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "eval/metric.h"
#include "report/assets.h"
#include "report/stats.h"
#include "search/config_key.h"
#include "target/cost_model.h"
#include "util/error.h"
#include "util/file.h"

namespace autoprec::report {
namespace {

using nlohmann::json;

// A cost the front plots can put on their x axis: the constraint metric, the
// key in an evaluation's metrics.costs, and the display unit.
struct CostAxis {
  std::string metric;
  std::string cost_key;
  std::string title;
  double scale = 1;
};

std::optional<CostAxis> cost_axis(const std::string& metric) {
  if (metric == "weight_memory") return CostAxis{metric, "weight_bits", "weight memory (KiB)", 1.0 / 8192};
  if (metric == "bops") return CostAxis{metric, "bops", "BOPs (G)", 1e-9};
  if (metric == "latency") return CostAxis{metric, "latency_ms", "latency (ms, per-layer sum)", 1};
  if (metric == "energy") return CostAxis{metric, "energy_mj", "energy (mJ)", 1};
  return std::nullopt;
}

std::string bits_text(int wb, int ab) {
  auto one = [](int b) { return b >= 32 ? std::string("float") : std::to_string(b); };
  return fmt::format("W{} A{}", one(wb), one(ab));
}

std::string percent(double fraction, int digits = 2) { return fmt::format("{:.{}f}%", 100 * fraction, digits); }

// How a run's scores are plotted and written: its metric (run configuration key `metric`, top1 when absent).
struct ScoreAxis {
  eval::Metric metric = eval::Metric::Top1;
  double scale = 100;          // plotted value = scale · score
  std::string title = "validation top-1 (%)";
  std::string name = "accuracy";  // in sentences: "validation accuracy"
};

ScoreAxis score_axis(const json& config) {
  ScoreAxis a;
  try {
    a.metric = eval::parse_metric(config.is_object() ? config.value("metric", "top1") : "top1", "metric");
  } catch (const UserError&) {
    a.metric = eval::Metric::Top1;
  }
  switch (a.metric) {
    case eval::Metric::Top1: break;
    case eval::Metric::Agreement: a.title = "validation agreement with FP32 (%)"; a.name = "agreement with FP32"; break;
    case eval::Metric::Kl: a.scale = 1; a.title = "validation KL to FP32 (nats)"; a.name = "KL to FP32"; break;
    case eval::Metric::Sqnr: a.scale = 1; a.title = "validation SQNR to FP32 (dB)"; a.name = "SQNR to FP32"; break;
    case eval::Metric::Command: a.scale = 1; a.title = "validation score (metric command)"; a.name = "metric command score"; break;
  }
  return a;
}

ScoreAxis score_axis(const std::vector<RunData>& runs) { return score_axis(runs.empty() ? json() : runs.front().config); }

const json* find_path(const json& j, std::initializer_list<const char*> keys) {
  const json* at = &j;
  for (const char* k : keys) {
    if (!at->is_object() || !at->contains(k)) return nullptr;
    at = &(*at)[k];
  }
  return at;
}

double number_at(const json& j, std::initializer_list<const char*> keys, double fallback = NAN) {
  const json* v = find_path(j, keys);
  return v && v->is_number() ? v->get<double>() : fallback;
}

std::vector<uint8_t> outcome_bits(const json& outcomes, const char* key) {
  std::vector<uint8_t> v;
  if (!outcomes.is_object() || !outcomes.contains(key) || !outcomes[key].is_string()) return v;
  for (char c : outcomes[key].get<std::string>()) v.push_back(c == '1' ? 1 : 0);
  return v;
}

// Layer names in graph order: the sensitivity table's, else the model's.
std::vector<std::string> layer_names(const RunData& run, const target::ModelInfo* info) {
  std::vector<std::string> names;
  if (info) {
    for (const auto& l : info->layers) names.push_back(l.name);
  } else if (run.sensitivity.is_object() && run.sensitivity.contains("layers")) {
    for (const auto& l : run.sensitivity["layers"]) names.push_back(l.get<std::string>());
  }
  return names;
}

// KL to FP32 with one tensor of one layer at `bits` (sensitivity.json rows).
class SensitivityTable {
 public:
  explicit SensitivityTable(const json& table) {
    if (!table.is_object() || !table.contains("rows")) return;
    for (const auto& r : table["rows"]) {
      if (!r.contains("kl") || !r["kl"].is_number()) continue;
      kl_[{r.value("layer", ""), r.value("tensor", "weight"), r.value("bits", 0)}] = r["kl"].get<double>();
      const std::string layer = r.value("layer", "");
      if (r.value("tensor", "weight") == "weight") {
        auto& lowest = lowest_[layer];
        if (lowest.first == 0 || r.value("bits", 99) < lowest.first) lowest = {r.value("bits", 99), r["kl"].get<double>()};
      }
    }
  }
  bool empty() const { return kl_.empty(); }
  // Sensitivity of a layer: KL at its lowest measured weight bits; -1 when unknown.
  double layer(const std::string& name) const {
    auto it = lowest_.find(name);
    return it == lowest_.end() ? -1 : it->second.second;
  }
  // Summed KL of a configuration; float tensors add nothing, unmeasured bits add nothing.
  double sum(const std::vector<std::string>& names, const std::vector<quant::LayerPrecision>& bits) const {
    double s = 0;
    for (size_t l = 0; l < names.size() && l < bits.size(); ++l) {
      auto add = [&](const char* tensor, int b) {
        if (b >= 32) return;
        auto it = kl_.find({names[l], tensor, b});
        if (it != kl_.end()) s += it->second;
      };
      add("weight", bits[l].weight_bits);
      add("activation", bits[l].activation_bits);
    }
    return s;
  }

 private:
  std::map<std::tuple<std::string, std::string, int>, double> kl_;
  std::map<std::string, std::pair<int, double>> lowest_;
};

std::optional<target::ModelInfo> try_model_info(const RunData& run) {
  if (run.model_path.empty()) return std::nullopt;
  try {
    return target::load_model_info(run.model_path);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The selected configuration: the result's layers, else the journal's best.
std::map<std::string, quant::LayerPrecision> selected_precision(const RunData& run, const std::vector<std::string>& names) {
  std::map<std::string, quant::LayerPrecision> out;
  if (const json* layers = find_path(run.result, {"final", "layers"})) {
    for (const auto& l : *layers) {
      out[l.at("layer").get<std::string>()] = {l.at("weight_bits").get<int>(), l.at("activation_bits").get<int>()};
    }
    return out;
  }
  if (!run.best_id) return out;
  for (const auto& e : run.evaluations) {
    if (e.id != *run.best_id) continue;
    auto bits = search::parse_config_key(e.config_key);
    for (size_t l = 0; l < bits.size() && l < names.size(); ++l) out[names[l]] = bits[l];
  }
  return out;
}

std::vector<int> allowed_bits(const json& config, const char* key) {
  std::vector<int> v;
  if (config.contains(key) && config[key].is_array()) {
    for (const auto& b : config[key]) v.push_back(b.get<int>());
  }
  return v;
}

std::vector<LayerChoice> explain(const RunData& run, const target::ModelInfo* info) {
  const std::vector<std::string> names = layer_names(run, info);
  const auto chosen = selected_precision(run, names);
  std::vector<LayerChoice> rows;
  std::vector<int64_t> macs;
  if (chosen.empty()) return rows;
  const SensitivityTable sens(run.sensitivity);
  for (size_t l = 0; l < names.size(); ++l) {
    auto it = chosen.find(names[l]);
    if (it == chosen.end()) continue;
    LayerChoice c;
    c.layer = names[l];
    c.weight_bits = it->second.weight_bits;
    c.activation_bits = it->second.activation_bits;
    if (info) {
      c.op = info->descs[l].op;
      c.weights = info->descs[l].weights;
    }
    c.sensitivity = sens.layer(c.layer);
    rows.push_back(c);
    macs.push_back(info ? info->descs[l].macs : 0);
  }
  double memory = 0, bops = 0;
  std::vector<double> layer_bops(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    memory += static_cast<double>(rows[i].weights) * rows[i].weight_bits;
    layer_bops[i] = static_cast<double>(macs[i]) * rows[i].weight_bits * rows[i].activation_bits;
    bops += layer_bops[i];
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    rows[i].weight_memory_share = memory > 0 ? static_cast<double>(rows[i].weights) * rows[i].weight_bits / memory : 0;
    rows[i].bops_share = bops > 0 ? layer_bops[i] / bops : 0;
  }
  // Ranks: by sensitivity (1 = most sensitive) and by accuracy lost per weight bit saved (1 = least).
  std::vector<size_t> by_sens, by_cost_per_bit;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].sensitivity >= 0) by_sens.push_back(i);
  }
  by_cost_per_bit = by_sens;
  std::stable_sort(by_sens.begin(), by_sens.end(), [&](size_t a, size_t b) { return rows[a].sensitivity > rows[b].sensitivity; });
  auto per_bit = [&](size_t i) { return rows[i].sensitivity / static_cast<double>(std::max<int64_t>(rows[i].weights, 1)); };
  std::stable_sort(by_cost_per_bit.begin(), by_cost_per_bit.end(), [&](size_t a, size_t b) { return per_bit(a) < per_bit(b); });
  std::vector<int> per_bit_rank(rows.size(), 0);
  for (size_t r = 0; r < by_sens.size(); ++r) rows[by_sens[r]].sensitivity_rank = static_cast<int>(r) + 1;
  for (size_t r = 0; r < by_cost_per_bit.size(); ++r) per_bit_rank[by_cost_per_bit[r]] = static_cast<int>(r) + 1;

  const std::vector<int> wbits = allowed_bits(run.config, "weight_bits");
  const std::vector<int> abits = allowed_bits(run.config, "activation_bits");
  int max_int = 0;
  for (int b : wbits) {
    if (b < 32) max_int = std::max(max_int, b);
  }
  int min_chosen = 99;
  for (const auto& r : rows) {
    if (r.weight_bits < 32) min_chosen = std::min(min_chosen, r.weight_bits);
  }
  const int n = static_cast<int>(by_sens.size());
  const int top_quarter = std::max(1, (n + 3) / 4);
  for (size_t i = 0; i < rows.size(); ++i) {
    LayerChoice& c = rows[i];
    const std::string rank = c.sensitivity_rank ? fmt::format("sensitivity rank {} of {}", c.sensitivity_rank, n) : "";
    const bool most_sensitive = c.sensitivity_rank && c.sensitivity_rank <= top_quarter;
    if (wbits.size() == 1 && abits.size() == 1) {
      c.reason = "fixed: the run allows only " + bits_text(wbits[0], abits[0]);
    } else if (c.weight_bits >= 32 && c.activation_bits >= 32) {
      if (most_sensitive) {
        c.reason = "kept float: among the most sensitive (" + rank + ")";
      } else if (c.weights > 0 && c.weight_memory_share < 0.02) {
        c.reason = "kept float: a small layer, little to save";
      } else {
        c.reason = rank.empty() ? "kept float" : "kept float (" + rank + ")";
      }
    } else if (c.weight_bits == max_int && max_int > 0) {
      c.reason = most_sensitive ? fmt::format("kept at {}: highest sensitivity ({})", c.weight_bits, rank)
                                : fmt::format("kept at {}, the most the run allows{}", c.weight_bits,
                                              rank.empty() ? "" : " (" + rank + ")");
    } else if (c.weight_bits == min_chosen && per_bit_rank[i] && per_bit_rank[i] <= std::max(1, n / 2)) {
      c.reason = fmt::format("lowered first: least accuracy lost per bit saved (rank {} of {})", per_bit_rank[i], n);
    } else if (c.weight_bits == min_chosen) {
      c.reason = fmt::format("lowered to {}: the fewest bits in this configuration{}", c.weight_bits,
                             rank.empty() ? "" : " (" + rank + ")");
    } else {
      c.reason = fmt::format("{} bits{}", c.weight_bits, rank.empty() ? "" : ": " + rank);
    }
  }
  return rows;
}

// ----------------------------------------------------------------------------
// Plots (Vega-Lite specifications)

json axis_x(const std::string& field, const std::string& title, bool zero = false) {
  return {{"field", field}, {"type", "quantitative"}, {"title", title}, {"scale", {{"zero", zero}}}};
}

struct Point {
  std::string run;
  int64_t id = 0;
  int64_t episode = 0;
  double accuracy = 0;  // the score on its axis (percent for fractions)
  double utility = 0;   // orders scores, higher is better
  bool finetuned = false;
  bool feasible = false;
  std::string key;
  json costs;
};

std::vector<Point> points_of(const RunData& run) {
  std::vector<Point> out;
  const ScoreAxis axis = score_axis(run.config);
  for (const auto& e : run.evaluations) {
    Point p;
    p.run = run.label;
    p.id = e.id;
    p.episode = e.episode;
    p.accuracy = axis.scale * e.accuracy;
    p.utility = eval::utility(axis.metric, e.accuracy);
    p.finetuned = e.metrics.value("finetuned", true);
    p.feasible = e.feasible;
    p.key = e.config_key;
    p.costs = e.metrics.contains("costs") ? e.metrics["costs"] : json::object();
    out.push_back(p);
  }
  return out;
}

// "W4 A8" when every layer of the key has the same bits, else "".
std::string uniform_label(const std::string& key) {
  std::vector<quant::LayerPrecision> bits;
  try {
    bits = search::parse_config_key(key);
  } catch (const std::exception&) {
    return "";
  }
  if (bits.empty()) return "";
  for (const auto& b : bits) {
    if (b.weight_bits != bits[0].weight_bits || b.activation_bits != bits[0].activation_bits) return "";
  }
  return "uniform " + bits_text(bits[0].weight_bits, bits[0].activation_bits);
}

json front_plot(const std::vector<RunData>& runs, const CostAxis& axis) {
  const ScoreAxis score = score_axis(runs);
  json all = json::array(), front = json::array(), selected = json::array(), budgets = json::array(),
       uniform = json::array();
  std::set<std::string> uniform_seen;
  for (const auto& run : runs) {
    std::set<int64_t> pareto(run.pareto_ids.begin(), run.pareto_ids.end());
    std::vector<json> run_front;
    for (const auto& p : points_of(run)) {
      if (!p.costs.contains(axis.cost_key)) continue;
      const double x = p.costs[axis.cost_key].get<double>() * axis.scale;
      json row = {{"run", p.run},           {"cost", x},         {"accuracy", p.accuracy}, {"evaluation", p.id},
                  {"episode", p.episode},   {"feasible", p.feasible ? "meets constraints" : "violates a constraint"},
                  {"scored", p.finetuned ? "short fine-tune" : "staged only"}, {"config", p.key}};
      all.push_back(row);
      if (pareto.count(p.id)) run_front.push_back(row);
      if (run.best_id && *run.best_id == p.id) selected.push_back(row);
      const std::string u = uniform_label(p.key);
      if (!u.empty() && p.finetuned && uniform_seen.insert(u + "|" + std::to_string(x)).second) {
        uniform.push_back({{"cost", x}, {"accuracy", p.accuracy}, {"label", u}});
      }
    }
    std::sort(run_front.begin(), run_front.end(), [](const json& a, const json& b) { return a["cost"] < b["cost"]; });
    for (auto& r : run_front) front.push_back(r);
    if (const json* cs = find_path(run.result, {"constraints"})) {
      for (const auto& c : *cs) {
        if (c.value("metric", "") == axis.metric) {
          budgets.push_back({{"cost", c["bound"].get<double>() * axis.scale},
                             {"label", c.value("constraint", "")}, {"run", run.label}});
        }
      }
    }
  }
  const bool many = runs.size() > 1;
  json color = many ? json{{"field", "run"}, {"type", "nominal"}, {"title", "run"}}
                    : json{{"field", "feasible"}, {"type", "nominal"}, {"title", nullptr},
                           {"scale", {{"domain", {"meets constraints", "violates a constraint"}},
                                      {"range", {"#1f77b4", "#bbbbbb"}}}}};
  json tooltip = json::array({{{"field", "run"}}, {{"field", "evaluation"}}, {{"field", "episode"}},
                              {{"field", "accuracy"}, {"format", ".4~g"}, {"title", score.title}},
                              {{"field", "cost"}, {"format", ".4~f"}, {"title", axis.title}}, {{"field", "scored"}},
                              {{"field", "feasible"}}, {{"field", "config"}}});
  json x = axis_x("cost", axis.title);
  json y = axis_x("accuracy", score.title);
  json layers = json::array();
  layers.push_back({{"data", {{"values", all}}},
                    {"mark", {{"type", "point"}, {"filled", true}, {"opacity", 0.7}, {"size", 50}}},
                    {"encoding", {{"x", x}, {"y", y}, {"color", color},
                                  {"shape", {{"field", "scored"}, {"type", "nominal"}, {"title", nullptr}}},
                                  {"tooltip", tooltip}}}});
  layers.push_back({{"data", {{"values", front}}},
                    {"mark", {{"type", "line"}, {"interpolate", "step-after"}, {"strokeWidth", 1.5}}},
                    {"encoding", {{"x", x}, {"y", y}, {"detail", {{"field", "run"}}},
                                  {"color", many ? color : json{{"value", "#ff7f0e"}}}}}});
  if (!budgets.empty()) {
    layers.push_back({{"data", {{"values", budgets}}},
                      {"mark", {{"type", "rule"}, {"strokeDash", {6, 4}}, {"color", "#d62728"}}},
                      {"encoding", {{"x", {{"field", "cost"}, {"type", "quantitative"}}},
                                    {"tooltip", json::array({{{"field", "label"}, {"title", "budget"}}})}}}});
  }
  if (!uniform.empty()) {
    layers.push_back({{"data", {{"values", uniform}}},
                      {"mark", {{"type", "point"}, {"shape", "square"}, {"size", 90}, {"color", "#2ca02c"}, {"filled", true}}},
                      {"encoding", {{"x", x}, {"y", y}, {"tooltip", json::array({{{"field", "label"}}})}}}});
    layers.push_back({{"data", {{"values", uniform}}},
                      {"mark", {{"type", "text"}, {"dy", -12}, {"color", "#2ca02c"}}},
                      {"encoding", {{"x", x}, {"y", y}, {"text", {{"field", "label"}}}}}});
  }
  if (!selected.empty()) {
    layers.push_back({{"data", {{"values", selected}}},
                      {"mark", {{"type", "point"}, {"shape", "diamond"}, {"size", 260}, {"filled", true},
                                {"color", "black"}}},
                      {"encoding", {{"x", x}, {"y", y}, {"tooltip", tooltip}}}});
  }
  return {{"title", {{"text", "Validation accuracy against " + axis.title},
                     {"subtitle", "every evaluated configuration; line: Pareto front; dashed: budget; diamond: "
                                  "selected; squares: uniform precision"}}},
          {"width", 560},
          {"height", 320},
          {"layer", layers}};
}

json progress_plot(const std::vector<RunData>& runs) {
  const ScoreAxis score = score_axis(runs);
  json points = json::array(), best = json::array();
  for (const auto& run : runs) {
    std::optional<Point> best_so_far;
    for (const auto& p : points_of(run)) {
      points.push_back({{"run", p.run}, {"evaluation", p.id}, {"episode", p.episode}, {"accuracy", p.accuracy},
                        {"scored", p.finetuned ? "short fine-tune" : "staged only"}, {"config", p.key}});
      if (p.finetuned && p.feasible && (!best_so_far || p.utility > best_so_far->utility)) best_so_far = p;
      if (best_so_far) best.push_back({{"run", p.run}, {"evaluation", p.id}, {"best", best_so_far->accuracy}});
    }
  }
  const bool many = runs.size() > 1;
  json x = {{"field", "evaluation"}, {"type", "quantitative"}, {"title", "evaluation (journal order)"}};
  json y = axis_x("accuracy", score.title);
  json layers = json::array();
  layers.push_back({{"data", {{"values", points}}},
                    {"mark", {{"type", "point"}, {"filled", true}, {"opacity", 0.7}}},
                    {"encoding", {{"x", x}, {"y", y},
                                  {"color", many ? json{{"field", "run"}, {"type", "nominal"}}
                                                 : json{{"field", "scored"}, {"type", "nominal"}, {"title", nullptr}}},
                                  {"shape", {{"field", "scored"}, {"type", "nominal"}, {"title", nullptr}}},
                                  {"tooltip", json::array({{{"field", "run"}}, {{"field", "evaluation"}},
                                                           {{"field", "episode"}},
                                                           {{"field", "accuracy"}, {"format", ".2f"}},
                                                           {{"field", "scored"}}, {{"field", "config"}}})}}}});
  layers.push_back({{"data", {{"values", best}}},
                    {"mark", {{"type", "line"}, {"interpolate", "step-after"}}},
                    {"encoding", {{"x", x}, {"y", {{"field", "best"}, {"type", "quantitative"}}},
                                  {"detail", {{"field", "run"}}},
                                  {"color", many ? json{{"field", "run"}, {"type", "nominal"}} : json{{"value", "black"}}}}}});
  return {{"title", {{"text", "Search progress"},
                     {"subtitle", score.name + " per evaluation; line: best feasible so far (staged-only candidates are "
                                  "scored on the small staged subset)"}}},
          {"width", 560},
          {"height", 260},
          {"layer", layers}};
}

json layers_plot(const std::vector<LayerChoice>& rows) {
  json strip = json::array(), shares = json::array(), sens = json::array();
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const std::string name = fmt::format("{:02d} {}", i + 1, r.layer);
    auto bits = [](int b) { return b >= 32 ? std::string("float") : std::to_string(b); };
    strip.push_back({{"layer", name}, {"tensor", "weights"}, {"bits", bits(r.weight_bits)}, {"reason", r.reason}});
    strip.push_back({{"layer", name}, {"tensor", "activations"}, {"bits", bits(r.activation_bits)}, {"reason", r.reason}});
    shares.push_back({{"layer", name}, {"cost", "weight memory"}, {"share", 100 * r.weight_memory_share}});
    shares.push_back({{"layer", name}, {"cost", "BOPs"}, {"share", 100 * r.bops_share}});
    if (r.sensitivity >= 0) sens.push_back({{"layer", name}, {"kl", std::max(r.sensitivity, 1e-6)}, {"rank", r.sensitivity_rank}});
  }
  json x = {{"field", "layer"}, {"type", "ordinal"}, {"title", nullptr}, {"sort", nullptr},
            {"axis", {{"labelAngle", -50}, {"labelLimit", 220}}}};
  json x_hidden = x;
  x_hidden["axis"] = {{"labels", false}, {"ticks", false}};
  json order = json::array({"2", "3", "4", "5", "6", "7", "8", "16", "float"});
  const int width = std::max<int>(300, 26 * static_cast<int>(rows.size()));
  json panels = json::array();
  panels.push_back(
      {{"data", {{"values", strip}}},
       {"height", 60},
       {"width", width},
       {"title", "bits of the selected configuration"},
       {"encoding", {{"x", x_hidden}, {"y", {{"field", "tensor"}, {"type", "nominal"}, {"title", nullptr}}}}},
       {"layer", json::array({{{"mark", "rect"},
                               {"encoding", {{"color", {{"field", "bits"}, {"type", "ordinal"}, {"sort", order},
                                                        {"scale", {{"scheme", "viridis"}}}, {"title", "bits"}}},
                                             {"tooltip", json::array({{{"field", "layer"}}, {{"field", "tensor"}},
                                                                      {{"field", "bits"}}, {{"field", "reason"}}})}}}},
                              {{"mark", {{"type", "text"}, {"fontSize", 9}, {"color", "white"}}},
                               {"encoding", {{"text", {{"field", "bits"}}}}}}})}});
  panels.push_back({{"data", {{"values", shares}}},
                    {"height", 110},
                    {"width", width},
                    {"title", "share of the quantizable layers' cost (%)"},
                    {"mark", "bar"},
                    {"encoding", {{"x", sens.empty() ? x : x_hidden},
                                  {"xOffset", {{"field", "cost"}}},
                                  {"y", {{"field", "share"}, {"type", "quantitative"}, {"title", "%"}}},
                                  {"color", {{"field", "cost"}, {"type", "nominal"}, {"title", nullptr},
                                             {"scale", {{"range", {"#4c78a8", "#f58518"}}}}}},
                                  {"tooltip", json::array({{{"field", "layer"}}, {{"field", "cost"}},
                                                           {{"field", "share"}, {"format", ".2f"}}})}}}});
  if (!sens.empty()) {
    panels.push_back({{"data", {{"values", sens}}},
                      {"height", 110},
                      {"width", width},
                      {"title", "sensitivity: KL to FP32 at the lowest weight bits measured (log scale)"},
                      {"mark", {{"type", "circle"}, {"size", 70}, {"color", "#e45756"}}},
                      {"encoding", {{"x", x},
                                    {"y", {{"field", "kl"}, {"type", "quantitative"}, {"title", "KL"},
                                           {"scale", {{"type", "log"}}}}},
                                    {"tooltip", json::array({{{"field", "layer"}}, {{"field", "kl"}, {"format", ".3g"}},
                                                             {{"field", "rank"}}})}}}});
  }
  return {{"title", "Per-layer choices"}, {"vconcat", panels}, {"resolve", {{"scale", {{"color", "independent"}}}}}};
}

struct LatencyRows {
  json rows = json::array();
  json bounds = json::array();
};

std::optional<json> latency_plot(const std::vector<RunData>& runs) {
  LatencyRows d;
  for (const auto& run : runs) {
    const json* t = find_path(run.result, {"deploy", "target_latency"});
    if (!t) continue;
    for (const auto& c : (*t)["constraints"]) {
      d.rows.push_back({{"run", run.label}, {"what", "predicted: per-layer sum"}, {"ms", c.value("per_layer_sum_ms", 0.0)}});
      d.rows.push_back({{"run", run.label}, {"what", "measured: whole file"}, {"ms", c.value("measured_ms", 0.0)}});
      d.rows.push_back({{"run", run.label}, {"what", "FP32 measured whole"}, {"ms", c.value("fp32_measured_ms", 0.0)}});
      d.bounds.push_back({{"run", run.label}, {"ms", c.value("bound_ms", 0.0)}, {"label", c.value("constraint", "")}});
      break;
    }
  }
  if (d.rows.empty()) return std::nullopt;
  json y = {{"field", "run"}, {"type", "nominal"}, {"title", nullptr}};
  return json{{"title", {{"text", "Latency: predicted against measured"},
                         {"subtitle", "the deployed file timed whole on the target; dashed: the bound"}}},
              {"width", 560},
              {"layer",
               json::array({{{"data", {{"values", d.rows}}},
                             {"mark", "bar"},
                             {"encoding", {{"y", y},
                                           {"yOffset", {{"field", "what"}}},
                                           {"x", {{"field", "ms"}, {"type", "quantitative"}, {"title", "ms (batch 1)"}}},
                                           {"color", {{"field", "what"}, {"type", "nominal"}, {"title", nullptr}}},
                                           {"tooltip", json::array({{{"field", "run"}}, {{"field", "what"}},
                                                                    {{"field", "ms"}, {"format", ".4f"}}})}}}},
                            {{"data", {{"values", d.bounds}}},
                             {"mark", {{"type", "tick"}, {"color", "#d62728"}, {"thickness", 2}}},
                             {"encoding", {{"y", y}, {"x", {{"field", "ms"}, {"type", "quantitative"}}},
                                           {"tooltip", json::array({{{"field", "label"}}})}}}}})}};
}

struct SensitivityFit {
  json plot;
  std::optional<double> rho;
  int64_t pairs = 0;
};

std::optional<SensitivityFit> sensitivity_plot(const std::vector<RunData>& runs,
                                               const std::vector<std::vector<std::string>>& names) {
  const ScoreAxis score = score_axis(runs);
  json points = json::array();
  std::vector<double> xs, ys;
  for (size_t r = 0; r < runs.size(); ++r) {
    const SensitivityTable table(runs[r].sensitivity);
    if (table.empty() || names[r].empty()) continue;
    for (const auto& e : runs[r].evaluations) {
      std::vector<quant::LayerPrecision> bits;
      try {
        bits = search::parse_config_key(e.config_key);
      } catch (const std::exception&) {
        continue;
      }
      if (bits.size() != names[r].size()) continue;
      const double s = table.sum(names[r], bits);
      const bool finetuned = e.metrics.value("finetuned", true);
      points.push_back({{"run", runs[r].label}, {"sensitivity", s}, {"accuracy", score.scale * e.accuracy},
                        {"scored", finetuned ? "short fine-tune" : "staged only"}, {"evaluation", e.id}});
      if (finetuned) {
        xs.push_back(s);
        ys.push_back(eval::utility(score.metric, e.accuracy));
      }
    }
  }
  if (points.empty()) return std::nullopt;
  SensitivityFit fit;
  fit.rho = spearman(xs, ys);
  fit.pairs = static_cast<int64_t>(xs.size());
  const std::string rho = fit.rho ? fmt::format("Spearman's rank correlation {:+.3f} over {} fine-tuned configurations",
                                                *fit.rho, fit.pairs)
                                  : fmt::format("rank correlation undefined ({} fine-tuned configurations)", fit.pairs);
  fit.plot = {{"title", {{"text", "Summed sensitivity against validation " + score.name}, {"subtitle", rho}}},
              {"width", 560},
              {"height", 280},
              {"data", {{"values", points}}},
              {"mark", {{"type", "point"}, {"filled", true}, {"opacity", 0.7}}},
              {"encoding",
               {{"x", axis_x("sensitivity", "summed KL of the configuration's tensors (sensitivity table)")},
                {"y", axis_x("accuracy", score.title)},
                {"color", runs.size() > 1 ? json{{"field", "run"}, {"type", "nominal"}}
                                          : json{{"field", "scored"}, {"type", "nominal"}, {"title", nullptr}}},
                {"shape", {{"field", "scored"}, {"type", "nominal"}, {"title", nullptr}}},
                {"tooltip", json::array({{{"field", "run"}}, {{"field", "evaluation"}},
                                         {{"field", "sensitivity"}, {"format", ".4g"}},
                                         {{"field", "accuracy"}, {"format", ".2f"}}})}}}};
  return fit;
}

// ----------------------------------------------------------------------------
// HTML

std::string e(const std::string& s) { return html_escape(s); }

std::string interval_text(const std::optional<Interval>& i, bool signed_value = false) {
  if (!i) return "";
  return fmt::format(signed_value ? "{:+.2f} points (95% CI {:+.2f} to {:+.2f})" : "{:.2f}% (95% CI {:.2f} to {:.2f})",
                     100 * i->value, 100 * i->low, 100 * i->high);
}

std::string config_section(const RunData& run) {
  std::string h = "<h3>Reproduce</h3>\n<p>The journal's run configuration (seed " + std::to_string(run.seed) +
                  ", started " + e(run.created) +
                  "). Save it as <code>run.yaml</code> (YAML reads JSON) and run <code>autoprec search --config run.yaml "
                  "--out DIR</code>.</p>\n<pre class=\"config\">" +
                  e(run.config.dump(2, ' ', false, json::error_handler_t::replace)) + "</pre>\n";
  return h;
}

// The run's own metric on the test split, for runs that do not score by top-1.
std::string score_section(const RunData& run) {
  const ScoreAxis axis = score_axis(run.config);
  auto text = [&](const char* model, const char* key) {
    const double v = number_at(run.result, {model, key});
    return std::isnan(v) ? std::string() : eval::format_score(axis.metric, v);
  };
  std::string h = fmt::format("<h3>{} on the {} data</h3>\n<p>The run scores with <code>{}</code> ({}).</p>\n",
                              e(eval::describe(axis.metric)), e(run.result.value("evaluated_on", "test")),
                              eval::to_string(axis.metric), e(axis.name));
  h += "<table><tr><th>model</th><th>test</th><th>validation</th></tr>\n";
  h += fmt::format("<tr><td>FP32</td><td>{}</td><td>{}</td></tr>\n", text("fp32", "test_score"),
                   text("fp32", "validation_score"));
  h += fmt::format("<tr><td>result</td><td>{}</td><td>{}</td></tr>\n</table>\n", text("final", "test_score"),
                   text("final", "validation_score"));
  return h;
}

std::string accuracy_section(const RunData& run, const ReportOptions& options) {
  if (run.result.is_null()) return "";
  std::string scored = score_axis(run.config).metric == eval::Metric::Top1 ? "" : score_section(run);
  if (!find_path(run.result, {"final", "test_top1"})) return scored;
  const double fp32 = number_at(run.result, {"fp32", "test_top1"});
  const double final = number_at(run.result, {"final", "test_top1"});
  const auto a = outcome_bits(run.outcomes, "fp32_top1_correct");
  const auto b = outcome_bits(run.outcomes, "result_top1_correct");
  const auto ia = bootstrap_mean(a, options.bootstrap_resamples, run.seed);
  const auto ib = bootstrap_mean(b, options.bootstrap_resamples, run.seed + 1);
  const auto id = bootstrap_paired_difference(a, b, options.bootstrap_resamples, run.seed + 2);
  std::string h = "<h3>Accuracy on the test split</h3>\n<table><tr><th>model</th><th>test top-1</th><th>validation top-1</th></tr>\n";
  h += fmt::format("<tr><td>FP32</td><td>{}</td><td>{}</td></tr>\n", ia ? interval_text(ia) : percent(fp32),
                   percent(number_at(run.result, {"fp32", "validation_top1"})));
  h += fmt::format("<tr><td>result</td><td>{}</td><td>{}</td></tr>\n", ib ? interval_text(ib) : percent(final),
                   percent(number_at(run.result, {"final", "validation_top1"})));
  h += fmt::format("<tr><td>difference</td><td>{}</td><td></td></tr>\n</table>\n",
                   id ? interval_text(id, true) : fmt::format("{:+.2f} points", 100 * (final - fp32)));
  if (ia) {
    h += fmt::format("<p class=\"note\">Percentile bootstrap over the {} test examples, {} resamples (seeds {}, {}, {}); "
                     "the difference is paired: both models on the same resampled examples.</p>\n",
                     a.size(), options.bootstrap_resamples, run.seed, run.seed + 1, run.seed + 2);
  }
  return scored + h;
}

std::string constraints_section(const RunData& run) {
  const json* cs = find_path(run.result, {"constraints"});
  if (!cs) return "";
  std::string h = "<h3>Constraints</h3>\n<table><tr><th>constraint</th><th>holds</th><th>value, bound, slack</th></tr>\n";
  std::string binding;
  double worst = INFINITY;
  for (const auto& c : *cs) {
    const bool holds = c.value("holds", false);
    const double bound = c.value("bound", 0.0), slack = c.value("slack", 0.0);
    const double relative = bound != 0 ? slack / std::fabs(bound) : slack;
    if (relative < worst) {
      worst = relative;
      binding = c.value("constraint", "");
    }
    h += fmt::format("<tr class=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td></tr>\n", holds ? "ok" : "bad",
                     e(c.value("constraint", "")), holds ? "yes" : "NO", e(c.value("text", "")));
  }
  h += "</table>\n";
  if (!binding.empty()) {
    h += run.result.value("feasible", true)
             ? fmt::format("<p>Tightest: <code>{}</code> ({:.1f}% of its bound left).</p>\n", e(binding), 100 * worst)
             : fmt::format("<p class=\"bad\">Infeasible: no evaluated configuration meets every constraint; "
                           "<code>{}</code> binds, missed by {:.1f}% of its bound. {}</p>\n",
                           e(binding), -100 * worst, e(run.result.value("infeasible", "")));
  }
  return h;
}

std::string deploy_section(const RunData& run) {
  const json* d = find_path(run.result, {"deploy"});
  if (!d || !d->contains("bundle")) return "";
  std::string h = "<h3>Deployment</h3>\n<table>\n";
  const double sim = number_at(run.result, {"final", "test_top1"});
  h += fmt::format("<tr><th>verified in the runtime</th><td>{}</td></tr>\n", d->value("verified", false) ? "yes" : "NO");
  const char* top1_key = d->contains("runtime_top1") && (*d)["runtime_top1"].is_number() ? "runtime_top1" : "ort_top1";
  if (d->value("runtime", "") == "native")
    h += "<tr><th>runtime</th><td>native (autoprec's own, weights packed at their bit-widths)</td></tr>\n";
  if (d->contains(top1_key) && (*d)[top1_key].is_number())
    h += fmt::format("<tr><th>runtime test top-1</th><td>{} (simulation {})</td></tr>\n",
                     percent(d->value(top1_key, 0.0)), percent(sim));
  else if (d->contains("ort_agreement"))
    h += fmt::format("<tr><th>runtime agrees with the simulation</th><td>{} of the predictions</td></tr>\n",
                     percent(d->value("ort_agreement", 0.0)));
  const double theoretical = number_at(run.result, {"final", "costs", "weight_bits"}) / 8;
  const double bytes = d->value("onnx_bytes", 0.0);
  h += fmt::format("<tr><th>file size</th><td>{:.1f} KiB ({:.2f}× the theoretical weight memory {:.1f} KiB)</td></tr>\n",
                   bytes / 1024, theoretical > 0 ? bytes / theoretical : 0, theoretical / 1024);
  const double q = d->value("quantized_ms", 0.0), f = d->value("fp32_ms", 0.0);
  h += fmt::format("<tr><th>runtime latency</th><td>{:.4f} ms against {:.4f} ms for FP32 ({:.2f}× FP32's speed)</td></tr>\n",
                   q, f, q > 0 ? f / q : 0);
  if (const json* t = find_path(*d, {"target_latency"})) {
    for (const auto& c : (*t)["constraints"]) {
      h += fmt::format("<tr><th>on {} (whole file)</th><td>{:.4f} ms measured, {:.4f} ms predicted as the per-layer "
                       "sum; bound {:.4f} ms: {}</td></tr>\n",
                       e(t->value("target", "")), c.value("measured_ms", 0.0), c.value("per_layer_sum_ms", 0.0),
                       c.value("bound_ms", 0.0), c.value("holds", false) ? "meets it" : "VIOLATES it");
    }
  }
  return h + "</table>\n";
}

std::string layers_table(const std::vector<LayerChoice>& rows) {
  std::string h = "<table class=\"layers\"><tr><th>#</th><th>layer</th><th>op</th><th>weights</th><th>activations</th>"
                  "<th>weight memory</th><th>BOPs</th><th>sensitivity (KL)</th><th>why</th></tr>\n";
  auto bits = [](int b) { return b >= 32 ? std::string("float") : std::to_string(b); };
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    h += fmt::format("<tr><td>{}</td><td class=\"name\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                     "<td>{}</td><td>{}</td></tr>\n",
                     i + 1, e(r.layer), e(r.op), bits(r.weight_bits), bits(r.activation_bits),
                     r.weights ? percent(r.weight_memory_share, 1) : "", r.weights ? percent(r.bops_share, 1) : "",
                     r.sensitivity >= 0 ? fmt::format("{:.3g} (#{})", r.sensitivity, r.sensitivity_rank) : "",
                     e(r.reason));
  }
  return h + "</table>\n";
}

std::string runs_table(const std::vector<RunData>& runs, const ReportOptions& options) {
  const ScoreAxis axis = score_axis(runs);
  const bool top1 = axis.metric == eval::Metric::Top1;
  std::string h = fmt::format("<table><tr><th>run</th><th>agent</th><th>target</th><th>evaluations</th><th>best {}</th>"
                              "<th>test {} (FP32 → result)</th><th>feasible</th><th>weight memory</th></tr>\n",
                              top1 ? "validation top-1" : "validation " + e(axis.name),
                              top1 ? "top-1" : e(axis.name));
  for (const auto& run : runs) {
    std::optional<double> best;
    for (const auto& ev : run.evaluations) {
      if (run.best_id && ev.id == *run.best_id) best = ev.accuracy;
    }
    std::string test = "not finished", feasible = "", memory = "";
    if (!run.result.is_null()) {
      auto ib = bootstrap_mean(outcome_bits(run.outcomes, "result_top1_correct"), options.bootstrap_resamples, run.seed + 1);
      if (top1)
        test = percent(number_at(run.result, {"fp32", "test_top1"})) + " → " +
               (ib ? interval_text(ib) : percent(number_at(run.result, {"final", "test_top1"})));
      else
        test = eval::format_score(axis.metric, number_at(run.result, {"fp32", "test_score"})) + " → " +
               eval::format_score(axis.metric, number_at(run.result, {"final", "test_score"}));
      feasible = run.result.value("feasible", false) ? "yes" : "NO";
      const double wb = number_at(run.result, {"final", "costs", "weight_bits"});
      const double fp = number_at(run.result, {"final", "costs", "fp32_weight_bits"});
      memory = fmt::format("{:.1f} KiB ({:.1f}% of FP32)", wb / 8192, 100 * wb / fp);
    }
    h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                     e(run.label), e(run.config.value("agent", "")), e(run.config.value("target", "")),
                     run.evaluations.size(), best ? eval::format_score(axis.metric, *best) : "", e(test), feasible,
                     memory);
  }
  return h + "</table>\n";
}

const char* kStyle = R"css(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:0 24px 48px;color:#222}
h1{font-size:22px;margin:24px 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 6px}table{border-collapse:collapse;margin:6px 0 12px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f6f6f6;font-weight:600}
tr.bad td,.bad{color:#b00020}code,pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
pre.config{background:#f8f8f8;border:1px solid #eee;padding:8px;max-height:260px;overflow:auto}
.note{color:#555;font-size:12px}.missing{background:#fff6e0;border:1px solid #f0d080;padding:8px 12px;margin:8px 0}
.plot{margin:12px 0 24px}.layers td.name{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.sub{color:#555}
)css";

const char* kScript = R"js(
(function () {
  var status = document.getElementById('autoprec-status');
  var specs = JSON.parse(document.getElementById('autoprec-specs').textContent);
  var ids = Object.keys(specs);
  var options = {actions: false, renderer: 'svg', mode: 'vega-lite'};
  Promise.all(ids.map(function (id) { return vegaEmbed('#' + id, specs[id], options); })).then(function () {
    document.body.setAttribute('data-rendered', String(ids.length));
    status.textContent = '';
  }).catch(function (error) {
    document.body.setAttribute('data-rendered', 'error');
    status.textContent = 'A plot failed to render: ' + error;
    console.error(error);
  });
})();
)js";

std::string now_utc() {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string script_safe_json(const json& value) {
  const std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    // Inside JSON these appear only within strings, where the escapes mean the same characters.
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<LayerChoice> explain_layers(const RunData& run) {
  auto info = try_model_info(run);
  return explain(run, info ? &*info : nullptr);
}

std::string render_report(const std::vector<RunData>& runs, const ReportOptions& options) {
  if (runs.empty()) fail("report: no run directory given");
  std::vector<std::optional<target::ModelInfo>> infos;
  std::vector<std::vector<std::string>> names;
  std::vector<std::vector<LayerChoice>> choices;
  for (const auto& run : runs) {
    infos.push_back(try_model_info(run));
    names.push_back(layer_names(run, infos.back() ? &*infos.back() : nullptr));
    choices.push_back(explain(run, infos.back() ? &*infos.back() : nullptr));
  }
  json specs = json::object();
  std::string plots;
  int next = 1;
  auto add_plot = [&](json spec) {
    const std::string id = "plot-" + std::to_string(next++);
    plots += "<div class=\"plot\" id=\"" + id + "\"></div>\n";
    specs[id] = std::move(spec);
  };
  std::vector<std::string> axes;
  for (const auto& run : runs) {
    if (const json* cs = find_path(run.result, {"constraints"})) {
      for (const auto& c : *cs) axes.push_back(c.value("metric", ""));
    } else if (run.config.contains("constraints")) {
      for (const auto& c : run.config["constraints"]) {
        const std::string t = c.is_string() ? c.get<std::string>() : "";
        for (const char* m : {"weight_memory", "bops", "latency", "energy"}) {
          if (t.rfind(m, 0) == 0) axes.push_back(m);
        }
      }
    }
  }
  std::vector<CostAxis> cost_axes;
  std::set<std::string> seen;
  for (const auto& m : axes) {
    if (auto a = cost_axis(m); a && seen.insert(m).second) cost_axes.push_back(*a);
  }
  if (cost_axes.empty()) cost_axes.push_back(*cost_axis("weight_memory"));

  std::string body;
  const bool many = runs.size() > 1;
  body += "<h1>autoprec search report</h1>\n<p class=\"sub\">" +
          e(many ? std::to_string(runs.size()) + " runs" : runs[0].dir) + " · model " +
          e(runs[0].config.value("model", "?")) + " · written " + now_utc() + "</p>\n";
  body += "<p id=\"autoprec-status\" class=\"note\">Drawing the plots…</p>\n";
  std::string missing;
  for (const auto& run : runs) {
    for (const auto& m : run.missing) missing += "<li>" + (many ? "<b>" + e(run.label) + "</b>: " : std::string()) + e(m) + "</li>\n";
  }
  if (!missing.empty()) body += "<div class=\"missing\"><b>What this report lacks</b><ul>\n" + missing + "</ul></div>\n";
  body += "<h2>Runs</h2>\n" + runs_table(runs, options);

  body += "<h2>Accuracy against cost</h2>\n";
  for (const auto& a : cost_axes) add_plot(front_plot(runs, a));
  body += plots;
  plots.clear();
  body += "<h2>Search progress</h2>\n";
  add_plot(progress_plot(runs));
  body += plots;
  plots.clear();
  body += "<h2>Predicted and measured</h2>\n";
  if (auto l = latency_plot(runs)) {
    add_plot(*l);
  } else {
    plots += "<p class=\"note\">No latency measured on a target: the run's target has no measured cost model, or the "
             "result was not deployed.</p>\n";
  }
  if (auto s = sensitivity_plot(runs, names)) {
    add_plot(s->plot);
    plots += "<p class=\"note\">" +
             e(s->rho ? fmt::format("Spearman's rank correlation of summed sensitivity and validation accuracy: {:+.3f} "
                                    "over {} fine-tuned configurations (negative: more sensitivity, less accuracy).",
                                    *s->rho, s->pairs)
                      : "Too few fine-tuned configurations for a rank correlation.") +
             "</p>\n";
  } else {
    plots += "<p class=\"note\">No sensitivity table: summed sensitivity is not available.</p>\n";
  }
  body += plots;
  plots.clear();

  for (size_t r = 0; r < runs.size(); ++r) {
    const RunData& run = runs[r];
    body += "<h2>" + (many ? "Run " + e(run.label) : std::string("The result")) + "</h2>\n";
    body += accuracy_section(run, options);
    body += constraints_section(run);
    body += deploy_section(run);
    body += "<h3>Per layer</h3>\n";
    if (choices[r].empty()) {
      body += "<p class=\"note\">No selected configuration yet.</p>\n";
    } else {
      add_plot(layers_plot(choices[r]));
      body += plots;
      plots.clear();
      body += layers_table(choices[r]);
    }
    body += config_section(run);
  }

  std::string html;
  html += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  // Nothing may leave the page: no network fetch of any kind, inline scripts and styles only.
  html += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline' "
          "'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:\">\n";
  html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  html += "<title>autoprec report: " + e(many ? std::to_string(runs.size()) + " runs" : runs[0].label) + "</title>\n";
  html += std::string("<style>") + kStyle + "</style>\n</head>\n<body>\n";
  html += body;
  html += "<script type=\"application/json\" id=\"autoprec-specs\">" + script_safe_json(specs) + "</script>\n";
  html += std::string("<script>") + kVegaJs + "</script>\n";
  html += std::string("<script>") + kVegaLiteJs + "</script>\n";
  html += std::string("<script>") + kVegaEmbedJs + "</script>\n";
  html += std::string("<script>") + kScript + "</script>\n</body>\n</html>\n";
  return html;
}

ReportSummary write_report(const std::vector<std::string>& dirs, const std::string& out, const ReportOptions& options) {
  if (std::string(kVegaJs).empty() || std::string(kVegaLiteJs).empty() || std::string(kVegaEmbedJs).empty()) {
    fail("this autoprec was built without the plotting library (tools/node_modules/vega*): run scripts/setup, then "
         "rebuild");
  }
  std::vector<RunData> runs;
  for (const auto& d : dirs) runs.push_back(load_run(d));
  const std::string html = render_report(runs, options);
  write_file_atomically(out, html, "report");
  ReportSummary s;
  s.path = out;
  s.bytes = static_cast<int64_t>(html.size());
  s.runs = static_cast<int64_t>(runs.size());
  for (const auto& r : runs) {
    s.evaluations += static_cast<int64_t>(r.evaluations.size());
    for (const auto& m : r.missing) s.missing.push_back(r.label + ": " + m);
  }
  for (size_t p = html.find("class=\"plot\" id="); p != std::string::npos; p = html.find("class=\"plot\" id=", p + 1)) ++s.plots;
  return s;
}

nlohmann::json to_json(const ReportSummary& s) {
  return {{"report", s.path}, {"bytes", s.bytes}, {"runs", s.runs}, {"evaluations", s.evaluations}, {"plots", s.plots},
          {"missing", s.missing}};
}

}  // namespace autoprec::report
