// Loading a model for execution: import, simplify, validate.
#pragma once

#include <memory>
#include <string>

#include "graph/ir.h"

namespace autoprec::exec {

// What the simplification passes changed, for logs and `inspect`.
struct SimplifyReport {
  int identities_removed = 0;
  int batchnorms_folded = 0;
  int constants_folded = 0;
  int dead_nodes_removed = 0;
};

// Folds every node whose inputs are all initializers (and Shape nodes whose
// input shape is fully known) into new initializers, using the operators'
// own kernels. Returns the number of nodes folded.
int fold_constants(graph::Graph& graph);

// Runs the passes in order: Identity/Dropout removal, constant folding,
// BatchNorm folding, dead-node removal.
SimplifyReport simplify(graph::Graph& graph);

// Imports `path`, simplifies it and checks that every operator is supported
// (UserError listing all unsupported ones with their nodes).
std::shared_ptr<graph::Graph> load_model(const std::string& path, SimplifyReport* report = nullptr);

}  // namespace autoprec::exec
