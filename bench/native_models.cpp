// Batch-1 latency and memory of one model on the native runtime: loads a
// packed .apn file (autoprec pack), runs WARMUP then REPEATS single-image
// inferences on a fixed pseudo-random input in [0, 1], and prints one JSON
// line: {"model", "median_ms", "min_ms", "weight_bytes", "peak_rss_kib",
// "layers": [{name, kernel, weight_bits, weight_bytes}]}. One model per
// process, so that the peak resident memory is this model's.
//
//   native_models MODEL.apn [REPEATS=200] [WARMUP=20] [profile|-] [THREADS=1]
// With "profile", stderr also gets each operator's share of the time.
#include <sys/resource.h>

#include <algorithm>
#include <map>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "native/model.h"

int main(int argc, char** argv) {
  using namespace autoprec::native;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.apn [REPEATS] [WARMUP]\n", argv[0]);
    return 2;
  }
  const int repeats = argc > 2 ? std::stoi(argv[2]) : 200, warmup = argc > 3 ? std::stoi(argv[3]) : 20;
  try {
    const int threads = argc > 5 ? std::stoi(argv[5]) : 1;
    Model model(load_model(argv[1]), threads);
    int64_t size = 1;
    for (int64_t d : model.spec().input_shape) size *= d;
    std::vector<float> x(static_cast<size_t>(size));
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (float& v : x) v = u(rng);
    const bool profile = argc > 4 && std::string(argv[4]) == "profile";
    std::vector<double> ms;
    for (int i = 0; i < warmup + repeats; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      auto out = model.run(x.data(), 1);
      const auto t1 = std::chrono::steady_clock::now();
      if (i >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      if (i + 1 == warmup) model.set_profiling(profile);
    }
    if (profile) {
      double total = 0;
      std::map<std::string, double> by_type;
      for (size_t i = 0; i < model.spec().ops.size(); ++i) {
        const OpSpec& op = model.spec().ops[i];
        total += model.op_seconds()[i];
        by_type[op_name(op.type)] += model.op_seconds()[i];
      }
      for (const auto& [type, seconds] : by_type)
        std::fprintf(stderr, "%-18s %6.1f%%  %8.1f us/run\n", type.c_str(), 100 * seconds / total, 1e6 * seconds / repeats);
      for (size_t i = 0; i < model.spec().ops.size(); ++i)
        std::fprintf(stderr, "  %-45s %-10s %8.1f us\n", model.spec().ops[i].name.c_str(), op_name(model.spec().ops[i].type),
                     1e6 * model.op_seconds()[i] / repeats);
    }
    std::sort(ms.begin(), ms.end());
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    std::printf("{\"model\":\"%s\",\"threads\":%d,\"median_ms\":%.4f,\"min_ms\":%.4f,\"weight_bytes\":%lld,\"peak_rss_kib\":%ld,\"layers\":[",
                argv[1], threads, ms[ms.size() / 2], ms.front(), static_cast<long long>(model.weight_bytes()), usage.ru_maxrss);
    for (size_t i = 0; i < model.layers().size(); ++i) {
      const LayerInfo& l = model.layers()[i];
      std::printf("%s{\"name\":\"%s\",\"kernel\":\"%s\",\"weight_bits\":%d,\"weight_bytes\":%lld}", i ? "," : "",
                  l.name.c_str(), l.kernel.c_str(), l.weight_bits, static_cast<long long>(l.weight_bytes));
    }
    std::printf("]}\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "native_models: %s\n", e.what());
    return 1;
  }
  return 0;
}
