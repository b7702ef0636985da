// The integer form of a quantized network (QuantForm::Int): which tensors are
// quantized, which nodes run on integers and where float islands remain. The
// simulation (quant/quantized_model.h) and the export (deploy/qdq_export.h)
// both follow this one plan, so what is simulated is what is exported.
//
// Node kinds:
//   integer layer   a quantizable Conv/Gemm/MatMul with weights of 2-8 bits
//                   and 8-bit activations: reads a quantized input, writes a
//                   quantized output (ORT: QLinearConv, QGemm, QLinearMatMul),
//                   bias on the int32 grid of scale s_x * s_w[c]
//   own-scale op    Add, Mul (two activation inputs), GlobalAveragePool,
//                   AveragePool, Concat: integer when one of its activation
//                   inputs is an integer tensor; its output gets its own
//                   calibrated scale (ORT: QLinearAdd, QLinearMul,
//                   QLinearGlobalAveragePool, QLinearAveragePool, QLinearConcat)
//   pass-through    MaxPool, Reshape, Flatten, Transpose, Squeeze, Unsqueeze:
//                   integer when its data input is an integer tensor; the
//                   output shares the input's scale and zero point (ORT drops
//                   the Q/DQ pair and runs the op on uint8)
//   absorbed        a Relu, or a Clip with a constant min >= 0, that is the
//                   only reader of an integer layer's or own-scale op's
//                   output: the quantized tensor is its output, whose range
//                   the QuantizeLinear already enforces (ORT removes it)
//   float           everything else, and layers with float weights or float
//                   activations: a float island, reading dequantized values
//                   and feeding integer readers through a QuantizeLinear
// A tensor is quantized (8 bits, uint8 container, unsigned grid with a zero
// point) when an integer node reads it or writes it, graph inputs and outputs
// included, except a graph output that only an integer Gemm or MatMul writes
// (ORT's QGemm and MatMulIntegerToFloat have a float output: logits stay
// float). A Gemm is integer only with alpha = beta = 1. Quantized tensors keep one quantizer each; every reader sees the
// same dequantized value.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "quant/config.h"
#include "quant/layers.h"

namespace autoprec::quant {

struct IntegerTensor {
  std::string value;          // value name
  std::string root;           // whose quantizer it uses: itself, or the root of a pass-through op's input
  bool nonnegative = false;   // the producer cannot output negative values (zero point 0)
  bool from_float = false;    // produced by a float node or fed as a graph input: a float -> integer boundary
};

struct IntegerPlan {
  std::vector<IntegerTensor> tensors;    // graph order, each root before its aliases
  std::set<std::string> integer_nodes;   // node names running integer kernels
  std::set<std::string> integer_layers;  // the quantizable layers among them
  std::set<std::string> absorbed;        // Relu/Clip nodes removed by the runtime
  std::vector<std::string> float_nodes;  // float islands touching a quantized tensor, graph order
  int float_to_integer = 0;  // quantized roots produced by a float node or a graph input
  int integer_to_float = 0;  // (float node, input) pairs reading a quantized tensor

  // nullptr when `value` is not quantized.
  const IntegerTensor* find(const std::string& value) const;
  // The root tensors, graph order.
  std::vector<std::string> roots() const;
};

// The plan for `graph` with `layers` at `precision`. UserError (one line,
// naming the layer) when a layer asks for activations the integer form
// cannot hold: anything but 8 bits or float.
IntegerPlan plan_integer_form(const graph::Graph& graph, const std::vector<QuantLayer>& layers,
                              const std::map<std::string, LayerPrecision>& precision);

}  // namespace autoprec::quant
