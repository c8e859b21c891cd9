// The read-bandwidth probe (util/read_bandwidth.h) reads every word of its buffer on
// every pass and reports a finite, ordered set of figures.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "util/error.h"
#include "util/read_bandwidth.h"

namespace pensieve {
namespace {

TEST(ReadBandwidth, ReadsEveryWordOnEveryThreadCount) {
    for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        const size_t n = (size_t(8) << 20) / 8 + 5;  // 8 MiB and an uneven tail
        const ReadBandwidth r = measure_read_bandwidth(pool, n * 8 + 7, 3);
        EXPECT_EQ(r.checksum, uint64_t(n) * (n - 1) / 2) << threads;  // word i holds i
        ASSERT_EQ(r.pass_gbs.size(), 3u);
        for (double g : r.pass_gbs) EXPECT_TRUE(std::isfinite(g) && g > 0) << g;
        EXPECT_EQ(r.best_gbs, *std::max_element(r.pass_gbs.begin(), r.pass_gbs.end()));
        EXPECT_LE(r.median_gbs, r.best_gbs);
        EXPECT_GE(r.median_gbs, *std::min_element(r.pass_gbs.begin(), r.pass_gbs.end()));
    }
}

TEST(ReadBandwidth, RejectsNoPassesAndTinyBuffers) {
    ThreadPool pool(2);
    EXPECT_THROW(measure_read_bandwidth(pool, 1 << 20, 0), Error);
    EXPECT_THROW(measure_read_bandwidth(pool, 8, 1), Error);
}

}  // namespace
}  // namespace pensieve
