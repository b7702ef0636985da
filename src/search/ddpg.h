// DDPG agent for the precision search, after HAQ (Wang et al., CVPR 2019;
// mit-han-lab/haq lib/rl/ddpg.py): one continuous action in [0, 1] per step
// (the environment maps it to a bit-width), an actor MLP state -> action
// (ReLU hidden layers, sigmoid output), a critic MLP (state, action) -> Q
// (state and action enter the first hidden layer through two linear maps that
// are summed), target copies of both updated softly, a replay buffer, a
// truncated-normal exploration noise that decays per episode, warm-up
// episodes of uniformly random actions, and a moving-average reward baseline.
//
// Episodic use (HAQ): during an episode call select_action() then observe()
// for every step; the reward is known only at the end, so end_episode(R)
// gives R to every transition of the episode, moves them into the replay
// buffer and, after the warm-up, runs updates_per_step gradient updates per
// transition. Every random draw comes from the agent's own generators seeded
// by DdpgOptions::seed, so two agents with the same options and the same
// call sequence produce identical actions; save()/load() carry the networks,
// optimiser moments, replay buffer, baseline and generator states, so a
// resumed agent continues exactly where the saved one stood.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace autoprec::search {

struct DdpgOptions {
  int state_dim = 0;            // length of every state vector (required, > 0)
  int hidden1 = 300;            // first hidden layer width of actor and critic (HAQ: 300)
  int hidden2 = 300;            // second hidden layer width (HAQ: 300)
  double lr_actor = 1e-4;       // Adam learning rate of the actor (HAQ: 1e-4)
  double lr_critic = 1e-3;      // Adam learning rate of the critic (HAQ: 1e-3)
  int replay_capacity = 2000;   // transitions kept, oldest dropped first (HAQ: 128 per layer)
  int batch_size = 64;          // transitions per gradient update (HAQ: 64)
  double tau = 0.01;            // soft target update: target <- (1 - tau) target + tau online (HAQ: 0.01)
  double discount = 1.0;        // gamma in the critic target r + gamma (1 - done) Q'(s', mu'(s')) (HAQ: 1.0)
  double noise_sigma = 0.5;     // exploration sigma at the first episode after warm-up (HAQ init_delta: 0.5)
  double noise_decay = 0.99;    // sigma = noise_sigma * noise_decay^(episode - warmup_episodes) (HAQ: 0.99)
  int warmup_episodes = 20;     // episodes [0, warmup) act uniformly at random and do not update (HAQ: 20)
  double baseline_momentum = 0.95;  // baseline <- m baseline + (1 - m) mean(batch rewards), per update;
                                    // rewards minus the baseline train the critic (HAQ: m = 0.5)
  int updates_per_step = 1;     // gradient updates per transition at end_episode (HAQ n_update: 1)
  uint64_t seed = 0;            // seeds network initialisation, noise, warm-up actions and replay sampling
};

// One step of an episode; the reward comes later, from end_episode().
struct Transition {
  std::vector<double> state;       // state_dim values, normalised by the environment (HAQ: to [0, 1])
  double action = 0;               // the action taken, in [0, 1]
  std::vector<double> next_state;  // state_dim values; ignored when done
  bool done = false;               // last step of the episode
};

struct DdpgStats {
  int64_t updates = 0;       // gradient updates so far
  double critic_loss = 0;    // mean squared TD error of the last update
  double actor_loss = 0;     // -mean Q of the last update
  double baseline = 0;       // current reward baseline
  size_t replay_size = 0;    // transitions in the replay buffer
};

class DdpgAgent {
 public:
  // std::invalid_argument for state_dim <= 0 or other out-of-range options
  // (validate user-facing configs with validate_ddpg_options first).
  explicit DdpgAgent(const DdpgOptions& options);
  ~DdpgAgent();
  DdpgAgent(DdpgAgent&&) noexcept;
  DdpgAgent& operator=(DdpgAgent&&) noexcept;

  const DdpgOptions& options() const;

  // Action in [0, 1] for `state` at `episode` (0-based): uniform random during
  // warm-up, otherwise actor(state) plus truncated-normal noise of sigma(episode)
  // restricted to [0, 1]. Consumes random draws (determinism is per call sequence).
  double select_action(const std::vector<double>& state, int64_t episode);
  // actor(state), no noise, no random draw.
  double policy_action(const std::vector<double>& state) const;
  // Exploration sigma at `episode` (0 during warm-up, when actions are uniform).
  double sigma(int64_t episode) const;

  // Buffers one step of the current episode.
  void observe(const Transition& transition);
  // Gives `reward` to every buffered step, moves them to the replay buffer
  // and, when `episode` >= warmup_episodes, runs updates_per_step updates per
  // step. Returns the number of gradient updates run.
  int end_episode(double reward, int64_t episode);
  // One gradient update from a replay batch; false (nothing done) while the
  // buffer holds fewer than batch_size transitions.
  bool update();

  DdpgStats stats() const;

  // The whole agent state as bytes (torch serialization) / to a file
  // (written atomically). load*() requires an agent built with the same
  // state_dim and hidden sizes; UserError for a file that is not a saved
  // agent or does not match; a failed load leaves the agent unchanged.
  std::string save_bytes() const;
  void load_bytes(const std::string& bytes);
  void save(const std::string& path) const;
  void load(const std::string& path);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// UserError naming the option for out-of-range values (e.g. tau outside
// (0, 1], batch_size > replay_capacity, noise_decay outside (0, 1]).
void validate_ddpg_options(const DdpgOptions& options);

}  // namespace autoprec::search
