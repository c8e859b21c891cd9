// WorkShares (util/work_shares.h): every unit is claimed exactly once, whatever the thread
// count and however unevenly the threads run, and a thread that is held up has its work
// taken by the others. Then matmul's few-token path, which shares rows out that way:
// results bit-identical to one thread's.
#include "util/work_shares.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "kernels/matmul.h"
#include "quant/types.h"
#include "util/thread_pool.h"

namespace pensieve {
namespace {

// Runs the claim loop on `threads` threads; thread 0 sleeps `stall` per unit. Returns how
// often each unit was claimed, and in `by_thread` how many units each thread took.
std::vector<int> claim_all(int64_t n, int threads, std::chrono::microseconds stall, std::vector<int>& by_thread) {
    WorkShares shares;
    shares.reset(n, threads);
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    by_thread.assign(size_t(threads), 0);
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) {
        pool.emplace_back([&, i] {
            int64_t b, e;
            while (shares.next(i, b, e)) {
                for (int64_t u = b; u < e; ++u) hits[size_t(u)].fetch_add(1);
                by_thread[size_t(i)] += int(e - b);
                if (i == 0) std::this_thread::sleep_for(stall);
            }
        });
    }
    for (auto& t : pool) t.join();
    std::vector<int> out;
    for (auto& h : hits) out.push_back(h.load());
    return out;
}

TEST(WorkShares, EveryUnitOnce) {
    for (int threads : {1, 2, 3, 5, 8}) {
        for (int64_t n : {0, 1, 2, 7, 100, 1000, 20000}) {
            std::vector<int> by_thread;
            const std::vector<int> hits = claim_all(n, threads, std::chrono::microseconds(0), by_thread);
            for (int64_t u = 0; u < n; ++u)
                ASSERT_EQ(hits[size_t(u)], 1) << "unit " << u << " of " << n << ", " << threads << " threads";
        }
    }
}

// Thread 0 is slow: the others finish their shares and take most of its share.
TEST(WorkShares, OthersTakeOverASlowThread) {
    for (int threads : {2, 3}) {
        std::vector<int> by_thread;
        const int64_t n = 300;
        const std::vector<int> hits = claim_all(n, threads, std::chrono::microseconds(2000), by_thread);
        for (int64_t u = 0; u < n; ++u) ASSERT_EQ(hits[size_t(u)], 1);
        // Its static share is n / threads; its first claim is a quarter of that, then it
        // sleeps 2 ms while the others take their shares and the rest of its own.
        EXPECT_LT(by_thread[0], n / threads / 2) << threads << " threads";
    }
}

std::vector<uint8_t> random_weights(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> row(static_cast<size_t>(cols));
    std::vector<uint8_t> out(row_bytes(type, cols) * size_t(rows));
    for (int64_t r = 0; r < rows; ++r) {
        for (float& v : row) v = dist(rng);
        type_traits(type).from_float(row.data(), out.data() + size_t(r) * row_bytes(type, cols), cols);
    }
    return out;
}

// Decode-sized matmuls (one token, and a few as in a verify pass) are shared out piece by
// piece on several threads; 203 rows end in a piece of 11, which narrow cannot take.
TEST(WorkShares, FewTokenMatmulsMatchOneThread) {
    const int64_t rows = 203, cols = 1024;
    for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F16}) {
        const std::vector<uint8_t> wb = random_weights(type, rows, cols, 7);
        const WeightMatrix w{wb.data(), type, rows, cols};
        for (int64_t n : {1, 3, 9}) {
            std::mt19937 rng{static_cast<uint32_t>(n)};
            std::normal_distribution<float> dist(0.0f, 1.0f);
            std::vector<float> x(static_cast<size_t>(n * cols));
            for (float& v : x) v = dist(rng);
            std::vector<float> one(static_cast<size_t>(n * rows));
            {
                ThreadPool pool(1);
                MatmulScratch scratch;
                matmul(w, x.data(), n, one.data(), pool, scratch);
            }
            for (int threads : {2, 3}) {
                ThreadPool pool(threads);
                MatmulScratch scratch;
                for (int repeat = 0; repeat < 20; ++repeat) {
                    std::vector<float> y(size_t(n * rows), -1.0f);
                    matmul(w, x.data(), n, y.data(), pool, scratch);
                    ASSERT_EQ(std::memcmp(y.data(), one.data(), y.size() * sizeof(float)), 0)
                        << type_name(type) << ", " << n << " tokens, " << threads << " threads";
                }
            }
        }
    }
}

}  // namespace
}  // namespace pensieve
