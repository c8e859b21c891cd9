// A parallel loop's units [0, n) split between threads that may not keep pace with one
// another. Each thread starts on its own contiguous share and claims units from its
// front, a quarter of what is left at a time; a thread whose share runs out takes the
// back half of the largest share left and goes on with that. Threads therefore read
// neighbouring rows in order (what the kernels' prefetches expect), and a thread the
// machine slows down (another process on its core, a hypervisor's pause) no longer
// holds the others at the barrier.
//
// Why: decode runs ~180 parallel matmuls per token; with an even static split, perf of
// synth-1b-Q4_0 tg64 on 2 threads showed each thread idle at the barrier ~7-8% of its
// time. Sharing the gemv rows this way: tg64 58.4 -> 66.2 tok/s (4 alternating pairs,
// 1.09-1.14x each), Q4_K_M 60.1 -> 67.8 (3 pairs, median 1.10x).
//
// Usage: reset(n, threads) on the calling thread before ThreadPool::run (which publishes
// it), then in the task: while (shares.next(i, begin, end)) { ...units [begin, end)... }.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

namespace pensieve {

class WorkShares {
public:
    void reset(int64_t n, int threads) {
        if (threads > capacity_) {
            shares_ = std::make_unique<Share[]>(size_t(threads));
            capacity_ = threads;
        }
        threads_ = threads;
        for (int i = 0; i < threads; ++i)
            shares_[i].word.store(pack(n * i / threads, n * (i + 1) / threads), std::memory_order_relaxed);
    }

    // The next units for thread `index`: true with [begin, end) claimed, false once every
    // share is empty.
    bool next(int index, int64_t& begin, int64_t& end) {
        std::atomic<uint64_t>& own = shares_[index].word;
        for (;;) {
            uint64_t w = own.load(std::memory_order_acquire);
            while (front(w) < back(w)) {  // from the front of its own share
                const int64_t take = std::max<int64_t>(1, (back(w) - front(w)) / kClaimDivisor);
                if (own.compare_exchange_weak(w, pack(front(w) + take, back(w)), std::memory_order_acq_rel)) {
                    begin = front(w);
                    end = begin + take;
                    return true;
                }
            }
            if (!steal(index)) return false;
        }
    }

private:
    // A claim takes this fraction of what is left of the share (at least one unit): few
    // claims while much is left, single units at the end where the balance is decided.
    // Claiming one unit at a time made the claims' locked compare-exchange 3.5% of
    // synth-1b-Q4_0 decode (perf; each waits for the kernel's loads in flight).
    static constexpr int64_t kClaimDivisor = 4;

    struct alignas(64) Share {
        std::atomic<uint64_t> word{0};  // front << 32 | back: units [front, back) not yet claimed
    };
    static uint64_t pack(int64_t f, int64_t b) { return uint64_t(f) << 32 | uint64_t(b); }
    static int64_t front(uint64_t w) { return int64_t(w >> 32); }
    static int64_t back(uint64_t w) { return int64_t(w & 0xffffffffu); }

    // Moves the back half of the largest other share into thread `index`'s (empty) share.
    // Only the owner moves a front and only thieves move a back, each by compare-exchange,
    // and claimed units never return, so a stale word can never match again.
    bool steal(int index) {
        for (;;) {
            int victim = -1;
            uint64_t vw = 0;
            int64_t most = 0;
            for (int i = 0; i < threads_; ++i) {
                if (i == index) continue;
                const uint64_t w = shares_[i].word.load(std::memory_order_acquire);
                if (back(w) - front(w) > most) {
                    most = back(w) - front(w);
                    victim = i;
                    vw = w;
                }
            }
            if (victim < 0) return false;
            const int64_t take = (most + 1) / 2;
            const int64_t cut = back(vw) - take;
            if (shares_[victim].word.compare_exchange_strong(vw, pack(front(vw), cut), std::memory_order_acq_rel)) {
                shares_[index].word.store(pack(cut, cut + take), std::memory_order_release);
                return true;
            }
        }
    }

    std::unique_ptr<Share[]> shares_;
    int capacity_ = 0;
    int threads_ = 0;
};

}  // namespace pensieve
