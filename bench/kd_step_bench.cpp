// Training throughput of one knowledge-distillation step (fake-quant student
// at the given precision, FP32 teacher) with the teacher's logits cached and
// not cached, plus the achieved GFLOP/s of the student's forward+backward
// against a measured single-precision matrix-multiply rate on this machine.
// Prints one JSON object per line. bench/kd_step.sh compares with PyTorch.
//
// Usage: kd_step_bench MODEL DATA BITS_W BITS_A BATCH STEPS THREADS
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdlib>
#include <memory>

#include <torch/csrc/autograd/profiler_legacy.h>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "exec/model.h"
#include "exec/summary.h"
#include "quant/quantized_model.h"
#include "train/finetune.h"

using namespace autoprec;

namespace {

// The machine's achievable rate for this kind of work: a dense 3x3
// convolution (64 -> 64 channels, 28x28, batch 32) through the same libtorch
// kernels the models use. (A 1024x1024 at::mm measures the system BLAS,
// which is Debian's reference BLAS unless an optimised one is installed.)
double conv_gflops() {
  at::Tensor x = at::randn({32, 64, 28, 28}), w = at::randn({64, 64, 3, 3});
  at::conv2d(x, w, {}, 1, 1);
  auto start = std::chrono::steady_clock::now();
  int repeats = 10;
  for (int i = 0; i < repeats; ++i) at::conv2d(x, w, {}, 1, 1);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return 2.0 * 32 * 28 * 28 * 64 * 64 * 9 * repeats / seconds / 1e9;
}

double matmul_gflops() {
  at::Tensor a = at::randn({1024, 1024}), b = at::randn({1024, 1024});
  at::mm(a, b);
  auto start = std::chrono::steady_clock::now();
  int repeats = 5;
  for (int i = 0; i < repeats; ++i) at::mm(a, b);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return 2.0 * 1024 * 1024 * 1024 * repeats / seconds / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s MODEL DATA BITS_W BITS_A BATCH STEPS THREADS\n", argv[0]);
    return 2;
  }
  std::string model_path = argv[1];
  int wb = std::stoi(argv[3]), ab = std::stoi(argv[4]);
  int64_t batch = std::stoll(argv[5]), steps = std::stoll(argv[6]);
  at::set_num_threads(std::stoi(argv[7]));
  auto graph = exec::load_model(model_path);
  data::Dataset train = data::take(data::load_dataset(argv[2], data::Split::Train), batch * (steps + 2));
  exec::Executor teacher(graph, model_path);
  exec::ModelSummary summary = exec::summarize(teacher);

  train::FinetuneOptions options;
  options.batch_size = batch;
  options.steps = steps;
  options.quiet = true;
  auto measure = [&](bool cached) {
    quant::QuantizedModel student(graph, quant::uniform(wb, ab), model_path);
    student.calibrate(train.images.narrow(0, 0, 256));
    std::unique_ptr<train::TeacherCache> cache;
    if (cached) cache = std::make_unique<train::TeacherCache>(teacher, train.inputs());
    train::FinetuneOptions warm = options;
    warm.steps = 2;
    train::finetune(student, teacher, train, nullptr, warm, cache.get());
    // AUTOPREC_PROFILE=trace.json writes a Chrome trace of the cached run.
    const char* trace = std::getenv("AUTOPREC_PROFILE");
    std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
    if (trace != nullptr && cached) profile = std::make_unique<torch::autograd::profiler::RecordProfile>(trace);
    return train::finetune(student, teacher, train, nullptr, options, cache.get()).images_per_second;
  };
  double cached = measure(true);
  double uncached = measure(false);
  // Student forward + backward (input and weight gradients) is about three
  // forward passes; the teacher adds one forward pass when not cached.
  double flops_per_image = 2.0 * static_cast<double>(summary.total_macs);
  double peak = conv_gflops();
  double blas = matmul_gflops();
  nlohmann::json j = {{"engine", "autoprec"},
                      {"model", model_path},
                      {"precision", "W" + std::to_string(wb) + "A" + std::to_string(ab)},
                      {"threads", at::get_num_threads()},
                      {"batch", batch},
                      {"steps", steps},
                      {"cached_images_per_second", cached},
                      {"uncached_images_per_second", uncached},
                      {"cached_gflops", cached * 3 * flops_per_image / 1e9},
                      {"uncached_gflops", uncached * 4 * flops_per_image / 1e9},
                      {"conv_gflops", peak},
                      {"matmul_gflops", blas}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}
