// The integer ONNX export (format int, deploy/qdq_export.h) as a model of the
// native runtime (native/model.h): the Q/DQ pairs around each integer node
// become one integer operator, the rest float operators between Quantize and
// Dequantize boundaries.
//
// Patterns, in graph order:
//   DQ(x_q), DQ(w_int8), [DQ(b_int32)] -> Conv|Gemm -> [Relu|Clip]* -> Q   integer layer, uint8 output
//   the same without the final Q (a Gemm writing logits)                  integer layer, float output
//   DQ(a_q), DQ(b_q) -> Add -> [Relu|Clip]* -> Q                           integer Add
//   DQ(x_q) -> GlobalAveragePool -> [Relu|Clip]* -> Q                      integer average
//   DQ(x_q) -> MaxPool|Flatten -> Q (the same grid)                        on codes
//   anything else among Conv, Gemm, Add, GlobalAveragePool, MaxPool,
//   Flatten, Relu, Clip                                                   float, reading dequantized values
// Weight bits come from the file's autoprec.precision metadata (the
// container holds 8). An absorbed Relu raises the output clamp to z_y, a
// Clip(a, b) clamps the codes to [nearbyint(a/s)+z, nearbyint(b/s)+z], which
// equals clipping before quantizing.
#pragma once

#include <memory>
#include <string>

#include <onnx/onnx_pb.h>

#include "native/model.h"

namespace autoprec::deploy {

// UserError (one line naming the node) for an operator, attribute or
// pattern the native runtime does not run: other ops, broadcasting Adds,
// grouped convolutions other than depthwise, Gemm with transA or alpha/beta
// != 1, dilations, ceil_mode, several inputs.
native::ModelSpec native_model_from_onnx(const onnx::ModelProto& model, const std::string& origin);

// Reads an ONNX file (UserError when it is not one) and converts it.
native::ModelSpec native_model_from_file(const std::string& path);

// The model in a packed native file (native::save_model, recognised by its
// magic) or an integer ONNX export. UserError naming the file when it is
// neither.
native::ModelSpec read_native_spec(const std::string& path);
// `spec` compiled on `threads`; UserError naming `origin` when the native
// runtime refuses it (native::Model's checks).
std::unique_ptr<native::Model> compile_native_model(native::ModelSpec spec, const std::string& origin, int threads = 1);
// read_native_spec(), compiled.
std::unique_ptr<native::Model> load_native_model(const std::string& path, int threads = 1);
// native::save_model(); UserError when the file cannot be written.
void save_native_model(const native::ModelSpec& spec, const std::string& path);

}  // namespace autoprec::deploy
