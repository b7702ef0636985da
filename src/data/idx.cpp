#include "data/idx.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <zlib.h>

#include "data/npy.h"
#include "data/byte_order.h"
#include "util/error.h"

namespace autoprec::data {
namespace {

struct IdxType {
  uint8_t code;
  at::ScalarType scalar_type;
  size_t element_size;
};

constexpr IdxType kIdxTypes[] = {
    {0x08, at::kByte, 1},  {0x09, at::kChar, 1},  {0x0B, at::kShort, 2},
    {0x0C, at::kInt, 4},   {0x0D, at::kFloat, 4}, {0x0E, at::kDouble, 8},
};

const IdxType* find_type_by_code(uint8_t code) {
  for (const auto& t : kIdxTypes)
    if (t.code == code) return &t;
  return nullptr;
}

const IdxType* find_type_by_scalar(at::ScalarType s) {
  for (const auto& t : kIdxTypes)
    if (t.scalar_type == s) return &t;
  return nullptr;
}

// Big-endian file order <-> host order, in place.
void to_from_big_endian(uint8_t* data, size_t count, size_t element_size) {
  if (kHostBigEndian || element_size == 1) return;
  for (size_t i = 0; i < count; ++i) std::reverse(data + i * element_size, data + (i + 1) * element_size);
}

void check_readable(const std::string& path) {
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) fail("IDX file {} does not exist", path);
  if (std::filesystem::is_directory(status)) fail("IDX file {} is a directory, not a file", path);
}

class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path) {
    check_readable(path);
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) fail("cannot open IDX file {}: {}", path, errno ? std::strerror(errno) : "out of memory");
    gzbuffer(file_, 256 * 1024);
  }
  ~GzFile() {
    if (file_) gzclose_r(file_);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  // Reads up to n bytes; returns the count read (short only at end of data).
  size_t read(uint8_t* out, size_t n) {
    size_t total = 0;
    while (total < n) {
      unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - total, 1u << 30));
      int got = gzread(file_, out + total, chunk);
      if (got < 0) fail_with_zlib_error();
      if (got == 0) break;
      total += static_cast<size_t>(got);
    }
    check_stream();
    return total;
  }

  // gzip streams cut short report Z_BUF_ERROR; the byte counts then tell the story.
  bool truncated_stream() const {
    int errnum = Z_OK;
    gzerror(file_, &errnum);
    return errnum == Z_BUF_ERROR;
  }

 private:
  [[noreturn]] void fail_with_zlib_error() {
    int errnum = Z_OK;
    const char* message = gzerror(file_, &errnum);
    if (errnum == Z_ERRNO) message = std::strerror(errno);
    fail("cannot read IDX file {}: {}", path_, message);
  }
  void check_stream() {
    int errnum = Z_OK;
    gzerror(file_, &errnum);
    if (errnum != Z_OK && errnum != Z_BUF_ERROR) fail_with_zlib_error();
  }

  std::string path_;
  gzFile file_ = nullptr;
};

}  // namespace

at::Tensor read_idx(const std::string& path) {
  GzFile file(path);
  uint8_t magic[4];
  size_t got = file.read(magic, 4);
  if (got < 4) fail("IDX file {} is too short to be an IDX file ({} bytes)", path, got);
  if (magic[0] != 0 || magic[1] != 0)
    fail("IDX file {} is not an IDX file: it starts with bytes 0x{:02x} 0x{:02x}, expected 0x00 0x00", path,
         magic[0], magic[1]);
  const IdxType* type = find_type_by_code(magic[2]);
  if (!type)
    fail("IDX file {} has unsupported element type code 0x{:02x} (supported: 0x08 uint8, 0x09 int8, "
         "0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64)",
         path, magic[2]);
  const int ndims = magic[3];
  if (ndims == 0) fail("IDX file {} declares 0 dimensions", path);

  std::vector<uint8_t> dim_bytes(4 * static_cast<size_t>(ndims));
  got = file.read(dim_bytes.data(), dim_bytes.size());
  if (got < dim_bytes.size())
    fail("IDX file {} is truncated inside its header: {} dimensions need {} bytes after the magic but the file "
         "holds {}",
         path, ndims, dim_bytes.size(), got);
  std::vector<int64_t> sizes(ndims);
  // The product of the non-zero dims must fit in int64 even if some dim is 0.
  uint64_t expected = type->element_size, bound = type->element_size;
  bool overflow = false;
  for (int i = 0; i < ndims; ++i) {
    const uint8_t* b = &dim_bytes[4 * i];
    uint32_t d = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
    sizes[i] = d;
    expected *= d;
    overflow = overflow || __builtin_mul_overflow(bound, std::max<uint64_t>(d, 1), &bound);
  }
  const std::string shape_text = fmt::format("[{}] {}", fmt::join(sizes, ", "), numpy_dtype_name(type->scalar_type));
  if (overflow || bound > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail("IDX file {} has a corrupt header: shape {} is too large", path, shape_text);

  // Read into a growing buffer rather than allocating what a (possibly corrupt)
  // header claims up front.
  std::vector<uint8_t> data;
  data.reserve(static_cast<size_t>(std::min<uint64_t>(expected, 64u << 20)));
  while (data.size() < expected) {
    size_t old = data.size();
    size_t want = static_cast<size_t>(std::min<uint64_t>(expected - old, std::max<size_t>(old, 1u << 20)));
    data.resize(old + want);
    size_t n = file.read(data.data() + old, want);
    data.resize(old + n);
    if (n < want) break;
  }
  uint64_t actual = data.size();
  if (actual == expected) {
    uint8_t scratch[64 * 1024];
    for (size_t n; (n = file.read(scratch, sizeof scratch)) > 0;) actual += n;
  }
  if (actual < expected)
    fail("IDX file {} is truncated: its header ({}) promises {} data bytes but the file holds {}{}", path,
         shape_text, expected, actual, file.truncated_stream() ? " (the gzip stream ends unexpectedly)" : "");
  if (actual > expected)
    fail("IDX file {} is corrupt: its header ({}) promises {} data bytes but the file holds {}", path, shape_text,
         expected, actual);

  to_from_big_endian(data.data(), data.size() / type->element_size, type->element_size);
  at::Tensor out = at::empty(sizes, at::TensorOptions().dtype(type->scalar_type));
  if (!data.empty()) std::memcpy(out.data_ptr(), data.data(), data.size());
  return out;
}

void write_idx(const std::string& path, const at::Tensor& t) {
  if (!t.defined()) fail("cannot write IDX file {}: the tensor is undefined", path);
  const IdxType* type = find_type_by_scalar(t.scalar_type());
  if (!type)
    fail("cannot write IDX file {}: dtype {} is not supported (uint8, int8, int16, int32, float32, float64)", path,
         numpy_dtype_name(t.scalar_type()));
  if (t.dim() < 1 || t.dim() > 255) fail("cannot write IDX file {}: {} dimensions (need 1..255)", path, t.dim());

  std::vector<uint8_t> bytes = {0, 0, type->code, static_cast<uint8_t>(t.dim())};
  for (int64_t d : t.sizes()) {
    if (d > std::numeric_limits<uint32_t>::max())
      fail("cannot write IDX file {}: dimension {} does not fit in 32 bits", path, d);
    uint32_t u = static_cast<uint32_t>(d);
    bytes.insert(bytes.end(), {static_cast<uint8_t>(u >> 24), static_cast<uint8_t>(u >> 16),
                               static_cast<uint8_t>(u >> 8), static_cast<uint8_t>(u)});
  }
  at::Tensor c = t.detach().cpu().contiguous();
  const size_t header = bytes.size();
  const size_t nbytes = static_cast<size_t>(c.numel()) * type->element_size;
  bytes.resize(header + nbytes);
  if (nbytes) std::memcpy(bytes.data() + header, c.data_ptr(), nbytes);
  to_from_big_endian(bytes.data() + header, static_cast<size_t>(c.numel()), type->element_size);

  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) fail("cannot write IDX file {}: {}", path, std::strerror(errno));
  errno = 0;
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  int saved_errno = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) fail("cannot write IDX file {}: {}", path, std::strerror(saved_errno ? saved_errno : errno ? errno : EIO));
}

}  // namespace autoprec::data
