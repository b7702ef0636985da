#include "deploy/native_runner.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "data/npy.h"
#include "deploy/native_export.h"
#include "util/error.h"

namespace autoprec::deploy {

namespace {

using json = nlohmann::json;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

class NativeServer {
 public:
  json handle(const json& req) {
    const std::string cmd = req.value("cmd", "");
    if (cmd == "load") return load(req);
    if (cmd == "run") return run(req);
    if (cmd == "time") return time(req);
    if (cmd == "quit") return {{"ok", true}};
    fail("unknown cmd '{}' (load, run, time, quit)", cmd);
  }

 private:
  json value_info(int32_t id) const {
    const auto& t = model_->spec().tensors[id];
    json shape = json::array({-1});
    if (id == model_->spec().inputs[0])
      for (int64_t d : model_->spec().input_shape) shape.push_back(d);
    return {{"name", t.name}, {"type", t.dtype == native::DType::Uint8 ? "uint8" : "float32"}, {"shape", shape}};
  }

  json load(const json& req) {
    if (!req.contains("model") || !req["model"].is_string()) fail("\"model\" must be a path");
    model_.reset();
    const int threads = std::max(1, req.value("threads", 1));
    model_ = load_native_model(req["model"].get<std::string>(), threads);
    profiling_ = req.value("profiling", false);
    json inputs = json::array(), outputs = json::array();
    for (int32_t id : model_->spec().inputs) inputs.push_back(value_info(id));
    for (int32_t id : model_->spec().outputs) outputs.push_back(value_info(id));
    return {{"ok", true}, {"inputs", inputs}, {"outputs", outputs}, {"threads_used", model_->threads()}};
  }

  // The one input of a request, as the model takes it.
  at::Tensor input(const json& req) {
    if (!model_) fail("no model loaded (send \"load\" first)");
    if (!req.contains("inputs") || !req["inputs"].is_object() || req["inputs"].size() != 1) {
      fail("\"inputs\" must name the model's one input");
    }
    const auto& [name, spec] = *req["inputs"].items().begin();
    const std::string expected = model_->spec().tensors[model_->spec().inputs[0]].name;
    if (name != expected) fail("input '{}' is not the model's ('{}')", name, expected);
    const bool codes = model_->input_dtype() == native::DType::Uint8;
    at::Tensor x;
    if (spec.contains("file")) {
      x = data::read_npy(spec["file"].get<std::string>());
    } else {
      std::vector<int64_t> shape = spec.value("shape", std::vector<int64_t>{});
      at::Generator gen = at::detail::createCPUGenerator(spec.value("seed", 0));
      const bool random = spec.value("fill", "zeros") == "random";
      x = codes ? (random ? at::randint(0, 256, shape, gen, at::kByte) : at::zeros(shape, at::kByte))
                : (random ? at::rand(shape, gen, at::kFloat) : at::zeros(shape, at::kFloat));
    }
    const auto& want = model_->spec().input_shape;
    if (x.dim() != static_cast<int64_t>(want.size()) + 1 || !std::equal(want.begin(), want.end(), x.sizes().begin() + 1)) {
      fail("input '{}' has shape {}; the model takes [N, {}]", name, c10::str(x.sizes()), fmt::join(want, ", "));
    }
    return (codes ? x.to(at::kByte) : x.to(at::kFloat)).contiguous();
  }

  std::vector<native::Model::Output> infer(const at::Tensor& x) {
    return model_->input_dtype() == native::DType::Uint8 ? model_->run_codes(x.data_ptr<uint8_t>(), x.size(0))
                                                          : model_->run(x.data_ptr<float>(), x.size(0));
  }

  json run(const json& req) {
    at::Tensor x = input(req);
    if (!req.contains("outputs_dir") || !req["outputs_dir"].is_string()) fail("\"outputs_dir\" must be a directory");
    const std::string dir = req["outputs_dir"].get<std::string>();
    const auto t0 = std::chrono::steady_clock::now();
    auto outs = infer(x);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::filesystem::create_directories(dir);
    json files = json::object();
    for (auto& o : outs) {
      std::string safe = o.name;
      for (char& c : safe)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') c = '_';
      const std::string file = dir + "/" + safe + ".npy";
      at::Tensor t = o.dtype == native::DType::Uint8 ? at::from_blob(o.codes.data(), o.shape, at::kByte)
                                                     : at::from_blob(o.values.data(), o.shape, at::kFloat);
      data::write_npy(file, t.clone());
      files[o.name] = file;
    }
    return {{"ok", true}, {"outputs", files}, {"ms", ms}};
  }

  json time(const json& req) {
    at::Tensor x = input(req);
    const int warmup = req.value("warmup", 3), repeats = req.value("repeats", 10);
    if (warmup < 0 || repeats < 1) fail("\"warmup\" must be >= 0 and \"repeats\" >= 1");
    for (int i = 0; i < warmup; ++i) infer(x);
    model_->set_profiling(profiling_);
    std::vector<double> times, kernel_times;
    std::map<std::string, std::vector<double>> per_op;
    std::vector<double> previous(model_->spec().ops.size(), 0.0);
    for (int i = 0; i < repeats; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      infer(x);
      times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      if (!profiling_) continue;
      double total = 0;
      std::map<std::string, double> this_run;
      for (size_t k = 0; k < previous.size(); ++k) {
        const double ms = 1e3 * (model_->op_seconds()[k] - previous[k]);
        previous[k] = model_->op_seconds()[k];
        total += ms;
        this_run[native::op_name(model_->spec().ops[k].type)] += ms;
      }
      kernel_times.push_back(total);
      for (const auto& [op, ms] : this_run) per_op[op].push_back(ms);
    }
    model_->set_profiling(false);
    json r = {{"ok", true}, {"median_ms", median(times)}, {"times_ms", times}};
    if (profiling_) {
      json ops = json::object();
      for (const auto& [op, v] : per_op) ops[op] = median(v);
      r.update({{"kernel_ms", median(kernel_times)}, {"kernel_times_ms", kernel_times}, {"ops_ms", ops}});
    }
    return r;
  }

  std::unique_ptr<native::Model> model_;
  bool profiling_ = false;
};

}  // namespace

int serve_native_runner(std::istream& in, std::ostream& out) {
  NativeServer server;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json reply;
    bool quit = false;
    try {
      json req;
      try {
        req = json::parse(line);
      } catch (const json::exception& e) {
        fail("request is not JSON: {}", e.what());
      }
      if (!req.is_object()) fail("request is not a JSON object");
      quit = req.value("cmd", "") == "quit";
      reply = server.handle(req);
    } catch (const std::exception& e) {
      reply = {{"ok", false}, {"error", one_line(e.what())}};
    }
    out << reply.dump() << std::endl;
    if (quit) break;
  }
  return 0;
}

}  // namespace autoprec::deploy
