#include "util/thread_pool.h"

#include <algorithm>
#include <immintrin.h>

namespace pensieve {

namespace {

// Threads spin this many pause-iterations (tens of microseconds) before blocking: a
// decode step issues hundreds of small parallel ops, and waking a sleeping thread costs
// more than most of them. Blocking after that keeps an oversubscribed machine usable.
constexpr int kSpinIterations = 2000;

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    stopping_.store(true, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int index) {
    uint64_t seen = 0;
    for (;;) {
        uint64_t gen = generation_.load(std::memory_order_acquire);
        for (int i = 0; gen == seen && i < kSpinIterations; ++i) {
            _mm_pause();
            gen = generation_.load(std::memory_order_acquire);
        }
        while (gen == seen) {  // futex wait until run() publishes a new generation
            generation_.wait(seen, std::memory_order_acquire);
            gen = generation_.load(std::memory_order_acquire);
        }
        seen = gen;
        if (stopping_.load(std::memory_order_relaxed)) return;
        (*task_)(index, n_threads_);
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
    }
}

void ThreadPool::run(const std::function<void(int, int)>& task) {
    if (n_threads_ == 1) {
        task(0, 1);
        return;
    }
    // Without this, a second caller overwrote task_ while workers still ran the first
    // caller's task on buffers it was about to free (ASan: two schedulers, one pool).
    std::lock_guard<std::mutex> lock(run_mutex_);
    task_ = &task;
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    task(0, n_threads_);
    // The others usually finish at about the same time: spin, then block.
    int left = pending_.load(std::memory_order_acquire);
    for (int i = 0; left != 0 && i < kSpinIterations; ++i) {
        _mm_pause();
        left = pending_.load(std::memory_order_acquire);
    }
    while (left != 0) {
        pending_.wait(left, std::memory_order_acquire);
        left = pending_.load(std::memory_order_acquire);
    }
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
