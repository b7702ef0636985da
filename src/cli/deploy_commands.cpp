// export: the ONNX QDQ file of a precision configuration.
#include <filesystem>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "deploy/qdq_export.h"
#include "exec/model.h"
#include "graph/tensor_proto.h"
#include "util/error.h"
#include "util/log.h"

namespace autoprec::cli {
namespace {

using nlohmann::json;

struct ExportCliOptions {
  std::string model;
  DataOptions data;
  QuantOptionsCli quant;
  std::string out;
  std::string weight_type = "int8";
  bool json = false;
};

std::string container_name(int32_t type) {
  if (type == deploy::kOnnxInt4) return "INT4";
  if (type == deploy::kOnnxUint4) return "UINT4";
  return graph::onnx_type_name(type);
}

int run_export(const ExportCliOptions& o) {
  if (o.weight_type != "int8" && o.weight_type != "uint8") {
    fail("--weight-type must be int8 or uint8, not '{}'", o.weight_type);
  }
  std::filesystem::path out(o.out);
  std::filesystem::path parent = out.parent_path().empty() ? std::filesystem::path(".") : out.parent_path();
  if (!std::filesystem::is_directory(parent)) fail("cannot write {}: directory {} does not exist", o.out, parent.string());

  auto graph = exec::load_model(o.model);
  deploy::check_exportable(*graph, o.model);
  auto quantized = build_quantized(graph, o.model, o.quant, o.data.spec.empty() ? nullptr : &o.data);
  deploy::ExportOptions options;
  options.source_model = o.model;
  options.uint8_weights = o.weight_type == "uint8";
  deploy::QdqExport e = deploy::export_qdq(*quantized, options);
  deploy::save_qdq(e.model, o.out);

  auto bytes = static_cast<int64_t>(std::filesystem::file_size(o.out));
  auto source_bytes = static_cast<int64_t>(std::filesystem::file_size(o.model));
  if (o.json) {
    json layers = json::array();
    for (const deploy::LayerExport& l : e.layers) {
      layers.push_back({{"name", l.name},
                        {"weight_bits", l.weight_bits},
                        {"activation_bits", l.activation_bits},
                        {"weight_type", container_name(l.weight_type)},
                        {"activation_type", container_name(l.activation_type)},
                        {"activation_clip", l.activation_clip}});
    }
    print_json({{"model", o.model},
                {"precision", o.quant.precision},
                {"out", o.out},
                {"opset", e.opset},
                {"bytes", bytes},
                {"source_bytes", source_bytes},
                {"quantized_weight_bytes", e.quantized_weight_bytes},
                {"layers", layers}});
    return 0;
  }
  fmt::print("{:<28} {:>5} {:>7} {:>6} {:>7}\n", "layer", "W", "A", "Wtype", "Atype");
  for (const deploy::LayerExport& l : e.layers) {
    fmt::print("{:<28} {:>5} {:>7} {:>6} {:>7}{}\n", l.name, l.weight_bits, l.activation_bits,
               container_name(l.weight_type), container_name(l.activation_type), l.activation_clip ? " +Clip" : "");
  }
  fmt::print("wrote {} (QDQ, opset {}): {} vs {} for {}\n", o.out, e.opset, human_bits(8.0 * static_cast<double>(bytes)),
             human_bits(8.0 * static_cast<double>(source_bytes)), o.model);
  return 0;
}

}  // namespace

void register_deploy_commands(CLI::App& app, Runner& runner) {
  static ExportCliOptions o;
  CLI::App* cmd = app.add_subcommand("export", "Write the ONNX QDQ model of a precision configuration");
  cmd->add_option("model", o.model, "ONNX model (FP32, or a fine-tuned model.onnx from `finetune --out DIR`)")->required();
  add_data_options(cmd, o.data, false);
  add_quant_options(cmd, o.quant);
  cmd->get_option("--precision")->required();
  cmd->get_option("--data")->description("Dataset calibrating the ranges when the config holds none: idx:DIR or npy:X,Y");
  cmd->add_option("--out", o.out, "Output ONNX file")->required();
  cmd->add_option("--weight-type", o.weight_type,
                  "Container of 5-8-bit weights: int8 (default, zero point 0) or uint8 (zero point 128; avoids "
                  "ONNX Runtime's U8S8 saturation on AVX2 CPUs without VNNI)");
  cmd->add_flag("--json", o.json, "Print what was written as one JSON object");
  cmd->callback([&runner] { runner = [] { return run_export(o); }; });
}

}  // namespace autoprec::cli
