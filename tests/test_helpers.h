// Small helpers shared by the unit tests.
#pragma once

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "util/error.h"

namespace autoprec::testing {

// The message of the UserError `f` throws, "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

// The op types of `m`'s nodes, graph order.
inline std::vector<std::string> op_types(const onnx::ModelProto& m) {
  std::vector<std::string> out;
  for (const auto& n : m.graph().node()) out.push_back(n.op_type());
  return out;
}

// How many nodes of `m` are `op`.
inline int count_ops(const onnx::ModelProto& m, const std::string& op) {
  return static_cast<int>(std::count_if(m.graph().node().begin(), m.graph().node().end(),
                                        [&](const onnx::NodeProto& n) { return n.op_type() == op; }));
}

}  // namespace autoprec::testing
