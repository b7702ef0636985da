#include "runtime/runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "data/npy.h"
#include "util/error.h"

extern char** environ;

namespace autoprec::runtime {
namespace {

using nlohmann::json;
constexpr size_t kStderrKeep = 4096;

void ignore_sigpipe_once() {
  static bool done = [] {
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)done;
}

std::string command_text(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

std::string shorten(std::string s, size_t n = 120) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  if (s.size() > n) s = s.substr(0, n) + "...";
  return s;
}

}  // namespace

RunnerProcess::RunnerProcess(std::vector<std::string> argv, std::string what) : argv_(std::move(argv)), what_(std::move(what)) {
  if (argv_.empty()) fail("{}: empty command", what_);
  ignore_sigpipe_once();
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) fail("{}: cannot create a pipe: {}", what_, std::strerror(errno));
  if (pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]), ::close(in[1]);
    fail("{}: cannot create a pipe: {}", what_, std::strerror(errno));
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    ::close(in[0]), ::close(in[1]), ::close(out[0]), ::close(out[1]);
    fail("{}: cannot create a pipe: {}", what_, std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<char*> args;
  for (auto& a : argv_) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]), ::close(out[1]), ::close(err[1]);
  if (rc != 0) {
    ::close(in[1]), ::close(out[0]), ::close(err[0]);
    fail("cannot start {} `{}`: {}", what_, command_text(argv_), std::strerror(rc));
  }
  pid_ = pid;
  to_child_ = in[1];
  from_child_ = out[0];
  err_child_ = err[0];
  fcntl(from_child_, F_SETFL, fcntl(from_child_, F_GETFL) | O_NONBLOCK);
  fcntl(err_child_, F_SETFL, fcntl(err_child_, F_GETFL) | O_NONBLOCK);
  spdlog::debug("started {} (pid {}): {}", what_, pid_, command_text(argv_));
}

RunnerProcess::~RunnerProcess() {
  try {
    close();
  } catch (...) {
  }
}

void RunnerProcess::drain_stderr() {
  if (err_child_ < 0) return;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(err_child_, buf, sizeof buf);
    if (n <= 0) break;
    std::string chunk(buf, static_cast<size_t>(n));
    spdlog::debug("{} stderr: {}", what_, shorten(chunk, 400));
    stderr_tail_ += chunk;
    if (stderr_tail_.size() > kStderrKeep) stderr_tail_ = stderr_tail_.substr(stderr_tail_.size() - kStderrKeep);
  }
}

std::string RunnerProcess::last_stderr_line() const {
  size_t end = stderr_tail_.find_last_not_of(" \r\n\t");
  if (end == std::string::npos) return "";
  size_t start = stderr_tail_.rfind('\n', end);
  start = start == std::string::npos ? 0 : start + 1;
  return shorten(stderr_tail_.substr(start, end - start + 1), 200);
}

// Reaps the child (already exiting) and describes how it ended.
std::string RunnerProcess::exit_description() {
  int status = 0;
  pid_t r = -1;
  for (int i = 0; i < 200; ++i) {  // up to 2 s for the exit after EOF
    r = waitpid(pid_, &status, WNOHANG);
    if (r != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (r == 0) {
    kill(pid_, SIGKILL);
    r = waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  drain_stderr();
  if (r < 0) return "ended";
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return "ended";
}

void RunnerProcess::die(const std::string& reason) {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  drain_stderr();
  for (int* fd : {&to_child_, &from_child_, &err_child_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  std::string tail = last_stderr_line();
  throw UserError(tail.empty() ? reason : reason + " (stderr: " + tail + ")");
}

json RunnerProcess::request(const json& req, double timeout_s) {
  std::string cmd = req.value("cmd", std::string("?"));
  if (pid_ <= 0) fail("{} is not running (request '{}')", what_, cmd);
  std::string line = req.dump() + "\n";
  size_t written = 0;
  while (written < line.size()) {
    ssize_t n = ::write(to_child_, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string how = exit_description();
      die(fmt::format("{} {} before request '{}'", what_, how, cmd));
    }
    written += static_cast<size_t>(n);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  bool out_open = true;
  while (true) {
    size_t nl = out_buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string response = out_buffer_.substr(0, nl);
      out_buffer_.erase(0, nl + 1);
      if (!response.empty() && response.back() == '\r') response.pop_back();
      json j = json::parse(response, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("ok") || !j["ok"].is_boolean()) {
        die(fmt::format("{} printed something other than a JSON response to '{}': '{}'", what_, cmd, shorten(response, 80)));
      }
      if (!j["ok"].get<bool>()) {
        std::string error = j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : j.dump();
        fail("{} failed on '{}': {}", what_, cmd, shorten(error, 300));
      }
      return j;
    }
    if (!out_open) {
      std::string how = exit_description();
      die(fmt::format("{} {} while answering '{}'", what_, how, cmd));
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) die(fmt::format("{} did not answer '{}' within {:g} s and was killed", what_, cmd, timeout_s));
    pollfd fds[2] = {{from_child_, POLLIN, 0}, {err_child_, POLLIN, 0}};
    int n = poll(fds, err_child_ >= 0 ? 2 : 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (n < 0 && errno != EINTR) die(fmt::format("{}: poll failed: {}", what_, std::strerror(errno)));
    if (err_child_ >= 0 && (fds[1].revents & (POLLIN | POLLHUP))) {
      drain_stderr();
      if (fds[1].revents & POLLHUP && !(fds[1].revents & POLLIN)) {
        ::close(err_child_);
        err_child_ = -1;
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[65536];
      while (true) {
        ssize_t r = ::read(from_child_, buf, sizeof buf);
        if (r > 0) {
          out_buffer_.append(buf, static_cast<size_t>(r));
          if (out_buffer_.size() > (64u << 20)) die(fmt::format("{} printed over 64 MiB without a newline", what_));
          continue;
        }
        if (r == 0) out_open = false;
        break;  // EAGAIN or EOF
      }
    }
  }
}

void RunnerProcess::close() {
  if (pid_ > 0) {
    if (to_child_ >= 0) {
      std::string quit = "{\"cmd\":\"quit\"}\n";
      (void)!::write(to_child_, quit.data(), quit.size());
      ::close(to_child_);
      to_child_ = -1;
    }
    int status = 0;
    bool reaped = false;
    for (int i = 0; i < 200 && !reaped; ++i) {
      reaped = waitpid(pid_, &status, WNOHANG) != 0;
      if (!reaped) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!reaped) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }
  drain_stderr();
  for (int* fd : {&to_child_, &from_child_, &err_child_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

std::string tools_dir() {
  if (const char* env = std::getenv("AUTOPREC_TOOLS_DIR"); env && *env) return env;
  return std::string(AUTOPREC_SOURCE_DIR) + "/tools";
}

bool ort_available(std::string* why) {
  std::string dir = tools_dir();
  std::string reason;
  if (!std::filesystem::exists(dir + "/ort_runner.js")) {
    reason = fmt::format("the ONNX Runtime runner {}/ort_runner.js does not exist (set AUTOPREC_TOOLS_DIR)", dir);
  } else if (!std::filesystem::exists(dir + "/node_modules/onnxruntime-node")) {
    reason = fmt::format("onnxruntime-node is not installed in {}/node_modules; run scripts/setup", dir);
  } else {
    const char* node = std::getenv("AUTOPREC_NODE");
    std::string exe = node && *node ? node : "node";
    bool found = exe.find('/') != std::string::npos && access(exe.c_str(), X_OK) == 0;
    if (!found && exe.find('/') == std::string::npos) {
      const char* path = std::getenv("PATH");
      std::string p = path ? path : "/usr/bin:/bin";
      size_t start = 0;
      while (!found && start <= p.size()) {
        size_t end = p.find(':', start);
        if (end == std::string::npos) end = p.size();
        std::string candidate = (end > start ? p.substr(start, end - start) : ".") + "/" + exe;
        found = access(candidate.c_str(), X_OK) == 0;
        start = end + 1;
      }
    }
    if (!found) reason = fmt::format("Node.js (`{}`) is not on PATH; run scripts/setup or set AUTOPREC_NODE", exe);
  }
  if (why) *why = reason;
  return reason.empty();
}

std::vector<std::string> ort_runner_command() {
  std::string why;
  if (!ort_available(&why)) throw UserError(why);
  const char* node = std::getenv("AUTOPREC_NODE");
  return {node && *node ? node : "node", tools_dir() + "/ort_runner.js"};
}

OnnxRunner::OnnxRunner(RunnerOptions options) : options_(std::move(options)) {
  if (options_.command.empty()) options_.command = ort_runner_command();
  std::string templ = (std::filesystem::temp_directory_path() / "autoprec_runner_XXXXXX").string();
  if (!mkdtemp(templ.data())) fail("cannot create a temporary directory for the runner: {}", std::strerror(errno));
  temp_dir_ = templ;
  process_ = std::make_unique<RunnerProcess>(options_.command, options_.what);
}

OnnxRunner::~OnnxRunner() {
  process_.reset();
  std::error_code ec;
  std::filesystem::remove_all(temp_dir_, ec);
}

namespace {
std::vector<ValueInfo> value_infos(const json& list) {
  std::vector<ValueInfo> out;
  if (!list.is_array()) return out;
  for (const auto& v : list) {
    ValueInfo info;
    info.name = v.value("name", "");
    info.type = v.value("type", "");
    if (v.contains("shape") && v["shape"].is_array()) {
      for (const auto& d : v["shape"]) info.shape.push_back(d.is_number_integer() ? d.get<int64_t>() : -1);
    }
    out.push_back(info);
  }
  return out;
}
}  // namespace

void OnnxRunner::load(const std::string& model_path) {
  std::string absolute = std::filesystem::absolute(model_path).string();
  json request = {{"cmd", "load"}, {"model", absolute}, {"threads", options_.threads}};
  if (options_.profile_kernels) request["profiling"] = true;
  json r = process_->request(request, options_.timeout_s);
  inputs_ = value_infos(r.value("inputs", json::array()));
  outputs_ = value_infos(r.value("outputs", json::array()));
}

json OnnxRunner::input_specs(const std::map<std::string, at::Tensor>& inputs) {
  json specs = json::object();
  int64_t call = calls_++;
  int index = 0;
  for (const auto& [name, tensor] : inputs) {
    std::string file = fmt::format("{}/in_{}_{}.npy", temp_dir_, call, index++);
    data::write_npy(file, tensor.contiguous());
    specs[name] = {{"file", file}};
  }
  return specs;
}

std::map<std::string, at::Tensor> OnnxRunner::run(const std::map<std::string, at::Tensor>& inputs, double* ms) {
  std::string out_dir = fmt::format("{}/out_{}", temp_dir_, calls_);
  json specs = input_specs(inputs);
  json r = process_->request({{"cmd", "run"}, {"inputs", specs}, {"outputs_dir", out_dir}}, options_.timeout_s);
  if (ms) *ms = r.value("ms", 0.0);
  std::map<std::string, at::Tensor> outputs;
  if (!r.contains("outputs") || !r["outputs"].is_object()) fail("{} answered 'run' without \"outputs\"", options_.what);
  for (const auto& [name, file] : r["outputs"].items()) {
    if (!file.is_string()) fail("{} answered 'run' with a non-string file for output {}", options_.what, name);
    outputs[name] = data::read_npy(file.get<std::string>());
  }
  for (const auto& [_, spec] : specs.items()) std::remove(spec["file"].get<std::string>().c_str());
  std::error_code ec;
  std::filesystem::remove_all(out_dir, ec);
  return outputs;
}

TimeResult OnnxRunner::time(const std::map<std::string, at::Tensor>& inputs, int warmup, int repeats) {
  if (repeats < 1) fail("repeats must be at least 1, got {}", repeats);
  if (warmup < 0) fail("warmup must be non-negative, got {}", warmup);
  json specs = input_specs(inputs);
  json r = process_->request({{"cmd", "time"}, {"inputs", specs}, {"warmup", warmup}, {"repeats", repeats}},
                             options_.timeout_s);
  for (const auto& [_, spec] : specs.items()) std::remove(spec["file"].get<std::string>().c_str());
  TimeResult result;
  if (!r.contains("median_ms") || !r["median_ms"].is_number()) fail("{} answered 'time' without \"median_ms\"", options_.what);
  result.median_ms = r["median_ms"].get<double>();
  if (r.contains("times_ms") && r["times_ms"].is_array()) {
    for (const auto& t : r["times_ms"]) {
      if (t.is_number()) result.times_ms.push_back(t.get<double>());
    }
  }
  if (r.contains("kernel_ms") && r["kernel_ms"].is_number()) result.kernel_median_ms = r["kernel_ms"].get<double>();
  if (r.contains("ops_ms") && r["ops_ms"].is_object()) {
    for (const auto& [op, ms] : r["ops_ms"].items()) {
      if (ms.is_number()) result.op_ms[op] = ms.get<double>();
    }
  }
  if (!(result.median_ms >= 0)) fail("{} reported a negative or invalid latency {}", options_.what, result.median_ms);
  return result;
}

std::map<std::string, at::Tensor> run_onnx(const std::string& model_path, const std::map<std::string, at::Tensor>& inputs,
                                           const RunnerOptions& options) {
  OnnxRunner runner(options);
  runner.load(model_path);
  return runner.run(inputs);
}

double time_onnx(const std::string& model_path, const std::map<std::string, at::Tensor>& inputs, int warmup, int repeats,
                 const RunnerOptions& options) {
  OnnxRunner runner(options);
  runner.load(model_path);
  return runner.time(inputs, warmup, repeats).median_ms;
}

}  // namespace autoprec::runtime
