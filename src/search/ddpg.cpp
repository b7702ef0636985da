#include "search/ddpg.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "util/error.h"
#include "util/file.h"

namespace autoprec::search {
namespace {

constexpr const char* kAgentFormat = "autoprec-ddpg";
constexpr int64_t kAgentVersion = 1;

// PyTorch's default Linear initialisation (uniform in +-1/sqrt(fan_in) for
// weight and bias), drawn from the agent's own generator.
void init_linear(torch::nn::Linear& layer, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  double bound = 1.0 / std::sqrt(static_cast<double>(layer->options.in_features()));
  layer->weight.uniform_(-bound, bound, gen);
  layer->bias.uniform_(-bound, bound, gen);
}

struct ActorImpl : torch::nn::Module {
  ActorImpl(int states, int h1, int h2, at::Generator& gen)
      : fc1(register_module("fc1", torch::nn::Linear(states, h1))),
        fc2(register_module("fc2", torch::nn::Linear(h1, h2))),
        fc3(register_module("fc3", torch::nn::Linear(h2, 1))) {
    for (auto* l : {&fc1, &fc2, &fc3}) init_linear(*l, gen);
  }
  torch::Tensor forward(const torch::Tensor& s) {
    return torch::sigmoid(fc3(torch::relu(fc2(torch::relu(fc1(s))))));
  }
  torch::nn::Linear fc1, fc2, fc3;
};
TORCH_MODULE(Actor);

struct CriticImpl : torch::nn::Module {
  CriticImpl(int states, int h1, int h2, at::Generator& gen)
      : fc11(register_module("fc11", torch::nn::Linear(states, h1))),
        fc12(register_module("fc12", torch::nn::Linear(1, h1))),
        fc2(register_module("fc2", torch::nn::Linear(h1, h2))),
        fc3(register_module("fc3", torch::nn::Linear(h2, 1))) {
    for (auto* l : {&fc11, &fc12, &fc2, &fc3}) init_linear(*l, gen);
  }
  torch::Tensor forward(const torch::Tensor& s, const torch::Tensor& a) {
    return fc3(torch::relu(fc2(torch::relu(fc11(s) + fc12(a)))));
  }
  torch::nn::Linear fc11, fc12, fc2, fc3;
};
TORCH_MODULE(Critic);

void copy_parameters(torch::nn::Module& target, const torch::nn::Module& source) {
  torch::NoGradGuard no_grad;
  auto t = target.parameters();
  auto s = source.parameters();
  for (size_t i = 0; i < t.size(); ++i) t[i].copy_(s[i]);
}

void soft_update(torch::nn::Module& target, const torch::nn::Module& source, double tau) {
  torch::NoGradGuard no_grad;
  auto t = target.parameters();
  auto s = source.parameters();
  for (size_t i = 0; i < t.size(); ++i) t[i].mul_(1.0 - tau).add_(s[i], tau);
}

struct Stored {
  std::vector<float> state, next_state;
  float action = 0, reward = 0;
  bool done = false;
};

// Stored transitions <-> tensors, for save/load.
void write_transitions(torch::serialize::OutputArchive& archive, const std::string& prefix,
                       const std::vector<const Stored*>& items, int dim) {
  auto n = static_cast<int64_t>(items.size());
  torch::Tensor states = torch::zeros({n, dim}), next = torch::zeros({n, dim});
  torch::Tensor actions = torch::zeros({n}), rewards = torch::zeros({n}), dones = torch::zeros({n});
  for (int64_t i = 0; i < n; ++i) {
    const Stored& t = *items[i];
    std::copy(t.state.begin(), t.state.end(), states[i].data_ptr<float>());
    std::copy(t.next_state.begin(), t.next_state.end(), next[i].data_ptr<float>());
    actions[i] = t.action;
    rewards[i] = t.reward;
    dones[i] = t.done ? 1.0f : 0.0f;
  }
  archive.write(prefix + "_states", states);
  archive.write(prefix + "_next_states", next);
  archive.write(prefix + "_actions", actions);
  archive.write(prefix + "_rewards", rewards);
  archive.write(prefix + "_dones", dones);
}

std::vector<Stored> read_transitions(torch::serialize::InputArchive& archive, const std::string& prefix, int dim) {
  torch::Tensor states, next, actions, rewards, dones;
  archive.read(prefix + "_states", states);
  archive.read(prefix + "_next_states", next);
  archive.read(prefix + "_actions", actions);
  archive.read(prefix + "_rewards", rewards);
  archive.read(prefix + "_dones", dones);
  if (states.dim() != 2 || states.size(1) != dim) throw InternalError("replay state width differs");
  states = states.contiguous();
  next = next.contiguous();
  std::vector<Stored> out(static_cast<size_t>(states.size(0)));
  for (size_t i = 0; i < out.size(); ++i) {
    const float* s = states[static_cast<int64_t>(i)].data_ptr<float>();
    const float* n = next[static_cast<int64_t>(i)].data_ptr<float>();
    out[i].state.assign(s, s + dim);
    out[i].next_state.assign(n, n + dim);
    out[i].action = actions[static_cast<int64_t>(i)].item<float>();
    out[i].reward = rewards[static_cast<int64_t>(i)].item<float>();
    out[i].done = dones[static_cast<int64_t>(i)].item<float>() != 0;
  }
  return out;
}

int64_t read_int(torch::serialize::InputArchive& archive, const std::string& key) {
  c10::IValue v;
  archive.read(key, v);
  return v.toInt();
}

double read_double(torch::serialize::InputArchive& archive, const std::string& key) {
  c10::IValue v;
  archive.read(key, v);
  return v.toDouble();
}

std::string read_string(torch::serialize::InputArchive& archive, const std::string& key) {
  c10::IValue v;
  archive.read(key, v);
  return v.toStringRef();
}

}  // namespace

struct DdpgAgent::Impl {
  explicit Impl(const DdpgOptions& o)
      : options(o),
        gen(at::detail::createCPUGenerator(o.seed)),
        actor(o.state_dim, o.hidden1, o.hidden2, gen),
        actor_target(o.state_dim, o.hidden1, o.hidden2, gen),
        critic(o.state_dim, o.hidden1, o.hidden2, gen),
        critic_target(o.state_dim, o.hidden1, o.hidden2, gen),
        actor_optim(actor->parameters(), torch::optim::AdamOptions(o.lr_actor)),
        critic_optim(critic->parameters(), torch::optim::AdamOptions(o.lr_critic)),
        rng(o.seed) {
    copy_parameters(*actor_target, *actor);
    copy_parameters(*critic_target, *critic);
  }

  // Uniform in [0, 1) from the 53 high bits: the same on every platform.
  double uniform() { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }
  double normal() {  // Box-Muller
    double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * M_PI * u2);
  }

  torch::Tensor to_tensor(const std::vector<double>& state) const {
    if (static_cast<int>(state.size()) != options.state_dim) {
      throw InternalError(
          fmt::format("ddpg: state has {} values, the agent expects {}", state.size(), options.state_dim));
    }
    torch::Tensor t = torch::empty({1, options.state_dim});
    for (int i = 0; i < options.state_dim; ++i) t[0][i] = static_cast<float>(state[i]);
    return t;
  }

  const Stored& replay_at(size_t i) const { return replay[(replay_start + i) % replay.size()]; }

  void push(Stored s) {
    auto cap = static_cast<size_t>(options.replay_capacity);
    if (replay.size() < cap) {
      replay.push_back(std::move(s));
    } else {
      replay[replay_start] = std::move(s);
      replay_start = (replay_start + 1) % cap;
    }
  }

  DdpgOptions options;
  at::Generator gen;
  Actor actor, actor_target;
  Critic critic, critic_target;
  torch::optim::Adam actor_optim, critic_optim;
  std::mt19937_64 rng;
  std::vector<Stored> replay;  // ring buffer, oldest at replay_start once full
  size_t replay_start = 0;
  std::vector<Stored> episode;  // steps of the current episode, reward not yet known
  bool has_baseline = false;
  double baseline = 0;
  DdpgStats stats;
};

DdpgAgent::DdpgAgent(const DdpgOptions& options) {
  try {
    validate_ddpg_options(options);
  } catch (const UserError& e) {
    throw InternalError(e.what());
  }
  impl_ = std::make_unique<Impl>(options);
}

DdpgAgent::~DdpgAgent() = default;
DdpgAgent::DdpgAgent(DdpgAgent&&) noexcept = default;
DdpgAgent& DdpgAgent::operator=(DdpgAgent&&) noexcept = default;

const DdpgOptions& DdpgAgent::options() const { return impl_->options; }

double DdpgAgent::sigma(int64_t episode) const {
  const DdpgOptions& o = impl_->options;
  if (episode < o.warmup_episodes) return 0;
  return o.noise_sigma * std::pow(o.noise_decay, static_cast<double>(episode - o.warmup_episodes));
}

double DdpgAgent::policy_action(const std::vector<double>& state) const {
  torch::NoGradGuard no_grad;
  return impl_->actor->forward(impl_->to_tensor(state)).item<double>();
}

double DdpgAgent::select_action(const std::vector<double>& state, int64_t episode) {
  if (episode < impl_->options.warmup_episodes) {
    impl_->to_tensor(state);  // checks the size
    return impl_->uniform();
  }
  double mu = policy_action(state);
  double s = sigma(episode);
  if (s <= 0) return mu;
  // Truncated normal on [0, 1] by rejection; mu is inside, so each try is
  // accepted with probability >= ~0.34 for any sigma.
  for (int tries = 0; tries < 1000; ++tries) {
    double x = mu + s * impl_->normal();
    if (x >= 0 && x <= 1) return x;
  }
  return std::clamp(mu, 0.0, 1.0);
}

void DdpgAgent::observe(const Transition& t) {
  const int dim = impl_->options.state_dim;
  if (static_cast<int>(t.state.size()) != dim || (!t.done && static_cast<int>(t.next_state.size()) != dim)) {
    throw InternalError(fmt::format("ddpg: transition states must have {} values", dim));
  }
  Stored s;
  s.state.assign(t.state.begin(), t.state.end());
  s.next_state = t.done && t.next_state.size() != t.state.size() ? std::vector<float>(dim, 0.0f)
                                                                  : std::vector<float>(t.next_state.begin(), t.next_state.end());
  s.action = static_cast<float>(t.action);
  s.done = t.done;
  impl_->episode.push_back(std::move(s));
}

int DdpgAgent::end_episode(double reward, int64_t episode) {
  std::vector<Stored> steps = std::move(impl_->episode);
  impl_->episode.clear();
  for (Stored& s : steps) {
    s.reward = static_cast<float>(reward);
    impl_->push(std::move(s));
  }
  int updates = 0;
  if (episode < impl_->options.warmup_episodes) return 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    for (int u = 0; u < impl_->options.updates_per_step; ++u) updates += update() ? 1 : 0;
  }
  return updates;
}

bool DdpgAgent::update() {
  Impl& m = *impl_;
  const DdpgOptions& o = m.options;
  const size_t n = m.replay.size();
  if (n < static_cast<size_t>(o.batch_size)) return false;

  // Sample batch_size distinct transitions (partial Fisher-Yates).
  std::vector<size_t> index(n);
  for (size_t i = 0; i < n; ++i) index[i] = i;
  const int64_t b = o.batch_size;
  torch::Tensor s = torch::empty({b, o.state_dim}), s2 = torch::empty({b, o.state_dim});
  torch::Tensor a = torch::empty({b, 1}), r = torch::empty({b, 1}), notdone = torch::empty({b, 1});
  float* sp = s.data_ptr<float>();
  float* s2p = s2.data_ptr<float>();
  float* ap = a.data_ptr<float>();
  float* rp = r.data_ptr<float>();
  float* np = notdone.data_ptr<float>();
  for (int64_t i = 0; i < b; ++i) {
    size_t j = static_cast<size_t>(i) + static_cast<size_t>(m.rng() % (n - static_cast<size_t>(i)));
    std::swap(index[static_cast<size_t>(i)], index[j]);
    const Stored& t = m.replay_at(index[static_cast<size_t>(i)]);
    std::copy(t.state.begin(), t.state.end(), sp + i * o.state_dim);
    std::copy(t.next_state.begin(), t.next_state.end(), s2p + i * o.state_dim);
    ap[i] = t.action;
    rp[i] = t.reward;
    np[i] = t.done ? 0.0f : 1.0f;
  }

  double batch_mean = r.mean().item<double>();
  m.baseline = m.has_baseline ? o.baseline_momentum * m.baseline + (1 - o.baseline_momentum) * batch_mean : batch_mean;
  m.has_baseline = true;
  r = r - m.baseline;

  torch::Tensor target;
  {
    torch::NoGradGuard no_grad;
    target = r + o.discount * notdone * m.critic_target->forward(s2, m.actor_target->forward(s2));
  }
  m.critic_optim.zero_grad();
  torch::Tensor critic_loss = torch::mse_loss(m.critic->forward(s, a), target);
  critic_loss.backward();
  m.critic_optim.step();

  m.actor_optim.zero_grad();
  torch::Tensor actor_loss = -m.critic->forward(s, m.actor->forward(s)).mean();
  actor_loss.backward();
  m.actor_optim.step();

  soft_update(*m.actor_target, *m.actor, o.tau);
  soft_update(*m.critic_target, *m.critic, o.tau);

  m.stats.updates += 1;
  m.stats.critic_loss = critic_loss.item<double>();
  m.stats.actor_loss = actor_loss.item<double>();
  return true;
}

DdpgStats DdpgAgent::stats() const {
  DdpgStats s = impl_->stats;
  s.baseline = impl_->baseline;
  s.replay_size = impl_->replay.size();
  return s;
}

std::string DdpgAgent::save_bytes() const {
  const Impl& m = *impl_;
  const DdpgOptions& o = m.options;
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kAgentFormat)));
  archive.write("version", c10::IValue(kAgentVersion));
  archive.write("state_dim", c10::IValue(static_cast<int64_t>(o.state_dim)));
  archive.write("hidden1", c10::IValue(static_cast<int64_t>(o.hidden1)));
  archive.write("hidden2", c10::IValue(static_cast<int64_t>(o.hidden2)));
  auto module = [&](const char* key, const torch::nn::Module& mod) {
    torch::serialize::OutputArchive sub;
    mod.save(sub);
    archive.write(key, sub);
  };
  module("actor", *m.actor);
  module("actor_target", *m.actor_target);
  module("critic", *m.critic);
  module("critic_target", *m.critic_target);
  auto optim = [&](const char* key, const torch::optim::Optimizer& opt) {
    torch::serialize::OutputArchive sub;
    opt.save(sub);
    archive.write(key, sub);
  };
  optim("actor_optim", m.actor_optim);
  optim("critic_optim", m.critic_optim);
  std::vector<const Stored*> replay, episode;
  for (size_t i = 0; i < m.replay.size(); ++i) replay.push_back(&m.replay_at(i));
  for (const Stored& s : m.episode) episode.push_back(&s);
  write_transitions(archive, "replay", replay, o.state_dim);
  write_transitions(archive, "episode", episode, o.state_dim);
  std::ostringstream rng;
  rng << m.rng;
  archive.write("rng", c10::IValue(rng.str()));
  archive.write("has_baseline", c10::IValue(static_cast<int64_t>(m.has_baseline)));
  archive.write("baseline", c10::IValue(m.baseline));
  archive.write("updates", c10::IValue(m.stats.updates));
  archive.write("critic_loss", c10::IValue(m.stats.critic_loss));
  archive.write("actor_loss", c10::IValue(m.stats.actor_loss));
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void DdpgAgent::load_bytes(const std::string& bytes) {
  // Loaded into a fresh agent first, so a failed load leaves this one intact.
  auto fresh = std::make_unique<Impl>(impl_->options);
  Impl& m = *fresh;
  const DdpgOptions& o = m.options;
  try {
    torch::serialize::InputArchive archive;
    std::istringstream in(bytes);
    archive.load_from(in);
    if (read_string(archive, "format") != kAgentFormat) fail("not a saved DDPG agent");
    if (read_int(archive, "version") != kAgentVersion) fail("saved DDPG agent has an unsupported version");
    if (read_int(archive, "state_dim") != o.state_dim || read_int(archive, "hidden1") != o.hidden1 ||
        read_int(archive, "hidden2") != o.hidden2) {
      fail("saved DDPG agent has state_dim {}, hidden {}x{}; this agent {}, {}x{}", read_int(archive, "state_dim"),
           read_int(archive, "hidden1"), read_int(archive, "hidden2"), o.state_dim, o.hidden1, o.hidden2);
    }
    auto module = [&](const char* key, torch::nn::Module& mod) {
      torch::serialize::InputArchive sub;
      archive.read(key, sub);
      mod.load(sub);
    };
    module("actor", *m.actor);
    module("actor_target", *m.actor_target);
    module("critic", *m.critic);
    module("critic_target", *m.critic_target);
    auto optim = [&](const char* key, torch::optim::Optimizer& opt) {
      torch::serialize::InputArchive sub;
      archive.read(key, sub);
      opt.load(sub);
    };
    optim("actor_optim", m.actor_optim);
    optim("critic_optim", m.critic_optim);
    std::vector<Stored> replay = read_transitions(archive, "replay", o.state_dim);
    if (replay.size() > static_cast<size_t>(o.replay_capacity)) {
      replay.erase(replay.begin(), replay.end() - o.replay_capacity);
    }
    m.replay = std::move(replay);
    m.replay_start = 0;
    m.episode = read_transitions(archive, "episode", o.state_dim);
    std::istringstream rng(read_string(archive, "rng"));
    rng >> m.rng;
    m.has_baseline = read_int(archive, "has_baseline") != 0;
    m.baseline = read_double(archive, "baseline");
    m.stats.updates = read_int(archive, "updates");
    m.stats.critic_loss = read_double(archive, "critic_loss");
    m.stats.actor_loss = read_double(archive, "actor_loss");
    impl_ = std::move(fresh);
  } catch (const UserError&) {
    throw;
  } catch (const std::exception& e) {
    std::string what = e.what();
    fail("not a saved DDPG agent or it does not match: {}", what.substr(0, what.find('\n')));
  }
}

void DdpgAgent::save(const std::string& path) const { write_file_atomically(path, save_bytes(), "agent checkpoint"); }

void DdpgAgent::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read agent checkpoint {}", path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  try {
    load_bytes(buffer.str());
  } catch (const UserError& e) {
    fail("{}: {}", path, e.what());
  }
}

}  // namespace autoprec::search
