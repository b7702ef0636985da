// Which layers a precision configuration acts on.
//
// A quantizable layer is a node of an operator kind in graph/op_traits.h
// (Conv, Gemm, MatMul) whose weight is an initializer; its weight and the activation entering it (input 0)
// each get a quantizer. A MatMul between two activations is quantizable on
// both inputs when the configuration asks for it. Other nodes stay float.
#pragma once

#include <string>
#include <vector>

#include "graph/ir.h"

namespace autoprec::quant {

struct QuantLayer {
  std::string name;              // node name, as in the ONNX file
  std::string op;                // Conv | Gemm | MatMul
  int weight_input = 1;          // input index of the weight initializer, -1 for activation-only MatMul
  int64_t channel_axis = 0;      // output-channel axis of the weight tensor
  std::string activation;        // value name of input 0
  std::string second_activation; // value name of input 1 for activation-only MatMul, else empty
  bool nonnegative_input = false;  // input 0 comes from Relu, Clip(min >= 0), Sigmoid, HardSigmoid or Softmax
  bool depthwise = false;        // Conv with group == input channels
};

// The model's quantizable layers in graph order.
std::vector<QuantLayer> find_quantizable_layers(const graph::Graph& graph, bool include_activation_matmul = false);

// True when `value`'s producer cannot output a negative number: Relu, Clip
// with min >= 0, Sigmoid, HardSigmoid, Softmax, or a pool/reshape of such.
bool produces_nonnegative(const graph::Graph& graph, const std::string& value);

std::vector<std::string> layer_names(const std::vector<QuantLayer>& layers);

}  // namespace autoprec::quant
