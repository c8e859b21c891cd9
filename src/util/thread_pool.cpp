#include "util/thread_pool.h"

#include <algorithm>

namespace pensieve {

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    start_cv_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int index) {
    uint64_t seen = 0;
    for (;;) {
        const std::function<void(int, int)>* task;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            start_cv_.wait(lock, [&] { return stopping_ || generation_ != seen; });
            if (stopping_) return;
            seen = generation_;
            task = task_;
        }
        (*task)(index, n_threads_);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (--pending_ == 0) done_cv_.notify_one();
        }
    }
}

void ThreadPool::run(const std::function<void(int, int)>& task) {
    if (n_threads_ == 1) {
        task(0, 1);
        return;
    }
    {
        std::lock_guard<std::mutex> lock(mutex_);
        task_ = &task;
        pending_ = n_threads_ - 1;
        ++generation_;
    }
    start_cv_.notify_all();
    task(0, n_threads_);
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait(lock, [&] { return pending_ == 0; });
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
