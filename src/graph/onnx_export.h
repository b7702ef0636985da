// Writing a graph::Graph back to an ONNX file.
//
// The graph is written as it is in memory: after autoprec's simplification
// (BatchNorm folded, Identity/Dropout removed, constants folded), with the
// initializers a caller supplies (e.g. fine-tuned weights) in place of the
// graph's own. Graph inputs and outputs keep their names, element types and
// shapes (an unknown dimension becomes the symbolic dimension "N").
#pragma once

#include <map>
#include <string>

#include <ATen/core/Tensor.h>
#include <onnx/onnx_pb.h>

#include "graph/ir.h"

namespace autoprec::graph {

// The ModelProto of `graph`. Initializers come from `initializers` where a
// name is present there, else from graph.initializers. `metadata` is added to
// (and overrides) graph.metadata in metadata_props. The default-domain opset
// is graph.opset unless `opset` > 0.
onnx::ModelProto to_model_proto(const Graph& graph, const std::map<std::string, at::Tensor>& initializers = {},
                                const std::map<std::string, std::string>& metadata = {}, int64_t opset = 0);

// Validates `model` with the ONNX checker (when `check`), then writes it
// atomically to `path`: a crash or full disk never leaves a partial file.
// UserError naming `path` when the checker rejects the model or the write fails.
void save_model_proto(const onnx::ModelProto& model, const std::string& path, bool check = true);

}  // namespace autoprec::graph
