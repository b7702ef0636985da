// Single-layer models in the integer form, for per-layer measurement: the
// layer exactly as export_qdq() writes it inside an integer chain, built by
// the same code path (a one-node graph, simulated in format int, exported).
#pragma once

#include <string>
#include <vector>

#include "graph/ir.h"

namespace autoprec::deploy {

// The serialized ONNX model of `node` (a Conv/Gemm/MatMul of `graph` with its
// weight initializer) at these bits, with uint8 input "x" of `input_shape`
// and uint8 output "y" of `output_shape`:
//   integer (weights 2-8 bits, activations 8)  x -> DequantizeLinear -> the
//       layer with INT8 per-channel weights and INT32 bias -> QuantizeLinear
//       -> y: what ORT fuses into QLinearConv/QGemm and what sits between
//       two integer tensors of an exported model;
//   float island (either side float)  x -> DequantizeLinear (per axis) ->
//       the float layer (dequantized weights when they are quantized) ->
//       QuantizeLinear -> y: the layer plus the two float<->integer
//       boundaries it puts into an integer chain.
// Scales: x is calibrated on uniform [0, 1) input; the output on the layer's
// output for that input. Deterministic.
std::string integer_layer_model(const graph::Graph& graph, const graph::Node& node, const std::vector<int64_t>& input_shape,
                                const std::vector<int64_t>& output_shape, int weight_bits, int activation_bits);

}  // namespace autoprec::deploy
