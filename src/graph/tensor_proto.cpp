#include "graph/tensor_proto.h"

#include <ATen/ATen.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace autoprec::graph {

using onnx::TensorProto;

at::ScalarType scalar_type_from_onnx(int32_t onnx_type) {
  switch (onnx_type) {
    case TensorProto::FLOAT: return at::kFloat;
    case TensorProto::DOUBLE: return at::kDouble;
    case TensorProto::FLOAT16: return at::kHalf;
    case TensorProto::BFLOAT16: return at::kBFloat16;
    case TensorProto::UINT8: return at::kByte;
    case TensorProto::INT8: return at::kChar;
    case TensorProto::INT16: return at::kShort;
    case TensorProto::INT32: return at::kInt;
    case TensorProto::INT64: return at::kLong;
    case TensorProto::BOOL: return at::kBool;
    default: fail("tensor element type {} is not supported", onnx_type_name(onnx_type));
  }
}

int32_t onnx_type_from_scalar(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return TensorProto::FLOAT;
    case at::kDouble: return TensorProto::DOUBLE;
    case at::kHalf: return TensorProto::FLOAT16;
    case at::kBFloat16: return TensorProto::BFLOAT16;
    case at::kByte: return TensorProto::UINT8;
    case at::kChar: return TensorProto::INT8;
    case at::kShort: return TensorProto::INT16;
    case at::kInt: return TensorProto::INT32;
    case at::kLong: return TensorProto::INT64;
    case at::kBool: return TensorProto::BOOL;
    default: fail("tensor type {} has no ONNX equivalent", c10::toString(type));
  }
}

std::string onnx_type_name(int32_t onnx_type) {
  if (TensorProto::DataType_IsValid(onnx_type)) {
    return TensorProto::DataType_Name(static_cast<TensorProto::DataType>(onnx_type));
  }
  return fmt::format("unknown({})", onnx_type);
}

namespace {

std::string read_external(const TensorProto& proto, const std::string& base_dir) {
  std::string location;
  int64_t offset = 0;
  int64_t length = -1;
  for (const auto& entry : proto.external_data()) {
    if (entry.key() == "location") location = entry.value();
    if (entry.key() == "offset") offset = std::stoll(entry.value());
    if (entry.key() == "length") length = std::stoll(entry.value());
  }
  if (location.empty() || location.find("..") != std::string::npos || location[0] == '/') {
    fail("tensor '{}': external data location '{}' is missing or outside the model's folder", proto.name(), location);
  }
  std::string path = base_dir.empty() ? location : base_dir + "/" + location;
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("tensor '{}': cannot open external data file {}", proto.name(), path);
  file.seekg(0, std::ios::end);
  int64_t size = file.tellg();
  if (length < 0) length = size - offset;
  if (offset < 0 || offset + length > size) {
    fail("tensor '{}': external data file {} holds {} bytes, fewer than offset {} + length {}", proto.name(), path, size,
         offset, length);
  }
  std::string bytes(static_cast<size_t>(length), '\0');
  file.seekg(offset);
  file.read(bytes.data(), length);
  return bytes;
}

template <typename Field>
at::Tensor from_field(const Field& field, at::ScalarType field_type, at::ScalarType type, at::IntArrayRef dims) {
  at::Tensor t = at::empty({static_cast<int64_t>(field.size())}, at::TensorOptions().dtype(field_type));
  if (field.size() > 0) std::memcpy(t.data_ptr(), field.data(), field.size() * t.element_size());
  return t.to(type).reshape(dims);
}

}  // namespace

at::Tensor tensor_from_proto(const TensorProto& proto, const std::string& base_dir) {
  at::ScalarType type = scalar_type_from_onnx(proto.data_type());
  std::vector<int64_t> dims(proto.dims().begin(), proto.dims().end());
  // libtorch checks shape products for overflow by throwing, including the
  // non-zero dimensions of an empty tensor, so bound those first.
  constexpr int64_t kMaxElements = int64_t{1} << 40;
  int64_t numel = 1;
  int64_t nonzero_product = 1;
  for (int64_t d : dims) {
    if (d < 0) fail("tensor '{}' has a negative dimension", proto.name());
    if (d > 0 && (__builtin_mul_overflow(nonzero_product, d, &nonzero_product) || nonzero_product > kMaxElements)) {
      fail("tensor '{}' has an implausible shape (more than 2^40 elements)", proto.name());
    }
    numel *= d;
  }
  const size_t element_size = c10::elementSize(type);

  bool external = proto.data_location() == TensorProto::EXTERNAL;
  if (external || proto.has_raw_data()) {
    std::string external_bytes;
    const std::string& bytes = external ? (external_bytes = read_external(proto, base_dir)) : proto.raw_data();
    if (bytes.size() != static_cast<size_t>(numel) * element_size) {
      fail("tensor '{}' holds {} bytes but its shape needs {}", proto.name(), bytes.size(), numel * element_size);
    }
    at::Tensor t = at::empty(dims, at::TensorOptions().dtype(type));
    if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
    return t;
  }

  at::Tensor t;
  int64_t count = 0;
  switch (proto.data_type()) {
    case TensorProto::FLOAT:
      count = proto.float_data_size();
      if (count == numel) t = from_field(proto.float_data(), at::kFloat, type, dims);
      break;
    case TensorProto::DOUBLE:
      count = proto.double_data_size();
      if (count == numel) t = from_field(proto.double_data(), at::kDouble, type, dims);
      break;
    case TensorProto::INT64:
      count = proto.int64_data_size();
      if (count == numel) t = from_field(proto.int64_data(), at::kLong, type, dims);
      break;
    case TensorProto::FLOAT16:
    case TensorProto::BFLOAT16:
      count = proto.int32_data_size();
      if (count == numel) {
        // Each int32 holds the 16-bit pattern.
        at::Tensor bits = from_field(proto.int32_data(), at::kInt, at::kShort, dims);
        t = bits.view(type).clone();
      }
      break;
    default:
      count = proto.int32_data_size();
      if (count == numel) t = from_field(proto.int32_data(), at::kInt, type, dims);
      break;
  }
  if (!t.defined()) fail("tensor '{}' holds {} values but its shape needs {}", proto.name(), count, numel);
  return t;
}

void tensor_to_proto(const at::Tensor& tensor, const std::string& name, TensorProto* proto) {
  at::Tensor t = tensor.detach().contiguous().cpu();
  proto->Clear();
  proto->set_name(name);
  proto->set_data_type(onnx_type_from_scalar(t.scalar_type()));
  for (int64_t d : t.sizes()) proto->add_dims(d);
  proto->set_raw_data(std::string(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size()));
}

at::Tensor read_tensor_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("cannot open tensor file {}", path);
  TensorProto proto;
  if (!proto.ParseFromIstream(&file)) fail("{} is not a serialized ONNX TensorProto", path);
  return tensor_from_proto(proto);
}

}  // namespace autoprec::graph
