// A small pool of threads for the native runtime: one layer's output rows
// spread over a few cores at batch 1, where a layer takes tens of
// microseconds. Workers spin for a while after a job (a sleeping thread
// takes longer to wake than a small layer runs), then sleep.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace autoprec::native {

class ThreadPool {
 public:
  // `threads` >= 1 in all, the calling thread included.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Calls part(i) once for every i in [0, parts), on the pool's threads and
  // the caller's; returns when every call has returned, rethrowing the first
  // exception one threw. Not reentrant; one caller at a time.
  void run(int parts, const std::function<void(int)>& part);

 private:
  void work();
  void take_parts(const std::function<void(int)>& part, int parts);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_{0}, finished_{0}, active_{0};
  const std::function<void(int)>* job_ = nullptr;
  int parts_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace autoprec::native
