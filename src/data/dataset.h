// Datasets: loading, preprocessing, splitting and batching.
//
// A Dataset holds every example in memory: the model's inputs, float32 images
// [N, C, H, W] (already preprocessed), float32 feature arrays [N, ...] or
// int64 token ids [N, T], and, when the data has them, int64 labels [N].
// Datasets are loaded from a spec string ("idx:DIR", "npy:INPUTS.npy,LABELS.npy"
// or "npy:INPUTS.npy", see load_dataset).
// Every shuffle (train/validation split, per-epoch batch order) is a
// Fisher-Yates permutation driven by std::mt19937_64, whose output the C++
// standard fixes, with j drawn from [0, i] by rejection sampling on the raw
// 64-bit outputs; results are therefore identical across platforms and
// libtorch versions. Problems with user input throw autoprec::UserError.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace autoprec::data {

// An example set in memory.
struct Dataset {
  at::Tensor images;   // the (first) input: float32 [N, C, H, W] preprocessed images, float32 [N, ...] or int64 tokens [N, T]
  at::Tensor labels;   // int64 [N]; undefined when the data has no labels
  std::string source;  // the spec it came from, for messages
  // A model with several inputs (npz:): its inputs after the first, each
  // [N, ...] like `images`, in the order of the graph's inputs.
  std::vector<at::Tensor> more_inputs;
  // npz: the graph input each of images, more_inputs... feeds; empty otherwise.
  std::vector<std::string> input_names;
  int64_t size() const;  // N (0 if images is undefined)
  bool labelled() const { return labels.defined(); }
  // Every input in graph order, `images` first: what exec::Executor::run takes.
  std::vector<at::Tensor> inputs() const;
  // Every input narrowed to the examples [start, start + count).
  std::vector<at::Tensor> inputs(int64_t start, int64_t count) const;
  // Every input at the examples `indices` (int64 [B]).
  std::vector<at::Tensor> inputs_at(const at::Tensor& indices) const;
};

enum class Split { Train, Test };

// "train" -> Split::Train, "test" -> Split::Test, else UserError.
Split parse_split(const std::string& name);

struct Preprocess {
  // Multiplier applied to raw pixel values; <0 means automatic: 1/255 for
  // integer images, 1 for float images.
  double scale = -1;
  // Per channel (or one value for all channels), applied after scale:
  // (x*scale - mean)/std, evaluated in double precision and rounded once to
  // float32. Empty = none (mean 0, std 1).
  std::vector<float> mean;
  std::vector<float> std;
};

// Loads a dataset.
// spec: "idx:DIR" -> DIR/train-images-idx3-ubyte[.gz] and
//       DIR/train-labels-idx1-ubyte[.gz] for Split::Train, DIR/t10k-* for
//       Split::Test (raw names are preferred when both exist).
//       "npy:INPUTS.npy,LABELS.npy" -> those two files; split is ignored.
//       "npy:INPUTS.npy" -> inputs without labels (label-free metrics, pure
//       distillation).
//       "npz:FILE.npz" -> one array per graph input, named as the input
//       (numpy.savez(FILE, ids=..., mask=...), compressed or not), and
//       optionally an array "labels"; split is ignored. With
//       `graph_inputs` (the model's input names, in order) the arrays are
//       put in that order, and a missing or unknown name is an error; one
//       array for a one-input model may have any name (numpy's arr_0).
// Images (uint8, or float32/float64 with 3 or 4 dimensions): [N,H,W] become
// [N,1,H,W], [N,C,H,W] are kept, and `pre` applies. Other float arrays
// ([N], [N, F], or 5-D and more) are kept as they are, in float32. Integer
// inputs other than uint8 (int64, int32: token ids) become int64 unchanged,
// and `pre` does not apply to them. Labels int64, int32 or uint8 (converted
// to int64), 1-D, non-negative, with the same N as the inputs, and N > 0.
// In an npz, every array follows these rules on its own (`pre` applies to
// its image arrays, and is an error only when it has none) and all have the
// same N. Errors name the offending file (and array).
Dataset load_dataset(const std::string& spec, Split split, const Preprocess& pre = {},
                     const std::vector<std::string>& graph_inputs = {});

// The arrays of an npz (read_npz; `path` names it in errors) that feed the
// graph inputs `graph_inputs`, in that order: one array for a one-input
// model whatever its name; otherwise every input needs the array of its name
// and every array must be an input. UserError naming the array.
std::vector<std::pair<std::string, at::Tensor>> arrays_for_inputs(std::vector<std::pair<std::string, at::Tensor>> arrays,
                                                                  const std::vector<std::string>& graph_inputs,
                                                                  const std::string& path);

struct TrainValidation {
  Dataset train;
  Dataset validation;
};

// Deterministic split into train/validation: the first `validation_size`
// entries of the seeded permutation of [0, N) form the validation set, the
// rest the training set; each part keeps the original relative order of its
// examples. UserError unless 0 <= validation_size < N.
TrainValidation split_train_validation(const Dataset& d, int64_t validation_size, uint64_t seed);

// The training and validation sets of a run. Without `held_out`: the split
// above, `validation_size` examples carved from `train`. With it: `train`
// whole, and `validation_size` examples of `held_out` (the seeded selection
// above; all of it when validation_size >= its size). UserError when
// `held_out` has another image shape than `train`.
TrainValidation train_and_validation(const Dataset& train, const Dataset* held_out, int64_t validation_size,
                                     uint64_t seed);

// How many examples a step uses (docs/configuration.md, "Example counts").
// `requested` > 0 is what the user gave: UserError naming `what` when only
// `available` - `keep` (< requested) can be taken (`keep` examples must stay
// for training). `requested` == 0 adapts: `fraction` of `available`, at least
// 1 and at most min(`cap`, available - keep), logged once as
// "validation: 259 of 1297 training examples (20%)". UserError when nothing can be taken.
int64_t example_count(const std::string& what, int64_t requested, int64_t available, double fraction, int64_t cap,
                      const std::string& of = "examples", int64_t keep = 0);

// Whether `spec` names a dataset with a test split of its own (idx:); an npy:
// dataset is one set, so what a command evaluates on it is not a test score.
bool has_test_split(const std::string& spec);

// The first n examples (views, no copy); n >= size gives the whole set.
// UserError if n < 0.
Dataset take(const Dataset& d, int64_t n);

// Iterates a dataset in batches, in order or shuffled per epoch (permutation
// seeded with seed + epoch). The last, partial batch is kept. The loader
// shares the dataset's tensors.
class BatchLoader {
 public:
  // UserError if batch_size < 1. The permutation starts at epoch 0.
  BatchLoader(const Dataset& d, int64_t batch_size, bool shuffle, uint64_t seed);

  // ceil(N / batch_size).
  int64_t num_batches() const;

  // Sets the permutation for this epoch (no-op when not shuffling).
  void start_epoch(int64_t epoch);

  struct Batch {
    at::Tensor images;  // the first input, e.g. float32 [B, C, H, W]
    at::Tensor labels;  // int64 [B]; undefined when the data has no labels
    std::vector<at::Tensor> inputs;  // every input, `images` first (Dataset::inputs)
  };

  // Batch `index` in [0, num_batches()) of the current epoch; B = batch_size
  // except possibly for the last batch. std::out_of_range for a bad index.
  Batch batch(int64_t index) const;
  // The dataset indices (int64 [B]) that batch(index) holds, e.g. to look up
  // per-example data cached elsewhere.
  at::Tensor batch_indices(int64_t index) const;

 private:
  Dataset data_;
  int64_t batch_size_;
  bool shuffle_;
  uint64_t seed_;
  at::Tensor order_;  // int64 [N] permutation of the current epoch (shuffle only)
};

}  // namespace autoprec::data
