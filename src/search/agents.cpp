// The built-in search agents (search/agent.h).
#include "search/agent.h"

#include <random>
#include <set>

#include <spdlog/spdlog.h>

#include "search/ddpg.h"
#include "search/greedy.h"
#include "search/ilp.h"
#include "util/error.h"
#include "util/text.h"

namespace autoprec::search {
namespace {

// HAQ's agent: a DDPG policy over the layers, in batches of `parallel.batch`
// episodes from one policy snapshot; it learns from them in episode order and
// checkpoints after each batch. With warm_start the ILP optimum and the
// greedy lowering are the first episodes, so the replay buffer holds the best
// known heuristics first.
class DdpgSearchAgent : public Agent {
 public:
  void run(SearchDriver& driver) override {
    const RunConfig& cfg = driver.config();
    const Environment& env = driver.environment();
    DdpgOptions d = cfg.ddpg;
    d.state_dim = kStateDim;
    d.seed = cfg.seed;
    DdpgAgent agent(d);
    const int64_t episodes = cfg.episodes;
    int64_t first = 0;
    if (auto checkpoint = driver.journal().latest_checkpoint()) {
      agent.load_bytes(checkpoint->data);
      first = checkpoint->episode + 1;
      spdlog::info("resuming after episode {}", checkpoint->episode);
      driver.episodes_resumed(std::min(first, episodes));
    }
    std::vector<Choice> warm;
    if (cfg.warm_start) {
      warm.push_back(solve_ilp(driver.problem()).choice);
      Choice greedy = greedy_lowering(driver.problem());
      if (greedy != warm.front()) warm.push_back(greedy);
    }
    const int64_t batch = cfg.parallel.batch;
    for (int64_t begin = first; begin < episodes; begin += batch) {
      const int64_t end = std::min(episodes, begin + batch);
      std::vector<Environment::Episode> played;
      std::vector<Candidate> candidates;
      for (int64_t episode = begin; episode < end; ++episode) {
        const Choice* forced = episode < static_cast<int64_t>(warm.size()) ? &warm[episode] : nullptr;
        std::vector<double> forced_actions;
        if (forced != nullptr) forced_actions = env.actions_of(*forced);
        played.push_back(env.play([&](size_t step, const std::vector<double>& state) {
          return forced != nullptr ? forced_actions[step] : agent.select_action(state, episode);
        }));
        candidates.push_back({played.back().choice, episode});
      }
      std::vector<EvaluationRecord> records = driver.evaluate(candidates);
      for (int64_t episode = begin; episode < end; ++episode) {
        learn(agent, env, played[episode - begin], driver.reward(records[episode - begin]), episode);
      }
      driver.journal().save_checkpoint(end - 1, agent.save_bytes());
      for (int64_t episode = begin; episode < end; ++episode) driver.episode_done(episode);
    }
  }

 private:
  // The replay buffer learns from the configuration actually evaluated (after projection).
  static void learn(DdpgAgent& agent, const Environment& env, const Environment::Episode& played, double reward,
                    int64_t episode) {
    std::vector<double> evaluated = env.actions_of(played.choice);
    const size_t steps = env.steps().size();
    for (size_t s = 0; s < steps; ++s) {
      Transition t;
      t.state = played.states[s];
      t.action = evaluated[s];
      t.done = s + 1 == steps;
      t.next_state = t.done ? played.states[s] : played.states[s + 1];
      agent.observe(t);
    }
    agent.end_episode(reward, episode);
  }
};

// Uniformly random (weight, activation) bits per layer, projected onto the budgets.
class RandomAgent : public Agent {
 public:
  void run(SearchDriver& driver) override {
    const RunConfig& cfg = driver.config();
    const Environment& env = driver.environment();
    std::mt19937_64 rng(cfg.seed);
    for (int64_t begin = 0; begin < cfg.episodes; begin += cfg.parallel.batch) {
      const int64_t end = std::min(cfg.episodes, begin + cfg.parallel.batch);
      std::vector<Candidate> candidates;
      for (int64_t episode = begin; episode < end; ++episode) {
        Decisions d;
        for (size_t l = 0; l < driver.problem().layers.size(); ++l) {
          const auto &ws = env.weight_set(l), &as = env.activation_set(l);
          std::uniform_int_distribution<size_t> w(0, ws.size() - 1), a(0, as.size() - 1);
          d.weight_bits.push_back(ws[w(rng)]);
          d.activation_bits.push_back(as[a(rng)]);
        }
        candidates.push_back({project(driver.problem(), env.nearest_choice(d)), episode});
      }
      driver.evaluate(candidates);
      for (int64_t episode = begin; episode < end; ++episode) driver.episode_done(episode);
    }
  }
};

// An agent that evaluates one configuration.
template <Choice (*propose)(const SearchDriver&)>
class OneShotAgent : public Agent {
 public:
  void run(SearchDriver& driver) override {
    driver.evaluate({{propose(driver), 0}});
    driver.episode_done(0);
  }
};

Choice ilp_choice(const SearchDriver& d) { return solve_ilp(d.problem()).choice; }
Choice greedy_choice(const SearchDriver& d) { return greedy_lowering(d.problem()); }

// The highest uniform weight precision (activations at their highest) that fits the budgets.
Choice uniform_choice(const SearchDriver& driver) {
  const ChoiceProblem& problem = driver.problem();
  const Environment& env = driver.environment();
  std::set<int> all_w;
  for (size_t l = 0; l < problem.layers.size(); ++l) all_w.insert(env.weight_set(l).begin(), env.weight_set(l).end());
  for (auto it = all_w.rbegin(); it != all_w.rend(); ++it) {
    Decisions d{std::vector<int>(problem.layers.size(), *it), std::vector<int>(problem.layers.size(), 0)};
    Choice c = env.nearest_choice(d);
    if (is_feasible(problem, c)) return c;
  }
  return project(problem, highest_choice(problem));
}

template <typename T>
std::unique_ptr<Agent> make() {
  return std::make_unique<T>();
}

}  // namespace

const std::vector<AgentFactory>& agent_registry() {
  static const std::vector<AgentFactory> agents = {
      {"ddpg", true, make<DdpgSearchAgent>},
      {"ilp", false, make<OneShotAgent<ilp_choice>>},
      {"greedy", false, make<OneShotAgent<greedy_choice>>},
      {"random", true, make<RandomAgent>},
      {"uniform", false, make<OneShotAgent<uniform_choice>>},
  };
  return agents;
}

const AgentFactory& find_agent(const std::string& name) {
  for (const AgentFactory& a : agent_registry())
    if (name == a.name) return a;
  fail("unknown agent {}; valid: {}", quote(name), agent_names());
}

}  // namespace autoprec::search
