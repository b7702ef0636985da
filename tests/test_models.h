// Small models shared by the tests.
#pragma once

#include <memory>

#include <ATen/ATen.h>

#include "exec/model.h"
#include "graph/onnx_import.h"
#include "onnx_builder.h"

namespace autoprec::testing {

// conv (3x3, 1->4) -> relu -> flatten -> gemm (4*4*4 -> 3)
inline std::shared_ptr<graph::Graph> tiny_model() {
  ModelBuilder b;
  b.input("x", {-1, 1, 4, 4}).output("y", {-1, 3});
  at::manual_seed(11);
  b.initializer("w1", at::randn({4, 1, 3, 3})).initializer("b1", at::randn({4}) * 0.1);
  b.initializer("w2", at::randn({3, 64}) * 0.2).initializer("b2", at::zeros({3}));
  auto& conv = b.node("Conv", {"x", "w1", "b1"}, {"c"}, "conv");
  ModelBuilder::attr(conv, "pads", std::vector<int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c"}, {"r"}, "relu");
  b.node("Flatten", {"r"}, {"f"}, "flatten");
  auto& gemm = b.node("Gemm", {"f", "w2", "b2"}, {"y"}, "fc");
  ModelBuilder::attr(gemm, "transB", int64_t{1});
  auto g = std::make_shared<graph::Graph>(graph::import_onnx_bytes(b.bytes(), "tiny.onnx"));
  exec::simplify(*g);
  return g;
}

}  // namespace autoprec::testing
