// Running ONNX models in an external runtime (ONNX Runtime, or any device
// behind a runner command) over a JSON-lines protocol.
//
// A runner is a child process that reads one JSON request per line on stdin
// and writes one JSON response per line on stdout; tensors travel as .npy
// files. The requests (full protocol in docs/targets.md):
//   {"cmd":"load","model":PATH,"threads":N,"profiling":BOOL}
//       -> {"ok":true,"inputs":[{"name","type","shape"}],"outputs":[...]}
//   {"cmd":"run","inputs":{NAME:{"file":X.npy}},"outputs_dir":DIR}
//       -> {"ok":true,"outputs":{NAME:DIR/NAME.npy},"ms":T}
//   {"cmd":"time","inputs":{...},"warmup":W,"repeats":R}
//       -> {"ok":true,"median_ms":M,"times_ms":[...]}
//          after a load with profiling, also "kernel_ms" (median over runs of the
//          summed operator kernel times), "kernel_times_ms", "ops_ms" {OP: ms}
//   {"cmd":"quit"} -> {"ok":true}
//   failure -> {"ok":false,"error":"one line"}
// The runner's stderr is captured (logged at debug level); its last line is
// quoted when the runner fails.
//
// Every failure of the runner -- it cannot start, exits or crashes, does not
// answer within the timeout (it is then killed), prints something that is not
// one JSON object per line, or answers {"ok":false} -- is an
// autoprec::UserError with a one-line message naming the runner and the
// request. After such an error the process is gone (alive() is false), except
// after {"ok":false}, which leaves it running.
//
// The built-in ONNX Runtime runner is tools/ort_runner.js (Node.js with the
// onnxruntime-node package that scripts/setup installs into tools/).
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace autoprec::runtime {

// One child process speaking the JSON-lines protocol.
class RunnerProcess {
 public:
  // Starts argv (argv[0] is looked up in PATH). `what` names the runner in
  // error messages (e.g. "ONNX Runtime runner"). UserError if it cannot start.
  explicit RunnerProcess(std::vector<std::string> argv, std::string what = "runner");
  // Sends quit, waits up to 2 s for the exit, then kills the process.
  ~RunnerProcess();
  RunnerProcess(const RunnerProcess&) = delete;
  RunnerProcess& operator=(const RunnerProcess&) = delete;

  // Sends `request` as one line and waits at most `timeout_s` seconds for one
  // response line. Returns the response (an object with "ok": true). Throws
  // UserError as described at the top of this file.
  nlohmann::json request(const nlohmann::json& request, double timeout_s);

  bool alive() const { return pid_ > 0; }
  // The last few KiB of the runner's stderr.
  const std::string& stderr_tail() const { return stderr_tail_; }
  // Sends quit and reaps the process (killing it if it does not exit in 2 s).
  void close();

 private:
  [[noreturn]] void die(const std::string& reason);
  void drain_stderr();
  std::string exit_description();
  std::string last_stderr_line() const;

  std::vector<std::string> argv_;
  std::string what_;
  pid_t pid_ = -1;
  int to_child_ = -1;     // child's stdin
  int from_child_ = -1;   // child's stdout
  int err_child_ = -1;    // child's stderr
  std::string out_buffer_;
  std::string stderr_tail_;
};

// Where the ONNX Runtime runner lives: the tools/ directory of the source tree
// (compiled in), or $AUTOPREC_TOOLS_DIR when set.
std::string tools_dir();

// {"node", TOOLS/ort_runner.js}; node is $AUTOPREC_NODE when set. UserError
// (saying to run scripts/setup) when the script or onnxruntime-node is missing.
std::vector<std::string> ort_runner_command();

// True when ort_runner_command() would succeed and `node` is on PATH;
// otherwise false with the reason in `why` (for tests that skip).
bool ort_available(std::string* why = nullptr);

struct RunnerOptions {
  std::vector<std::string> command;  // empty: ort_runner_command()
  std::string what = "ONNX Runtime runner";
  int threads = 1;                   // intra-op threads of the runtime; 0 = its default
  double timeout_s = 120;            // per request (load, run, or a whole time request)
  // Ask the runtime's profiler for operator kernel times (load with
  // "profiling": true); the first time() after each load() reports them.
  bool profile_kernels = false;
};

// Name, element type (ORT spelling: "float32", "int64", ...) and shape (-1 for
// a symbolic dimension) of a model input or output.
struct ValueInfo {
  std::string name;
  std::string type;
  std::vector<int64_t> shape;
};

struct TimeResult {
  double median_ms = 0;          // wall time of one inference as the runner sees it
  std::vector<double> times_ms;  // one per repeat, in order
  // With profile_kernels and a runner that reports them: the median over runs
  // of the summed operator kernel times (no dispatch or copy overhead), and
  // the median per operator type of the fused graph (e.g. "QLinearConv").
  std::optional<double> kernel_median_ms;
  std::map<std::string, double> op_ms;
};

// A runner with one loaded model. Tensors are CPU tensors of dtype float32,
// float64, int64, int32, int16, uint8, int8 or bool; they are written to a
// private temporary directory (removed by the destructor) as .npy.
class OnnxRunner {
 public:
  explicit OnnxRunner(RunnerOptions options = {});
  ~OnnxRunner();
  OnnxRunner(const OnnxRunner&) = delete;
  OnnxRunner& operator=(const OnnxRunner&) = delete;

  // Loads (or replaces) the model; returns its inputs and outputs.
  void load(const std::string& model_path);
  const std::vector<ValueInfo>& inputs() const { return inputs_; }
  const std::vector<ValueInfo>& outputs() const { return outputs_; }

  // One inference; every model input must be given. Returns every output by name.
  std::map<std::string, at::Tensor> run(const std::map<std::string, at::Tensor>& inputs, double* ms = nullptr);
  // `warmup` untimed runs, then `repeats` (>= 1) timed runs of the same inputs.
  TimeResult time(const std::map<std::string, at::Tensor>& inputs, int warmup, int repeats);

  RunnerProcess& process() { return *process_; }

 private:
  nlohmann::json input_specs(const std::map<std::string, at::Tensor>& inputs);

  RunnerOptions options_;
  std::unique_ptr<RunnerProcess> process_;
  std::string temp_dir_;
  std::vector<ValueInfo> inputs_, outputs_;
  int64_t calls_ = 0;
};

// One-shot helpers: start a runner, load `model_path`, run or time, stop.
std::map<std::string, at::Tensor> run_onnx(const std::string& model_path,
                                           const std::map<std::string, at::Tensor>& inputs,
                                           const RunnerOptions& options = {});
// Median latency in milliseconds of `repeats` runs after `warmup` runs.
double time_onnx(const std::string& model_path, const std::map<std::string, at::Tensor>& inputs, int warmup = 3,
                 int repeats = 20, const RunnerOptions& options = {});

}  // namespace autoprec::runtime
