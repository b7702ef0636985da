// Graph rewrites applied after import. Each returns how many nodes it changed
// and keeps the graph's outputs and value names intact.
#pragma once

#include "graph/ir.h"

namespace autoprec::graph {

// Folds BatchNormalization into the Conv or Gemm that feeds it when that
// layer's weight is an initializer used only there and its output has no
// other reader: W' = W·γ/√(σ²+ε) per output channel, b' = (b−μ)·γ/√(σ²+ε)+β.
// BatchNormalization nodes with nothing to fold into stay as they are.
int fold_batchnorm(Graph& graph);

// Removes Identity and (inference-mode) Dropout nodes by rewiring their
// readers to the node's input. A node whose output is a graph output stays.
int remove_identity_and_dropout(Graph& graph);

// Removes nodes whose outputs nobody reads and initializers nobody uses.
int remove_dead_nodes(Graph& graph);

// Renames a value everywhere it is read.
void replace_uses(Graph& graph, const std::string& from, const std::string& to);

}  // namespace autoprec::graph
