#include "runtime/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "util/error.h"

namespace autoprec::runtime {
namespace {

constexpr size_t kOutKeep = 1 << 20;
constexpr size_t kErrKeep = 4096;

void append_bounded(std::string& to, const char* data, size_t n, size_t keep, bool keep_tail) {
  to.append(data, n);
  if (to.size() <= keep) return;
  if (keep_tail) to.erase(0, to.size() - keep);
  else to.resize(keep);
}

}  // namespace

std::string last_line(const std::string& text) {
  size_t end = text.find_last_not_of(" \t\r\n");
  if (end == std::string::npos) return "";
  size_t begin = text.find_last_of('\n', end);
  begin = begin == std::string::npos ? 0 : begin + 1;
  std::string line = text.substr(begin, end - begin + 1);
  size_t first = line.find_first_not_of(" \t\r");
  return first == std::string::npos ? "" : line.substr(first);
}

CommandResult run_command(const std::vector<std::string>& argv, double timeout_s) {
  AUTOPREC_CHECK(!argv.empty(), "run_command without a program");
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) fail("cannot create a pipe: {}", std::strerror(errno));
  int exec_status[2];  // the child reports a failed exec through this pipe
  if (pipe2(exec_status, O_CLOEXEC) != 0) fail("cannot create a pipe: {}", std::strerror(errno));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) fail("cannot start {}: {}", argv[0], std::strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execvp(args[0], args.data());
    int e = errno;
    (void)!write(exec_status[1], &e, sizeof e);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  close(exec_status[1]);
  int exec_errno = 0;
  const bool exec_failed = read(exec_status[0], &exec_errno, sizeof exec_errno) == sizeof exec_errno;
  close(exec_status[0]);
  CommandResult r;
  if (exec_failed) {
    close(out[0]);
    close(err[0]);
    waitpid(pid, nullptr, 0);
    fail("cannot start {}: {}", argv[0], std::strerror(exec_errno));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  char buffer[65536];
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      break;
    }
    int ready = poll(fds, 2, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        if (i == 0) append_bounded(r.out, buffer, static_cast<size_t>(n), kOutKeep, false);
        else append_bounded(r.err_tail, buffer, static_cast<size_t>(n), kErrKeep, true);
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  int status = 0;
  if (r.timed_out) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
  } else {
    // Output closed: wait for the exit within what is left of the time limit.
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        r.timed_out = true;
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        break;
      }
      usleep(10000);
    }
    if (!r.timed_out) {
      if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
      if (WIFSIGNALED(status)) r.signal = sigabbrev_np(WTERMSIG(status)) ? std::string("SIG") + sigabbrev_np(WTERMSIG(status)) : "a signal";
      return r;
    }
  }
  waitpid(pid, &status, 0);
  return r;
}

}  // namespace autoprec::runtime
