// Search agents: what proposes the configurations a search evaluates.
//
// An agent gets a SearchDriver — the problem (per-layer options, budgets),
// the environment (states, action decoding, projection), the run
// configuration, the journal, and the one way to have candidates evaluated —
// and proposes candidates until its budget is spent. Evaluation, staging,
// costs, constraints, journaling and the fronts are the driver's; an agent
// decides only which configurations to try and learns from their records.
// Built-in agents (agents.cpp): ddpg, ilp, greedy, random, uniform. Their
// names and one-line summaries (validation, --help, docs) are
// agent_descriptions() in run_config.h; agent_registry() pairs each with its
// factory, and a test checks that the two lists agree (docs/extending.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "search/environment.h"
#include "search/journal.h"
#include "search/problem.h"
#include "search/run_config.h"

namespace autoprec::search {

struct Candidate {
  Choice choice;
  int64_t episode = 0;
};

class SearchDriver {
 public:
  virtual ~SearchDriver() = default;
  virtual const ChoiceProblem& problem() const = 0;
  virtual const Environment& environment() const = 0;
  virtual const RunConfig& config() const = 0;
  virtual Journal& journal() = 0;
  // Evaluates (or looks up) a batch, in episode order; one record per
  // candidate, journaled before this returns (search/searcher.cpp).
  virtual std::vector<EvaluationRecord> evaluate(const std::vector<Candidate>& batch) = 0;
  // The record's reward (RunConfig::reward, eval::reward_scale).
  virtual double reward(const EvaluationRecord& record) const = 0;
  // Progress: `episode` was evaluated; `count` episodes were done by an earlier run (resume).
  virtual void episode_done(int64_t episode) = 0;
  virtual void episodes_resumed(int64_t count) = 0;
};

class Agent {
 public:
  virtual ~Agent() = default;
  // Proposes and evaluates candidates through `driver` until its budget is
  // spent; an agent that checkpoints resumes from the journal's checkpoint.
  virtual void run(SearchDriver& driver) = 0;
};

struct AgentFactory {
  const char* name;
  bool episodic;  // runs config.episodes episodes; the others evaluate once
  std::unique_ptr<Agent> (*make)();
};

// Every built-in agent, in agent_descriptions() order.
const std::vector<AgentFactory>& agent_registry();
// The factory of `name`; UserError naming the valid agents otherwise.
const AgentFactory& find_agent(const std::string& name);

}  // namespace autoprec::search
