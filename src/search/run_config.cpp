#include "search/run_config.h"

#include "eval/metric.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <type_traits>

#include "quant/config.h"
#include "util/error.h"
#include "util/text.h"

namespace autoprec::search {
namespace {

using RKey = yaml::Key<RunConfig>;
using Reader = std::function<void(const yaml::Node&, RunConfig&)>;

const yaml::KeyFactory<RunConfig> key;

constexpr double kInf = std::numeric_limits<double>::infinity();

// A number in an interval: "(0, 1]", "> 0", ">= 0", "any".
struct Interval {
  double lo = -kInf, hi = kInf;
  bool lo_open = false, hi_open = false;
  std::string text() const {
    if (lo == -kInf && hi == kInf) return "";
    if (hi == kInf) return fmt::format(" {} {}", lo_open ? ">" : ">=", lo);
    return fmt::format(" in {}{}, {}{}", lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]");
  }
  bool contains(double v) const {
    return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  }
};
const Interval kPositive{0, kInf, true, false};
const Interval kNonNegative{0, kInf, false, false};
const Interval kUnit{0, 1, false, false};           // [0, 1]
const Interval kUnitOpenLow{0, 1, true, false};     // (0, 1]
const Interval kUnitOpenHigh{0, 1, false, true};    // [0, 1)

double read_number(const yaml::Node& n, const Interval& range) {
  const double v = n.number();
  if (!range.contains(v)) n.fail(fmt::format("{} must be a number{}, got {}", n.what(), range.text(), n.text("")));
  return v;
}

template <typename Field>
RKey number_key(std::string path, Interval range, std::string default_text, std::string description, std::string invalid,
                Field field) {
  return key(std::move(path), "number" + range.text(), std::move(default_text), std::move(description),
             std::move(invalid), [range, field](const yaml::Node& n, RunConfig& c) { field(c) = read_number(n, range); });
}

template <typename Field>
RKey integer_key(std::string path, int64_t min, std::string default_text, std::string description, std::string invalid,
                 Field field) {
  return key(std::move(path), fmt::format("integer >= {}", min), std::move(default_text), std::move(description),
             std::move(invalid), [min, field](const yaml::Node& n, RunConfig& c) {
               field(c) = static_cast<std::remove_reference_t<decltype(field(c))>>(n.integer(min, INT32_MAX));
             });
}

template <typename Field>
RKey bool_key(std::string path, std::string default_text, std::string description, std::string invalid, Field field) {
  return key(std::move(path), "true | false", std::move(default_text), std::move(description), std::move(invalid),
             [field](const yaml::Node& n, RunConfig& c) { field(c) = n.boolean(); });
}

template <typename Field>
RKey string_key(std::string path, std::string type, std::string default_text, std::string description,
                std::string invalid, Field field) {
  return key(std::move(path), std::move(type), std::move(default_text), std::move(description), std::move(invalid),
             [field](const yaml::Node& n, RunConfig& c) { field(c) = n.string(); });
}

std::set<int> read_bit_set(const yaml::Node& n) {
  if (!n.is_list()) n.fail(fmt::format("{} must be a list of bit-widths like [2, 4, 8], got {}", n.what(), n.describe()));
  std::set<int> out;
  for (const yaml::Node& item : n.items()) {
    const int64_t b = item.integer();
    if (!quant::valid_bits().count(static_cast<int>(b)) || b > 64 || b < 0) {
      item.fail(fmt::format("{} must be one of {} (16 and 32 keep float), got {}", item.what(),
                            join_ints(quant::valid_bits()), b));
    }
    out.insert(static_cast<int>(b));
  }
  return out;  // empty: the target's set
}

std::vector<std::string> agent_name_list() {
  std::vector<std::string> names;
  for (const auto& a : agent_descriptions()) names.emplace_back(a.name);
  return names;
}

const std::vector<RKey>& keys() {
  static const std::vector<RKey> all = [] {
    const RunConfig d;
    const auto num = [](double v) { return fmt::format("{}", v); };
    std::vector<RKey> k = {
        string_key("model", "path of an ONNX file", "required (or --model)", "the trained FP32 model",
                   "/nonexistent/model.onnx", [](RunConfig& c) -> std::string& { return c.model; }),
        string_key("data", "dataset spec (idx:DIR, npy:X.npy,Y.npy, npy:X.npy without labels, npz:FILE.npz with one array per model input)", "required (or --data)", "training and test data",
                   "npy:/nonexistent/x.npy,/nonexistent/y.npy", [](RunConfig& c) -> std::string& { return c.data; }),
        string_key("target", "built-in target name or profile path", "generic", "the device (`autoprec targets`)",
                   "no-such-target", [](RunConfig& c) -> std::string& { return c.target; }),
        key("constraints", "list of constraint expressions", "[]",
            "METRIC OP VALUE, e.g. weight_memory<=0.125*fp32 (docs/cli.md)", "[\"weight_memory<=64\"]",
            [](const yaml::Node& n, RunConfig& c) {
              if (!n.is_list() && !n.is_null()) {
                n.fail(fmt::format("{} must be a list of expressions like [\"latency<=0.6*int8\"], got {}", n.what(),
                                   n.describe()));
              }
              for (const yaml::Node& item : n.items()) c.constraints.push_back(item.text("an expression"));
            }),
        key("metric", "top1 | agreement | kl | sqnr | command", "top1 with labels, agreement without",
            "how candidates are scored (docs/search.md, \"Metrics\"); fidelity constraints bound the label-free ones",
            "accuracy",
            [](const yaml::Node& n, RunConfig& c) {
              c.metric = eval::metric_names()[n.choice(eval::metric_names())];
            }),
        string_key("metric_command", "shell command", "none",
                   "metric: command: scores a model file given as its last argument, prints one number (higher is "
                   "better; docs/cli.md, \"Metrics\")",
                   "[1]", [](RunConfig& c) -> std::string& { return c.metric_command; }),
        number_key("metric_timeout", kPositive, num(d.metric_timeout), "seconds the metric command may take per model",
                   "0", [](RunConfig& c) -> double& { return c.metric_timeout; }),
        key("agent", agent_names(), "ddpg", "the search agent (docs/search.md)", "haq",
            [](const yaml::Node& n, RunConfig& c) { c.agent = agent_name_list()[n.choice(agent_name_list())]; }),
        integer_key("episodes", 1, std::to_string(d.episodes), "episodes of ddpg and random (the others evaluate once)",
                    "0", [](RunConfig& c) -> int64_t& { return c.episodes; }),
        key("seed", "unsigned integer", "0", "seeds every random choice (data split, agent, fine-tuning)", "-1",
            [](const yaml::Node& n, RunConfig& c) { c.seed = n.unsigned_integer(); }),
        string_key("out", "directory", "required (or --out)", "where the run writes; must not hold a search", "{}",
                   [](RunConfig& c) -> std::string& { return c.out; }),
        key("weight_bits", "list of bit-widths", "the target's", "restricts the target's weight bit-widths", "[9]",
            [](const yaml::Node& n, RunConfig& c) { c.weight_bits = read_bit_set(n); }),
        key("activation_bits", "list of bit-widths", "the target's", "restricts the target's activation bit-widths", "[1]",
            [](const yaml::Node& n, RunConfig& c) { c.activation_bits = read_bit_set(n); }),
        integer_key("validation", 0, "0: 20% of the training split (all of validation_data), at most 2000",
                    "validation examples: carved from the training split, or drawn from validation_data", "-1",
                    [](RunConfig& c) -> int64_t& { return c.validation; }),
        string_key("validation_data", "dataset spec", "none", "a held-out validation set the model never saw",
                   "npy:/nonexistent/x.npy,/nonexistent/y.npy", [](RunConfig& c) -> std::string& { return c.validation_data; }),
        key("validation_split", "train | test", "train", "the split of validation_data for idx: specs", "val",
            [](const yaml::Node& n, RunConfig& c) {
              c.validation_split = std::vector<std::string>{"train", "test"}[n.choice({"train", "test"})];
            }),
        integer_key("calibration", 0, "0: half the training examples, at most 512",
                    "calibration examples (drawn from the training examples)", "-1",
                    [](RunConfig& c) -> int64_t& { return c.calibration; }),
        integer_key("sensitivity_examples", 0, "0: the validation examples, at most 500",
                    "validation examples of the sensitivity table", "-1",
                    [](RunConfig& c) -> int64_t& { return c.sensitivity_examples; }),
        bool_key("staged.enabled", "true", "score candidates cheaply first; fine-tune the promising ones", "maybe",
                 [](RunConfig& c) -> bool& { return c.staged.enabled; }),
        integer_key("staged.examples", 0, "0: the validation examples, at most 500",
                    "validation examples of the cheap score", "-1", [](RunConfig& c) -> int64_t& { return c.staged.examples; }),
        number_key("staged.margin", kNonNegative, num(d.staged.margin),
                   "fine-tune when the cheap top-1 is within this of the best so far", "-0.1",
                   [](RunConfig& c) -> double& { return c.staged.margin; }),
        integer_key("short_finetune.steps", 0, std::to_string(d.short_finetune.steps),
                    "KD steps per candidate (0: calibration only)", "-1",
                    [](RunConfig& c) -> int64_t& { return c.short_finetune.steps; }),
        integer_key("short_finetune.batch_size", 1, std::to_string(d.short_finetune.batch_size), "examples per KD step", "0",
                    [](RunConfig& c) -> int64_t& { return c.short_finetune.batch_size; }),
        number_key("short_finetune.learning_rate", kPositive, num(d.short_finetune.learning_rate), "learning rate of the short fine-tune", "0",
                   [](RunConfig& c) -> double& { return c.short_finetune.learning_rate; }),
        number_key("short_finetune.temperature", kPositive, num(d.short_finetune.temperature),
                   "distillation temperature", "0", [](RunConfig& c) -> double& { return c.short_finetune.temperature; }),
        number_key("short_finetune.alpha", kUnit, num(d.short_finetune.alpha),
                   "weight of the distillation loss (1 - alpha: the label loss)", "1.5",
                   [](RunConfig& c) -> double& { return c.short_finetune.alpha; }),
        integer_key("final_finetune.epochs", 0, std::to_string(d.final_finetune.epochs),
                    "epochs of the selected configuration's fine-tune (0: none)", "-1",
                    [](RunConfig& c) -> int64_t& { return c.final_finetune.epochs; }),
        integer_key("final_finetune.examples", 0, "0 (the whole training split)", "training examples used", "-1",
                    [](RunConfig& c) -> int64_t& { return c.final_finetune.examples; }),
        integer_key("final_finetune.batch_size", 1, std::to_string(d.final_finetune.batch_size), "examples per KD step", "0",
                    [](RunConfig& c) -> int64_t& { return c.final_finetune.batch_size; }),
        number_key("final_finetune.learning_rate", kPositive, num(d.final_finetune.learning_rate), "learning rate of the final fine-tune", "-1",
                   [](RunConfig& c) -> double& { return c.final_finetune.learning_rate; }),
        number_key("reward.accuracy", kNonNegative, num(d.reward.accuracy), "weight of 100 x (top-1 - FP32 top-1)", ".nan",
                   [](RunConfig& c) -> double& { return c.reward.accuracy; }),
        number_key("reward.weight_memory", kNonNegative, "0", "weight of the cost relative to uniform W8A8", "-1",
                   [](RunConfig& c) -> double& { return c.reward.weight_memory; }),
        number_key("reward.bops", kNonNegative, "0", "weight of bit operations relative to uniform W8A8", ".inf", [](RunConfig& c) -> double& { return c.reward.bops; }),
        number_key("reward.latency", kNonNegative, "0", "needs a target with a latency model", "1",
                   [](RunConfig& c) -> double& { return c.reward.latency; }),
        number_key("reward.energy", kNonNegative, "0", "needs a target with an energy model", "1",
                   [](RunConfig& c) -> double& { return c.reward.energy; }),
        bool_key("warm_start", "true", "ddpg: the ILP and greedy solutions are the first episodes", "yes",
                 [](RunConfig& c) -> bool& { return c.warm_start; }),
        bool_key("deploy", "true", "export, verify in ONNX Runtime and time the result into OUT/bundle", "no",
                 [](RunConfig& c) -> bool& { return c.deploy; }),
        key("ddpg.hidden", "integer >= 1", std::to_string(d.ddpg.hidden1), "width of the actor's and critic's two hidden layers",
            "0", [](const yaml::Node& n, RunConfig& c) { c.ddpg.hidden1 = c.ddpg.hidden2 = static_cast<int>(n.integer(1, 1 << 16)); }),
        number_key("ddpg.lr_actor", kPositive, num(d.ddpg.lr_actor), "Adam learning rate of the actor", "-1", [](RunConfig& c) -> double& { return c.ddpg.lr_actor; }),
        number_key("ddpg.lr_critic", kPositive, num(d.ddpg.lr_critic), "Adam learning rate of the critic", "0", [](RunConfig& c) -> double& { return c.ddpg.lr_critic; }),
        integer_key("ddpg.warmup_episodes", 0, std::to_string(d.ddpg.warmup_episodes), "episodes of random actions first", "-1",
                    [](RunConfig& c) -> int& { return c.ddpg.warmup_episodes; }),
        number_key("ddpg.noise_sigma", kNonNegative, num(d.ddpg.noise_sigma), "exploration noise after warm-up", "-0.5",
                   [](RunConfig& c) -> double& { return c.ddpg.noise_sigma; }),
        number_key("ddpg.noise_decay", kUnitOpenLow, num(d.ddpg.noise_decay), "noise factor per episode", "1.5",
                   [](RunConfig& c) -> double& { return c.ddpg.noise_decay; }),
        integer_key("ddpg.replay", 1, std::to_string(d.ddpg.replay_capacity), "transitions kept (>= ddpg.batch_size)", "0",
                    [](RunConfig& c) -> int& { return c.ddpg.replay_capacity; }),
        integer_key("ddpg.batch_size", 1, std::to_string(d.ddpg.batch_size), "transitions per update", "0",
                    [](RunConfig& c) -> int& { return c.ddpg.batch_size; }),
        number_key("ddpg.tau", kUnitOpenLow, num(d.ddpg.tau), "soft target update", "0", [](RunConfig& c) -> double& { return c.ddpg.tau; }),
        number_key("ddpg.discount", kUnit, num(d.ddpg.discount), "discount of the critic's target", "1.5", [](RunConfig& c) -> double& { return c.ddpg.discount; }),
        number_key("ddpg.baseline_momentum", kUnitOpenHigh, num(d.ddpg.baseline_momentum), "reward baseline momentum", "1",
                   [](RunConfig& c) -> double& { return c.ddpg.baseline_momentum; }),
        integer_key("ddpg.updates_per_step", 1, std::to_string(d.ddpg.updates_per_step), "gradient updates per transition", "0",
                    [](RunConfig& c) -> int& { return c.ddpg.updates_per_step; }),
        integer_key("parallel.batch", 1, "1", "episodes proposed from one policy snapshot (docs/search.md)", "0",
                    [](RunConfig& c) -> int64_t& { return c.parallel.batch; }),
        integer_key("parallel.threads", 0, "0 (the process's --threads)", "compute threads per evaluation", "-1",
                    [](RunConfig& c) -> int64_t& { return c.parallel.threads; }),
        number_key("parallel.worker_timeout", kPositive, num(d.parallel.worker_timeout),
                   "mpirun --enable-recovery: seconds a worker may be silent on a task before it is taken as lost", "0",
                   [](RunConfig& c) -> double& { return c.parallel.worker_timeout; }),
        integer_key("parallel.max_attempts", 1, std::to_string(d.parallel.max_attempts),
                    "mpirun --enable-recovery: workers a task may be lost with before the search stops", "0",
                    [](RunConfig& c) -> int64_t& { return c.parallel.max_attempts; }),
    };
    return k;
  }();
  return all;
}

}  // namespace

RunConfig read_run_config(const yaml::Node& root) {
  RunConfig c;
  c.origin = root.origin();
  if (root.is_null()) return c;
  yaml::read_keys(root, keys(), c);
  return c;
}

RunConfig parse_run_config(const std::string& yaml_text, const std::string& origin) {
  return read_run_config(yaml::parse(yaml_text, origin, "run configuration"));
}

RunConfig load_run_config(const std::string& path) { return read_run_config(yaml::load_file(path, "run configuration")); }

std::vector<yaml::KeyInfo> run_config_schema() { return yaml::infos(keys()); }

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
  if (!c.metric.empty()) eval::parse_metric(c.metric, "metric");
  if (c.metric == "command" && c.metric_command.empty()) fail("metric: command needs metric_command, the scorer to run");
  if (c.metric != "command" && !c.metric_command.empty())
    fail("metric_command is set but the metric is {}; set metric: command to score with it",
         c.metric.empty() ? "the default" : c.metric);
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
  if (!c.metric.empty()) j["metric"] = c.metric;
  if (!c.metric_command.empty()) j["metric_command"] = c.metric_command;
  if (c.metric_command.size() || c.metric_timeout != RunConfig().metric_timeout) j["metric_timeout"] = c.metric_timeout;
  const ParallelConfig p0;
  if (c.parallel.batch != p0.batch || c.parallel.threads != p0.threads || c.parallel.worker_timeout != p0.worker_timeout ||
      c.parallel.max_attempts != p0.max_attempts) {
    j["parallel"] = {{"batch", c.parallel.batch}, {"threads", c.parallel.threads}};
    if (c.parallel.worker_timeout != p0.worker_timeout) j["parallel"]["worker_timeout"] = c.parallel.worker_timeout;
    if (c.parallel.max_attempts != p0.max_attempts) j["parallel"]["max_attempts"] = c.parallel.max_attempts;
  }
  return j;
}

RunConfig from_json(const nlohmann::json& j) {
  // The journal stores to_json(); YAML is a superset of JSON.
  RunConfig c = parse_run_config(j.dump(), "journal run configuration");
  return c;
}

}  // namespace autoprec::search
