#include "data/dataset.h"

#include <cmath>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <stdexcept>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "data/idx.h"
#include "data/npy.h"
#include "util/error.h"
#include "util/log.h"

namespace autoprec::data {
namespace {

namespace fs = std::filesystem;

// Uniform in [0, bound) from raw mt19937_64 outputs (bound > 0); unlike
// std::uniform_int_distribution this is the same on every standard library.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t rem = (0 - bound) % bound;  // 2^64 mod bound
  uint64_t r = rng();
  if (rem != 0)
    while (r >= 0 - rem) r = rng();
  return r % bound;
}

std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[uniform_below(rng, static_cast<uint64_t>(i) + 1)]);
  return p;
}

at::Tensor index_tensor(const std::vector<int64_t>& v) {
  at::Tensor t = at::empty({static_cast<int64_t>(v.size())}, at::kLong);
  std::copy(v.begin(), v.end(), t.data_ptr<int64_t>());
  return t;
}

// `d` with `fn` applied to every per-example tensor (inputs and labels).
template <typename Fn>
Dataset map_examples(const Dataset& d, const std::string& source, Fn&& fn) {
  Dataset out{fn(d.images), d.labels.defined() ? fn(d.labels) : at::Tensor(), source, {}, d.input_names};
  for (const at::Tensor& t : d.more_inputs) out.more_inputs.push_back(fn(t));
  return out;
}

Dataset select(const Dataset& d, const std::vector<int64_t>& indices, const std::string& source) {
  at::Tensor idx = index_tensor(indices);
  return map_examples(d, source, [&](const at::Tensor& t) { return t.index_select(0, idx); });
}

std::string shape_string(const at::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ", ")); }

at::Tensor read_any(const std::string& path, bool npy) { return npy ? read_npy(path) : read_idx(path); }

// DIR/name if it exists, else DIR/name.gz, else UserError listing both.
std::string find_idx_file(const std::string& dir, const std::string& name, const std::string& spec) {
  const fs::path raw = fs::path(dir) / name;
  const fs::path gz = fs::path(dir) / (name + ".gz");
  std::error_code ec;
  if (fs::is_regular_file(raw, ec)) return raw.string();
  if (fs::is_regular_file(gz, ec)) return gz.string();
  if (!fs::is_directory(dir, ec)) fail("dataset {}: directory {} does not exist", spec, dir);
  fail("dataset {}: found neither {} nor {}", spec, raw.string(), gz.string());
}

// Expands per-channel statistics (1 or C values) to C values.
std::vector<double> per_channel(const std::vector<float>& values, int64_t channels, double fallback,
                                const char* what, const std::string& spec) {
  if (values.empty()) return std::vector<double>(static_cast<size_t>(channels), fallback);
  if (values.size() != 1 && static_cast<int64_t>(values.size()) != channels)
    fail("dataset {}: preprocessing {} has {} values but the images have {} channel{}", spec, what, values.size(),
         channels, channels == 1 ? "" : "s");
  std::vector<double> out(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) out[c] = values.size() == 1 ? values[0] : values[c];
  return out;
}

// images: contiguous [N, C, H, W] uint8/float32/float64 -> float32, (x*scale - mean)/std per channel.
at::Tensor preprocess(const at::Tensor& images, const Preprocess& pre, const std::string& spec) {
  const bool integer = images.scalar_type() == at::kByte;
  const double scale = pre.scale < 0 ? (integer ? 1.0 / 255.0 : 1.0) : pre.scale;
  const int64_t n = images.size(0), channels = images.size(1), plane = images.size(2) * images.size(3);
  const std::vector<double> mean = per_channel(pre.mean, channels, 0.0, "mean", spec);
  const std::vector<double> stdev = per_channel(pre.std, channels, 1.0, "std", spec);
  for (double s : stdev)
    if (!(s > 0) || !std::isfinite(s)) fail("dataset {}: preprocessing std must be positive, got {}", spec, s);
  const bool identity =
      scale == 1.0 && std::all_of(mean.begin(), mean.end(), [](double m) { return m == 0; }) &&
      std::all_of(stdev.begin(), stdev.end(), [](double s) { return s == 1; });
  if (identity && images.scalar_type() == at::kFloat) return images;

  at::Tensor out = at::empty(images.sizes(), at::kFloat);
  float* dst = out.data_ptr<float>();
  if (integer) {
    const uint8_t* src = images.data_ptr<uint8_t>();
    std::vector<std::array<float, 256>> table(static_cast<size_t>(channels));
    for (int64_t c = 0; c < channels; ++c)
      for (int v = 0; v < 256; ++v) table[c][v] = static_cast<float>((v * scale - mean[c]) / stdev[c]);
    for (int64_t i = 0; i < n * channels; ++i) {
      const auto& t = table[i % channels];
      for (int64_t k = 0; k < plane; ++k) dst[i * plane + k] = t[src[i * plane + k]];
    }
    return out;
  }
  auto apply = [&](auto* src) {
    for (int64_t i = 0; i < n * channels; ++i) {
      const double m = mean[i % channels], s = stdev[i % channels];
      for (int64_t k = 0; k < plane; ++k)
        dst[i * plane + k] = static_cast<float>((static_cast<double>(src[i * plane + k]) * scale - m) / s);
    }
  };
  if (images.scalar_type() == at::kFloat)
    apply(images.data_ptr<float>());
  else
    apply(images.data_ptr<double>());
  return out;
}

}  // namespace

int64_t Dataset::size() const { return images.defined() ? images.size(0) : 0; }

std::vector<at::Tensor> Dataset::inputs() const {
  std::vector<at::Tensor> all{images};
  all.insert(all.end(), more_inputs.begin(), more_inputs.end());
  return all;
}

std::vector<at::Tensor> Dataset::inputs(int64_t start, int64_t count) const {
  std::vector<at::Tensor> all;
  for (const at::Tensor& t : inputs()) all.push_back(t.narrow(0, start, count));
  return all;
}

std::vector<at::Tensor> Dataset::inputs_at(const at::Tensor& indices) const {
  std::vector<at::Tensor> all;
  for (const at::Tensor& t : inputs()) all.push_back(t.index_select(0, indices));
  return all;
}

Split parse_split(const std::string& name) {
  if (name == "train") return Split::Train;
  if (name == "test") return Split::Test;
  fail("unknown split '{}' (expected 'train' or 'test')", name);
}

namespace {

bool preprocessing_given(const Preprocess& pre) { return pre.scale >= 0 || !pre.mean.empty() || !pre.std.empty(); }

// One input array as the model takes it (load_dataset's rules); `what`
// names it ("inputs file X", "array 'ids' of npz file X"). Sets
// *image when `pre` applied.
at::Tensor prepare_input(at::Tensor raw, const Preprocess& pre, const std::string& spec, const std::string& what,
                         bool* image) {
  const auto itype = raw.scalar_type();
  *image = false;
  if (raw.dim() == 0) fail("{} holds a scalar; expected an array [N, ...]", what);
  if (raw.size(0) == 0) fail("{} contains no examples", what);
  const bool tokens = itype == at::kLong || itype == at::kInt;
  const bool floats = itype == at::kFloat || itype == at::kDouble;
  if (!tokens && !floats && itype != at::kByte)
    fail("{} has dtype {}; expected uint8 or float32 images, float32 features or int64/int32 token ids", what,
         numpy_dtype_name(itype));
  if (itype == at::kByte && raw.dim() != 3 && raw.dim() != 4)
    fail("{} has uint8 images of shape {}; expected [N,H,W] or [N,C,H,W]", what, shape_string(raw));
  if (tokens) return raw.to(at::kLong).contiguous();
  if (itype == at::kByte || raw.dim() == 3 || raw.dim() == 4) {
    *image = true;
    if (raw.dim() == 3) raw = raw.unsqueeze(1);
    return preprocess(raw.contiguous(), pre, spec);
  }
  return raw.to(at::kFloat).contiguous();
}

at::Tensor prepare_labels(at::Tensor labels, const std::string& what, int64_t n, const std::string& inputs_what) {
  const auto ltype = labels.scalar_type();
  if (ltype != at::kLong && ltype != at::kInt && ltype != at::kByte)
    fail("{} has dtype {}; expected int64, int32 or uint8", what, numpy_dtype_name(ltype));
  if (labels.dim() != 1) fail("{} has shape {}; expected a 1-D array of labels", what, shape_string(labels));
  if (labels.size(0) != n) fail("{} has {} entries but {} has {}", what, labels.size(0), inputs_what, n);
  labels = labels.to(at::kLong).contiguous();
  const int64_t* lp = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < labels.size(0); ++i)
    if (lp[i] < 0) fail("{} has a negative label {} at index {}", what, lp[i], i);
  return labels;
}

Dataset load_npz(const std::string& spec, const std::string& path, const Preprocess& pre,
                 const std::vector<std::string>& graph_inputs) {
  std::vector<std::pair<std::string, at::Tensor>> arrays = read_npz(path);
  at::Tensor labels;
  std::vector<std::pair<std::string, at::Tensor>> inputs;
  for (auto& [name, t] : arrays) {
    if (name == "labels") labels = t;
    else inputs.emplace_back(name, t);
  }
  if (inputs.empty()) fail("npz file {} holds no input array (only 'labels')", path);
  if (!graph_inputs.empty()) inputs = arrays_for_inputs(std::move(inputs), graph_inputs, path);
  Dataset d;
  d.source = spec;
  bool any_image = false;
  for (auto& [name, t] : inputs) {
    const std::string what = fmt::format("array '{}' of npz file {}", name, path);
    bool image = false;
    at::Tensor x = prepare_input(t, pre, spec, what, &image);
    any_image = any_image || image;
    if (d.images.defined() && x.size(0) != d.images.size(0))
      fail("{} has {} examples but array '{}' has {}", what, x.size(0), inputs[0].first, d.images.size(0));
    (d.images.defined() ? d.more_inputs.emplace_back(x) : d.images) = x;
    d.input_names.push_back(name);
  }
  if (preprocessing_given(pre) && !any_image)
    fail("dataset {}: --scale/--mean/--std apply to images, and npz file {} holds none", spec, path);
  if (labels.defined())
    d.labels = prepare_labels(labels, fmt::format("array 'labels' of npz file {}", path), d.size(),
                              fmt::format("array '{}'", inputs[0].first));
  return d;
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> arrays_for_inputs(std::vector<std::pair<std::string, at::Tensor>> arrays,
                                                                  const std::vector<std::string>& graph_inputs,
                                                                  const std::string& path) {
  if (graph_inputs.size() == 1 && arrays.size() == 1) {
    arrays[0].first = graph_inputs[0];  // one array feeds the one input, whatever numpy named it
    return arrays;
  }
  std::vector<std::string> names;
  for (const auto& [name, t] : arrays) names.push_back(name);
  std::vector<std::pair<std::string, at::Tensor>> ordered;
  for (const std::string& g : graph_inputs) {
    auto it = std::find_if(arrays.begin(), arrays.end(), [&](const auto& p) { return p.first == g; });
    if (it == arrays.end())
      fail("npz file {} has no array for the model's input '{}' (it holds [{}]; the model takes [{}])", path, g,
           fmt::join(names, ", "), fmt::join(graph_inputs, ", "));
    ordered.push_back(*it);
  }
  for (const std::string& n : names) {
    if (std::find(graph_inputs.begin(), graph_inputs.end(), n) == graph_inputs.end())
      fail("npz file {} holds array '{}', which is no input of the model (it takes [{}]; labels go in 'labels')", path,
           n, fmt::join(graph_inputs, ", "));
  }
  return ordered;
}

Dataset load_dataset(const std::string& spec, Split split, const Preprocess& pre,
                     const std::vector<std::string>& graph_inputs) {
  const size_t colon = spec.find(':');
  const std::string scheme = colon == std::string::npos ? "" : spec.substr(0, colon);
  const std::string rest = colon == std::string::npos ? "" : spec.substr(colon + 1);
  std::string images_path, labels_path;
  bool npy = false;
  if (scheme == "idx") {
    if (rest.empty()) fail("dataset spec '{}' is malformed: expected idx:DIR", spec);
    const std::string prefix = split == Split::Train ? "train" : "t10k";
    images_path = find_idx_file(rest, prefix + "-images-idx3-ubyte", spec);
    labels_path = find_idx_file(rest, prefix + "-labels-idx1-ubyte", spec);
  } else if (scheme == "npy") {
    const size_t comma = rest.find(',');
    if (rest.empty() || comma == 0 || (comma != std::string::npos && comma + 1 == rest.size()) ||
        (comma != std::string::npos && rest.find(',', comma + 1) != std::string::npos))
      fail("dataset spec '{}' is malformed: expected npy:INPUTS.npy,LABELS.npy or npy:INPUTS.npy", spec);
    images_path = rest.substr(0, comma);
    if (comma != std::string::npos) labels_path = rest.substr(comma + 1);
    npy = true;
  } else if (scheme == "npz") {
    if (rest.empty() || rest.find(',') != std::string::npos)
      fail("dataset spec '{}' is malformed: expected npz:FILE.npz (labels, if any, as its array 'labels')", spec);
    return load_npz(spec, rest, pre, graph_inputs);
  } else {
    fail("unknown dataset spec '{}' (expected idx:DIR, npy:INPUTS.npy,LABELS.npy, npy:INPUTS.npy or npz:FILE.npz)",
         spec);
  }

  const std::string inputs_what = fmt::format("inputs file {}", images_path);
  bool image = false;
  at::Tensor images = prepare_input(read_any(images_path, npy), pre, spec, inputs_what, &image);
  if (preprocessing_given(pre) && !image && images.is_floating_point())
    fail("dataset {}: --scale/--mean/--std apply to images, and {} holds float features of shape {}", spec,
         images_path, shape_string(images));
  if (labels_path.empty()) return Dataset{images, at::Tensor(), spec};
  at::Tensor labels = prepare_labels(read_any(labels_path, npy), fmt::format("labels file {}", labels_path),
                                     images.size(0), inputs_what);
  return Dataset{images, labels, spec};
}

TrainValidation split_train_validation(const Dataset& d, int64_t validation_size, uint64_t seed) {
  const int64_t n = d.size();
  if (validation_size < 0 || validation_size >= n)
    fail("dataset {}: validation size {} must be at least 0 and less than the dataset size {}", d.source,
         validation_size, n);
  std::vector<int64_t> p = permutation(n, seed);
  std::vector<int64_t> validation(p.begin(), p.begin() + validation_size);
  std::vector<int64_t> train(p.begin() + validation_size, p.end());
  std::sort(validation.begin(), validation.end());
  std::sort(train.begin(), train.end());
  return TrainValidation{select(d, train, d.source + " (training part)"),
                         select(d, validation, d.source + " (validation part)")};
}

TrainValidation train_and_validation(const Dataset& train, const Dataset* held_out, int64_t validation_size,
                                     uint64_t seed) {
  if (!held_out) return split_train_validation(train, validation_size, seed);
  if (held_out->labelled() != train.labelled())
    fail("validation data {} {} labels but the training data {} {}", held_out->source,
         held_out->labelled() ? "has" : "has no", train.source, train.labelled() ? "has" : "has none");
  if (held_out->input_names != train.input_names || held_out->more_inputs.size() != train.more_inputs.size())
    fail("validation data {} feeds the model's inputs [{}] but the training data {} feeds [{}]", held_out->source,
         fmt::join(held_out->input_names, ", "), train.source, fmt::join(train.input_names, ", "));
  for (size_t i = 0; i < train.more_inputs.size(); ++i) {
    if (held_out->more_inputs[i].sizes().slice(1) != train.more_inputs[i].sizes().slice(1))
      fail("validation data {} has input '{}' of shape {} but the training data {} has {}", held_out->source,
           train.input_names.at(i + 1), fmt::format("{}", fmt::join(held_out->more_inputs[i].sizes().slice(1), "x")),
           train.source, fmt::format("{}", fmt::join(train.more_inputs[i].sizes().slice(1), "x")));
  }
  if (held_out->images.sizes().slice(1) != train.images.sizes().slice(1)) {
    fail("validation data {} has images of shape {} but the training data {} has {}", held_out->source,
         fmt::format("{}", fmt::join(held_out->images.sizes().slice(1), "x")), train.source,
         fmt::format("{}", fmt::join(train.images.sizes().slice(1), "x")));
  }
  if (validation_size >= held_out->size()) return TrainValidation{train, *held_out};
  return TrainValidation{train, split_train_validation(*held_out, validation_size, seed).validation};
}

int64_t example_count(const std::string& what, int64_t requested, int64_t available, double fraction, int64_t cap,
                      const std::string& of, int64_t keep) {
  if (available - keep < 1) fail("{}: the data has {} {}, too few to take any", what, available, of);
  if (requested > 0) {
    if (requested > available - keep) {
      if (keep > 0) fail("{} {} needs fewer than the {} {}, some of which must stay for training", what, requested, available, of);
      fail("{} {} needs more than the {} {} available", what, requested, available, of);
    }
    return requested;
  }
  const int64_t n = std::clamp<int64_t>(static_cast<int64_t>(std::floor(fraction * static_cast<double>(available))), 1,
                                        std::min(cap, available - keep));
  notice(fmt::format("{}: {} of {} {} ({:.0f}%)", what, n, available, of,
                     100.0 * static_cast<double>(n) / static_cast<double>(available)));
  return n;
}

bool has_test_split(const std::string& spec) { return spec.rfind("idx:", 0) == 0; }

Dataset take(const Dataset& d, int64_t n) {
  if (n < 0) fail("dataset {}: cannot take {} examples", d.source, n);
  if (n >= d.size()) return d;
  return map_examples(d, fmt::format("{} (first {})", d.source, n), [&](const at::Tensor& t) { return t.narrow(0, 0, n); });
}

BatchLoader::BatchLoader(const Dataset& d, int64_t batch_size, bool shuffle, uint64_t seed)
    : data_(d), batch_size_(batch_size), shuffle_(shuffle), seed_(seed) {
  if (batch_size < 1) fail("batch size must be at least 1, got {}", batch_size);
  start_epoch(0);
}

int64_t BatchLoader::num_batches() const { return (data_.size() + batch_size_ - 1) / batch_size_; }

void BatchLoader::start_epoch(int64_t epoch) {
  if (shuffle_) order_ = index_tensor(permutation(data_.size(), seed_ + static_cast<uint64_t>(epoch)));
}

BatchLoader::Batch BatchLoader::batch(int64_t index) const {
  if (index < 0 || index >= num_batches())
    throw InternalError(fmt::format("batch index {} out of range [0, {})", index, num_batches()));
  const int64_t start = index * batch_size_;
  const int64_t count = std::min(batch_size_, data_.size() - start);
  const bool labelled = data_.labels.defined();
  Batch b;
  if (!shuffle_) {
    b.inputs = data_.inputs(start, count);
    if (labelled) b.labels = data_.labels.narrow(0, start, count);
  } else {
    at::Tensor idx = order_.narrow(0, start, count);
    b.inputs = data_.inputs_at(idx);
    if (labelled) b.labels = data_.labels.index_select(0, idx);
  }
  b.images = b.inputs.front();
  return b;
}

at::Tensor BatchLoader::batch_indices(int64_t index) const {
  if (index < 0 || index >= num_batches())
    throw InternalError(fmt::format("batch index {} out of range [0, {})", index, num_batches()));
  const int64_t start = index * batch_size_;
  const int64_t count = std::min(batch_size_, data_.size() - start);
  if (!shuffle_) return at::arange(start, start + count, at::TensorOptions().dtype(at::kLong));
  return order_.narrow(0, start, count);
}

}  // namespace autoprec::data
