// The packed model file (.apn), little-endian:
//   "APNATIVE" u32 version(1)
//   u32 tensors { str name, u8 dtype, f32 scale, i32 zero_point, i32 bits }
//   u32 ops { u8 type, str name, vec<i32> inputs, vec<i32> outputs,
//             i64 geometry[11] (in, out, kh, kw, sh, sw, pads t l b r, groups),
//             i32 weight_bits, i64 codes, the codes at weight_bits each (two's
//             complement, LSB first), vec<f32> weight_scales, vec<i32> int_bias,
//             vec<f32> float_weights, vec<f32> float_bias,
//             f32 clip_min, f32 clip_max, i32 min_code, i32 max_code }
//   vec<i32> inputs, vec<i32> outputs, vec<i64> input_shape, str metadata, "END."
// str: u32 length + bytes; vec<T>: u32 count + items.
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <type_traits>

#include <cstdio>

#include "native/model.h"

namespace autoprec::native {

namespace {

constexpr char kMagic[8] = {'A', 'P', 'N', 'A', 'T', 'I', 'V', 'E'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxCount = 1u << 28;  // no list in a model is longer

class Writer {
 public:
  template <typename T>
  void pod(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void str(const std::string& s) {
    pod(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  template <typename T>
  void vec(const std::vector<T>& v) {
    pod(static_cast<uint32_t>(v.size()));
    for (const T& x : v) pod(x);
  }
  void bits(const std::vector<int8_t>& codes, int b) {
    pod(static_cast<int64_t>(codes.size()));
    std::string packed(static_cast<size_t>((static_cast<int64_t>(codes.size()) * b + 7) / 8), '\0');
    int64_t at = 0;
    for (int8_t c : codes) {
      const auto u = static_cast<uint8_t>(c);
      for (int i = 0; i < b; ++i, ++at)
        if (u >> i & 1) packed[at / 8] = static_cast<char>(packed[at / 8] | (1 << (at % 8)));
    }
    out_.append(packed);
  }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(std::string data, std::string path) : data_(std::move(data)), path_(std::move(path)) {}
  [[noreturn]] void bad(const std::string& why) const {
    throw std::runtime_error(path_ + ": not a native model file (" + why + " at byte " + std::to_string(at_) + ")");
  }
  void need(size_t n) const {
    if (data_.size() - at_ < n) bad("truncated");
  }
  template <typename T>
  T pod() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, data_.data() + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  uint32_t count(size_t item) {
    const auto n = pod<uint32_t>();
    if (n > kMaxCount) bad("a list of " + std::to_string(n) + " entries");
    need(static_cast<size_t>(n) * item);
    return n;
  }
  std::string str() {
    const uint32_t n = count(1);
    std::string s = data_.substr(at_, n);
    at_ += n;
    return s;
  }
  template <typename T>
  std::vector<T> vec() {
    const uint32_t n = count(sizeof(T));
    std::vector<T> v(n);
    for (auto& x : v) x = pod<T>();
    return v;
  }
  std::vector<int8_t> bits(int b) {
    const auto n = pod<int64_t>();
    if (n < 0 || n > kMaxCount) bad("a weight count of " + std::to_string(n));
    const auto bytes = static_cast<size_t>((n * b + 7) / 8);
    need(bytes);
    std::vector<int8_t> codes(static_cast<size_t>(n));
    int64_t at = 0;
    for (auto& c : codes) {
      int v = 0;
      for (int i = 0; i < b; ++i, ++at) v |= (static_cast<uint8_t>(data_[at_ + at / 8]) >> (at % 8) & 1) << i;
      if (v & (1 << (b - 1))) v -= 1 << b;  // sign
      c = static_cast<int8_t>(v);
    }
    at_ += bytes;
    return codes;
  }
  bool done() const { return at_ == data_.size(); }

 private:
  std::string data_, path_;
  size_t at_ = 0;
};

}  // namespace

void save_model(const ModelSpec& spec, const std::string& path) {
  Writer w;
  for (char c : kMagic) w.pod(c);
  w.pod(kVersion);
  w.pod(static_cast<uint32_t>(spec.tensors.size()));
  for (const TensorSpec& t : spec.tensors) {
    w.str(t.name);
    w.pod(static_cast<uint8_t>(t.dtype));
    w.pod(t.grid.scale);
    w.pod(t.grid.zero_point);
    w.pod(static_cast<int32_t>(t.grid.bits));
  }
  w.pod(static_cast<uint32_t>(spec.ops.size()));
  for (const OpSpec& op : spec.ops) {
    w.pod(static_cast<uint8_t>(op.type));
    w.str(op.name);
    w.vec(op.inputs);
    w.vec(op.outputs);
    const ConvGeometry& g = op.geometry;
    for (int64_t v : {g.in_channels, g.out_channels, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_top, g.pad_left,
                      g.pad_bottom, g.pad_right, g.groups}) {
      w.pod(v);
    }
    w.pod(static_cast<int32_t>(op.weight_bits));
    w.bits(op.codes, op.weight_bits >= 1 && op.weight_bits <= 8 ? op.weight_bits : 8);
    w.vec(op.weight_scales);
    w.vec(op.int_bias);
    w.vec(op.float_weights);
    w.vec(op.float_bias);
    w.pod(op.clip_min);
    w.pod(op.clip_max);
    w.pod(op.min_code);
    w.pod(op.max_code);
  }
  w.vec(spec.inputs);
  w.vec(spec.outputs);
  w.vec(spec.input_shape);
  w.str(spec.metadata);
  for (char c : std::string("END.")) w.pod(c);

  const std::string partial = path + ".partial";
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    out.write(w.bytes().data(), static_cast<std::streamsize>(w.bytes().size()));
    out.close();
    if (!out) {
      std::remove(partial.c_str());
      throw std::runtime_error("cannot write " + path);
    }
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    std::remove(partial.c_str());
    throw std::runtime_error("cannot write " + path);
  }
}

ModelSpec load_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  Reader r(ss.str(), path);
  for (char c : kMagic)
    if (r.pod<char>() != c) r.bad("no APNATIVE magic");
  if (const auto v = r.pod<uint32_t>(); v != kVersion) r.bad("version " + std::to_string(v) + ", this runtime reads 1");
  ModelSpec spec;
  spec.tensors.resize(r.count(14));
  for (TensorSpec& t : spec.tensors) {
    t.name = r.str();
    const auto dtype = r.pod<uint8_t>();
    if (dtype != static_cast<uint8_t>(DType::Float32) && dtype != static_cast<uint8_t>(DType::Uint8)) r.bad("a tensor type");
    t.dtype = static_cast<DType>(dtype);
    t.grid.scale = r.pod<float>();
    t.grid.zero_point = r.pod<int32_t>();
    t.grid.bits = r.pod<int32_t>();
  }
  spec.ops.resize(r.count(1));
  for (OpSpec& op : spec.ops) {
    const auto type = r.pod<uint8_t>();
    if (type < static_cast<uint8_t>(OpType::Quantize) || type > static_cast<uint8_t>(OpType::Clip)) r.bad("an operator type");
    op.type = static_cast<OpType>(type);
    op.name = r.str();
    op.inputs = r.vec<int32_t>();
    op.outputs = r.vec<int32_t>();
    ConvGeometry& g = op.geometry;
    for (int64_t* v : {&g.in_channels, &g.out_channels, &g.kernel_h, &g.kernel_w, &g.stride_h, &g.stride_w, &g.pad_top,
                       &g.pad_left, &g.pad_bottom, &g.pad_right, &g.groups}) {
      *v = r.pod<int64_t>();
      if (*v < 0 || *v > (int64_t{1} << 24)) r.bad("a layer size out of range");
    }
    op.weight_bits = r.pod<int32_t>();
    op.codes = r.bits(op.weight_bits >= 1 && op.weight_bits <= 8 ? op.weight_bits : 8);
    op.weight_scales = r.vec<float>();
    op.int_bias = r.vec<int32_t>();
    op.float_weights = r.vec<float>();
    op.float_bias = r.vec<float>();
    op.clip_min = r.pod<float>();
    op.clip_max = r.pod<float>();
    op.min_code = r.pod<int32_t>();
    op.max_code = r.pod<int32_t>();
  }
  spec.inputs = r.vec<int32_t>();
  spec.outputs = r.vec<int32_t>();
  spec.input_shape = r.vec<int64_t>();
  spec.metadata = r.str();
  for (char c : std::string("END."))
    if (r.pod<char>() != c) r.bad("no end marker");
  if (!r.done()) r.bad("bytes after the end marker");
  return spec;
}

}  // namespace autoprec::native
