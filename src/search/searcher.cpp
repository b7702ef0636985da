#include "search/searcher.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <tuple>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "data/dataset.h"
#include "deploy/command_metric.h"
#include "eval/evaluate.h"
#include "exec/executor.h"
#include "graph/onnx_export.h"
#include "quant/quantized_model.h"
#include "quant/sensitivity.h"
#include "search/agent.h"
#include "search/config_key.h"
#include "search/ddpg.h"
#include "search/environment.h"
#include "search/greedy.h"
#include "search/ilp.h"
#include "search/journal.h"
#include "search/pareto.h"
#include "search/problem.h"
#include "search/task_pool.h"
#include "target/constraints.h"
#include "target/cost_model.h"
#include "target/measure.h"
#include "target/profile.h"
#include "train/finetune.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mpi.h"

namespace autoprec::search {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Fault injection for the recovery tests (docs/search.md, "Recovery"):
// AUTOPREC_FAULT_CRASH_AT=key:K kills the worker given configuration K,
// =candidate:R kills worker rank R when it is given its first candidate,
// =setup:R kills worker rank R before its hello, as a crash would.
void crash_if_asked(const std::string& where) {
  const char* crash = std::getenv("AUTOPREC_FAULT_CRASH_AT");
  if (crash && where == crash) std::raise(SIGKILL);
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A cost metric the search can budget, with its per-layer values.
struct ResourceSpec {
  target::Metric metric;
  std::string name;
  std::string unit;
  double constant = 0;  // the part of the total no layer choice changes (e.g. non-quantized parameters)
};

// A cost metric of a whole configuration (TargetCosts) or of one layer
// (TargetLayerCost): both carry the same fields.
template <typename Costs>
double metric_value(const Costs& c, target::Metric m) {
  switch (m) {
    case target::Metric::WeightMemory: return c.bits.weight_memory_bits;
    case target::Metric::Bops: return c.bits.bops;
    case target::Metric::Latency: return c.latency_ms.value_or(0);
    case target::Metric::Energy: return c.energy_mj.value_or(0);
    default: return 0;
  }
}

json totals_json(const target::TargetCosts& c) {
  json j = {{"weight_bits", c.bits.weight_memory_bits}, {"bops", c.bits.bops}, {"macs", c.bits.macs},
            {"fp32_weight_bits", c.bits.fp32_weight_memory_bits}};
  if (c.latency_ms) j["latency_ms"] = *c.latency_ms;
  if (c.energy_mj) j["energy_mj"] = *c.energy_mj;
  return j;
}

// DIR/outcomes.json: per test example, whether the FP32 model and the result
// predicted its label ("1"/"0" per example, dataset order), so a report can
// give paired bootstrap intervals without evaluating again.
void write_outcomes(const std::string& path, const std::string& source, const eval::EvalResult& fp32,
                    const eval::EvalResult& result) {
  auto bits = [](const std::vector<uint8_t>& v) {
    std::string s(v.size(), '0');
    for (size_t i = 0; i < v.size(); ++i) s[i] = v[i] ? '1' : '0';
    return s;
  };
  json j = {{"format", "autoprec-outcomes"}, {"version", 1}, {"split", "test"}, {"source", source},
            {"examples", fp32.examples}, {"fp32_top1_correct", bits(fp32.top1_correct)},
            {"result_top1_correct", bits(result.top1_correct)}};
  write_file_atomically(path, j.dump() + "\n", "test outcomes");
}

json constraints_json(const std::vector<target::ConstraintResult>& results) {
  json out = json::array();
  for (const auto& r : results) {
    out.push_back({{"constraint", r.constraint.text}, {"metric", to_string(r.constraint.metric)}, {"holds", r.holds},
                   {"value", r.value}, {"bound", r.bound}, {"slack", r.slack},
                   {"text", fmt::format("{} = {} (bound {}, slack {})", to_string(r.constraint.metric),
                                        target::format_metric(r.constraint.metric, r.value),
                                        target::format_metric(r.constraint.metric, r.bound),
                                        target::format_metric(r.constraint.metric, r.slack))}});
  }
  return out;
}

class Search : public SearchDriver {
 public:
  Search(RunConfig config, const SearchOptions& options) : cfg_(std::move(config)), opt_(options) {}
  json run();

  // SearchDriver: what the agents see (search/agent.h).
  const ChoiceProblem& problem() const override { return problem_; }
  const Environment& environment() const override { return *env_; }
  const RunConfig& config() const override { return cfg_; }
  Journal& journal() override { return *journal_; }
  std::vector<EvaluationRecord> evaluate(const std::vector<Candidate>& batch) override { return evaluate_batch(batch); }
  double reward(const EvaluationRecord& record) const override { return reward_of(record); }
  void episode_done(int64_t episode) override;
  void episodes_resumed(int64_t count) override;

 private:
  void prepare();
  void build_problem();
  void load_data();
  void prepare_run();  // resume, validation, output directory: everything before the long work
  json run_prepared(Clock::time_point start);
  // The worker side of an MPI job: set up from rank 0's configuration, then answer tasks.
  void serve_as_worker();
  std::string fingerprint() const;
  std::vector<quant::LayerPrecision> bits_of(const Choice& choice) const;
  quant::PrecisionConfig config_of_bits(const std::vector<quant::LayerPrecision>& bits) const;
  // One candidate's work, wherever it runs: {"kind": "staged"|"full"|"both", "key": config key}
  // -> {"cheap": top-1 on the staged subset, "accuracy": validation top-1 after the short fine-tune, "seconds"}.
  json evaluate_task(const json& task) const;
  // Evaluates (or looks up) a batch of configurations, in episode order:
  // journaled keys are looked up, repeated keys evaluated once, staged scores
  // computed (in the pool), staging decided in episode order, promising
  // candidates fine-tuned (in the pool), and the records written in episode
  // order. Returns one record per candidate.
  std::vector<EvaluationRecord> evaluate_batch(const std::vector<Candidate>& batch);
  double reward_of(const EvaluationRecord& r) const;
  double utility(double score) const { return eval::utility(metric_, score); }
  // Scores `executor` on `d` with the run's metric; `reference` holds the teacher's outputs on `d` (label-free metrics).
  eval::EvalResult score(const exec::Executor& executor, const data::Dataset& d, const at::Tensor& reference,
                         bool keep_outcomes = false) const;
  // The run's score of a candidate on `d`: the metric on the data, or the metric command on the exported model.
  double candidate_score(const quant::QuantizedModel& model, const data::Dataset& d) const;
  // Built on first use over the sensitivity subset of the validation set, with the table's `bits`
  // (a worker, which only measures, passes none).
  const quant::SensitivityMeasurer& sensitivity_measurer(const std::vector<int>& bits) const;
  // What scores data where the run's metric cannot (the command scores files): the sensitivity
  // table's and the final fine-tune's epochs.
  eval::Metric data_metric() const { return metric_ == eval::Metric::Command ? eval::Metric::Kl : metric_; }
  void update_fronts();
  json finish(double search_seconds);

  RunConfig cfg_;
  SearchOptions opt_;
  std::string dir_;
  target::Profile profile_;
  target::ModelInfo info_;
  std::unique_ptr<target::LayerCostSource> source_;
  std::vector<target::Constraint> constraints_;
  std::vector<ResourceSpec> resources_;
  target::TargetCosts int8_costs_;
  quant::Granularity granularity_ = quant::Granularity::PerChannel;

  data::Dataset train_, validation_, stage_set_, calibration_, short_set_, test_;
  mutable data::Dataset sensitivity_set_;  // the first sensitivity_examples_ of validation_
  mutable std::unique_ptr<quant::SensitivityMeasurer> sensitivity_measurer_;
  std::unique_ptr<exec::Executor> teacher_;
  quant::CalibrationStats stats_;
  std::unique_ptr<train::TeacherCache> cache_;
  quant::SensitivityTable sensitivity_;
  eval::Metric metric_ = eval::Metric::Top1;  // resolved by load_data
  deploy::CommandMetric command_;              // metric_ == Command: the user's scorer
  at::Tensor validation_reference_;  // the teacher's outputs on validation_ (label-free metrics)
  double fp32_validation_ = 0;       // the teacher's score on validation_

  ChoiceProblem problem_;
  std::unique_ptr<Environment> env_;  // built from problem_ once its sensitivities are known
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<TaskPool> pool_;
  MpiPool* mpi_pool_ = nullptr;  // pool_ when distributed
  double best_cheap_ = -std::numeric_limits<double>::infinity();  // a utility (eval::utility)
  int64_t sensitivity_examples_ = 0;  // resolved from cfg_.sensitivity_examples by load_data
  int64_t evaluations_run_ = 0;
  int64_t finetuned_run_ = 0;
  std::unique_ptr<Progress> progress_;  // the episodes' progress line, while the agent runs
};

void Search::prepare() {
  validate(cfg_);
  dir_ = cfg_.out;
  profile_ = target::load_target(cfg_.target);
  info_ = target::load_model_info(cfg_.model);
  source_ = target::make_source(profile_, info_, "");

  for (size_t l = 0; l < info_.layers.size(); ++l) {
    const auto& layer = info_.layers[l];
    auto pairs = target::supported_pairs(profile_, layer.op, cfg_.weight_bits, cfg_.activation_bits);
    if (pairs.empty()) {
      fail("target {} supports no (weight, activation) bit pair for layer {} ({}) within the requested bit sets",
           profile_.name, layer.name, layer.op);
    }
    // A cost table must cost every choice the search may make (a lookup; measured targets measure on demand).
    if (profile_.cost_model.type != target::CostModelType::Lut) continue;
    for (auto [wb, ab] : pairs) {
      try {
        source_->estimate(info_.descs[l], wb, ab);
      } catch (const UserError& e) {
        fail("{}; restrict the search to the bit-widths the table has (weight_bits, activation_bits) or list them "
             "under the profile's precisions",
             e.what());
      }
    }
  }
  std::vector<target::Constraint> parsed;
  for (const std::string& text : cfg_.constraints) parsed.push_back(target::parse_constraint(text, "constraints"));
  std::map<std::string, quant::LayerPrecision> all8, all32;
  for (const auto& layer : info_.layers) {
    all8[layer.name] = {8, 8};
    all32[layer.name] = {32, 32};
  }
  int8_costs_ = target::evaluate_reference(profile_, info_, all8, granularity_, source_.get());
  target::TargetCosts fp32 = target::evaluate_reference(profile_, info_, all32, granularity_, source_.get());
  // Reward terms are relative to uniform W8A8 on the target.
  for (auto [weight, known, what] : {std::tuple{cfg_.reward.latency, int8_costs_.latency_ms.has_value(), "latency"},
                                     std::tuple{cfg_.reward.energy, int8_costs_.energy_mj.has_value(), "energy"}}) {
    if (weight == 0 || known) continue;
    fail("reward.{} needs the {} of uniform W8A8 on target {}: {}", what, what, profile_.name,
         int8_costs_.missing_reason.empty() ? fmt::format("the target has no {} model", what) : int8_costs_.missing_reason);
  }
  constraints_ = target::resolve(parsed, profile_, fp32, int8_costs_);
  std::set<target::Metric> seen;
  for (const auto& c : constraints_) {
    if (target::is_score_metric(c.metric)) continue;
    if (!c.at_most) fail("constraint '{}': cost constraints must be upper bounds (<=)", c.text);
    if (seen.count(c.metric)) fail("constraint '{}': {} is bounded twice", c.text, to_string(c.metric));
    seen.insert(c.metric);
  }

  load_data();
}

void Search::load_data() {
  // Data: validation carved from the training split (or drawn from
  // validation_data); calibration, the staged subset and the short fine-tune
  // subset from the training part.
  const std::vector<std::string> inputs = info_.graph->input_names();
  data::Dataset full = data::load_dataset(cfg_.data, data::Split::Train, {}, inputs);
  eval::check_inputs_fit(*info_.graph, full);
  if (cfg_.metric.empty() && !full.labelled()) {
    // Recorded in the run configuration (journal, workers, report); labelled runs keep the key absent.
    cfg_.metric = "agreement";
    notice(fmt::format("metric: agreement with FP32 ({} has no labels)", cfg_.data));
  }
  if (cfg_.metric.empty()) {
    metric_ = eval::Metric::Top1;
  } else {
    metric_ = eval::parse_metric(cfg_.metric, "metric");
  }
  eval::check_metric_fits(metric_, full);
  command_ = deploy::CommandMetric{cfg_.metric_command, cfg_.metric_timeout};
  for (const auto& c : constraints_) {
    const bool accuracy = c.metric == target::Metric::Accuracy || c.metric == target::Metric::AccuracyDrop;
    if (accuracy && metric_ != eval::Metric::Top1)
      fail("constraint '{}' bounds top-1 accuracy, but the run scores with metric {}{}; bound it with fidelity "
           "(e.g. fidelity>=0.98 for agreement)",
           c.text, eval::to_string(metric_), full.labelled() ? "" : " (the data has no labels)");
    if (c.metric == target::Metric::Fidelity && metric_ == eval::Metric::Top1)
      fail("constraint '{}' bounds a label-free metric, but the run scores with top1; set metric: agreement, kl or "
           "sqnr, or bound accuracy_drop",
           c.text);
  }
  if (!full.labelled() && cfg_.short_finetune.steps > 0 && cfg_.short_finetune.alpha < 1)
    notice("no labels: the short fine-tunes are pure distillation (alpha 1)");
  test_ = data::load_dataset(cfg_.data, data::Split::Test, {}, inputs);
  std::optional<data::Dataset> held_out;
  if (!cfg_.validation_data.empty()) {
    held_out = data::load_dataset(cfg_.validation_data, data::parse_split(cfg_.validation_split), {}, inputs);
  }
  // Counts left at 0 adapt to the data; the resolved counts are what the run uses (and the journal keeps 0).
  const int64_t validation =
      held_out ? data::example_count("validation", cfg_.validation, held_out->size(), 1.0, 2000,
                                     "examples of " + cfg_.validation_data)
               : data::example_count("validation", cfg_.validation, full.size(), 0.2, 2000, "training examples", 1);
  data::TrainValidation split =
      data::train_and_validation(full, held_out ? &*held_out : nullptr, validation, cfg_.seed);
  validation_ = split.validation;
  train_ = split.train;
  spdlog::info("validation: {} examples of {}; training: {} examples (seed {})", validation_.size(), validation_.source,
               train_.size(), cfg_.seed);
  const int64_t calibration =
      data::example_count("calibration", cfg_.calibration, train_.size(), 0.5, 512, "training examples", 1);
  calibration_ = data::split_train_validation(train_, calibration, cfg_.seed + 1).validation;
  sensitivity_examples_ =
      data::example_count("sensitivity", cfg_.sensitivity_examples, validation_.size(), 1.0, 500, "validation examples");
  const int64_t staged =
      data::example_count("staged score", cfg_.staged.examples, validation_.size(), 1.0, 500, "validation examples");
  stage_set_ = data::take(validation_, staged);
  // An npy: dataset is one set: the score reported for it is the validation score, never called a test score.
  if (!data::has_test_split(cfg_.data)) test_ = validation_;
  int64_t short_examples = std::max<int64_t>(1, cfg_.short_finetune.steps * cfg_.short_finetune.batch_size);
  short_set_ = data::take(data::split_train_validation(train_, std::min(short_examples, train_.size() - 1),
                                                       cfg_.seed + 2).validation,
                          short_examples);

  teacher_ = std::make_unique<exec::Executor>(info_.graph, cfg_.model);
  teacher_->run(validation_.inputs(0, 1));  // the data fits the model, before anything is written
  teacher_->run(test_.inputs(0, 1));
  if (eval::needs_reference(data_metric())) validation_reference_ = eval::outputs_of(*teacher_, validation_);
}

double Search::candidate_score(const quant::QuantizedModel& model, const data::Dataset& d) const {
  if (metric_ == eval::Metric::Command) return deploy::score_with_command(model, cfg_.model, command_);
  return score(model.executor(), d, validation_reference_).score;
}

eval::EvalResult Search::score(const exec::Executor& executor, const data::Dataset& d, const at::Tensor& reference,
                               bool keep_outcomes) const {
  eval::EvalOptions o;
  o.quiet = true;
  o.metric = metric_ == eval::Metric::Command ? (d.labelled() ? eval::Metric::Top1 : eval::Metric::Kl) : metric_;
  o.keep_outcomes = keep_outcomes && d.labelled();
  if (eval::needs_reference(o.metric)) o.reference_outputs = reference.narrow(0, 0, d.size());
  return eval::evaluate(executor, d, o);
}

void Search::build_problem() {
  // Supported pairs per layer, restricted by the run configuration.
  std::set<int> wanted_bits;
  for (const auto& layer : info_.layers) {
    auto pairs = target::supported_pairs(profile_, layer.op, cfg_.weight_bits, cfg_.activation_bits);  // non-empty: prepare()
    LayerChoices choices;
    choices.layer = layer.name;
    std::set<int> ws, as;
    for (auto [wb, ab] : pairs) {
      Option o;
      o.precision = {wb, ab};
      choices.options.push_back(o);
      ws.insert(wb);
      as.insert(ab);
      if (!quant::is_float_bits(wb)) wanted_bits.insert(wb);
      if (!quant::is_float_bits(ab)) wanted_bits.insert(ab);
    }
    problem_.layers.push_back(choices);
  }

  // Resources: every bounded cost metric; per-layer costs from uniform assignments.
  for (const auto& c : constraints_) {
    if (target::is_score_metric(c.metric)) continue;
    ResourceSpec r;
    r.metric = c.metric;
    r.name = to_string(c.metric);
    r.unit = c.metric == target::Metric::WeightMemory ? "bits"
             : c.metric == target::Metric::Latency    ? "ms"
             : c.metric == target::Metric::Energy     ? "mJ"
                                                      : "";
    resources_.push_back(r);
  }
  std::map<std::pair<int, int>, target::TargetCosts> by_pair;
  for (size_t l = 0; l < problem_.layers.size(); ++l) {
    for (Option& o : problem_.layers[l].options) {
      auto key = std::make_pair(o.precision.weight_bits, o.precision.activation_bits);
      if (!by_pair.count(key)) {
        std::map<std::string, quant::LayerPrecision> uniform;
        for (const auto& layer : info_.layers) uniform[layer.name] = o.precision;
        by_pair[key] = target::evaluate(profile_, info_, uniform, granularity_, source_.get());
      }
      const target::TargetCosts& costs = by_pair[key];
      for (const ResourceSpec& r : resources_) o.costs.push_back(metric_value(costs.layers[l], r.metric));
    }
  }
  for (ResourceSpec& r : resources_) {
    const target::TargetCosts& any = by_pair.begin()->second;
    double layer_sum = 0;
    for (const auto& lc : any.layers) layer_sum += metric_value(lc, r.metric);
    r.constant = metric_value(any, r.metric) - layer_sum;
    double bound = 0;
    for (const auto& c : constraints_) {
      if (c.metric == r.metric) bound = *c.bound;
    }
    problem_.resources.push_back({r.name, bound - r.constant, r.unit});
  }
  validate(problem_);
  check_reachable(problem_);

  // Sensitivity (KL of the logits, one tensor quantized at a time), reused on resume.
  std::string sensitivity_path = dir_ + "/sensitivity.json";
  std::vector<int> bits(wanted_bits.begin(), wanted_bits.end());
  bool loaded = false;
  if (std::filesystem::exists(sensitivity_path)) {
    try {
      json j = json::parse(std::ifstream(sensitivity_path));
      if (j.at("bits").get<std::vector<int>>() == bits && j.value("metric", "top1") == eval::to_string(data_metric())) {
        sensitivity_.metric = data_metric();
        sensitivity_.labelled = j.contains("fp32_top1");
        sensitivity_.fp32_top1 = j.value("fp32_top1", 0.0);
        sensitivity_.fp32_score = j.value("fp32_score", sensitivity_.fp32_top1);
        sensitivity_.layers = j.at("layers").get<std::vector<std::string>>();
        sensitivity_.bits = bits;
        for (const auto& r : j.at("rows")) {
          sensitivity_.rows.push_back({r.at("layer"), r.at("tensor"), r.at("bits"), r.value("top1", 0.0),
                                       r.value("accuracy_drop", 0.0), r.at("kl"), r.value("score", r.value("top1", 0.0))});
        }
        loaded = true;
      }
    } catch (const std::exception&) {
      loaded = false;
    }
  }
  if (!loaded) {
    // One task per measurement, in the pool: spread over the workers when distributed.
    const quant::SensitivityMeasurer& measurer = sensitivity_measurer(bits);
    sensitivity_ = measurer.header();
    sensitivity_.bits = bits;
    std::vector<json> tasks;
    for (const auto& job : measurer.jobs()) {
      tasks.push_back({{"kind", "sensitivity"}, {"layer", job.layer}, {"tensor", job.tensor}, {"bits", job.bits}});
    }
    Progress progress("sensitivity", static_cast<int64_t>(tasks.size()), "measurements", opt_.quiet);
    const std::vector<json> measured = pool_->run(tasks, [&](size_t, const json&) {
      progress.advance(1);
      return std::vector<json>{};
    });
    progress.finish();
    for (size_t t = 0; t < measured.size(); ++t) {
      const json& r = measured[t];
      if (r.contains("failed")) {
        fail("the sensitivity of {} ({} at {} bits): {}", tasks[t].at("layer").get<std::string>(),
             tasks[t].at("tensor").get<std::string>(), tasks[t].at("bits").get<int>(), r.at("failed").get<std::string>());
      }
      sensitivity_.rows.push_back({r.at("layer"), r.at("tensor"), r.at("bits"), r.at("top1"), r.at("accuracy_drop"),
                                   r.at("kl"), r.at("score")});
    }
    json rows = json::array();
    for (const auto& r : sensitivity_.rows) {
      json row = {{"layer", r.layer}, {"tensor", r.tensor}, {"bits", r.bits}, {"kl", r.kl}, {"score", r.score}};
      if (sensitivity_.labelled) row.update({{"top1", r.top1}, {"accuracy_drop", r.accuracy_drop}});
      rows.push_back(row);
    }
    json j = {{"metric", eval::to_string(data_metric())}, {"fp32_score", sensitivity_.fp32_score},
              {"layers", sensitivity_.layers}, {"bits", bits}, {"rows", rows}};
    if (sensitivity_.labelled) j["fp32_top1"] = sensitivity_.fp32_top1;
    write_file_atomically(sensitivity_path, j.dump(1) + "\n", "sensitivity table");
  }
  auto kl = [&](const std::string& layer, const char* tensor, int b) {
    return quant::is_float_bits(b) ? 0.0 : sensitivity_.at(layer, tensor, b).kl;
  };

  for (size_t l = 0; l < problem_.layers.size(); ++l) {
    for (Option& o : problem_.layers[l].options) {
      o.sensitivity = kl(info_.layers[l].name, "weight", o.precision.weight_bits) +
                      kl(info_.layers[l].name, "activation", o.precision.activation_bits);
    }
  }
}

quant::PrecisionConfig Search::config_of_bits(const std::vector<quant::LayerPrecision>& bits) const {
  if (bits.size() != info_.layers.size()) {
    throw InternalError(fmt::format("configuration of {} layers for a model of {}", bits.size(), info_.layers.size()));
  }
  quant::PrecisionConfig config;
  config.default_precision = {8, 8};
  config.options.format = profile_.format;  // simulate what the target runs
  for (size_t l = 0; l < bits.size(); ++l) {
    config.layers.push_back({info_.layers[l].name, {bits[l].weight_bits, bits[l].activation_bits}});
  }
  return config;
}

std::vector<quant::LayerPrecision> Search::bits_of(const Choice& choice) const {
  std::vector<quant::LayerPrecision> bits;
  for (size_t l = 0; l < choice.size(); ++l) bits.push_back(problem_.layers[l].options[choice[l]].precision);
  return bits;
}

const quant::SensitivityMeasurer& Search::sensitivity_measurer(const std::vector<int>& bits) const {
  if (!sensitivity_measurer_) {
    sensitivity_set_ = data::take(validation_, sensitivity_examples_);
    sensitivity_measurer_ = std::make_unique<quant::SensitivityMeasurer>(
        info_.graph, calibration_, sensitivity_set_, bits, quant::QuantOptions{}, data_metric());
  }
  return *sensitivity_measurer_;
}

json Search::evaluate_task(const json& task) const {
  const std::string kind = task.at("kind").get<std::string>();
  if (kind == "sensitivity") {
    quant::SensitivityRow r = sensitivity_measurer({}).measure(
        {task.at("layer").get<std::string>(), task.at("tensor").get<std::string>(), task.at("bits").get<int>()});
    return {{"layer", r.layer}, {"tensor", r.tensor}, {"bits", r.bits},         {"top1", r.top1},
            {"accuracy_drop", r.accuracy_drop}, {"kl", r.kl}, {"score", r.score}};
  }
  auto start = Clock::now();
  if (mpi::is_worker()) {
    crash_if_asked("key:" + task.at("key").get<std::string>());
    crash_if_asked(fmt::format("candidate:{}", mpi::rank()));
  }
  quant::QuantizedModel model(info_.graph, config_of_bits(parse_config_key(task.at("key").get<std::string>())), cfg_.model);
  model.calibrate(stats_);
  json result = json::object();
  if (kind == "staged" || kind == "both") result["cheap"] = candidate_score(model, stage_set_);
  if (kind == "full" || kind == "both") {
    if (cfg_.short_finetune.steps > 0) {
      train::FinetuneOptions o;
      o.steps = cfg_.short_finetune.steps;
      o.batch_size = cfg_.short_finetune.batch_size;
      o.learning_rate = cfg_.short_finetune.learning_rate;
      o.distill.temperature = cfg_.short_finetune.temperature;
      o.distill.alpha = cfg_.short_finetune.alpha;
      o.seed = cfg_.seed;
      o.quiet = true;
      train::finetune(model, *teacher_, short_set_, nullptr, o, cache_.get());
    }
    result["accuracy"] = candidate_score(model, validation_);
  }
  result["seconds"] = seconds_since(start);
  return result;
}

std::vector<EvaluationRecord> Search::evaluate_batch(const std::vector<Candidate>& batch) {
  std::vector<std::optional<EvaluationRecord>> out(batch.size());
  std::vector<std::vector<quant::LayerPrecision>> bits;
  std::vector<std::string> keys;
  std::map<std::string, size_t> first;  // key -> the candidate that evaluates it
  std::vector<size_t> fresh;            // candidates to evaluate, in episode order
  for (size_t i = 0; i < batch.size(); ++i) {
    bits.push_back(bits_of(batch[i].choice));
    keys.push_back(config_key(bits.back()));
    if (auto found = journal_->find_evaluation(keys[i])) {
      out[i] = *found;
    } else if (!first.count(keys[i])) {
      first[keys[i]] = i;
      fresh.push_back(i);
    }
  }
  if (!fresh.empty()) {
    std::vector<std::string> fresh_keys;
    for (size_t i : fresh) fresh_keys.push_back(keys[i]);
    const std::vector<CandidateScore> scores =
        score_candidates(*pool_, fresh_keys, cfg_.staged.enabled, cfg_.staged.margin, best_cheap_,
                         eval::higher_is_better(metric_));
    for (size_t j = 0; j < fresh.size(); ++j) {
      const size_t i = fresh[j];
      const bool failed = !scores[j].failed.empty();
      const double cheap = scores[j].staged;
      // A failed configuration scores the metric's floor: its reward is that of a useless model.
      const double accuracy = failed ? eval::floor_score(metric_) : scores[j].accuracy;
      const double seconds = scores[j].seconds;
      const bool promising = scores[j].promising;
      if (promising && cfg_.short_finetune.steps > 0) ++finetuned_run_;
      std::map<std::string, quant::LayerPrecision> precision;
      for (size_t l = 0; l < bits[i].size(); ++l) precision[problem_.layers[l].layer] = bits[i][l];
      target::TargetCosts costs = target::evaluate(profile_, info_, precision, granularity_, source_.get());
      auto checks = target::check(constraints_, costs, accuracy, fp32_validation_);
      EvaluationRecord record;
      record.episode = batch[i].episode;
      record.config_key = keys[i];
      record.precision = quant::to_yaml(config_of_bits(bits[i]));
      record.accuracy = accuracy;
      record.feasible = std::all_of(checks.begin(), checks.end(), [](const auto& r) { return r.holds; });
      record.seconds = seconds;
      record.metrics = {{"cheap_score", cheap},   {"finetuned", promising}, {"validation_score", accuracy},
                        {"costs", totals_json(costs)}, {"constraints", constraints_json(checks)}};
      if (metric_ == eval::Metric::Top1) record.metrics.update({{"cheap_top1", cheap}, {"validation_top1", accuracy}});
      if (failed) {
        record.feasible = false;
        record.metrics.erase("cheap_score");
        record.metrics.erase("cheap_top1");
        record.metrics["failed"] = scores[j].failed;
        spdlog::warn("episode {}: configuration {} is journaled as failed: {}", record.episode, keys[i],
                     scores[j].failed);
      }
      record.id = journal_->record_evaluation(record);
      ++evaluations_run_;
      out[i] = record;
    }
    update_fronts();
  }
  std::vector<EvaluationRecord> records;
  for (size_t i = 0; i < batch.size(); ++i) records.push_back(out[i] ? *out[i] : *out[first.at(keys[i])]);
  return records;
}

double Search::reward_of(const EvaluationRecord& r) const {
  double reward = cfg_.reward.accuracy * 100.0 *
                  (eval::reward_scale(metric_, r.accuracy) - eval::reward_scale(metric_, fp32_validation_));
  const json& c = r.metrics.at("costs");
  auto term = [&](double weight, const char* key, std::optional<double> reference) {
    if (weight != 0 && c.contains(key) && reference && *reference > 0) reward -= weight * c.at(key).get<double>() / *reference;
  };
  term(cfg_.reward.weight_memory, "weight_bits", int8_costs_.bits.weight_memory_bits);
  term(cfg_.reward.bops, "bops", int8_costs_.bits.bops);
  term(cfg_.reward.latency, "latency_ms", int8_costs_.latency_ms);
  term(cfg_.reward.energy, "energy_mj", int8_costs_.energy_mj);
  return reward;
}

void Search::update_fronts() {
  std::vector<EvaluationRecord> all = journal_->evaluations();
  std::optional<int64_t> best_id;
  double best_utility = -std::numeric_limits<double>::infinity();
  int64_t best_episode = 0;
  std::vector<ParetoPoint> points;
  std::vector<int64_t> ids;
  for (const auto& r : all) {
    if (!r.metrics.value("finetuned", false)) continue;
    const json& c = r.metrics.at("costs");
    std::vector<double> costs = {c.at("weight_bits").get<double>(), c.at("bops").get<double>()};
    if (c.contains("latency_ms")) costs.push_back(c.at("latency_ms"));
    if (c.contains("energy_mj")) costs.push_back(c.at("energy_mj"));
    points.push_back({utility(r.accuracy), costs});
    ids.push_back(r.id);
    // Ties go to the earliest episode: journal ids follow recording order, episodes do not depend on it.
    const double u = utility(r.accuracy);
    if (r.feasible && (!best_id || u > best_utility || (u == best_utility && r.episode < best_episode))) {
      best_utility = u;
      best_episode = r.episode;
      best_id = r.id;
    }
  }
  std::vector<int64_t> front;
  json pareto = json::array();
  for (size_t i : pareto_front(points)) {
    front.push_back(ids[i]);
    for (const auto& r : all) {
      if (r.id == ids[i]) {
        pareto.push_back({{"id", r.id}, {"validation_score", r.accuracy}, {"costs", r.metrics.at("costs")},
                          {"config_key", r.config_key}, {"feasible", r.feasible}});
        if (metric_ == eval::Metric::Top1) pareto.back()["validation_top1"] = r.accuracy;
      }
    }
  }
  journal_->set_fronts(best_id, front);
  write_file_atomically(dir_ + "/pareto.json", pareto.dump(2) + "\n", "Pareto front");
  if (best_id) {
    for (const auto& r : all) {
      if (r.id == *best_id) write_file_atomically(dir_ + "/best.yaml", r.precision, "best configuration");
    }
  }
}

void Search::episodes_resumed(int64_t count) {
  for (int64_t e = 0; e < count; ++e) progress_->advance(1);
}

void Search::episode_done(int64_t episode) {
  auto best = journal_->best();
  auto all = journal_->evaluations();
  const EvaluationRecord* last = all.empty() ? nullptr : &all.back();
  std::string status = fmt::format("ep {}", episode + 1);
  if (last != nullptr) {
    status += " " + eval::format_score(metric_, last->accuracy);
    if (!resources_.empty()) {
      const json& c = last->metrics.at("costs");
      double v = resources_[0].metric == target::Metric::WeightMemory ? c.at("weight_bits").get<double>()
                 : resources_[0].metric == target::Metric::Bops       ? c.at("bops").get<double>()
                 : resources_[0].metric == target::Metric::Latency    ? c.value("latency_ms", 0.0)
                                                                      : c.value("energy_mj", 0.0);
      status += fmt::format(" {} {:.0f}% of budget", resources_[0].name,
                            100 * v / (problem_.resources[0].budget + resources_[0].constant));
    }
  }
  if (best) status += " best " + eval::format_score(metric_, best->accuracy);
  progress_->advance(1, status);
}

std::string Search::fingerprint() const {
  // What must be equal on every rank for their evaluations to be interchangeable.
  std::ifstream model(cfg_.model, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(model)), std::istreambuf_iterator<char>());
  json run = to_json(cfg_);
  run.erase("out");
  double inputs = 0;
  for (const data::Dataset* d : {&validation_, &short_set_}) {
    for (const at::Tensor& t : d->inputs()) inputs += t.to(at::kDouble).sum().item<double>();
  }
  return fmt::format("{:016x}-{:016x}-{}-{}-{:.6e}-{}", std::hash<std::string>{}(bytes),
                     std::hash<std::string>{}(run.dump()), train_.size(), validation_.size(), inputs,
                     std::hash<std::string>{}(std::string(__DATE__ " " __TIME__)));
}

void Search::serve_as_worker() {
  json message = json::parse(mpi::broadcast(""));
  if (message.value("stop", false)) return;  // rank 0 refused the run; it says why
  std::string error;
  try {
    cfg_ = from_json(message.at("config"));
    cfg_.out = "(rank 0's)";  // workers write nothing
    if (cfg_.parallel.threads > 0) at::set_num_threads(static_cast<int>(cfg_.parallel.threads));
    validate(cfg_);
    profile_ = target::load_target(cfg_.target);
    info_ = target::load_model_info(cfg_.model);
    load_data();
    stats_ = quant::collect_activation_stats(*teacher_, info_.layers, calibration_.inputs(), 256,
                                            profile_.format == quant::QuantForm::Int);
    if (cfg_.short_finetune.steps > 0) cache_ = std::make_unique<train::TeacherCache>(*teacher_, short_set_.inputs());
  } catch (const std::exception& e) {
    error = e.what();
  }
  crash_if_asked(fmt::format("setup:{}", mpi::rank()));
  send_hello(error.empty() ? fingerprint() : "", error);
  serve_tasks([&](const json& task) {
    if (!error.empty()) fail("{}", error);
    return evaluate_task(task);
  });
}

json Search::run() {
  auto start = Clock::now();
  if (mpi::is_worker()) {
    serve_as_worker();
    return nullptr;
  }
  const bool distributed = mpi::size() > 1;
  try {
    prepare_run();
  } catch (...) {
    if (distributed) mpi::broadcast(json{{"stop", true}}.dump());
    throw;
  }
  if (distributed) {
    json run_json = to_json(cfg_);
    run_json.erase("out");
    mpi::broadcast(json{{"config", run_json}}.dump());
    Leases leases{mpi::recovery_enabled(), cfg_.parallel.worker_timeout, static_cast<int>(cfg_.parallel.max_attempts)};
    auto pool = std::make_unique<MpiPool>(leases);
    mpi_pool_ = pool.get();
    pool_ = std::move(pool);
    spdlog::info("search: {} worker rank(s) evaluate, rank 0 coordinates{}", mpi::size() - 1,
                 leases.enabled ? fmt::format(" (recovery: a worker silent {} s on a task is replaced)", leases.timeout_s) : "");
  } else {
    pool_ = std::make_unique<LocalPool>([this](const json& task) { return evaluate_task(task); });
  }
  return run_prepared(start);
}

void Search::prepare_run() {
  if (opt_.resume) {
    if (!std::filesystem::exists(cfg_.out + "/journal.sqlite")) fail("--resume {}: no journal.sqlite there", cfg_.out);
    Journal probe = Journal::open(cfg_.out);
    auto run = probe.run_config();
    if (!run) fail("--resume {}: the journal holds no run configuration", cfg_.out);
    std::string out = cfg_.out;
    cfg_ = from_json(run->config);
    cfg_.out = out;
  }
  prepare();
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec || !std::filesystem::is_directory(dir_)) fail("cannot create output directory {}", dir_);
  {
    std::string probe = dir_ + "/.autoprec-write-test";
    std::ofstream f(probe);
    if (!f || !(f << "x") || !f.flush()) fail("output directory {} is not writable", dir_);
    std::filesystem::remove(probe, ec);
  }
  if (!opt_.resume && std::filesystem::exists(dir_ + "/journal.sqlite")) {
    fail("{} already holds a search; pass --resume {} to continue it, or choose another output directory", dir_, dir_);
  }
  if (cfg_.parallel.threads > 0) at::set_num_threads(static_cast<int>(cfg_.parallel.threads));
}

json Search::run_prepared(Clock::time_point start) {
  spdlog::info("search: agent {}, {} episode(s), seed {}, batch {}", cfg_.agent, cfg_.episodes, cfg_.seed,
               cfg_.parallel.batch);
  if (mpi_pool_) mpi_pool_->check_workers(fingerprint());

  fp32_validation_ = metric_ == eval::Metric::Command ? deploy::run_metric_command(command_, cfg_.model)
                                                      : score(*teacher_, validation_, validation_reference_).score;
  spdlog::info("metric {}: FP32 validation {}", eval::to_string(metric_), eval::format_score(metric_, fp32_validation_));
  stats_ = quant::collect_activation_stats(*teacher_, info_.layers, calibration_.inputs(), 256,
                                          profile_.format == quant::QuantForm::Int);
  build_problem();
  env_ = std::make_unique<Environment>(problem_, layer_features(info_));
  if (cfg_.short_finetune.steps > 0) cache_ = std::make_unique<train::TeacherCache>(*teacher_, short_set_.inputs());

  journal_ = std::make_unique<Journal>(Journal::open(dir_));
  json run_json = to_json(cfg_);
  run_json.erase("out");
  journal_->record_run_config(run_json, cfg_.seed);
  // A resumed run stages as the uninterrupted one did: the threshold is the best staged score journaled so far.
  for (const auto& r : journal_->evaluations()) {
    const json& m = r.metrics;
    if (m.contains("cheap_score") || m.contains("cheap_top1"))
      best_cheap_ = std::max(best_cheap_, utility(m.value("cheap_score", m.value("cheap_top1", 0.0))));
  }
  update_fronts();

  const AgentFactory& agent = find_agent(cfg_.agent);
  progress_ = std::make_unique<Progress>("search", agent.episodic ? cfg_.episodes : 1, "episodes", opt_.quiet);
  agent.make()->run(*this);
  progress_->finish();
  progress_.reset();
  mpi_pool_ = nullptr;
  pool_.reset();  // the workers stop; the final fine-tune runs here
  return finish(seconds_since(start));
}

json Search::finish(double search_seconds) {
  auto best = journal_->best();
  std::vector<EvaluationRecord> all = journal_->evaluations();
  bool feasible = best.has_value();
  std::string infeasible_reason;
  if (!best) {
    // Best effort: the most accurate configuration; say which constraint fails and by how much.
    for (const auto& r : all) {
      if (!best || utility(r.accuracy) > utility(best->accuracy)) best = r;
    }
    if (!best) fail("the search evaluated no configuration");
    for (const auto& c : best->metrics.at("constraints")) {
      if (!c.at("holds").get<bool>()) infeasible_reason += (infeasible_reason.empty() ? "" : "; ") + c.at("text").get<std::string>();
    }
    spdlog::warn("no evaluated configuration meets every constraint: {}", infeasible_reason);
  }
  quant::PrecisionConfig config = quant::parse_precision_config(best->precision, "best configuration");
  quant::QuantizedModel model(info_.graph, config, cfg_.model);
  model.calibrate(stats_);
  train::FinetuneResult final_result;
  if (cfg_.final_finetune.epochs > 0) {
    train::FinetuneOptions o;
    o.epochs = cfg_.final_finetune.epochs;
    o.batch_size = cfg_.final_finetune.batch_size;
    o.learning_rate = cfg_.final_finetune.learning_rate;
    o.seed = cfg_.seed;
    o.quiet = opt_.quiet;
    o.metric = data_metric();
    data::Dataset final_train = cfg_.final_finetune.examples > 0 ? data::take(train_, cfg_.final_finetune.examples) : train_;
    final_result = train::finetune(model, *teacher_, final_train, &validation_, o);
  }
  at::Tensor test_reference;
  const bool command = metric_ == eval::Metric::Command;
  if (eval::needs_reference(metric_) || (command && !test_.labelled())) test_reference = eval::outputs_of(*teacher_, test_);
  eval::EvalResult fp32_on_test = score(*teacher_, test_, test_reference, true);
  eval::EvalResult final_on_test = score(model.executor(), test_, test_reference, true);
  // The command scores the file once: its number is the test and the validation score.
  const double fp32_test = command ? fp32_validation_ : fp32_on_test.score;
  const double final_test = command ? deploy::score_with_command(model, cfg_.model, command_) : final_on_test.score;
  if (final_on_test.labelled) write_outcomes(dir_ + "/outcomes.json", test_.source, fp32_on_test, final_on_test);
  const double final_validation = command ? final_test : score(model.executor(), validation_, validation_reference_).score;

  quant::PrecisionConfig calibrated = model.calibrated_config();
  calibrated.calibration_seed = cfg_.seed;
  calibrated.calibration_samples = calibration_.size();
  graph::save_model_proto(graph::to_model_proto(*info_.graph, model.executor().parameters(),
                                                {{"autoprec.search", cfg_.agent}, {"autoprec.source_model", cfg_.model}}),
                          dir_ + "/model.onnx");
  quant::save_precision_config(calibrated, dir_ + "/best.yaml");

  target::TargetCosts costs = target::evaluate(profile_, info_, model.precision(), granularity_, source_.get());
  auto checks = target::check(constraints_, costs, final_test, fp32_test);
  json layers = json::array();
  for (const auto& [name, p] : model.precision()) {
    layers.push_back({{"layer", name}, {"weight_bits", p.weight_bits}, {"activation_bits", p.activation_bits}});
  }
  json result = {{"model", cfg_.model},
                 {"data", cfg_.data},
                 {"validation", {{"source", validation_.source}, {"examples", validation_.size()},
                                 {"held_out", !cfg_.validation_data.empty()}}},
                 {"deploy_requested", cfg_.deploy},
                 {"target", profile_.name},
                 {"target_spec", cfg_.target},
                 {"agent", cfg_.agent},
                 {"seed", cfg_.seed},
                 {"episodes", cfg_.episodes},
                 {"evaluated_on", data::has_test_split(cfg_.data) ? "test" : "validation"},
                 {"metric", eval::to_string(metric_)},
                 {"fp32", {{"test_score", fp32_test}, {"validation_score", fp32_validation_}}},
                 {"search", {{"best_validation_score", best->accuracy}, {"best_id", best->id}, {"config_key", best->config_key}}},
                 {"final",
                  {{"test_score", final_test}, {"validation_score", final_validation},
                   {"finetune_epochs", cfg_.final_finetune.epochs}, {"costs", totals_json(costs)}, {"layers", layers}}},
                 {"constraints", constraints_json(checks)},
                 {"feasible", feasible},
                 {"search_seconds", search_seconds},
                 {"evaluations", all.size()},
                 {"evaluations_this_run", evaluations_run_},
                 {"short_finetunes_this_run", finetuned_run_},
                 {"outputs",
                  {{"best", dir_ + "/best.yaml"}, {"model", dir_ + "/model.onnx"}, {"pareto", dir_ + "/pareto.json"},
                   {"journal", dir_ + "/journal.sqlite"}, {"outcomes", dir_ + "/outcomes.json"}}}};
  if (!feasible) result["infeasible"] = infeasible_reason;
  // Top-1 whenever the data has labels, whatever the metric; the validation top-1 when it is the metric.
  if (final_on_test.labelled) {
    result["fp32"]["test_top1"] = fp32_on_test.top1;
    result["final"]["test_top1"] = final_on_test.top1;
  }
  if (metric_ == eval::Metric::Top1) {
    result["fp32"]["validation_top1"] = fp32_validation_;
    result["final"]["validation_top1"] = final_validation;
    result["search"]["best_validation_top1"] = best->accuracy;
  }
  if (!final_on_test.labelled) result["outputs"].erase("outcomes");
  write_file_atomically(dir_ + "/result.json", result.dump(2) + "\n", "search result");
  return result;
}

}  // namespace

json run_search(RunConfig config, const SearchOptions& options) {
  Search search(std::move(config), options);
  return search.run();
}

}  // namespace autoprec::search
