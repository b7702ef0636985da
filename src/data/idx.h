// IDX files (the MNIST / Fashion-MNIST container format).
//
// An IDX file is a 4-byte magic (0x00 0x00 TYPE NDIMS), NDIMS big-endian
// uint32 dimension sizes, then the elements in row-major order, big-endian.
// Supported TYPE codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
// 0x0D float32, 0x0E float64. Files may be gzip-compressed (as distributed)
// or raw; both are read through zlib, which passes raw files through.
// Every problem with the file throws autoprec::UserError naming the file.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace autoprec::data {

// Reads an IDX file, raw or gzip-compressed. Returns a contiguous CPU tensor
// with the file's dims and dtype (kByte, kChar, kShort, kInt, kFloat,
// kDouble), elements converted to host byte order. The file must hold exactly
// the number of data bytes its header promises.
at::Tensor read_idx(const std::string& path);

// Writes `t` (any of the dtypes above, at least one dim, each < 2^32) as an
// uncompressed IDX file, replacing `path`.
void write_idx(const std::string& path, const at::Tensor& t);

}  // namespace autoprec::data
