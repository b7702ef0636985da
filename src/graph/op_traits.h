// One table of the operator kinds autoprec quantizes: a Conv, Gemm or MatMul
// node whose weight is an initializer. Every place that needs to know which
// operators carry weights, where the weight and bias are, which weight axis
// holds the output channels and how many multiply-accumulates a node costs
// reads this table (quant/layers, exec/summary, train/finetune, the target
// profiles' `precisions` keys, deploy); adding an operator kind is one row
// here plus its tests (docs/extending.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace autoprec::graph {

struct WeightedOpTraits {
  const char* op;        // ONNX op_type (default domain)
  int weight_input;      // input index of the weight
  int bias_input;        // input index of the bias, -1 when the operator has none
  bool channels_first;   // activations are NCHW-like (the channel is axis 1), else the channel is the last axis
  // Whether `node` (with a weight of rank `weight_rank`) is a layer autoprec
  // quantizes, e.g. Gemm only without transA, MatMul with a weight of rank >= 2.
  bool (*accepts)(const Node& node, int64_t weight_rank);
  // The weight axis that indexes output channels (per-channel scales run along it).
  int64_t (*channel_axis)(const Node& node, const std::vector<int64_t>& weight_shape);
  // Input channels each output reads: MACs of one inference = numel(output) * this.
  int64_t (*macs_per_output)(const Node& node, const std::vector<int64_t>& weight_shape);
};

// Every row, in a fixed order (Conv, Gemm, MatMul).
const std::vector<WeightedOpTraits>& weighted_ops();
// The row of `node`'s operator (default domain only), or nullptr.
const WeightedOpTraits* weighted_op(const Node& node);
const WeightedOpTraits* weighted_op(const std::string& op_type);
// "Conv", "Gemm", "MatMul".
std::vector<std::string> weighted_op_names();

}  // namespace autoprec::graph
