// Tests for src/data: IDX and NPY readers/writers, dataset loading,
// preprocessing, train/validation splitting and batching.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "temp_dir.h"
#include <zip.h>
#include <zlib.h>

#include "data/dataset.h"
#include "data/idx.h"
#include "data/npy.h"
#include "util/error.h"

namespace autoprec::data {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good());
}

void write_gzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

// Runs fn, expects a UserError, returns its message.
template <typename Fn>
std::string user_error(Fn&& fn) {
  try {
    fn();
  } catch (const UserError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected UserError, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected UserError, nothing was thrown";
  return "";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

void expect_same(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.scalar_type(), b.scalar_type());
  EXPECT_EQ(a.sizes(), b.sizes());
  EXPECT_TRUE(a.is_contiguous());
  EXPECT_TRUE(at::equal(a, b)) << a << "\nvs\n" << b;
}

// uint8 [n, h, w] whose pixel k of image i is (i * h * w + k) % 256.
at::Tensor counting_images(int64_t n, int64_t h, int64_t w) {
  return (at::arange(n * h * w, at::kLong) % 256).to(at::kByte).reshape({n, h, w});
}

// A dataset whose image i is filled with the value i and whose label is i.
Dataset indexed_dataset(int64_t n) {
  at::Tensor labels = at::arange(n, at::kLong);
  at::Tensor images = labels.to(at::kFloat).reshape({n, 1, 1, 1}).expand({n, 1, 2, 2}).contiguous();
  return Dataset{images, labels, "indexed"};
}

std::vector<int64_t> to_vector(const at::Tensor& t) {
  at::Tensor c = t.to(at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// ---------------------------------------------------------------- IDX

TEST(Idx, RoundTripUint8) {
  TempDir dir;
  at::Tensor t = counting_images(3, 5, 7);
  write_idx(dir.file("a.idx"), t);
  const std::string bytes = read_bytes(dir.file("a.idx"));
  ASSERT_EQ(bytes.size(), 4u + 3 * 4 + 3 * 5 * 7);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x00\x00\x08\x03\x00\x00\x00\x03", 8));
  expect_same(read_idx(dir.file("a.idx")), t);
}

TEST(Idx, RoundTripFloat32IsBigEndian) {
  TempDir dir;
  at::Tensor t = at::tensor({1.0f, -2.5f, 3.25e-7f, 1e30f, 0.0f, -0.0f}, at::kFloat).reshape({2, 3});
  write_idx(dir.file("f.idx"), t);
  const std::string bytes = read_bytes(dir.file("f.idx"));
  ASSERT_EQ(bytes.size(), 4u + 2 * 4 + 6 * 4);
  EXPECT_EQ(bytes.substr(0, 4), std::string("\x00\x00\x0d\x02", 4));
  EXPECT_EQ(bytes.substr(12, 4), std::string("\x3f\x80\x00\x00", 4));  // 1.0f big-endian
  at::Tensor back = read_idx(dir.file("f.idx"));
  expect_same(back, t);
  EXPECT_TRUE(std::signbit(back[1][2].item<float>()));
}

TEST(Idx, RoundTripOtherTypes) {
  TempDir dir;
  const std::vector<at::Tensor> tensors = {
      at::tensor({-128, 0, 127}, at::kChar),
      at::tensor({-32768, 1, 32767, 258}, at::kShort).reshape({2, 2}),
      at::tensor({INT32_MIN, -1, 16909060, INT32_MAX}, at::kInt),
      at::tensor({1.0 / 3.0, -1e300, 2.0}, at::kDouble),
  };
  for (const auto& t : tensors) {
    write_idx(dir.file("t.idx"), t);
    expect_same(read_idx(dir.file("t.idx")), t);
  }
}

TEST(Idx, NonContiguousInputIsWrittenInLogicalOrder) {
  TempDir dir;
  at::Tensor t = at::arange(6, at::kFloat).reshape({2, 3}).t();
  write_idx(dir.file("t.idx"), t);
  expect_same(read_idx(dir.file("t.idx")), t.contiguous());
}

TEST(Idx, ReadsGzip) {
  TempDir dir;
  at::Tensor t = counting_images(4, 6, 6);
  write_idx(dir.file("raw.idx"), t);
  write_gzip(dir.file("c.idx.gz"), read_bytes(dir.file("raw.idx")));
  EXPECT_NE(read_bytes(dir.file("c.idx.gz")).substr(0, 2), std::string("\x00\x00", 2));
  expect_same(read_idx(dir.file("c.idx.gz")), t);
}

TEST(Idx, TruncatedReportsByteCounts) {
  TempDir dir;
  write_idx(dir.file("t.idx"), counting_images(2, 3, 4));  // 24 data bytes
  const std::string bytes = read_bytes(dir.file("t.idx"));
  write_bytes(dir.file("t.idx"), bytes.substr(0, bytes.size() - 14));
  const std::string msg = user_error([&] { read_idx(dir.file("t.idx")); });
  EXPECT_TRUE(contains(msg, dir.file("t.idx"))) << msg;
  EXPECT_TRUE(contains(msg, "truncated")) << msg;
  EXPECT_TRUE(contains(msg, "24")) << msg;
  EXPECT_TRUE(contains(msg, "10")) << msg;
}

TEST(Idx, TruncatedGzipStream) {
  TempDir dir;
  at::Tensor t = at::rand({50, 50}, at::kFloat);
  write_idx(dir.file("raw.idx"), t);
  write_gzip(dir.file("c.gz"), read_bytes(dir.file("raw.idx")));
  const std::string gz = read_bytes(dir.file("c.gz"));
  write_bytes(dir.file("c.gz"), gz.substr(0, gz.size() / 2));
  const std::string msg = user_error([&] { read_idx(dir.file("c.gz")); });
  EXPECT_TRUE(contains(msg, dir.file("c.gz"))) << msg;
  EXPECT_TRUE(contains(msg, "10000")) << msg;  // 50*50*4 bytes promised
}

TEST(Idx, TrailingBytesRejected) {
  TempDir dir;
  write_idx(dir.file("t.idx"), counting_images(1, 2, 2));
  write_bytes(dir.file("t.idx"), read_bytes(dir.file("t.idx")) + "xyz");
  const std::string msg = user_error([&] { read_idx(dir.file("t.idx")); });
  EXPECT_TRUE(contains(msg, "4 data bytes")) << msg;
  EXPECT_TRUE(contains(msg, "holds 7")) << msg;
}

TEST(Idx, HeaderErrors) {
  TempDir dir;
  EXPECT_TRUE(contains(user_error([&] { read_idx(dir.file("missing")); }), "does not exist"));
  write_bytes(dir.file("bad"), std::string("\x01\x02\x08\x01\x00\x00\x00\x01\x05", 9));
  EXPECT_TRUE(contains(user_error([&] { read_idx(dir.file("bad")); }), "not an IDX file"));
  write_bytes(dir.file("type"), std::string("\x00\x00\x07\x01\x00\x00\x00\x01\x05", 9));
  EXPECT_TRUE(contains(user_error([&] { read_idx(dir.file("type")); }), "0x07"));
  write_bytes(dir.file("short"), std::string("\x00\x00\x08\x03\x00\x00\x00\x01", 8));
  EXPECT_TRUE(contains(user_error([&] { read_idx(dir.file("short")); }), "header"));
  write_bytes(dir.file("huge"), std::string("\x00\x00\x0e\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 16));
  EXPECT_TRUE(contains(user_error([&] { read_idx(dir.file("huge")); }), "too large"));
  write_bytes(dir.file("zero"), std::string("\x00\x00\x08\x03\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff", 16));
  EXPECT_TRUE(contains(user_error([&] { read_idx(dir.file("zero")); }), "too large"));
  write_bytes(dir.file("empty"), std::string("\x00\x00\x08\x02\x00\x00\x00\x00\x00\x00\x00\x05", 12));
  EXPECT_EQ(read_idx(dir.file("empty")).sizes(), (std::vector<int64_t>{0, 5}));
}

TEST(Idx, WriteRejectsUnsupportedDtype) {
  TempDir dir;
  EXPECT_TRUE(contains(user_error([&] { write_idx(dir.file("x"), at::zeros({2}, at::kLong)); }), "int64"));
}

// ---------------------------------------------------------------- NPY

size_t npy_data_offset(const std::string& bytes) {
  if (bytes[6] == 1) return 10 + static_cast<uint8_t>(bytes[8]) + 256 * static_cast<uint8_t>(bytes[9]);
  return 12 + static_cast<uint8_t>(bytes[8]) + 256 * static_cast<uint8_t>(bytes[9]);
}

TEST(Npy, RoundTripEveryDtype) {
  TempDir dir;
  const std::vector<at::Tensor> tensors = {
      at::tensor({0.5f, -1.25f, 3e38f, 1e-40f, 0.0f, 7.0f}, at::kFloat).reshape({2, 3}),
      at::tensor({1.0 / 3.0, -1e300, 0.0, 2.0}, at::kDouble).reshape({2, 1, 2}),
      at::tensor({INT64_MIN, int64_t{-1}, int64_t{1} << 40, INT64_MAX}, at::kLong),
      at::tensor({INT32_MIN, -1, 16909060, INT32_MAX}, at::kInt).reshape({4, 1}),
      at::tensor({-32768, 1, 32767}, at::kShort),
      counting_images(2, 3, 5),
      at::tensor({-128, 0, 1, 127}, at::kChar).reshape({2, 2}),
      at::tensor({1, 0, 0, 1, 1}, at::kInt).to(at::kBool),
      at::scalar_tensor(42.5, at::kDouble),      // 0-d
      at::empty({0, 3}, at::kFloat),             // no elements
  };
  for (const auto& t : tensors) {
    SCOPED_TRACE(numpy_dtype_name(t.scalar_type()));
    write_npy(dir.file("a.npy"), t);
    const std::string bytes = read_bytes(dir.file("a.npy"));
    ASSERT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    const size_t offset = npy_data_offset(bytes);
    EXPECT_EQ(offset % 64, 0u);
    EXPECT_EQ(bytes[offset - 1], '\n');
    EXPECT_EQ(bytes.size() - offset, static_cast<size_t>(t.numel() * t.element_size()));
    expect_same(read_npy(dir.file("a.npy")), t);
  }
}

TEST(Npy, HeaderFormatAndPadding) {
  TempDir dir;
  write_npy(dir.file("a.npy"), at::zeros({2, 3}, at::kFloat));
  std::string bytes = read_bytes(dir.file("a.npy"));
  EXPECT_EQ(bytes.substr(10, 59), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
  write_npy(dir.file("b.npy"), at::zeros({5}, at::kByte));
  bytes = read_bytes(dir.file("b.npy"));
  EXPECT_TRUE(contains(bytes, "'descr': '|u1'")) << bytes;
  EXPECT_TRUE(contains(bytes, "'shape': (5,)")) << bytes;

  // 24 dims push the header past one 64-byte block, so padding must fill a second one.
  std::vector<int64_t> shape(24, 1);
  shape[0] = 3;
  at::Tensor t = at::arange(3, at::kInt).reshape(shape);
  write_npy(dir.file("c.npy"), t);
  bytes = read_bytes(dir.file("c.npy"));
  const size_t offset = npy_data_offset(bytes);
  EXPECT_GT(offset, 64u);
  EXPECT_EQ(offset % 64, 0u);
  EXPECT_EQ(bytes[offset - 1], '\n');
  EXPECT_EQ(bytes[offset - 2], ' ');
  expect_same(read_npy(dir.file("c.npy")), t);
}

TEST(Npy, ReadsHandWrittenV1Header) {
  TempDir dir;
  const std::string header = "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }";
  std::string bytes = std::string("\x93NUMPY\x01\x00\x76\x00", 10) + header + std::string(58, ' ') + "\n";
  ASSERT_EQ(bytes.size(), 128u);
  bytes += std::string("\x01\x00\xfe\xff\x2c\x01\x00\x80\xff\x7f\x00\x00", 12);  // 1 -2 300 -32768 32767 0
  write_bytes(dir.file("h.npy"), bytes);
  expect_same(read_npy(dir.file("h.npy")), at::tensor({1, -2, 300, -32768, 32767, 0}, at::kShort).reshape({2, 3}));
}

TEST(Npy, ReadsV2AndV3Headers) {
  TempDir dir;
  // Double quotes, key order changed, no trailing comma, Python 2 long: all legal.
  const std::string header = "{\"shape\": (3L,), \"fortran_order\": False, \"descr\": \"<f8\"}\n";
  const std::string data("\x00\x00\x00\x00\x00\x00\xf0\x3f"
                         "\x00\x00\x00\x00\x00\x00\x00\xc0"
                         "\x00\x00\x00\x00\x00\x00\x00\x00",
                         24);  // 1.0 -2.0 0.0
  for (char version : {'\x02', '\x03'}) {
    std::string bytes = std::string("\x93NUMPY", 6) + version + '\0';
    bytes += static_cast<char>(header.size());
    bytes += std::string(3, '\0');
    write_bytes(dir.file("v.npy"), bytes + header + data);
    expect_same(read_npy(dir.file("v.npy")), at::tensor({1.0, -2.0, 0.0}, at::kDouble));
  }
}

std::string npy_with_header(const std::string& dict, const std::string& data) {
  std::string header = dict + std::string(64 - (10 + dict.size() + 1) % 64, ' ') + "\n";
  return std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size()) + '\0' + header + data;
}

TEST(Npy, FortranOrderRejected) {
  TempDir dir;
  write_bytes(dir.file("f.npy"),
              npy_with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", std::string(16, '\0')));
  const std::string msg = user_error([&] { read_npy(dir.file("f.npy")); });
  EXPECT_TRUE(contains(msg, dir.file("f.npy"))) << msg;
  EXPECT_TRUE(contains(msg, "Fortran")) << msg;
}

TEST(Npy, BadFilesRejected) {
  TempDir dir;
  auto error_for = [&](const std::string& bytes) {
    write_bytes(dir.file("x.npy"), bytes);
    const std::string msg = user_error([&] { read_npy(dir.file("x.npy")); });
    EXPECT_TRUE(contains(msg, dir.file("x.npy"))) << msg;
    return msg;
  };
  EXPECT_TRUE(contains(
      error_for(npy_with_header("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", std::string(8, '\0'))),
      "big-endian"));
  const std::string truncated =
      error_for(npy_with_header("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 5), }", std::string(37, 'a')));
  EXPECT_TRUE(contains(truncated, "truncated")) << truncated;
  EXPECT_TRUE(contains(truncated, "40")) << truncated;
  EXPECT_TRUE(contains(truncated, "37")) << truncated;
  EXPECT_TRUE(contains(
      error_for(npy_with_header("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", std::string(8, '\0'))),
      "'<c8'"));
  EXPECT_TRUE(contains(error_for(npy_with_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                                                 std::string(4, '\0'))),
                       "structured"));
  const std::string huge = "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904, 4), }";
  EXPECT_TRUE(contains(error_for(npy_with_header(huge, "")), "too large"));
  EXPECT_TRUE(contains(error_for(npy_with_header("{'descr': '<f4', 'shape': (1,), }", std::string(4, '\0'))),
                       "fortran_order"));
  EXPECT_TRUE(contains(error_for(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,", "")),
                       "malformed"));
  EXPECT_TRUE(contains(error_for("PK\x03\x04 zip"), "zip"));
  EXPECT_TRUE(contains(error_for("hello world, not numpy"), "not a .npy"));
  EXPECT_TRUE(contains(error_for(std::string("\x93NUMPY\x04\x00\x10\x00", 10)), "version 4.0"));
  EXPECT_TRUE(contains(error_for(std::string("\x93NUMPY\x01\x00\xff\x00{}", 12)), "truncated"));
  EXPECT_TRUE(contains(user_error([&] { read_npy(dir.file("missing.npy")); }), "does not exist"));
}

TEST(Npy, BoolValuesAreNormalized) {
  TempDir dir;
  write_bytes(dir.file("b.npy"),
              npy_with_header("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }",
                              std::string("\x00\x02\x01", 3)));
  at::Tensor t = read_npy(dir.file("b.npy"));
  ASSERT_EQ(t.scalar_type(), at::kBool);
  EXPECT_EQ(to_vector(t), (std::vector<int64_t>{0, 1, 1}));
}

TEST(Npy, WriteReplacesAtomically) {
  TempDir dir;
  write_npy(dir.file("a.npy"), at::ones({100}, at::kFloat));
  write_npy(dir.file("a.npy"), at::zeros({2}, at::kLong));
  EXPECT_FALSE(fs::exists(dir.file("a.npy.tmp")));
  expect_same(read_npy(dir.file("a.npy")), at::zeros({2}, at::kLong));
  EXPECT_TRUE(contains(user_error([&] { write_npy(dir.file("no/such/dir/a.npy"), at::ones({1})); }), "a.npy.tmp"));
  EXPECT_TRUE(contains(user_error([&] { write_npy(dir.file("h.npy"), at::ones({1}, at::kHalf)); }), "float16"));
}

// ---------------------------------------------------------------- load_dataset

TEST(Dataset, ParseSplit) {
  EXPECT_EQ(parse_split("train"), Split::Train);
  EXPECT_EQ(parse_split("test"), Split::Test);
  EXPECT_TRUE(contains(user_error([] { parse_split("valid"); }), "'valid'"));
}

TEST(Dataset, LoadsIdxDirRawAndGzip) {
  TempDir dir;
  at::Tensor images = counting_images(4, 8, 8);  // covers every byte value
  at::Tensor labels = at::tensor({3, 0, 9, 1}, at::kByte);
  write_idx(dir.file("train-images-idx3-ubyte"), images);
  write_idx(dir.file("tmp"), labels);
  write_gzip(dir.file("train-labels-idx1-ubyte.gz"), read_bytes(dir.file("tmp")));

  Dataset d = load_dataset("idx:" + dir.str(), Split::Train);
  EXPECT_EQ(d.size(), 4);
  EXPECT_EQ(d.source, "idx:" + dir.str());
  ASSERT_EQ(d.images.sizes(), (std::vector<int64_t>{4, 1, 8, 8}));
  ASSERT_EQ(d.images.scalar_type(), at::kFloat);
  ASSERT_EQ(d.labels.scalar_type(), at::kLong);
  EXPECT_EQ(to_vector(d.labels), (std::vector<int64_t>{3, 0, 9, 1}));
  const float* px = d.images.data_ptr<float>();
  const uint8_t* raw = images.data_ptr<uint8_t>();
  for (int64_t i = 0; i < images.numel(); ++i)
    ASSERT_EQ(px[i], static_cast<float>(raw[i]) / 255.0f) << "pixel value " << int(raw[i]);
  EXPECT_EQ(d.images.max().item<float>(), 1.0f);

  // The test split looks for t10k-* and lists the names it tried.
  const std::string msg = user_error([&] { load_dataset("idx:" + dir.str(), Split::Test); });
  EXPECT_TRUE(contains(msg, dir.file("t10k-images-idx3-ubyte"))) << msg;
  EXPECT_TRUE(contains(msg, dir.file("t10k-images-idx3-ubyte.gz"))) << msg;
  EXPECT_TRUE(contains(user_error([&] { load_dataset("idx:" + dir.file("nope"), Split::Test); }), "does not exist"));
}

TEST(Dataset, MismatchedCountsRejected) {
  TempDir dir;
  write_npy(dir.file("x.npy"), at::zeros({10, 4, 4}, at::kByte));
  write_npy(dir.file("y.npy"), at::zeros({9}, at::kLong));
  const std::string spec = "npy:" + dir.file("x.npy") + "," + dir.file("y.npy");
  const std::string msg = user_error([&] { load_dataset(spec, Split::Train); });
  EXPECT_EQ(msg, "labels file " + dir.file("y.npy") + " has 9 entries but inputs file " + dir.file("x.npy") +
                     " has 10");

  write_idx(dir.file("t10k-images-idx3-ubyte"), at::zeros({3, 2, 2}, at::kByte));
  write_idx(dir.file("t10k-labels-idx1-ubyte"), at::zeros({4}, at::kByte));
  EXPECT_TRUE(contains(user_error([&] { load_dataset("idx:" + dir.str(), Split::Test); }), "has 4 entries"));
}

TEST(Dataset, NpySpecFloatImages) {
  TempDir dir;
  at::Tensor images = at::rand({5, 3, 4}, at::kFloat) * 10 - 5;
  write_npy(dir.file("x.npy"), images);
  write_npy(dir.file("y.npy"), at::tensor({1, 2, 3, 4, 5}, at::kInt));
  const std::string spec = "npy:" + dir.file("x.npy") + "," + dir.file("y.npy");
  Dataset d = load_dataset(spec, Split::Test);
  ASSERT_EQ(d.images.sizes(), (std::vector<int64_t>{5, 1, 3, 4}));
  EXPECT_TRUE(at::equal(d.images, images.unsqueeze(1)));  // float: scale 1
  EXPECT_EQ(d.labels.scalar_type(), at::kLong);
  EXPECT_EQ(to_vector(d.labels), (std::vector<int64_t>{1, 2, 3, 4, 5}));

  Preprocess pre;
  pre.scale = 0.5;
  d = load_dataset(spec, Split::Train, pre);
  EXPECT_TRUE(at::allclose(d.images, images.unsqueeze(1) * 0.5));
}

TEST(Dataset, MeanStdPreprocessing) {
  TempDir dir;
  at::Tensor images = (at::arange(2 * 3 * 4 * 5, at::kLong) * 7 % 256).to(at::kByte).reshape({2, 3, 4, 5});
  write_npy(dir.file("x.npy"), images);
  write_npy(dir.file("y.npy"), at::tensor({0, 1}, at::kByte));
  const std::string spec = "npy:" + dir.file("x.npy") + "," + dir.file("y.npy");
  Preprocess pre;
  pre.mean = {0.5f, 0.25f, 0.125f};
  pre.std = {0.25f, 0.5f, 2.0f};
  Dataset d = load_dataset(spec, Split::Train, pre);
  ASSERT_EQ(d.images.sizes(), (std::vector<int64_t>{2, 3, 4, 5}));
  auto px = d.images.accessor<float, 4>();
  auto raw = images.accessor<uint8_t, 4>();
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c)
      for (int h = 0; h < 4; ++h)
        for (int w = 0; w < 5; ++w)
          EXPECT_FLOAT_EQ(px[n][c][h][w], static_cast<float>((raw[n][c][h][w] / 255.0 - pre.mean[c]) / pre.std[c]));
  EXPECT_FLOAT_EQ(px[0][0][0][0], -2.0f);  // pixel 0, channel 0: (0 - 0.5) / 0.25

  // A single value applies to every channel; a wrong count is an error.
  pre.mean = {1.0f};
  pre.std = {};
  pre.scale = 1.0;
  d = load_dataset(spec, Split::Train, pre);
  EXPECT_TRUE(at::equal(d.images, images.to(at::kFloat) - 1.0f));
  pre.mean = {1.0f, 2.0f};
  const std::string msg = user_error([&] { load_dataset(spec, Split::Train, pre); });
  EXPECT_TRUE(contains(msg, "2 values")) << msg;
  EXPECT_TRUE(contains(msg, "3 channels")) << msg;
  pre.mean = {};
  pre.std = {0.0f};
  EXPECT_TRUE(contains(user_error([&] { load_dataset(spec, Split::Train, pre); }), "positive"));
}

TEST(Dataset, BadInputsRejected) {
  TempDir dir;
  const std::string unknown = user_error([] { load_dataset("csv:foo", Split::Train); });
  EXPECT_TRUE(contains(unknown, "idx:DIR")) << unknown;
  EXPECT_TRUE(contains(unknown, "npy:INPUTS.npy,LABELS.npy")) << unknown;
  EXPECT_TRUE(contains(user_error([] { load_dataset("npy:a.npy,b.npy,c.npy", Split::Train); }),
                       "npy:INPUTS.npy,LABELS.npy or npy:INPUTS.npy"));
  EXPECT_TRUE(contains(user_error([] { load_dataset("npy:", Split::Train); }), "malformed"));
  EXPECT_TRUE(contains(user_error([] { load_dataset("/some/dir", Split::Train); }), "idx:DIR"));

  auto load = [&] { return load_dataset("npy:" + dir.file("x.npy") + "," + dir.file("y.npy"), Split::Train); };
  write_npy(dir.file("x.npy"), at::zeros({2, 4, 4}, at::kByte));
  write_npy(dir.file("y.npy"), at::zeros({2}, at::kFloat));
  EXPECT_TRUE(contains(user_error(load), "float32"));
  write_npy(dir.file("y.npy"), at::zeros({2, 1}, at::kLong));
  EXPECT_TRUE(contains(user_error(load), "1-D"));
  write_npy(dir.file("y.npy"), at::tensor({0, -1}, at::kLong));
  EXPECT_TRUE(contains(user_error(load), "negative"));
  write_npy(dir.file("y.npy"), at::zeros({2}, at::kLong));
  write_npy(dir.file("x.npy"), at::zeros({2, 4}, at::kByte));
  EXPECT_TRUE(contains(user_error(load), "[N,H,W] or [N,C,H,W]"));
  write_npy(dir.file("x.npy"), at::zeros({2, 4, 4}, at::kShort));
  EXPECT_TRUE(contains(user_error(load), "int16"));
  write_npy(dir.file("x.npy"), at::zeros({2, 2, 4, 4}, at::kByte));
  EXPECT_EQ(load().images.sizes(), (std::vector<int64_t>{2, 2, 4, 4}));
  write_bytes(dir.file("x.npy"), "garbage");
  EXPECT_TRUE(contains(user_error(load), dir.file("x.npy")));
}

TEST(Dataset, InputsWithoutLabels) {
  TempDir dir;
  write_npy(dir.file("x.npy"), at::arange(6 * 16, at::kLong).to(at::kByte).reshape({6, 4, 4}));
  Dataset d = load_dataset("npy:" + dir.file("x.npy"), Split::Train);
  EXPECT_FALSE(d.labelled());
  ASSERT_EQ(d.images.sizes(), (std::vector<int64_t>{6, 1, 4, 4}));
  // Splits, takes and batches keep working without labels.
  TrainValidation split = split_train_validation(d, 2, 3);
  EXPECT_EQ(split.validation.size(), 2);
  EXPECT_FALSE(split.train.labelled());
  EXPECT_FALSE(take(d, 3).labelled());
  BatchLoader loader(d, 4, true, 1);
  EXPECT_FALSE(loader.batch(0).labels.defined());
  EXPECT_EQ(loader.batch(1).images.size(0), 2);
  // A held-out set must agree with the training data on having labels.
  write_npy(dir.file("hx.npy"), at::zeros({3, 4, 4}, at::kByte));
  write_npy(dir.file("hy.npy"), at::zeros({3}, at::kLong));
  Dataset held = load_dataset("npy:" + dir.file("hx.npy") + "," + dir.file("hy.npy"), Split::Train);
  EXPECT_TRUE(contains(user_error([&] { train_and_validation(d, &held, 2, 0); }), "has labels but the training data"));
}

TEST(Dataset, TokenAndFeatureInputs) {
  TempDir dir;
  at::Tensor tokens = at::randint(0, 50, {5, 7}, at::kInt);
  write_npy(dir.file("t.npy"), tokens);
  write_npy(dir.file("y.npy"), at::tensor({1, 2, 3, 4, 5}, at::kLong));
  Dataset d = load_dataset("npy:" + dir.file("t.npy") + "," + dir.file("y.npy"), Split::Train);
  EXPECT_EQ(d.images.scalar_type(), at::kLong);  // token ids: int64, unchanged
  EXPECT_TRUE(at::equal(d.images, tokens.to(at::kLong)));
  Preprocess pre;
  pre.scale = 0.5;  // applies to images only
  EXPECT_TRUE(at::equal(load_dataset("npy:" + dir.file("t.npy"), Split::Train, pre).images, tokens.to(at::kLong)));

  at::Tensor features = at::randn({5, 3}, at::kDouble);
  write_npy(dir.file("f.npy"), features);
  Dataset f = load_dataset("npy:" + dir.file("f.npy"), Split::Train);
  EXPECT_EQ(f.images.sizes(), (std::vector<int64_t>{5, 3}));
  EXPECT_EQ(f.images.scalar_type(), at::kFloat);
  EXPECT_TRUE(contains(user_error([&] { load_dataset("npy:" + dir.file("f.npy"), Split::Train, pre); }),
                       "apply to images"));
}

// ---------------------------------------------------------------- npz

// Writes `arrays` as numpy.savez (stored) or numpy.savez_compressed (deflated) does: NAME.npy entries.
void write_npz(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& arrays, bool deflate,
               const TempDir& dir) {
  int error = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  ASSERT_NE(archive, nullptr);
  std::vector<std::string> bytes;
  bytes.reserve(arrays.size());
  for (const auto& [name, t] : arrays) {
    write_npy(dir.file("entry.npy"), t);
    bytes.push_back(read_bytes(dir.file("entry.npy")));
    zip_source_t* source = zip_source_buffer(archive, bytes.back().data(), bytes.back().size(), 0);
    zip_int64_t index = zip_file_add(archive, (name + ".npy").c_str(), source, ZIP_FL_OVERWRITE);
    ASSERT_GE(index, 0);
    zip_set_file_compression(archive, static_cast<zip_uint64_t>(index), deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  ASSERT_EQ(zip_close(archive), 0);
}

TEST(Npz, ReadsArraysInArchiveOrderStoredOrDeflated) {
  TempDir dir;
  at::Tensor a = at::randn({4, 3}), b = at::randint(0, 9, {4, 2}, at::kLong);
  for (bool deflate : {false, true}) {
    write_npz(dir.file("d.npz"), {{"b", b}, {"a", a}}, deflate, dir);
    auto arrays = read_npz(dir.file("d.npz"));
    ASSERT_EQ(arrays.size(), 2u);
    EXPECT_EQ(arrays[0].first, "b");
    EXPECT_EQ(arrays[1].first, "a");
    EXPECT_TRUE(at::equal(arrays[0].second, b));
    EXPECT_TRUE(at::equal(arrays[1].second, a));
  }
}

TEST(Npz, BadArchivesRejected) {
  TempDir dir;
  write_npy(dir.file("x.npy"), at::zeros({2, 2}));
  EXPECT_TRUE(contains(user_error([&] { read_npz(dir.file("x.npy")); }), "is not a readable zip archive"));
  EXPECT_TRUE(contains(user_error([&] { read_npz(dir.file("none.npz")); }), "does not exist"));
  // An entry that is not a .npy, and a .npy entry cut short.
  {
    int error = 0;
    zip_t* archive = zip_open(dir.file("txt.npz").c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
    static const char text[] = "hello";
    zip_file_add(archive, "notes.txt", zip_source_buffer(archive, text, 5, 0), 0);
    ASSERT_EQ(zip_close(archive), 0);
  }
  EXPECT_TRUE(contains(user_error([&] { read_npz(dir.file("txt.npz")); }), "'notes.txt', which is not a .npy array"));
  {
    std::string npy = read_bytes(dir.file("x.npy"));
    npy.resize(npy.size() - 3);
    int error = 0;
    zip_t* archive = zip_open(dir.file("cut.npz").c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
    zip_file_add(archive, "x.npy", zip_source_buffer(archive, npy.data(), npy.size(), 0), 0);
    ASSERT_EQ(zip_close(archive), 0);
  }
  const std::string cut = user_error([&] { read_npz(dir.file("cut.npz")); });
  EXPECT_TRUE(contains(cut, "array 'x' of npz file")) << cut;
  EXPECT_TRUE(contains(cut, "truncated")) << cut;
}

TEST(Dataset, NpzFeedsEveryInputInGraphOrder) {
  TempDir dir;
  const int64_t n = 10;
  // Column 0 of both inputs is the example's index, so rows can be followed through splits and batches.
  at::Tensor ids = at::randint(0, 50, {n, 5}, at::kInt);
  ids.select(1, 0).copy_(at::arange(n, at::kInt));
  at::Tensor mask = at::rand({n, 3}, at::kDouble);
  mask.select(1, 0).copy_(at::arange(n, at::kDouble));
  at::Tensor labels = at::arange(n, at::kLong) % 3;
  write_npz(dir.file("d.npz"), {{"mask", mask}, {"labels", labels}, {"ids", ids}}, false, dir);
  const std::string spec = "npz:" + dir.file("d.npz");
  Dataset d = load_dataset(spec, Split::Train, {}, {"ids", "mask"});
  EXPECT_EQ(d.input_names, (std::vector<std::string>{"ids", "mask"}));
  EXPECT_TRUE(at::equal(d.images, ids.to(at::kLong)));
  ASSERT_EQ(d.more_inputs.size(), 1u);
  EXPECT_TRUE(at::equal(d.more_inputs[0], mask.to(at::kFloat)));
  EXPECT_TRUE(at::equal(d.labels, labels));
  // Without the graph's names: archive order.
  EXPECT_EQ(load_dataset(spec, Split::Train).input_names, (std::vector<std::string>{"mask", "ids"}));

  // Splits, take and shuffled batches keep the inputs of one example together.
  auto aligned = [](const std::vector<at::Tensor>& inputs) {
    return at::equal(inputs[0].select(1, 0).to(at::kDouble), inputs[1].select(1, 0).to(at::kDouble));
  };
  TrainValidation split = split_train_validation(d, 4, 3);
  EXPECT_TRUE(aligned(split.validation.inputs()));
  EXPECT_TRUE(aligned(split.train.inputs()));
  EXPECT_TRUE(at::equal(split.train.labels, split.train.images.select(1, 0) % 3));
  EXPECT_TRUE(aligned(take(d, 3).inputs()));
  BatchLoader loader(d, 4, true, 1);
  for (int64_t b = 0; b < loader.num_batches(); ++b) {
    BatchLoader::Batch batch = loader.batch(b);
    ASSERT_EQ(batch.inputs.size(), 2u);
    EXPECT_TRUE(aligned(batch.inputs));
    EXPECT_TRUE(at::equal(batch.images, batch.inputs[0]));
    EXPECT_TRUE(at::equal(batch.labels, batch.images.select(1, 0) % 3));
  }

  // One array for a one-input model: any name (numpy's arr_0).
  write_npz(dir.file("one.npz"), {{"arr_0", mask}}, false, dir);
  EXPECT_EQ(load_dataset("npz:" + dir.file("one.npz"), Split::Train, {}, {"x"}).input_names,
            (std::vector<std::string>{"x"}));
}

TEST(Dataset, NpzMismatchesRejected) {
  TempDir dir;
  at::Tensor ids = at::randint(0, 50, {6, 5}, at::kLong);
  write_npz(dir.file("d.npz"), {{"ids", ids}, {"mask", at::rand({6, 3})}}, false, dir);
  const std::string spec = "npz:" + dir.file("d.npz");
  EXPECT_TRUE(contains(user_error([&] { load_dataset(spec, Split::Train, {}, {"ids", "mask", "pos"}); }),
                       "has no array for the model's input 'pos'"));
  EXPECT_TRUE(contains(user_error([&] { load_dataset(spec, Split::Train, {}, {"ids", "segment"}); }),
                       "has no array for the model's input 'segment'"));
  write_npz(dir.file("extra.npz"), {{"ids", ids}, {"mask", at::rand({6, 3})}, {"junk", at::rand({6})}}, false, dir);
  EXPECT_TRUE(contains(user_error([&] { load_dataset("npz:" + dir.file("extra.npz"), Split::Train, {}, {"ids", "mask"}); }),
                       "holds array 'junk', which is no input of the model"));
  write_npz(dir.file("count.npz"), {{"ids", ids}, {"mask", at::rand({5, 3})}}, false, dir);
  EXPECT_TRUE(contains(user_error([&] { load_dataset("npz:" + dir.file("count.npz"), Split::Train); }),
                       "has 5 examples but array 'ids' has 6"));
  write_npz(dir.file("labels.npz"), {{"ids", ids}, {"labels", at::zeros({4}, at::kLong)}}, false, dir);
  EXPECT_TRUE(contains(user_error([&] { load_dataset("npz:" + dir.file("labels.npz"), Split::Train); }),
                       "array 'labels' of npz file"));
  Preprocess pre;
  pre.scale = 0.5;
  EXPECT_TRUE(contains(user_error([&] { load_dataset(spec, Split::Train, pre); }), "holds none"));
  write_npz(dir.file("img.npz"), {{"image", at::randint(0, 255, {6, 4, 4}, at::kByte)}, {"ids", ids}}, false, dir);
  Dataset img = load_dataset("npz:" + dir.file("img.npz"), Split::Train, pre, {"image", "ids"});
  EXPECT_EQ(img.images.sizes(), (std::vector<int64_t>{6, 1, 4, 4}));  // the image array is preprocessed, the ids not
  EXPECT_TRUE(at::equal(img.more_inputs[0], ids));
  EXPECT_TRUE(contains(user_error([&] { load_dataset("npz:a.npz,b.npy", Split::Train); }), "malformed"));
}

// ---------------------------------------------------------------- split / take / batches

std::set<int64_t> label_set(const Dataset& d) {
  std::vector<int64_t> v = to_vector(d.labels);
  return std::set<int64_t>(v.begin(), v.end());
}

TEST(Split, DeterministicDisjointCovering) {
  Dataset d = indexed_dataset(100);
  TrainValidation a = split_train_validation(d, 30, 7);
  TrainValidation b = split_train_validation(d, 30, 7);
  ASSERT_EQ(a.train.size(), 70);
  ASSERT_EQ(a.validation.size(), 30);
  EXPECT_EQ(to_vector(a.train.labels), to_vector(b.train.labels));
  EXPECT_EQ(to_vector(a.validation.labels), to_vector(b.validation.labels));

  std::set<int64_t> train = label_set(a.train), validation = label_set(a.validation);
  EXPECT_EQ(train.size(), 70u);
  EXPECT_EQ(validation.size(), 30u);
  std::set<int64_t> all = train;
  all.insert(validation.begin(), validation.end());
  EXPECT_EQ(all.size(), 100u);
  EXPECT_EQ(*all.begin(), 0);
  EXPECT_EQ(*all.rbegin(), 99);
  // Images travel with their labels.
  EXPECT_TRUE(at::equal(a.validation.images.select(1, 0).select(1, 0).select(1, 0),
                        a.validation.labels.to(at::kFloat)));
  // Not simply the first or last 30.
  EXPECT_NE(*validation.rbegin() - *validation.begin(), 29);

  TrainValidation c = split_train_validation(d, 30, 8);
  EXPECT_NE(label_set(c.validation), validation);

  // Golden values from an independent Python implementation of mt19937_64 +
  // Fisher-Yates with rejection sampling: permutation(10, seed 42) starts 1, 7, 9.
  EXPECT_EQ(to_vector(split_train_validation(indexed_dataset(10), 3, 42).validation.labels),
            (std::vector<int64_t>{1, 7, 9}));
}

TEST(Split, ValidationSizeChecked) {
  Dataset d = indexed_dataset(5);
  EXPECT_TRUE(contains(user_error([&] { split_train_validation(d, 5, 1); }), "5"));
  EXPECT_TRUE(contains(user_error([&] { split_train_validation(d, -1, 1); }), "-1"));
  EXPECT_EQ(split_train_validation(d, 0, 1).train.size(), 5);
}

TEST(Split, HeldOutValidationLeavesTrainingWhole) {
  Dataset train = indexed_dataset(50);
  Dataset held = indexed_dataset(20);
  held.labels = held.labels + 1000;  // tell the sets apart
  TrainValidation carved = train_and_validation(train, nullptr, 10, 3);
  EXPECT_EQ(carved.train.size(), 40);
  EXPECT_EQ(to_vector(carved.validation.labels), to_vector(split_train_validation(train, 10, 3).validation.labels));

  TrainValidation some = train_and_validation(train, &held, 5, 3);
  EXPECT_EQ(some.train.size(), 50);
  EXPECT_EQ(to_vector(some.validation.labels), to_vector(split_train_validation(held, 5, 3).validation.labels));
  for (int64_t label : to_vector(some.validation.labels)) EXPECT_GE(label, 1000);

  TrainValidation all = train_and_validation(train, &held, 20, 3);
  EXPECT_EQ(all.validation.size(), 20);
  EXPECT_EQ(all.train.size(), 50);

  Dataset other_shape{at::zeros({4, 1, 3, 3}), at::zeros({4}, at::kLong), "other"};
  EXPECT_TRUE(contains(user_error([&] { train_and_validation(train, &other_shape, 2, 0); }), "shape"));
}

TEST(Take, FirstN) {
  Dataset d = indexed_dataset(10);
  Dataset t = take(d, 3);
  EXPECT_EQ(t.size(), 3);
  EXPECT_EQ(to_vector(t.labels), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(t.images.size(0), 3);
  EXPECT_EQ(take(d, 10).size(), 10);
  EXPECT_EQ(take(d, 1000).size(), 10);
  EXPECT_EQ(take(d, 0).size(), 0);
  EXPECT_THROW(take(d, -1), UserError);
}

TEST(BatchLoader, InOrderWithPartialLastBatch) {
  Dataset d = indexed_dataset(10);
  BatchLoader loader(d, 4, false, 0);
  ASSERT_EQ(loader.num_batches(), 3);
  std::vector<int64_t> seen;
  for (int64_t b = 0; b < 3; ++b) {
    BatchLoader::Batch batch = loader.batch(b);
    EXPECT_EQ(batch.images.sizes(), (std::vector<int64_t>{b == 2 ? 2 : 4, 1, 2, 2}));
    EXPECT_EQ(batch.labels.size(0), b == 2 ? 2 : 4);
    for (int64_t v : to_vector(batch.labels)) seen.push_back(v);
  }
  EXPECT_EQ(seen, to_vector(at::arange(10, at::kLong)));
  EXPECT_THROW(loader.batch(3), InternalError);
  EXPECT_EQ(BatchLoader(d, 5, false, 0).num_batches(), 2);
  EXPECT_EQ(BatchLoader(d, 100, true, 0).num_batches(), 1);
  EXPECT_THROW(BatchLoader(d, 0, false, 0), UserError);
}

std::vector<int64_t> epoch_order(BatchLoader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<int64_t> order;
  for (int64_t b = 0; b < loader.num_batches(); ++b) {
    BatchLoader::Batch batch = loader.batch(b);
    EXPECT_TRUE(at::equal(batch.images.select(1, 0).select(1, 1).select(1, 1), batch.labels.to(at::kFloat)));
    for (int64_t v : to_vector(batch.labels)) order.push_back(v);
  }
  return order;
}

TEST(BatchLoader, ShuffledCoversEachOnceAndDiffersBetweenEpochs) {
  Dataset d = indexed_dataset(37);
  BatchLoader loader(d, 8, true, 123);
  ASSERT_EQ(loader.num_batches(), 5);
  EXPECT_EQ(loader.batch(4).labels.size(0), 5);
  const std::vector<int64_t> identity = to_vector(at::arange(37, at::kLong));
  std::vector<int64_t> e0 = epoch_order(loader, 0), e1 = epoch_order(loader, 1);
  for (auto order : {e0, e1}) {
    EXPECT_NE(order, identity);
    std::sort(order.begin(), order.end());
    EXPECT_EQ(order, identity);
  }
  EXPECT_NE(e0, e1);
  // Epoch 1 uses seed 123 + 1; golden from the same Python implementation.
  EXPECT_EQ(e1, (std::vector<int64_t>{2,  31, 16, 25, 5,  6,  4,  14, 34, 30, 28, 26, 15, 0,  12, 21, 10, 24, 13,
                                      33, 18, 23, 36, 35, 22, 27, 29, 20, 7,  32, 9,  11, 19, 8,  17, 1,  3}));
  EXPECT_EQ(epoch_order(loader, 0), e0);  // an epoch's order is reproducible
  BatchLoader other(d, 8, true, 123);
  EXPECT_EQ(epoch_order(other, 1), e1);
  BatchLoader other_seed(d, 8, true, 124);
  EXPECT_NE(epoch_order(other_seed, 0), e0);
}

// ---------------------------------------------------------------- real data

TEST(FashionMnist, LoadsTestSplit) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " is missing";
  Dataset d = load_dataset("idx:" + dir, Split::Test);
  EXPECT_EQ(d.size(), 10000);
  EXPECT_EQ(d.images.sizes(), (std::vector<int64_t>{10000, 1, 28, 28}));
  EXPECT_EQ(d.images.scalar_type(), at::kFloat);
  EXPECT_EQ(d.labels.sizes(), (std::vector<int64_t>{10000}));
  EXPECT_EQ(d.labels.min().item<int64_t>(), 0);
  EXPECT_EQ(d.labels.max().item<int64_t>(), 9);
  EXPECT_GE(d.images.min().item<float>(), 0.0f);
  EXPECT_LE(d.images.max().item<float>(), 1.0f);
  EXPECT_EQ(at::bincount(d.labels).sizes(), (std::vector<int64_t>{10}));
}

}  // namespace
}  // namespace autoprec::data
