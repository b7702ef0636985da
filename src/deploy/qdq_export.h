// ONNX QDQ export of a quantized network: the file a real runtime (ONNX
// Runtime) executes with the same integer grids autoprec simulated.
//
// For every quantizable layer of a (calibrated, possibly fine-tuned)
// quant::QuantizedModel:
//   weight      integer initializer q = clamp(round(w / s), -(2^(b-1)-1), 2^(b-1)-1)
//               (exactly the simulation's grid values), per-channel scale s
//               [C] along the layer's channel axis (or a scalar per-tensor),
//               zero point 0, then DequantizeLinear;
//   activation  [Clip] -> QuantizeLinear -> DequantizeLinear with the
//               calibrated scale and zero point, on that layer's input only
//               (other readers of the same value still see float).
// Bias and every other node stay float and unchanged; BatchNorm is already
// folded into the graph. Bits 16/32 leave a tensor float.
//
// That is format qdq. A model simulated in format int (quant/integer_form.h)
// is exported in the integer form instead, which ONNX Runtime fuses into
// integer kernels: every quantized tensor gets one QuantizeLinear (uint8, its
// calibrated scale and zero point) where it is produced and one
// DequantizeLinear per reader (graph outputs included: the producer writes
// NAME_float, the DequantizeLinear writes NAME); weights of 2-8 bits are INT8
// per channel (ORT has no integer Conv for INT4), the bias of an integer
// layer is INT32 round(b / (s_x * s_w[c])) with DequantizeLinear of scale
// s_x * s_w[c] (axis 0); absorbed Relu/Clip nodes stay in the file for ORT to
// remove; metadata autoprec.format "int-1", and each layer's entry in
// autoprec.precision has "integer".
//
// Containers (the integer type the file stores):
//   weights      bits 2-4: INT4 (22), opset 21, IR 10; bits 5-8: INT8, opset
//                13 (or the model's own opset when newer); UINT8 with zero
//                point 128 instead of INT8 on request (ExportOptions)
//   activations  UINT8 for every b in 2..8
// One INT4 weight puts the whole model at opset 21. INT4 is packed two per
// byte, low nibble first. The activation grid of the simulation is always
// unsigned [0, 2^b-1] with a zero point inside it, hence unsigned containers.
// Activations do not use UINT4 although ONNX 1.16 allows it: ONNX Runtime
// 1.30 executes UINT4 QuantizeLinear/DequantizeLinear, but its graph
// optimizers break on them (QDQ propagation hands a UINT4 tensor to MaxPool,
// "invalid type"; ClipQuantFusion aborts session creation on a UINT4 zero
// point), so 2-4-bit activations go in UINT8 with the Clip below.
//
// Clamping: a container wider than b bits saturates too late for the upper
// end of the b-bit grid, so a Clip(max = (2^b-1 - zp)·s) on the float side
// precedes QuantizeLinear; round(max/s) + zp = 2^b-1, so the runtime's
// integers are exactly the simulation's clamp(round(x/s) + zp, 0, 2^b-1).
// The lower end needs nothing: the unsigned container saturates at 0 = qmin.
// Weights need no Clip: their stored values are already on the b-bit grid.
//
// Metadata (metadata_props):
//   autoprec.format            "qdq-1"
//   autoprec.precision         JSON {layer: {weight_bits, activation_bits,
//                              weight_type, activation_type}} with the true
//                              bit-widths; the type is the ONNX container
//                              name ("INT4", "UINT8", "FLOAT")
//   autoprec.precision_config  the calibrated precision config (YAML), so the
//                              simulation can be rebuilt from the file alone
//   autoprec.source_model      ExportOptions::source_model
//
// Debian's libonnx 1.12 knows neither opset 21 nor INT4/UINT4, so its checker
// cannot check the opset-21 files: validate_qdq() is autoprec's own
// structural check, and save_qdq() runs the libonnx checker only at opset < 21.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <onnx/onnx_pb.h>

#include "graph/ir.h"
#include "graph/qdq_format.h"
#include "quant/quantized_model.h"

namespace autoprec::deploy {

// The containers and 4-bit packing of the format (graph/qdq_format.h).
using graph::activation_container;
using graph::container_bits;
using graph::kOnnxInt4;
using graph::kOnnxUint4;
using graph::kOpset4Bit;
using graph::kOpset8Bit;
using graph::pack_4bit;
using graph::unpack_4bit;
using graph::weight_container;

struct ExportOptions {
  std::string source_model;  // recorded in autoprec.source_model
  // 5-8-bit weights as UINT8 with zero point 128 (stored q + 128: the same
  // values) instead of INT8 with zero point 0. ONNX Runtime 1.30 on AVX2
  // CPUs without VNNI fuses INT8-weight QDQ into U8S8 integer kernels whose
  // 16-bit intermediate sums can saturate (on small_cnn_fmnist W8A8: largest
  // logit error 0.59 vs 0.053, top-1 agreement 99.0% vs 100%); U8U8 kernels
  // do not saturate. INT8 stays the default: symmetric INT8 weights are what
  // other runtimes (TensorRT) require.
  bool uint8_weights = false;
};

// What was written for one layer.
struct LayerExport {
  std::string name;
  int weight_bits = 32;
  int activation_bits = 32;
  int32_t weight_type = 1;      // ONNX container type; FLOAT (1) when kept float
  int32_t activation_type = 1;
  bool activation_clip = false;  // a Clip restricts the activation to the b-bit grid
  bool integer = false;          // format int: the layer runs on integers (its input and output quantized)
  bool integer_bias = false;     // format int: its bias is stored as int32
  bool matmul_nbits = false;     // runs as com.microsoft MatMulNBits (quant/matmul_nbits.h)
};

struct QdqExport {
  onnx::ModelProto model;
  int64_t opset = 0;
  std::vector<LayerExport> layers;  // graph order
  int64_t quantized_weight_bytes = 0;  // bytes of the integer weight initializers as stored
  quant::QuantForm format = quant::QuantForm::Qdq;
  // Format int: the float islands (nodes left float that read or feed a
  // quantized tensor; MatMulNBits layers are not among them), how many nodes
  // run on integers, how many tensors have their own scale.
  std::vector<std::string> float_nodes;
  int integer_nodes = 0;
  int quantized_tensors = 0;
};

// UserError (naming `origin`) when `graph` cannot be exported at all: it is
// older than opset 13. Cheap; callers run it before calibrating.
void check_exportable(const graph::Graph& graph, const std::string& origin);

// Builds the QDQ model of `model` (see the top of this file). UserError, one
// line, when a quantized activation has no calibrated range, when the model is
// older than opset 13, or when reaching opset 21 would change the meaning of
// one of its nodes that export cannot rewrite.
QdqExport export_qdq(const quant::QuantizedModel& model, const ExportOptions& options = {});

// Structural check of a QDQ model, for files libonnx 1.12 cannot check:
// opset and IR version fit the data types used; every initializer's bytes fit
// its dims and type; nodes are topologically ordered and read only defined
// values; Quantize/DequantizeLinear have a positive finite float scale, a zero
// point of the scale's shape (and of the data's type for DequantizeLinear),
// and a per-axis axis that fits the data; and, against autoprec.precision,
// every quantized weight's integers and every activation's zero point lie on
// the layer's b-bit grid and a container wider than b bits is preceded by a
// Clip that holds the activation to it. UserError naming the first problem.
void validate_qdq(const onnx::ModelProto& model);

// validate_qdq(), then the libonnx checker when the opset is below 21, then
// an atomic write to `path` (graph::save_model_proto).
void save_qdq(const onnx::ModelProto& model, const std::string& path);

// Rewrites `graph` (default-domain opset 13..17) for opset `target` (> the
// graph's): Reduce* `axes` attributes become inputs (opset 18), Split without
// a `split` input gets `num_outputs`. UserError for nodes whose meaning
// changed in a way export does not rewrite (GridSample, DFT).
void upgrade_opset(graph::Graph& graph, int64_t target);

}  // namespace autoprec::deploy
