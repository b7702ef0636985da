// How autoprec's QDQ files store b-bit integers: the ONNX container of a
// b-bit weight or activation, and the packing of 4-bit types. Shared by the
// export (deploy/qdq_export.h, which documents the format) and by the
// measured targets, which time single layers in exactly the exported form.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace autoprec::graph {

// ONNX 1.16 data types libonnx 1.12 does not name.
constexpr int32_t kOnnxUint4 = 21;
constexpr int32_t kOnnxInt4 = 22;

// Opset of files with 8-bit containers only, and of files with 4-bit ones.
constexpr int64_t kOpset8Bit = 13;
constexpr int64_t kOpset4Bit = 21;
// IR version that carries INT4/UINT4 (ONNX 1.16).
constexpr int64_t kIrVersion4Bit = 10;

// Container of a b-bit tensor (b in 2..8): INT4 (2-4 bits) or INT8 for
// weights (signed, zero point 0), UINT8 for activations (unsigned; see
// deploy/qdq_export.h for why not UINT4). UserError for other bit-widths.
int32_t weight_container(int bits);
int32_t activation_container(int bits);
// 4 or 8 for the types above; UserError otherwise.
int container_bits(int32_t onnx_type);
// "INT4", "UINT4", else graph::onnx_type_name().
std::string container_type_name(int32_t onnx_type);

// Packs values in [-8, 7] (is_signed) or [0, 15] two per byte, low nibble
// first; an odd count leaves the last high nibble 0. UserError for a value
// out of range.
std::string pack_4bit(const std::vector<int64_t>& values, bool is_signed);
// The inverse: `count` values from `bytes` (UserError when the byte count is
// not (count+1)/2).
std::vector<int64_t> unpack_4bit(const std::string& bytes, int64_t count, bool is_signed);

}  // namespace autoprec::graph
