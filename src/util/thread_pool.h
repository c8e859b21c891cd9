// One persistent pool of worker threads (DESIGN.md: "one persistent pool, work split by
// output rows"). The calling thread takes part as thread 0, so a pool of N threads
// starts N-1 workers. run() is a barrier: it returns when every thread has finished.
// Threads spin briefly between tasks (decode issues many small ops), then block on a
// futex (std::atomic::wait), so an oversubscribed machine is not starved by spinning.
// Several threads may share one pool (two schedulers, two models in one server): their
// run() calls take turns. A task must not call run() on its own pool.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pensieve {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }

    // Calls task(thread_index, n_threads) once on every thread, and waits for all.
    void run(const std::function<void(int, int)>& task);

    // Splits [0, n) into contiguous chunks, one per thread, and calls body(begin, end).
    // Chunk boundaries are rounded to `grain` so kernels see whole blocks.
    void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

private:
    void worker_loop(int index);

    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex run_mutex_;                 // one run() at a time: task_ and pending_ are shared
    const std::function<void(int, int)>* task_ = nullptr;
    std::atomic<uint64_t> generation_{0};  // bumped for every run(); workers wait for a new value
    std::atomic<int> pending_{0};          // workers still running the current task
    std::atomic<bool> stopping_{false};
};

// Threads to use when the user does not say: the number of cores, at most 32.
int default_thread_count();

}  // namespace pensieve
