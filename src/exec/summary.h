// Per-layer summary of a model: shapes, parameters and multiply-accumulates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "exec/executor.h"

namespace autoprec::exec {

// One node that carries weights (Conv, Gemm, MatMul with an initializer
// operand, and normalisation layers with parameters).
struct LayerInfo {
  std::string name;
  std::string op;
  std::vector<int64_t> input_shape;   // activation input, batch 1
  std::vector<int64_t> weight_shape;  // empty for normalisation layers
  std::vector<int64_t> output_shape;  // batch 1
  int64_t parameters = 0;             // weight + bias (or scale + shift) elements
  int64_t macs = 0;                   // multiply-accumulates for one example
  bool quantizable = false;           // Conv/Gemm/MatMul: what precision configs act on
};

struct ModelSummary {
  std::vector<LayerInfo> layers;
  int64_t total_parameters = 0;  // every floating-point initializer element
  int64_t total_macs = 0;        // sum over layers
  std::vector<int64_t> input_shape;
  std::vector<int64_t> output_shape;
};

// Runs one example (batch 1, zeros) through `executor` to learn every shape,
// then lists the layers in graph order. UserError when an input's shape is
// not fully known apart from the batch dimension.
ModelSummary summarize(const Executor& executor);

// A zero tensor shaped like graph input `index` with the batch dimension set
// to `batch` (UserError when other dimensions are unknown).
at::Tensor example_input(const graph::Graph& graph, size_t index, int64_t batch);

}  // namespace autoprec::exec
