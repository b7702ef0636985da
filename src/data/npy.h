// NumPy .npy files.
//
// Format (numpy/lib/format.py): magic "\x93NUMPY", major and minor version
// bytes, a little-endian header length (uint16 for v1.0, uint32 for v2.0 and
// v3.0), an ASCII/UTF-8 Python dict literal
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with
// spaces and a '\n' so the data starts on a 64-byte boundary, then the raw
// elements. Supported dtypes: u1, i1, i2, i4, i8, f4, f8 and b1 (bool),
// little-endian or byte-order-free ('|'); C order only.
// Every problem with the file throws autoprec::UserError naming the file.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace autoprec::data {

// Reads a .npy file (v1.0, v2.0 or v3.0) into a contiguous CPU tensor with the
// file's shape (shape () gives a 0-d tensor). dtypes map u1->kByte, i1->kChar,
// i2->kShort, i4->kInt, i8->kLong, f4->kFloat, f8->kDouble, b1->kBool.
// Fortran-ordered, big-endian, structured and truncated files are errors;
// bytes after the array's data are ignored (as numpy.load does).
at::Tensor read_npy(const std::string& path);
// Reads a NumPy .npz archive (numpy.savez or savez_compressed: a zip of
// NAME.npy entries) into (NAME, tensor) pairs in archive order, each array
// read as read_npy reads a file. Errors name the archive and the array: not
// a zip, an entry that is not .npy, a name twice, a corrupt entry.
std::vector<std::pair<std::string, at::Tensor>> read_npz(const std::string& path);

// Writes `t` (kFloat, kDouble, kLong, kInt, kShort, kByte, kChar or kBool) as
// a v1.0 .npy file in C order (v2.0 only if the header exceeds 64 KiB). The
// data goes to `path` + ".tmp", which is flushed and then renamed over `path`,
// so a crash never leaves a half-written `path`.
void write_npy(const std::string& path, const at::Tensor& t);

// NumPy-style name of a dtype ("float32", "uint8", ...) for messages.
std::string numpy_dtype_name(at::ScalarType type);

}  // namespace autoprec::data
