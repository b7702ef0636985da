#include "native/parallel.h"

#include <immintrin.h>

#include <stdexcept>

namespace autoprec::native {

namespace {
constexpr int kSpins = 1 << 16;  // pauses before a worker sleeps: about a millisecond
}

ThreadPool::ThreadPool(int threads) {
  if (threads < 1) throw std::invalid_argument("a thread pool needs at least one thread");
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { work(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::take_parts(const std::function<void(int)>& part, int parts) {
  for (int i = next_.fetch_add(1); i < parts; i = next_.fetch_add(1)) {
    try {
      part(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    finished_.fetch_add(1);
  }
}

void ThreadPool::work() {
  uint64_t seen = 0;
  while (true) {
    for (int spins = 0; generation_.load() == seen; ++spins) {
      if (spins < kSpins) {
        _mm_pause();
        continue;
      }
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
    }
    const std::function<void(int)>* job;
    int parts;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_) return;
      seen = generation_.load();
      job = job_;
      parts = parts_;
      active_.fetch_add(1);
    }
    if (job) take_parts(*job, parts);
    active_.fetch_sub(1);
  }
}

void ThreadPool::run(int parts, const std::function<void(int)>& part) {
  if (parts <= 0) return;
  if (workers_.empty() || parts == 1) {
    for (int i = 0; i < parts; ++i) part(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (active_.load() > 0) _mm_pause();  // a late worker still holds the previous job
    job_ = &part;
    parts_ = parts;
    next_.store(0);
    finished_.store(0);
    error_ = nullptr;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  take_parts(part, parts);
  while (finished_.load() < parts) _mm_pause();
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = nullptr;  // a worker that wakes late finds no job
    error = error_;
  }
  while (active_.load() > 0) _mm_pause();
  if (error) std::rethrow_exception(error);
}

}  // namespace autoprec::native
