#include "graph/qdq_format.h"

#include <onnx/onnx_pb.h>

#include "graph/tensor_proto.h"
#include "util/error.h"

namespace autoprec::graph {
namespace {

void check_bits(int bits) {
  if (bits < 2 || bits > 8) fail("{}-bit integers have no ONNX container (2..8 bits are exported as integers)", bits);
}

}  // namespace

int32_t weight_container(int bits) {
  check_bits(bits);
  return bits <= 4 ? kOnnxInt4 : onnx::TensorProto::INT8;
}

int32_t activation_container(int bits) {
  check_bits(bits);
  return onnx::TensorProto::UINT8;
}

int container_bits(int32_t onnx_type) {
  if (onnx_type == kOnnxInt4 || onnx_type == kOnnxUint4) return 4;
  if (onnx_type == onnx::TensorProto::INT8 || onnx_type == onnx::TensorProto::UINT8) return 8;
  fail("ONNX type {} is not an integer container of QDQ export", container_type_name(onnx_type));
}

std::string container_type_name(int32_t onnx_type) {
  if (onnx_type == kOnnxInt4) return "INT4";
  if (onnx_type == kOnnxUint4) return "UINT4";
  return onnx_type_name(onnx_type);
}

std::string pack_4bit(const std::vector<int64_t>& values, bool is_signed) {
  int64_t lo = is_signed ? -8 : 0, hi = is_signed ? 7 : 15;
  std::string bytes((values.size() + 1) / 2, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    int64_t v = values[i];
    if (v < lo || v > hi) fail("value {} does not fit a {} nibble", v, is_signed ? "signed" : "unsigned");
    auto nibble = static_cast<unsigned char>(v & 0xF);
    bytes[i / 2] = static_cast<char>(static_cast<unsigned char>(bytes[i / 2]) | (i % 2 ? nibble << 4 : nibble));
  }
  return bytes;
}

std::vector<int64_t> unpack_4bit(const std::string& bytes, int64_t count, bool is_signed) {
  if (count < 0 || static_cast<int64_t>(bytes.size()) != (count + 1) / 2) {
    fail("{} bytes cannot hold {} packed 4-bit values (expected {})", bytes.size(), count, (count + 1) / 2);
  }
  std::vector<int64_t> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    auto byte = static_cast<unsigned char>(bytes[static_cast<size_t>(i / 2)]);
    int64_t v = i % 2 ? byte >> 4 : byte & 0xF;
    values[static_cast<size_t>(i)] = is_signed && v >= 8 ? v - 16 : v;
  }
  return values;
}

}  // namespace autoprec::graph
