#include "quant/matmul_nbits.h"

#include <ATen/core/Tensor.h>

namespace autoprec::quant {

bool matmul_nbits_bits(int weight_bits) { return weight_bits == 2 || weight_bits == 4 || weight_bits == 8; }

bool matmul_nbits_shape(const graph::Graph& graph, const QuantLayer& layer) {
  if (layer.weight_input != 1 || (layer.op != "MatMul" && layer.op != "Gemm")) return false;
  const graph::Node* node = graph.find_node(layer.name);
  if (!node || node->inputs.size() < 2) return false;
  auto weight = graph.initializers.find(node->inputs[1]);
  if (weight == graph.initializers.end() || weight->second.dim() != 2) return false;
  if (layer.op == "Gemm") {
    if (node->get_float("alpha", 1.0) != 1.0 || node->get_float("beta", 1.0) != 1.0) return false;
    if (node->get_int("transA", 0) != 0) return false;
    if (node->inputs.size() > 2 && !node->inputs[2].empty()) {
      auto bias = graph.initializers.find(node->inputs[2]);
      const int64_t n = weight->second.size(layer.channel_axis);
      if (bias == graph.initializers.end() || bias->second.numel() != n) return false;
    }
  }
  return true;
}

bool runs_as_matmul_nbits(const graph::Graph& graph, const QuantLayer& layer, const LayerPrecision& precision) {
  return matmul_nbits_bits(precision.weight_bits) && is_float_bits(precision.activation_bits) &&
         matmul_nbits_shape(graph, layer);
}

int64_t matmul_nbits_k_axis(const QuantLayer& layer) { return layer.channel_axis == 0 ? 1 : 0; }

int64_t matmul_nbits_block_size(int64_t k) {
  int64_t block = 16;
  while (block < k && block < 256) block *= 2;
  return block;
}

}  // namespace autoprec::quant
