#include "search/run_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace autoprec::search {
namespace {

std::string where(const std::string& origin, const YAML::Node& node) {
  if (node.Mark().line >= 0) return fmt::format("{}:{}", origin, node.Mark().line + 1);
  return origin;
}

template <typename T>
T scalar(const YAML::Node& node, const std::string& key, const std::string& origin, const char* kind) {
  if (!node.IsScalar()) fail("{}: '{}' must be {}", where(origin, node), key, kind);
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    fail("{}: '{}' must be {}, got '{}'", where(origin, node), key, kind, node.Scalar());
  }
}

int64_t count(const YAML::Node& node, const std::string& key, const std::string& origin, int64_t min) {
  auto v = scalar<int64_t>(node, key, origin, "an integer");
  if (v < min) fail("{}: '{}' must be >= {}, got {}", where(origin, node), key, min, v);
  return v;
}

double number(const YAML::Node& node, const std::string& key, const std::string& origin) {
  return scalar<double>(node, key, origin, "a number");
}

std::set<int> bit_set(const YAML::Node& node, const std::string& key, const std::string& origin) {
  if (!node.IsSequence()) fail("{}: '{}' must be a list of bit-widths", where(origin, node), key);
  std::set<int> out;
  for (const auto& item : node) {
    int b = static_cast<int>(scalar<int64_t>(item, key, origin, "a bit-width"));
    if (!((b >= 2 && b <= 8) || b == 16 || b == 32)) {
      fail("{}: '{}' holds {}; bit-widths are 2..8, 16 or 32", where(origin, item), key, b);
    }
    out.insert(b);
  }
  return out;  // empty: the target's set
}

// Calls `on_key(key, value)` for every entry of a mapping, rejecting keys not in `known`.
template <typename F>
void each_key(const YAML::Node& map, const std::string& section, const std::vector<std::string>& known,
              const std::string& origin, F on_key) {
  if (!map.IsMap()) fail("{}: '{}' must be a mapping", where(origin, map), section);
  for (const auto& entry : map) {
    std::string key = entry.first.as<std::string>();
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string valid;
      for (const auto& k : known) valid += (valid.empty() ? "" : ", ") + k;
      fail("{}: unknown key '{}'{}; valid: {}", where(origin, entry.first), key,
           section.empty() ? "" : " in '" + section + "'", valid);
    }
    on_key(key, entry.second);
  }
}

}  // namespace

RunConfig parse_run_config(const std::string& yaml_text, const std::string& origin) {
  RunConfig c;
  c.origin = origin;
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    fail("{}:{}: malformed YAML: {}", origin, e.mark.line + 1, e.msg);
  }
  if (root.IsNull()) return c;
  const std::vector<std::string> keys = {"model", "data", "target", "constraints", "agent", "episodes", "seed", "out",
                                         "weight_bits", "activation_bits", "validation", "validation_data",
                                         "validation_split", "calibration",
                                         "sensitivity_examples", "staged", "short_finetune", "final_finetune",
                                         "reward", "warm_start", "deploy", "ddpg", "parallel"};
  each_key(root, "", keys, origin, [&](const std::string& key, const YAML::Node& v) {
    if (key == "model") c.model = scalar<std::string>(v, key, origin, "a path");
    else if (key == "data") c.data = scalar<std::string>(v, key, origin, "a dataset spec");
    else if (key == "target") c.target = scalar<std::string>(v, key, origin, "a target name or path");
    else if (key == "out") c.out = scalar<std::string>(v, key, origin, "a directory");
    else if (key == "agent") c.agent = scalar<std::string>(v, key, origin, "an agent name");
    else if (key == "episodes") c.episodes = count(v, key, origin, 1);
    else if (key == "seed") c.seed = scalar<uint64_t>(v, key, origin, "a non-negative integer");
    else if (key == "validation") c.validation = count(v, key, origin, 1);
    else if (key == "validation_data") c.validation_data = scalar<std::string>(v, key, origin, "a dataset spec");
    else if (key == "validation_split") {
      c.validation_split = scalar<std::string>(v, key, origin, "train or test");
      if (c.validation_split != "train" && c.validation_split != "test") {
        fail("{}:{}: validation_split must be train or test, got '{}'", origin, v.Mark().line + 1, c.validation_split);
      }
    }
    else if (key == "calibration") c.calibration = count(v, key, origin, 1);
    else if (key == "sensitivity_examples") c.sensitivity_examples = count(v, key, origin, 1);
    else if (key == "warm_start") c.warm_start = scalar<bool>(v, key, origin, "true or false");
    else if (key == "deploy") c.deploy = scalar<bool>(v, key, origin, "true or false");
    else if (key == "weight_bits") c.weight_bits = bit_set(v, key, origin);
    else if (key == "activation_bits") c.activation_bits = bit_set(v, key, origin);
    else if (key == "constraints") {
      if (v.IsNull()) return;
      if (!v.IsSequence()) fail("{}: 'constraints' must be a list of expressions", where(origin, v));
      for (const auto& item : v) c.constraints.push_back(scalar<std::string>(item, key, origin, "an expression"));
    } else if (key == "parallel") {
      each_key(v, key, {"batch", "threads"}, origin, [&](const std::string& k, const YAML::Node& x) {
        if (k == "batch") c.parallel.batch = count(x, k, origin, 1);
        else c.parallel.threads = count(x, k, origin, 0);
      });
    } else if (key == "staged") {
      each_key(v, key, {"enabled", "examples", "margin"}, origin, [&](const std::string& k, const YAML::Node& x) {
        if (k == "enabled") c.staged.enabled = scalar<bool>(x, k, origin, "true or false");
        else if (k == "examples") c.staged.examples = count(x, k, origin, 1);
        else c.staged.margin = number(x, k, origin);
      });
    } else if (key == "short_finetune") {
      each_key(v, key, {"steps", "batch_size", "learning_rate", "temperature", "alpha"}, origin,
               [&](const std::string& k, const YAML::Node& x) {
                 auto& s = c.short_finetune;
                 if (k == "steps") s.steps = count(x, k, origin, 0);
                 else if (k == "batch_size") s.batch_size = count(x, k, origin, 1);
                 else if (k == "learning_rate") s.learning_rate = number(x, k, origin);
                 else if (k == "temperature") s.temperature = number(x, k, origin);
                 else s.alpha = number(x, k, origin);
               });
    } else if (key == "final_finetune") {
      each_key(v, key, {"epochs", "batch_size", "learning_rate", "examples"}, origin, [&](const std::string& k, const YAML::Node& x) {
        auto& f = c.final_finetune;
        if (k == "epochs") f.epochs = count(x, k, origin, 0);
        else if (k == "examples") f.examples = count(x, k, origin, 0);
        else if (k == "batch_size") f.batch_size = count(x, k, origin, 1);
        else f.learning_rate = number(x, k, origin);
      });
    } else if (key == "reward") {
      each_key(v, key, {"accuracy", "weight_memory", "bops", "latency", "energy"}, origin,
               [&](const std::string& k, const YAML::Node& x) {
                 double w = number(x, k, origin);
                 if (k == "accuracy") c.reward.accuracy = w;
                 else if (k == "weight_memory") c.reward.weight_memory = w;
                 else if (k == "bops") c.reward.bops = w;
                 else if (k == "latency") c.reward.latency = w;
                 else c.reward.energy = w;
               });
    } else if (key == "ddpg") {
      each_key(v, key,
               {"hidden", "lr_actor", "lr_critic", "warmup_episodes", "noise_sigma", "noise_decay", "replay",
                "batch_size", "tau", "discount", "baseline_momentum", "updates_per_step"},
               origin, [&](const std::string& k, const YAML::Node& x) {
                 auto& d = c.ddpg;
                 if (k == "hidden") d.hidden1 = d.hidden2 = static_cast<int>(count(x, k, origin, 1));
                 else if (k == "lr_actor") d.lr_actor = number(x, k, origin);
                 else if (k == "lr_critic") d.lr_critic = number(x, k, origin);
                 else if (k == "warmup_episodes") d.warmup_episodes = static_cast<int>(count(x, k, origin, 0));
                 else if (k == "noise_sigma") d.noise_sigma = number(x, k, origin);
                 else if (k == "noise_decay") d.noise_decay = number(x, k, origin);
                 else if (k == "replay") d.replay_capacity = static_cast<int>(count(x, k, origin, 1));
                 else if (k == "batch_size") d.batch_size = static_cast<int>(count(x, k, origin, 1));
                 else if (k == "tau") d.tau = number(x, k, origin);
                 else if (k == "discount") d.discount = number(x, k, origin);
                 else if (k == "baseline_momentum") d.baseline_momentum = number(x, k, origin);
                 else d.updates_per_step = static_cast<int>(count(x, k, origin, 1));
               });
    }
  });
  return c;
}

RunConfig load_run_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("cannot read run configuration {}", path);
  std::stringstream text;
  text << in.rdbuf();
  return parse_run_config(text.str(), path);
}

const std::vector<AgentDescription>& agent_descriptions() {
  static const std::vector<AgentDescription> agents = {
      {"ddpg", "`episodes` episodes of the DDPG policy (HAQ); warm_start makes the ilp and greedy solutions the first"},
      {"ilp", "the HAWQ-V3-style ILP solution over the sensitivity table (one evaluation)"},
      {"greedy", "sensitivity-ordered lowering from the highest precision (AIMET-like; one evaluation)"},
      {"random", "`episodes` uniformly random assignments, projected onto the budgets"},
      {"uniform", "the highest uniform weight precision that fits (activations at their highest)"}};
  return agents;
}

std::string agent_names() {
  std::string names;
  for (const auto& a : agent_descriptions()) names += (names.empty() ? "" : ", ") + std::string(a.name);
  return names;
}

void validate(const RunConfig& c) {
  if (c.model.empty()) fail("no model: set 'model' in the run configuration or pass --model");
  if (c.data.empty()) fail("no data: set 'data' in the run configuration or pass --data");
  if (c.out.empty()) fail("no output directory: set 'out' in the run configuration or pass --out");
  const auto& agents = agent_descriptions();
  if (std::none_of(agents.begin(), agents.end(), [&](const AgentDescription& a) { return c.agent == a.name; })) {
    fail("unknown agent '{}'; valid: {}", c.agent, agent_names());
  }
  if (c.episodes < 1) fail("episodes must be >= 1, got {}", c.episodes);
  if (c.staged.margin < 0) fail("staged.margin must be >= 0, got {}", c.staged.margin);
  if (!(c.short_finetune.learning_rate > 0) || !(c.final_finetune.learning_rate > 0)) {
    fail("fine-tune learning rates must be > 0");
  }
  for (auto [name, value] : {std::pair{"accuracy", c.reward.accuracy}, std::pair{"weight_memory", c.reward.weight_memory},
                              std::pair{"bops", c.reward.bops}, std::pair{"latency", c.reward.latency},
                              std::pair{"energy", c.reward.energy}}) {
    if (!std::isfinite(value)) fail("reward.{} must be a finite number, got {}", name, value);
  }
  if (!std::isfinite(c.staged.margin)) fail("staged.margin must be a finite number");
  for (auto [name, value] : {std::pair{"short_finetune.temperature", c.short_finetune.temperature},
                              std::pair{"short_finetune.alpha", c.short_finetune.alpha}}) {
    if (!std::isfinite(value)) fail("{} must be a finite number, got {}", name, value);
  }
  if (c.parallel.batch < 1) fail("parallel.batch must be >= 1, got {}", c.parallel.batch);
  if (c.parallel.threads < 0) fail("parallel.threads must be >= 0, got {}", c.parallel.threads);
  // The agent's options are checked here, before any work, not when the agent is built.
  DdpgOptions d = c.ddpg;
  d.state_dim = 1;
  validate_ddpg_options(d);
}

nlohmann::json to_json(const RunConfig& c) {
  const auto& d = c.ddpg;
  nlohmann::json j = {{"model", c.model},
          {"data", c.data},
          {"target", c.target},
          {"constraints", c.constraints},
          {"agent", c.agent},
          {"episodes", c.episodes},
          {"seed", c.seed},
          {"out", c.out},
          {"weight_bits", c.weight_bits},
          {"activation_bits", c.activation_bits},
          {"validation", c.validation},
          {"validation_data", c.validation_data},
          {"validation_split", c.validation_split},
          {"calibration", c.calibration},
          {"sensitivity_examples", c.sensitivity_examples},
          {"staged", {{"enabled", c.staged.enabled}, {"examples", c.staged.examples}, {"margin", c.staged.margin}}},
          {"short_finetune",
           {{"steps", c.short_finetune.steps}, {"batch_size", c.short_finetune.batch_size},
            {"learning_rate", c.short_finetune.learning_rate}, {"temperature", c.short_finetune.temperature},
            {"alpha", c.short_finetune.alpha}}},
          {"final_finetune",
           {{"epochs", c.final_finetune.epochs}, {"batch_size", c.final_finetune.batch_size},
            {"learning_rate", c.final_finetune.learning_rate}, {"examples", c.final_finetune.examples}}},
          {"reward",
           {{"accuracy", c.reward.accuracy}, {"weight_memory", c.reward.weight_memory}, {"bops", c.reward.bops},
            {"latency", c.reward.latency}, {"energy", c.reward.energy}}},
          {"warm_start", c.warm_start},
          {"deploy", c.deploy},
          {"ddpg",
           {{"hidden", d.hidden1}, {"lr_actor", d.lr_actor}, {"lr_critic", d.lr_critic},
            {"warmup_episodes", d.warmup_episodes}, {"noise_sigma", d.noise_sigma}, {"noise_decay", d.noise_decay},
            {"replay", d.replay_capacity}, {"batch_size", d.batch_size}, {"tau", d.tau}, {"discount", d.discount},
            {"baseline_momentum", d.baseline_momentum}, {"updates_per_step", d.updates_per_step}}}};
  // Written only when set, so that journals from before the key still resume.
  if (c.parallel.batch != 1 || c.parallel.threads != 0) {
    j["parallel"] = {{"batch", c.parallel.batch}, {"threads", c.parallel.threads}};
  }
  return j;
}

RunConfig from_json(const nlohmann::json& j) {
  // The journal stores to_json(); YAML is a superset of JSON.
  RunConfig c = parse_run_config(j.dump(), "journal run configuration");
  return c;
}

}  // namespace autoprec::search
