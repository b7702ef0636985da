// Verification and deployment bundles: an exported file run in ONNX Runtime
// against autoprec's simulation of the same configuration, and the
// export + verify + latency bundle that `autoprec deploy` and the end of a
// search write.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "deploy/qdq_export.h"
#include "quant/config.h"
#include "quant/quantized_model.h"

namespace autoprec::deploy {

// The runtime a verification runs the export on.
enum class VerifyRuntime { OnnxRuntime, Native };
const char* to_string(VerifyRuntime runtime);  // "onnxruntime-node", "native"
// UserError naming the choices for another name ("onnxruntime", "ort", "native").
VerifyRuntime parse_verify_runtime(const std::string& name);

struct VerifyRequest {
  std::string model;   // the exported file
  // Native: the integer export converted for autoprec's own runtime
  // (deploy/native_export.h), on runtime_threads threads (0: one).
  VerifyRuntime runtime = VerifyRuntime::OnnxRuntime;
  std::string source;  // float model the simulation runs; empty: the file's autoprec.source_model
  std::optional<quant::PrecisionConfig> config;  // empty: the file's autoprec.precision_config
  int runtime_threads = 0;        // ONNX Runtime intra-op threads; 0: its default
  int64_t batch = 250;            // images per run
  double tolerance_points = 0.1;  // allowed top-1 gap, points; never finer than one image
  bool quiet = false;             // no progress line
};

struct VerifyReport {
  std::string model, source;
  int64_t examples = 0;
  VerifyRuntime runtime = VerifyRuntime::OnnxRuntime;
  bool labelled = true;                     // the data has labels; without, the FP32 model's predictions stand in
  double runtime_top1 = 0, simulated_top1 = 0;  // fractions in [0, 1]; without labels: agreement with FP32
  double gap_points = 0;                    // |runtime - simulated| in points
  double tolerance_points = 0;              // the tolerance used (>= one image)
  double requested_tolerance_points = 0;
  double top1_agreement = 0;                // fraction of images with the same prediction
  double max_logit_difference = 0;          // largest |runtime - simulation| over every logit
  int64_t native_weight_bytes = 0;          // native: the packed weights in memory
  bool passed = false;                      // gap_points <= tolerance_points
};

// Runs `request.model` in ONNX Runtime (default graph optimizations), or on
// the native runtime, and the
// simulation rebuilt from the source model and the calibrated configuration
// over `data`, batch by batch. UserError when ONNX Runtime is unavailable,
// the file names no source or configuration and none is given, or the
// configuration holds no calibrated ranges, or the native runtime cannot run
// the file (one line naming the node). A failed comparison is reported
// (passed = false), not thrown.
VerifyReport verify_export(const VerifyRequest& request, const data::Dataset& data);
nlohmann::json to_json(const VerifyReport& report);

// The key/value metadata of an ONNX file. UserError when it is not one.
std::map<std::string, std::string> read_metadata(const std::string& path);
// The names of the graph inputs of an ONNX file that no initializer feeds,
// in order. UserError when it is not one.
std::vector<std::string> read_input_names(const std::string& path);

struct BundleRequest {
  std::string model;  // the float model `quantized` was built from (recorded as the source)
  std::string out;    // bundle directory, already created
  int runtime_threads = 1;  // for the latency measurement
  int repeats = 50;         // timed runs per model (10 warm-up runs first)
  // Native: the bundle also holds OUT/model.apn (autoprec pack), is verified
  // on the native runtime, and the quantized latency is the native runtime's
  // (runtime_threads); FP32 stays timed in ONNX Runtime. Needs the integer form.
  VerifyRuntime runtime = VerifyRuntime::OnnxRuntime;
  bool quiet = false;
};

struct BundleReport {
  std::string onnx;  // OUT/model.onnx
  std::string native_file;  // OUT/model.apn (runtime native)
  QdqExport exported;
  VerifyReport verification;
  int64_t onnx_bytes = 0, fp32_onnx_bytes = 0;
  int64_t theoretical_weight_bytes = 0, fp32_weight_bytes = 0;
  double quantized_ms = 0, fp32_ms = 0;  // batch-1 median wall time (quantized: on the request's runtime)
  int64_t native_weight_bytes = 0;        // runtime native: packed weights in memory
};

// Exports `quantized` to OUT/model.onnx (and its calibrated configuration to
// OUT/precision.yaml), verifies it on `test`, times it and the float model at
// batch 1 on `one` (every input, [1, ...] each) and writes OUT/deploy.json (to_json of the
// report plus `precision`, the config path the caller names).
BundleReport write_bundle(const quant::QuantizedModel& quantized, const BundleRequest& request, const data::Dataset& test,
                          const std::vector<at::Tensor>& one, const std::string& precision_path);
nlohmann::json to_json(const BundleReport& report, const BundleRequest& request, const std::string& precision_path);

}  // namespace autoprec::deploy
