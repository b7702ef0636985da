// Conversion between ONNX TensorProto and libtorch tensors.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>
#include <onnx/onnx_pb.h>

namespace autoprec::graph {

// libtorch scalar type for an onnx::TensorProto::DataType; UserError for
// types autoprec does not compute with (strings, complex, unsigned > 8 bits).
at::ScalarType scalar_type_from_onnx(int32_t onnx_type);
int32_t onnx_type_from_scalar(at::ScalarType type);
// Readable name of an ONNX data type ("FLOAT", "INT64", ...).
std::string onnx_type_name(int32_t onnx_type);

// Tensor with the proto's dims and values (raw_data, typed fields or external
// data resolved against `base_dir`). A tensor owns its memory. UserError when
// the byte count disagrees with the dims.
at::Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& base_dir = "");

// Fills `proto` (dims, data_type, raw_data) from a contiguous copy of `tensor`.
void tensor_to_proto(const at::Tensor& tensor, const std::string& name, onnx::TensorProto* proto);

// Reads a serialized TensorProto file (as in ONNX test data sets).
at::Tensor read_tensor_file(const std::string& path);

}  // namespace autoprec::graph
