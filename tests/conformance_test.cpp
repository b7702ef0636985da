// The ONNX backend conformance cases shipped by Debian's libonnx-testdata:
// every case whose operators autoprec supports runs through the importer,
// the simplification passes and the executor, and its outputs are compared
// with the reference outputs (rtol 1e-3, atol 1e-5: the ONNX backend test's
// rtol with a float32-sized atol). Cases that cannot run say why; the
// environment prints counts and the skip reasons at the end.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "exec/executor.h"
#include "exec/model.h"
#include "exec/registry.h"
#include "graph/onnx_import.h"
#include "graph/tensor_proto.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace autoprec {
namespace {

const char* kRoot = "/usr/share/libonnx-testdata/data";

// Cases that run but whose semantics autoprec deliberately does not follow.
const char* kRandomDropout = "Dropout in training mode draws a random mask; autoprec executes inference graphs";
const std::map<std::string, std::string> kKnownDeviations = {
    {"node/test_training_dropout", kRandomDropout},
    {"node/test_training_dropout_default", kRandomDropout},
    {"node/test_training_dropout_default_mask", kRandomDropout},
    {"node/test_training_dropout_mask", kRandomDropout},
    {"node/test_training_dropout_zero_ratio", kRandomDropout},
    {"node/test_training_dropout_zero_ratio_mask", kRandomDropout},
};

struct Tally {
  int total = 0;
  int ran = 0;
  int passed = 0;
  std::map<std::string, std::vector<std::string>> skipped;  // reason -> cases
};

Tally& tally() {
  static Tally t;
  return t;
}

std::vector<std::string> list_cases() {
  std::vector<std::string> cases;
  for (const char* suite : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
    fs::path dir = fs::path(kRoot) / suite;
    if (!fs::is_directory(dir)) continue;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (fs::exists(entry.path() / "model.onnx")) cases.push_back(std::string(suite) + "/" + entry.path().filename().string());
    }
  }
  std::sort(cases.begin(), cases.end());
  return cases;
}

void skip(const std::string& name, const std::string& reason) { tally().skipped[reason].push_back(name); }

std::string shorten(const std::string& message) {
  // Group skip reasons by their leading clause so the summary stays short.
  std::string s = message;
  auto model = s.find("model.onnx");
  if (model != std::string::npos) s = s.substr(model + 10);
  auto paren = s.find(" (node");
  if (paren != std::string::npos) s = s.substr(0, paren);
  return s.substr(0, 140);
}

class Conformance : public ::testing::TestWithParam<std::string> {};

TEST_P(Conformance, MatchesReferenceOutputs) {
  const std::string name = GetParam();
  const fs::path dir = fs::path(kRoot) / name;
  ++tally().total;
  std::shared_ptr<graph::Graph> graph;
  try {
    graph = exec::load_model((dir / "model.onnx").string());
  } catch (const UserError& e) {
    std::string reason = shorten(e.what());
    skip(name, reason);
    GTEST_SKIP() << reason;
  }
  std::unique_ptr<exec::Executor> executor;
  try {
    executor = std::make_unique<exec::Executor>(graph, name);
  } catch (const UserError& e) {
    skip(name, shorten(e.what()));
    GTEST_SKIP() << e.what();
  }

  std::vector<fs::path> data_sets;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_directory() && entry.path().filename().string().rfind("test_data_set_", 0) == 0) data_sets.push_back(entry.path());
  }
  std::sort(data_sets.begin(), data_sets.end());
  if (data_sets.empty()) {
    skip(name, "no test data sets");
    GTEST_SKIP();
  }

  std::string failure;
  bool deviation = kKnownDeviations.count(name) != 0;
  for (const fs::path& set : data_sets) {
    exec::Tensors inputs;
    exec::Tensors expected;
    try {
      for (size_t i = 0; fs::exists(set / ("input_" + std::to_string(i) + ".pb")); ++i) {
        inputs.push_back(graph::read_tensor_file((set / ("input_" + std::to_string(i) + ".pb")).string()));
      }
      for (size_t i = 0; fs::exists(set / ("output_" + std::to_string(i) + ".pb")); ++i) {
        expected.push_back(graph::read_tensor_file((set / ("output_" + std::to_string(i) + ".pb")).string()));
      }
    } catch (const UserError& e) {
      skip(name, std::string("test data: ") + shorten(e.what()));
      GTEST_SKIP() << e.what();
    }
    if (inputs.size() != graph->inputs.size()) {
      // Some cases feed optional inputs the model lists as graph inputs.
      skip(name, "data set input count differs from the graph's inputs");
      GTEST_SKIP();
    }
    exec::Tensors outputs;
    try {
      outputs = executor->run(inputs);
    } catch (const std::exception& e) {
      failure = std::string("run failed: ") + e.what();
      break;
    }
    if (outputs.size() != expected.size()) {
      failure = "output count differs";
      break;
    }
    for (size_t i = 0; i < outputs.size() && failure.empty(); ++i) {
      at::Tensor got = outputs[i];
      const at::Tensor& want = expected[i];
      if (got.sizes() != want.sizes()) {
        failure = fmt::format("output {} has shape {}, expected {}", i, c10::str(got.sizes()), c10::str(want.sizes()));
      } else if (got.scalar_type() != want.scalar_type()) {
        failure = fmt::format("output {} has type {}, expected {}", i, c10::toString(got.scalar_type()),
                              c10::toString(want.scalar_type()));
      } else if (want.is_floating_point()) {
        at::Tensor g = got.to(at::kDouble);
        at::Tensor w = want.to(at::kDouble);
        bool close = at::allclose(g, w, 1e-3, 1e-5, /*equal_nan=*/true);
        if (!close) failure = fmt::format("output {} differs by up to {}", i, (g - w).abs().nan_to_num(0).max().item<double>());
      } else if (!at::equal(got, want)) {
        failure = fmt::format("output {} differs", i);
      }
    }
    if (!failure.empty()) break;
  }
  if (deviation) {
    skip(name, "known deviation: " + kKnownDeviations.at(name));
    GTEST_SKIP() << kKnownDeviations.at(name);
  }
  ++tally().ran;
  if (failure.empty()) ++tally().passed;
  EXPECT_TRUE(failure.empty()) << name << ": " << failure;
}

INSTANTIATE_TEST_SUITE_P(OnnxBackend, Conformance, ::testing::ValuesIn(list_cases()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

class Summary : public ::testing::Environment {
 public:
  void TearDown() override {
    const Tally& t = tally();
    int skipped = 0;
    for (const auto& [reason, cases] : t.skipped) skipped += static_cast<int>(cases.size());
    std::printf("\nONNX conformance: %d cases, %d ran, %d passed, %d failed, %d skipped\n", t.total, t.ran, t.passed,
                t.ran - t.passed, skipped);
    std::vector<std::pair<std::string, std::vector<std::string>>> reasons(t.skipped.begin(), t.skipped.end());
    std::sort(reasons.begin(), reasons.end(), [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
    std::printf("Skipped, by reason:\n");
    for (const auto& [reason, cases] : reasons) {
      std::printf("  %4zu  %s  [%s%s]\n", cases.size(), reason.c_str(), cases.front().c_str(),
                  cases.size() > 1 ? ", ..." : "");
    }
  }
};

const auto* const kSummary = ::testing::AddGlobalTestEnvironment(new Summary);

}  // namespace
}  // namespace autoprec
