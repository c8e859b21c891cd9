#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <numeric>
#include <thread>
#include <vector>

namespace pensieve {
namespace {

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
    ThreadPool pool(2);
    std::vector<int> hits(1000, 0);
    pool.parallel_for(1000, 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) ++hits[size_t(i)];
    });
    for (int h : hits) ASSERT_EQ(h, 1);
}

// Two schedulers may share one pool. Each caller's task must run on its own buffers, and
// every index of every call must be written exactly once: before run() took turns, the
// second caller replaced the task while the workers still ran the first one.
TEST(ThreadPool, ConcurrentCallersTakeTurns) {
    ThreadPool pool(2);
    auto caller = [&pool](int seed, bool* ok) {
        for (int round = 0; round < 20000; ++round) {
            std::vector<int> out(257, -1);
            pool.parallel_for(int64_t(out.size()), 1, [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) out[size_t(i)] = seed + int(i);
            });
            for (size_t i = 0; i < out.size(); ++i)
                if (out[i] != seed + int(i)) { *ok = false; return; }
        }
        *ok = true;
    };
    bool ok_a = false, ok_b = false;
    std::thread a(caller, 0, &ok_a), b(caller, 100000, &ok_b);
    a.join();
    b.join();
    EXPECT_TRUE(ok_a);
    EXPECT_TRUE(ok_b);
}

}  // namespace
}  // namespace pensieve
