// The precision search: for each episode an agent assigns every quantizable
// layer a (weight bits, activation bits) pair; the configuration is projected
// onto the hard constraints, generated, calibrated, scored cheaply, fine-tuned
// briefly with knowledge distillation when promising, evaluated on a
// validation split carved from the training data, rewarded and journaled. The
// best feasible configuration is fine-tuned fully, evaluated on the test split
// and written out.
//
// Output directory (anytime: best.yaml and pareto.json are rewritten after
// every evaluation, so they are on disk at every moment):
//   journal.sqlite   run configuration, every evaluation, agent checkpoints
//   sensitivity.json the per-layer sensitivity table the search used
//   best.yaml        the best configuration (after the final fine-tune: its
//                    calibrated form, paired with model.onnx)
//   pareto.json      validation top-1 against every cost, non-dominated points
//   model.onnx       the fully fine-tuned model (BatchNorm folded)
//   result.json      FP32 and final test top-1, costs on the target, constraint
//                    slack, search time, evaluations
//
// Environment, state and actions: search/environment.h.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "search/run_config.h"

namespace autoprec::search {

struct SearchOptions {
  bool resume = false;  // continue the run in config.out (its journal's configuration wins)
  bool quiet = false;   // no progress line
};

// Runs (or resumes) a search and returns result.json's content. Under
// `mpirun -n N` (N > 1) rank 0 runs the search and ranks 1..N-1 evaluate its
// candidates; on those ranks this returns null once rank 0 is done. UserError for
// bad input, unreachable budgets, an unwritable output directory, or a resume
// without a journal; all raised before any training.
nlohmann::json run_search(RunConfig config, const SearchOptions& options);

}  // namespace autoprec::search
