// Hardware-independent cost of a precision configuration: the "bit budget".
//
// Per quantizable layer, for one example (batch 1):
//   weight memory  = weights·wb + bias·32 + scales·32 (one fp32 scale per
//                    channel, or one per tensor), in bits; a float layer
//                    stores weights and bias at 32 (or 16) bits and no scale
//   MACs           = multiply-accumulates
//   BOPs           = MACs · wb · ab (bit operations; float counts as 32 bits)
//   activation     = elements of the input activation · ab, in bits
// Totals add the layers; parameters outside quantizable layers (e.g. a
// standalone normalisation) count at 32 bits in the total weight memory.
// Peak activation memory is the largest single layer input.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "exec/summary.h"
#include "quant/config.h"
#include "quant/layers.h"

namespace autoprec::cost {

struct LayerCost {
  std::string name;
  std::string op;
  int weight_bits = 32;
  int activation_bits = 32;
  int64_t weights = 0;      // weight elements
  int64_t biases = 0;       // bias elements
  int64_t macs = 0;
  double weight_memory_bits = 0;
  double bops = 0;
  double activation_bits_in = 0;  // input activation memory, bits
};

struct CostSummary {
  std::vector<LayerCost> layers;
  double weight_memory_bits = 0;       // total, including non-quantizable parameters
  double fp32_weight_memory_bits = 0;  // the same model entirely at 32 bits
  double bops = 0;
  double fp32_bops = 0;
  int64_t macs = 0;
  double peak_activation_bits = 0;
};

// Costs of `precision` (per quantizable layer name) on the model described by
// `summary` (shapes and MACs) and `layers` (which layers quantize).
CostSummary compute_costs(const graph::Graph& graph, const exec::ModelSummary& summary,
                          const std::vector<quant::QuantLayer>& layers,
                          const std::map<std::string, quant::LayerPrecision>& precision,
                          quant::Granularity granularity);

}  // namespace autoprec::cost
