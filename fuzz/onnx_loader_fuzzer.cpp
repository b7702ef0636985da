// libFuzzer target for the ONNX loader: any byte string must either import
// (and survive the graph passes) or raise autoprec::UserError, never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "graph/onnx_import.h"
#include "graph/passes.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    autoprec::graph::Graph graph =
        autoprec::graph::import_onnx_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.onnx");
    autoprec::graph::remove_identity_and_dropout(graph);
    autoprec::graph::fold_batchnorm(graph);
    autoprec::graph::remove_dead_nodes(graph);
  } catch (const autoprec::UserError&) {
  }
  return 0;
}
