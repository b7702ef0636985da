#include "search/config_key.h"

#include <cstdlib>

#include "util/error.h"

namespace autoprec::search {
namespace {

// Parses decimal digits at text[pos...]; advances pos. -1 when there are none.
int parse_bits(const std::string& text, size_t& pos) {
  size_t start = pos;
  int value = 0;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9' && pos - start < 3) {
    value = value * 10 + (text[pos] - '0');
    ++pos;
  }
  return pos == start ? -1 : value;
}

}  // namespace

std::string config_key(const std::vector<quant::LayerPrecision>& layers) {
  std::string key;
  for (const quant::LayerPrecision& p : layers) {
    if (!key.empty()) key += ',';
    key += fmt::format("w{}a{}", p.weight_bits, p.activation_bits);
  }
  return key;
}

std::vector<quant::LayerPrecision> parse_config_key(const std::string& key) {
  std::vector<quant::LayerPrecision> layers;
  if (key.empty()) return layers;
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find(',', start);
    if (end == std::string::npos) end = key.size();
    std::string token = key.substr(start, end - start);
    size_t pos = 0;
    quant::LayerPrecision p;
    bool ok = pos < token.size() && token[pos++] == 'w';
    if (ok) p.weight_bits = parse_bits(token, pos);
    ok = ok && p.weight_bits >= 0 && pos < token.size() && token[pos++] == 'a';
    if (ok) p.activation_bits = parse_bits(token, pos);
    ok = ok && p.activation_bits >= 0 && pos == token.size();
    if (!ok) fail("configuration key: token '{}' is not w<bits>a<bits>", token);
    if (!quant::valid_bits().count(p.weight_bits) || !quant::valid_bits().count(p.activation_bits)) {
      fail("configuration key: token '{}' has a bit-width outside 2..8, 16, 32", token);
    }
    layers.push_back(p);
    start = end + 1;
  }
  return layers;
}

}  // namespace autoprec::search
