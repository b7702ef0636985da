#include "data/npy.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <unistd.h>
#include <zip.h>

#include "data/byte_order.h"
#include "util/error.h"
#include "util/file.h"

namespace autoprec::data {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;

struct NpyType {
  char kind;
  size_t size;
  at::ScalarType scalar_type;
};

constexpr NpyType kNpyTypes[] = {
    {'u', 1, at::kByte}, {'i', 1, at::kChar},  {'i', 2, at::kShort},  {'i', 4, at::kInt},
    {'i', 8, at::kLong}, {'f', 4, at::kFloat}, {'f', 8, at::kDouble}, {'b', 1, at::kBool},
};

void swap_bytes(uint8_t* data, size_t count, size_t element_size) {
  if (element_size == 1) return;
  for (size_t i = 0; i < count; ++i) std::reverse(data + i * element_size, data + (i + 1) * element_size);
}

struct Header {
  std::optional<std::string> descr;
  std::optional<bool> fortran_order;
  std::optional<std::vector<int64_t>> shape;
};

// Parser for the Python dict literal numpy writes as the header.
class HeaderParser {
 public:
  HeaderParser(const std::string& path, const std::string& text) : path_(path), text_(text) {}

  Header parse() {
    Header h;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      std::string key = parse_string();
      expect(':');
      skip_space();
      if (key == "descr") {
        if (peek() == '[')
          fail("{} holds a structured (record) array, which is not supported; save a plain numeric array",
               path_);
        h.descr = parse_string();
      } else if (key == "fortran_order") {
        h.fortran_order = parse_bool();
      } else if (key == "shape") {
        h.shape = parse_shape();
      } else {
        skip_value();
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') malformed("expected ',' or '}'");
    }
    ++pos_;
    skip_space();
    if (pos_ != text_.size()) malformed("unexpected text after the closing '}'");
    return h;
  }

 private:
  [[noreturn]] void malformed(const std::string& what) const {
    std::string shown = text_.substr(0, 200);
    while (!shown.empty() && (shown.back() == ' ' || shown.back() == '\n')) shown.pop_back();
    for (char& c : shown)
      if (c == '\n') c = ' ';
    fail("{} has a malformed header ({} at offset {}): {}", path_, what, pos_, shown);
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < text_.size() && std::strchr(" \t\r\n", text_[pos_])) ++pos_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) malformed(fmt::format("expected '{}'", c));
    ++pos_;
  }
  std::string parse_string() {
    skip_space();
    char quote = peek();
    if (quote != '\'' && quote != '"') malformed("expected a quoted string");
    ++pos_;
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
      out += text_[pos_++];
    }
    if (pos_ >= text_.size()) malformed("unterminated string");
    ++pos_;
    return out;
  }
  bool parse_bool() {
    if (text_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (text_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    malformed("expected True or False");
  }
  int64_t parse_int() {
    skip_space();
    if (!std::isdigit(static_cast<unsigned char>(peek()))) malformed("expected a non-negative integer");
    int64_t v = 0;
    while (std::isdigit(static_cast<unsigned char>(peek()))) {
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, peek() - '0', &v))
        malformed("dimension too large");
      ++pos_;
    }
    if (peek() == 'L') ++pos_;  // Python 2 long literal
    return v;
  }
  std::vector<int64_t> parse_shape() {
    expect('(');
    std::vector<int64_t> dims;
    while (true) {
      skip_space();
      if (peek() == ')') break;
      dims.push_back(parse_int());
      skip_space();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() != ')') {
        malformed("expected ',' or ')' in shape");
      }
    }
    ++pos_;
    return dims;
  }
  // Skips a value of an unknown key: a string, word, number or bracketed group.
  void skip_value() {
    skip_space();
    char c = peek();
    if (c == '\'' || c == '"') {
      parse_string();
      return;
    }
    int depth = 0;
    while (pos_ < text_.size()) {
      c = text_[pos_];
      if (c == '\'' || c == '"') {
        parse_string();
        continue;
      }
      if (c == '(' || c == '[' || c == '{') ++depth;
      if (c == ')' || c == ']' || c == '}') {
        if (depth == 0) return;
        --depth;
      }
      if (c == ',' && depth == 0) return;
      ++pos_;
    }
  }

  const std::string& path_;
  const std::string& text_;
  size_t pos_ = 0;
};

struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;



uint64_t read_le(const uint8_t* b, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

// Parses one .npy stream: `read(buffer, n)` returns the bytes it read (fewer
// only at the end), `size` is the stream's length, `what` names it in errors.
at::Tensor parse_npy(const std::function<size_t(void*, size_t)>& read, uint64_t file_size, const std::string& what) {
  uint8_t prefix[12];
  size_t got = read(prefix, 10);
  if (got >= 2 && prefix[0] == 'P' && prefix[1] == 'K')
    fail("{} is a zip archive (.npz?), not a .npy file; save a single array with numpy.save, or pass it as npz:FILE", what);
  if (got < kMagicSize || std::memcmp(prefix, kMagic, kMagicSize) != 0)
    fail("{} is not a .npy file (it does not start with \\x93NUMPY)", what);
  if (got < 10) fail("{} is truncated inside its header ({} bytes)", what, file_size);
  const int major = prefix[6], minor = prefix[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0)
    fail("{} has unsupported format version {}.{} (supported: 1.0, 2.0, 3.0)", what, major, minor);
  uint64_t header_len;
  size_t preamble;
  if (major == 1) {
    header_len = read_le(prefix + 8, 2);
    preamble = 10;
  } else {
    if (read(prefix + 10, 2) != 2)
      fail("{} is truncated inside its header ({} bytes)", what, file_size);
    header_len = read_le(prefix + 8, 4);
    preamble = 12;
  }
  if (preamble + header_len > file_size)
    fail("{} is truncated: its header is {} bytes long but the file holds only {} bytes after the "
         "preamble",
         what, header_len, file_size - preamble);
  std::string text(header_len, '\0');
  if (read(text.data(), header_len) != header_len)
    fail("{} is truncated inside its header", what);

  Header h = HeaderParser(what, text).parse();
  if (!h.descr || !h.fortran_order || !h.shape)
    fail("{} has a malformed header: it lacks {}", what,
         !h.descr ? "'descr'" : !h.fortran_order ? "'fortran_order'" : "'shape'");
  const std::string& descr = *h.descr;
  const NpyType* type = nullptr;
  if (descr.size() >= 3 && std::strchr("<>|=", descr[0])) {
    char kind = descr[1];
    size_t size = 0;
    bool digits = std::all_of(descr.begin() + 2, descr.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits && descr.size() <= 4) size = std::stoul(descr.substr(2));
    for (const auto& t : kNpyTypes)
      if (t.kind == kind && t.size == size) type = &t;
  }
  if (!type)
    fail("{} has unsupported dtype '{}' (supported: u1, i1, i2, i4, i8, f4, f8, b1, little-endian)", what,
         descr);
  if (descr[0] == '>' && type->size > 1)
    fail("{} is stored big-endian (dtype '{}'); re-save it little-endian, e.g. array.astype('<{}')", what,
         descr, descr.substr(1));
  if (*h.fortran_order)
    fail("{} is stored in Fortran (column-major) order, which is not supported; re-save it with "
         "numpy.save(path, numpy.ascontiguousarray(array))",
         what);

  const std::vector<int64_t>& shape = *h.shape;
  // The product of the non-zero dims must fit in int64 even if some dim is 0.
  uint64_t expected = type->size, bound = type->size;
  bool overflow = false;
  for (int64_t d : shape) {
    overflow = overflow || __builtin_mul_overflow(bound, std::max<uint64_t>(d, 1), &bound);
    expected = overflow ? 0 : expected * static_cast<uint64_t>(d);
  }
  const std::string shape_text = fmt::format("({}) {}", fmt::join(shape, ", "), descr);
  if (overflow || bound > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail("{} has a corrupt header: shape {} is too large", what, shape_text);
  const uint64_t available = file_size - preamble - header_len;
  if (available < expected)
    fail("{} is truncated: its header ({}) promises {} data bytes but the file holds {}", what, shape_text,
         expected, available);

  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(type->scalar_type));
  auto* data = static_cast<uint8_t*>(out.data_ptr());
  if (expected && read(data, expected) != expected)
    fail("cannot read {}: {}", what, "unexpected end of file");
  const bool file_little = descr[0] != '>' && !(descr[0] == '=' && kHostBigEndian);
  if (file_little == kHostBigEndian) swap_bytes(data, static_cast<size_t>(out.numel()), type->size);
  if (type->scalar_type == at::kBool)
    for (uint64_t i = 0; i < expected; ++i) data[i] = data[i] != 0;
  return out;
}

}  // namespace

std::string numpy_dtype_name(at::ScalarType type) {
  switch (type) {
    case at::kByte: return "uint8";
    case at::kChar: return "int8";
    case at::kShort: return "int16";
    case at::kInt: return "int32";
    case at::kLong: return "int64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kBool: return "bool";
    default: return c10::toString(type);
  }
}

at::Tensor read_npy(const std::string& path) {
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) fail("npy file {} does not exist", path);
  if (std::filesystem::is_directory(status)) fail("npy file {} is a directory, not a file", path);
  FilePtr f(std::fopen(path.c_str(), "rb"));
  if (!f) fail("cannot open npy file {}: {}", path, std::strerror(errno));
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) fail("cannot read npy file {}: {}", path, ec.message());
  return parse_npy([&](void* out, size_t n) { return std::fread(out, 1, n, f.get()); }, file_size, "npy file " + path);
}

std::vector<std::pair<std::string, at::Tensor>> read_npz(const std::string& path) {
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) fail("npz file {} does not exist", path);
  if (std::filesystem::is_directory(status)) fail("npz file {} is a directory, not a file", path);
  int error = 0;
  std::unique_ptr<zip_t, decltype(&zip_discard)> archive(zip_open(path.c_str(), ZIP_RDONLY, &error), &zip_discard);
  if (!archive) {
    zip_error_t z;
    zip_error_init_with_code(&z, error);
    std::string why = zip_error_strerror(&z);
    zip_error_fini(&z);
    fail("npz file {} is not a readable zip archive (numpy.savez writes one): {}", path, why);
  }
  std::vector<std::pair<std::string, at::Tensor>> arrays;
  const zip_int64_t entries = zip_get_num_entries(archive.get(), 0);
  for (zip_int64_t i = 0; i < entries; ++i) {
    zip_stat_t st;
    if (zip_stat_index(archive.get(), static_cast<zip_uint64_t>(i), 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME) ||
        !(st.valid & ZIP_STAT_SIZE))
      fail("npz file {}: cannot read entry {}: {}", path, i, zip_strerror(archive.get()));
    std::string name = st.name;
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0)
      fail("npz file {} holds '{}', which is not a .npy array (numpy.savez writes NAME.npy entries)", path, name);
    name.resize(name.size() - 4);
    for (const auto& [seen, t] : arrays) {
      if (seen == name) fail("npz file {} holds array '{}' twice", path, name);
    }
    std::unique_ptr<zip_file_t, decltype(&zip_fclose)> entry(zip_fopen_index(archive.get(), static_cast<zip_uint64_t>(i), 0),
                                                              &zip_fclose);
    if (!entry) fail("npz file {}: cannot open array '{}': {}", path, name, zip_strerror(archive.get()));
    const std::string what = fmt::format("array '{}' of npz file {}", name, path);
    at::Tensor t = parse_npy(
        [&](void* out, size_t n) -> size_t {
          size_t done = 0;
          while (done < n) {
            zip_int64_t got = zip_fread(entry.get(), static_cast<char*>(out) + done, n - done);
            if (got < 0) fail("{}: {} (corrupt archive?)", what, zip_file_strerror(entry.get()));
            if (got == 0) break;
            done += static_cast<size_t>(got);
          }
          return done;
        },
        st.size, what);
    arrays.emplace_back(name, t);
  }
  if (arrays.empty()) fail("npz file {} holds no arrays", path);
  return arrays;
}

void write_npy(const std::string& path, const at::Tensor& t) {
  if (!t.defined()) fail("cannot write npy file {}: the tensor is undefined", path);
  const NpyType* type = nullptr;
  for (const auto& candidate : kNpyTypes)
    if (candidate.scalar_type == t.scalar_type()) type = &candidate;
  if (!type)
    fail("cannot write npy file {}: dtype {} is not supported (float32, float64, int64, int32, int16, uint8, int8, "
         "bool)",
         path, numpy_dtype_name(t.scalar_type()));

  const char order = type->size == 1 ? '|' : '<';
  std::string shape;
  if (t.dim() == 1) {
    shape = fmt::format("({},)", t.size(0));
  } else {
    shape = fmt::format("({})", fmt::join(t.sizes(), ", "));
  }
  std::string header =
      fmt::format("{{'descr': '{}{}{}', 'fortran_order': False, 'shape': {}, }}", order, type->kind, type->size, shape);
  int major = 1;
  size_t preamble = 10;
  size_t total = preamble + header.size() + 1;
  if ((total + 63) / 64 * 64 - preamble > 65535) {
    major = 2;
    preamble = 12;
    total = preamble + header.size() + 1;
  }
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';

  std::string bytes(kMagic, kMagicSize);
  bytes += static_cast<char>(major);
  bytes += '\0';
  const uint64_t len = header.size();
  for (size_t i = 0; i < preamble - 8; ++i) bytes += static_cast<char>((len >> (8 * i)) & 0xff);
  bytes += header;

  at::Tensor c = t.detach().cpu().contiguous();
  const size_t nbytes = static_cast<size_t>(c.numel()) * type->size;
  const size_t data_start = bytes.size();
  bytes.resize(data_start + nbytes);
  if (nbytes) std::memcpy(bytes.data() + data_start, c.data_ptr(), nbytes);
  if (kHostBigEndian) swap_bytes(reinterpret_cast<uint8_t*>(bytes.data() + data_start), c.numel(), type->size);

  write_file_atomically(path, bytes, "npy file");
}

}  // namespace autoprec::data
