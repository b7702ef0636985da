// The search's run configuration (run.yaml). Every key is optional except
// model, data and out (which command-line flags may supply instead):
//
//   model: models/resnet20_fmnist.onnx
//   data: idx:/usr/share/datasets/fashion-mnist
//   target: bitfusion                 # built-in name or profile path (default generic)
//   constraints: ["weight_memory<=0.125*fp32"]
//   metric: top1                      # top1 | agreement | kl | sqnr | command (default: top1 with labels, agreement without)
//   metric_command: python3 score.py  # metric: command: prints one number for the model file it is given
//   agent: ddpg                       # ddpg | ilp | greedy | random | uniform
//   episodes: 100                     # ddpg and random; 1 for the others
//   seed: 0
//   out: runs/demo
//   weight_bits: [2, 3, 4, 5, 6, 8]   # restricts the target's sets (optional)
//   activation_bits: [8]
//   validation: 2000                  # validation examples: carved from the training split, or
//                                     # drawn from validation_data when it is given (default: adapts)
//   validation_data: npy:val_x.npy,val_y.npy   # a held-out set the model never saw (optional)
//   validation_split: train           # its split for idx: specs (train | test)
//   calibration: 512                  # calibration examples (from the rest)
//   sensitivity_examples: 500         # validation examples the sensitivity table uses
//   staged: {enabled: true, examples: 500, margin: 0.03}
//   short_finetune: {steps: 50, batch_size: 64, learning_rate: 0.01, temperature: 1, alpha: 0.9}
//   final_finetune: {epochs: 1, batch_size: 128, learning_rate: 0.01, examples: 0}
//   reward: {accuracy: 0.1, latency: 0, energy: 0, weight_memory: 0, bops: 0}
//   warm_start: true                  # ddpg: the ILP and greedy solutions are the first episodes
//   deploy: true                      # `autoprec search` ends with `autoprec deploy` into OUT/bundle
//   ddpg: {hidden: 300, lr_actor: 0.0001, lr_critic: 0.001, warmup_episodes: 20,
//          noise_sigma: 0.5, noise_decay: 0.99, replay: 2000, batch_size: 64, tau: 0.01}
//
// The grammar is util/yaml.h's; every key, its type, default and the error an
// invalid value gets are in run_config_schema() (docs/configuration.md).
// Unknown keys, wrong types and values out of range are UserErrors "FILE:LINE: ...".
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "search/ddpg.h"
#include "util/yaml.h"

namespace autoprec::search {

struct ShortFinetuneConfig {
  int64_t steps = 50;  // 0: no fine-tune, candidates are scored after calibration only
  int64_t batch_size = 64;
  double learning_rate = 0.01;
  double temperature = 1.0;
  double alpha = 0.9;
};

struct FinalFinetuneConfig {
  int64_t epochs = 1;  // 0: the selected configuration is not fine-tuned again
  int64_t examples = 0;  // training examples used (0: the whole training set)
  int64_t batch_size = 128;
  double learning_rate = 0.01;
};

struct StagedConfig {
  bool enabled = true;
  int64_t examples = 0;    // validation examples of the cheap score (0: all of them, at most 500)
  double margin = 0.03;    // fine-tune when the cheap score is within margin (the metric's units) of the best
};

// reward = accuracy · 100 · (f(score) − f(fp32 score)) − Σ_k weight_k · cost_k / reference_k,
// f = eval::reward_scale (the score itself for top1 and agreement)
// (reference: the uniform 8-bit cost on the target); HAQ: accuracy 0.1, no cost terms.
struct RewardConfig {
  double accuracy = 0.1;
  double weight_memory = 0;
  double bops = 0;
  double latency = 0;
  double energy = 0;
};

// How episodes are evaluated in parallel (docs/search.md, "Distributed
// search"): the agent proposes `batch` episodes from one policy snapshot, they
// are evaluated (on the workers of `mpirun -n N`, or here), and it learns from
// them in episode order. `threads` compute threads per evaluation (0: the
// process's --threads). Both shape the results and are journaled; the number
// of workers is not: a seed gives the same journal for any worker count.
// Under `mpirun --enable-recovery`, a worker silent `worker_timeout` seconds
// on a task is taken as lost and the task requeued, at most `max_attempts`
// times (search/task_pool.h); neither changes the results.
struct ParallelConfig {
  int64_t batch = 1;
  int64_t threads = 0;
  double worker_timeout = 3600;
  int64_t max_attempts = 3;
};

struct RunConfig {
  std::string model;
  std::string data;
  std::string target = "generic";
  std::vector<std::string> constraints;
  std::string metric;  // eval::Metric name; empty: top1 on labelled data, agreement otherwise
  std::string metric_command;  // metric command: the user's scorer (deploy/command_metric.h)
  double metric_timeout = 600;  // seconds per model scored by metric_command
  std::string agent = "ddpg";
  int64_t episodes = 100;
  uint64_t seed = 0;
  std::string out;
  std::set<int> weight_bits;      // empty: the target's set
  std::set<int> activation_bits;  // empty: the target's set
  // Example counts: 0 adapts to the data (data::example_count): validation 20%
  // of the training split (all of validation_data) at most 2000, calibration
  // half of the rest at most 512, sensitivity all validation examples at most 500.
  int64_t validation = 0;
  std::string validation_data;            // empty: validation carved from `data`'s training split
  std::string validation_split = "train";  // which split of validation_data (ignored for npy: specs)
  int64_t calibration = 0;
  int64_t sensitivity_examples = 0;
  StagedConfig staged;
  ShortFinetuneConfig short_finetune;
  FinalFinetuneConfig final_finetune;
  RewardConfig reward;
  bool warm_start = true;
  bool deploy = true;  // read by the CLI: export + verify in ONNX Runtime + latency after the search
  DdpgOptions ddpg;  // state_dim and seed are set by the search
  ParallelConfig parallel;
  std::string origin = "run configuration";
};

// The search agents, in the order help and errors list them, each with one
// line on what it evaluates (docs/search.md, "Agents").
struct AgentDescription {
  const char* name;
  const char* summary;
};
const std::vector<AgentDescription>& agent_descriptions();
// "ddpg, ilp, greedy, random, uniform".
std::string agent_names();

// Every key of the format (docs/configuration.md, `autoprec schema run`).
std::vector<yaml::KeyInfo> run_config_schema();

// Reads a parsed document (util/yaml.h) as a run configuration.
RunConfig read_run_config(const yaml::Node& root);
// Parses run.yaml text; `origin` names it in errors.
RunConfig parse_run_config(const std::string& yaml_text, const std::string& origin);
RunConfig load_run_config(const std::string& path);

// UserError for missing model/data/out, an unknown agent, non-positive counts.
void validate(const RunConfig& config);

// The whole configuration as JSON (for the journal and result.json) and back.
nlohmann::json to_json(const RunConfig& config);
RunConfig from_json(const nlohmann::json& j);

}  // namespace autoprec::search
