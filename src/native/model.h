// A whole network on the native runtime: a list of operators over tensors,
// integer where the integer export quantized them (uint8 activations, weights
// packed at their bit-width, native/conv.h), float elsewhere (float islands).
// A ModelSpec is plain data: deploy/native_export.h builds one from the
// integer ONNX export, save_model()/load_model() keep it in a packed file
// (.apn, docs/native.md has the layout), and Model runs it.
//
// Tensors: a graph input is NCHW [batch, C, H, W] (or [batch, F]) as the
// ONNX model takes it, float or uint8 codes on its grid; inside, every 4-D
// tensor is NHWC. Outputs are in the ONNX model's layout (NCHW when 4-D),
// float or uint8 codes.
//
// Operators and their arithmetic (x_q codes, s scales, z zero points):
//   Quantize     float -> uint8: clamp(nearbyint(x / s) + z, 0, 2^b - 1)
//   Dequantize   uint8 -> float: (x_q - z) * s
//   Conv, Gemm   uint8 input: QuantizedConv's integer sum and requantization
//                (a float output when the output tensor is float: logits);
//                float input: float weights and bias. A Gemm is a 1x1
//                convolution over [batch, K] -> [batch, N] (weights N x K).
//   Add          uint8: clamp(nearbyint(((a-z_a)s_a + (b-z_b)s_b) / s_y) + z_y, lo, hi);
//                float: a + b. Same shapes only.
//   GlobalAveragePool  uint8: clamp(nearbyint((sum - n z_x) s_x / n / s_y) + z_y, lo, hi)
//   MaxPool      on codes or floats (a uint8 output shares the input's grid)
//   Flatten      [N,C,H,W] -> [N, C*H*W] in NCHW order (axis 1)
//   Relu, Clip   float, elementwise
// lo/hi: the op's min_code/max_code (an absorbed Relu or Clip), within the grid.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "native/conv.h"

namespace autoprec::native {

enum class DType : uint8_t { Float32 = 1, Uint8 = 2 };

enum class OpType : uint8_t {
  Quantize = 1,
  Dequantize,
  Conv,
  Gemm,
  Add,
  GlobalAveragePool,
  MaxPool,
  Flatten,
  Relu,
  Clip,
};

const char* op_name(OpType type);

struct TensorSpec {
  std::string name;
  DType dtype = DType::Float32;
  QuantGrid grid;  // Uint8 only
};

struct OpSpec {
  OpType type = OpType::Relu;
  std::string name;  // the ONNX node it runs
  std::vector<int32_t> inputs, outputs;  // tensor ids
  // Conv (OIHW weights) and Gemm (N x K, geometry 1x1 with in = K, out = N);
  // MaxPool reads kernel, strides and pads from it.
  ConvGeometry geometry;
  int weight_bits = 32;               // 1-8: integer, codes + weight_scales + int_bias; 32: float
  std::vector<int8_t> codes;
  std::vector<float> weight_scales;   // per output channel
  std::vector<int32_t> int_bias;      // on the grid s_x * s_w[o]; empty: none
  std::vector<float> float_weights, float_bias;
  float clip_min = -std::numeric_limits<float>::infinity();  // Clip, Relu (0)
  float clip_max = std::numeric_limits<float>::infinity();
  int32_t min_code = 0, max_code = -1;  // integer outputs: the clamp (-1: the grid's top)
};

struct ModelSpec {
  std::vector<TensorSpec> tensors;
  std::vector<OpSpec> ops;  // in execution order
  std::vector<int32_t> inputs, outputs;
  std::vector<int64_t> input_shape;  // of the first input, without the batch: [C, H, W] or [F]
  std::string metadata;              // free text kept with the file (the export's precision, JSON)
};

// The packed file: weights at their bit-width. std::runtime_error naming
// `path` when it cannot be written, or read back as a model file (wrong
// magic or version, truncated, a size out of bounds).
void save_model(const ModelSpec& spec, const std::string& path);
ModelSpec load_model(const std::string& path);

struct LayerInfo {
  std::string name;
  std::string kernel;  // the GEMM kernel, "depthwise", or "float"
  int weight_bits = 32;
  int64_t weight_bytes = 0;  // in memory, as packed
};

class Model {
 public:
  // Checks the spec (tensor ids, types each operator accepts, weight sizes,
  // every input written before it is read) and packs the weights.
  // std::invalid_argument naming the operator when it is not runnable.
  // `threads` > 1: each convolution's output rows are spread over that many
  // threads (the same outputs).
  explicit Model(ModelSpec spec, int threads = 1);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  struct Output {
    std::string name;
    DType dtype = DType::Float32;
    std::vector<int64_t> shape;  // batch first
    std::vector<float> values;   // Float32
    std::vector<uint8_t> codes;  // Uint8
  };
  DType input_dtype() const { return spec_.tensors[spec_.inputs[0]].dtype; }
  // `input`: batch x input_shape values, NCHW, floats (or codes for a uint8
  // input: run_codes). One output per spec output. std::invalid_argument
  // when batch < 1 or the input's type is the other one.
  std::vector<Output> run(const float* input, int64_t batch);
  std::vector<Output> run_codes(const uint8_t* input, int64_t batch);

  // The spec without the integer layers' codes (they live packed in the
  // layers): save the spec given to the constructor, not this one.
  const ModelSpec& spec() const { return spec_; }
  const std::vector<LayerInfo>& layers() const { return layers_; }
  int threads() const;
  // When on, run() adds each operator's wall time to op_seconds() (one entry
  // per spec op, seconds, summed over runs).
  void set_profiling(bool on);
  const std::vector<double>& op_seconds() const { return op_seconds_; }
  // Weight bytes in memory over every Conv and Gemm, as packed.
  int64_t weight_bytes() const;

 private:
  struct Impl;
  void run_op(size_t i);
  std::vector<Output> run_all(const void* input, int64_t batch);
  std::vector<Output> collect_outputs() const;
  ModelSpec spec_;
  std::vector<LayerInfo> layers_;
  std::vector<double> op_seconds_;
  bool profiling_ = false;
  std::unique_ptr<Impl> impl_;
};

// The kernel the runtime runs a (weight bits, activation bits) pair on. With
// AVX-512 VNNI: vnni at 8-bit weights, vnni_packed below (weights at their
// bit-width in memory); AUTOPREC_NATIVE_NO_VNNI=1 in the environment skips
// them. Else maddubs_split at 8-bit weights and activations; maddubs_packed
// otherwise (when the pair fits it, else madd16); reference without AVX2
// (docs/native.md).
Kernel choose_kernel(int weight_bits, int activation_bits);

}  // namespace autoprec::native
