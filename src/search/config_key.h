// Canonical text key of a per-layer precision assignment, used to recognise a
// configuration that was already evaluated (the journal's unique key). The
// key lists the layers in the caller's (graph) order, one "w<bits>a<bits>"
// token per layer, comma-separated: "w8a8,w4a8,w2a6". Layer names are not
// part of the key: within one run the layer list is fixed (the journal's run
// configuration pins the model).
#pragma once

#include <string>
#include <vector>

#include "quant/config.h"

namespace autoprec::search {

// One token per layer, in order; an empty list gives "".
std::string config_key(const std::vector<quant::LayerPrecision>& layers);

// Inverse of config_key(). UserError naming the bad token for malformed text
// or a bit-width outside quant::valid_bits().
std::vector<quant::LayerPrecision> parse_config_key(const std::string& key);

}  // namespace autoprec::search
