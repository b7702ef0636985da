// Whole-architecture parity with PyTorch: torchvision's resnet18,
// mobilenet_v2 and squeezenet1_1 and a small transformer encoder, exported by
// tests/parity/make_parity_models.py (random weights, non-trivial BatchNorm
// statistics) into $AUTOPREC_PARITY_DIR at test time. The executor's output
// must match PyTorch eager within 1e-4 relative to the output's magnitude.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "data/npy.h"
#include "exec/executor.h"
#include "exec/model.h"

namespace autoprec {
namespace {

class Parity : public ::testing::TestWithParam<std::string> {};

TEST_P(Parity, MatchesPyTorchEager) {
  const char* dir = std::getenv("AUTOPREC_PARITY_DIR");
  ASSERT_NE(dir, nullptr) << "AUTOPREC_PARITY_DIR is not set (ctest sets it after generating the fixtures)";
  const std::string base = std::string(dir) + "/" + GetParam();
  ASSERT_TRUE(std::filesystem::exists(base + ".onnx")) << base << ".onnx is missing";
  exec::SimplifyReport report;
  auto graph = exec::load_model(base + ".onnx", &report);
  exec::Executor executor(graph, GetParam());
  at::Tensor input = data::read_npy(base + "_input.npy");
  at::Tensor expected = data::read_npy(base + "_output.npy");
  at::Tensor output = executor.run({input})[0];
  ASSERT_EQ(output.sizes(), expected.sizes());
  double scale = expected.abs().max().item<double>();
  double error = (output - expected).abs().max().item<double>();
  double relative = error / std::max(scale, 1e-12);
  std::printf("%-16s max |diff| %.3g, relative %.3g (output scale %.3g; folded %d BatchNorm, %d constants)\n",
              GetParam().c_str(), error, relative, scale, report.batchnorms_folded, report.constants_folded);
  EXPECT_LE(relative, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Torchvision, Parity,
                         ::testing::Values("resnet18", "mobilenet_v2", "squeezenet1_1", "tiny_transformer"));

}  // namespace
}  // namespace autoprec
