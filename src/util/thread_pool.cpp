#include "util/thread_pool.h"

#include <algorithm>
#include <immintrin.h>

namespace pensieve {

namespace {

// Workers spin this many pause-iterations (a few tens of microseconds) waiting for the
// next task before sleeping: a decode step issues hundreds of small parallel ops, and a
// condition-variable wake-up costs more than most of them.
constexpr int kSpinIterations = 20000;

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
        generation_.fetch_add(1, std::memory_order_release);
    }
    start_cv_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int index) {
    uint64_t seen = 0;
    for (;;) {
        // Spin first, then sleep until run() publishes a new generation.
        uint64_t gen = generation_.load(std::memory_order_acquire);
        for (int i = 0; gen == seen && i < kSpinIterations; ++i) {
            _mm_pause();
            gen = generation_.load(std::memory_order_acquire);
        }
        if (gen == seen) {
            std::unique_lock<std::mutex> lock(mutex_);
            start_cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
            gen = generation_.load(std::memory_order_acquire);
        }
        seen = gen;
        if (stopping_) return;
        (*task_)(index, n_threads_);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

void ThreadPool::run(const std::function<void(int, int)>& task) {
    if (n_threads_ == 1) {
        task(0, 1);
        return;
    }
    task_ = &task;
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    {
        // Taking the lock orders the publish with a worker that is about to sleep.
        std::lock_guard<std::mutex> lock(mutex_);
        generation_.fetch_add(1, std::memory_order_release);
    }
    start_cv_.notify_all();
    task(0, n_threads_);
    // The caller's share is done; wait (spinning: the others finish at about the same time).
    while (pending_.load(std::memory_order_acquire) != 0) _mm_pause();
    task_ = nullptr;
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& body) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    const int64_t units = (n + grain - 1) / grain;
    const int threads = int(std::min<int64_t>(n_threads_, units));
    if (threads <= 1) {
        body(0, n);
        return;
    }
    run([&](int index, int) {
        if (index >= threads) return;
        const int64_t begin = std::min(n, units * index / threads * grain);
        const int64_t end = std::min(n, units * (index + 1) / threads * grain);
        if (begin < end) body(begin, end);
    });
}

int default_thread_count() {
    unsigned n = std::thread::hardware_concurrency();
    return int(std::clamp<unsigned>(n == 0 ? 4 : n, 1, 32));
}

}  // namespace pensieve
