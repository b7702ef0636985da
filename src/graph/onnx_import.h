// Reading ONNX models into the graph IR.
//
// The model is parsed with Debian's libonnx, checked with the ONNX checker,
// shape-inferred, and converted to graph::Graph with the file's names kept.
// Every problem with the file becomes one UserError line: not ONNX, truncated,
// failing the checker, or written for an opset newer than kMaxOpset.
#pragma once

#include <string>

#include "graph/ir.h"

namespace autoprec::graph {

// Newest default-domain opset autoprec (and its libonnx) understands.
constexpr int64_t kMaxOpset = 17;
constexpr int64_t kMinOpset = 1;

// Parses `bytes` (a serialized ModelProto); `base_dir` resolves external data.
Graph import_onnx_bytes(const std::string& bytes, const std::string& origin, const std::string& base_dir = "");
// Reads the file at `path`.
Graph import_onnx_file(const std::string& path);

}  // namespace autoprec::graph
