// The KV cache reserves its block pool and commits memory only as blocks are written
// (util/lazy_buffer.h), so `serve --parallel 16 -c 16384` starts in well under a second
// instead of faulting in ~8.6 GB first. These tests ask the kernel (mincore) what is
// resident; on the old std::vector pool every byte was.
#include <gtest/gtest.h>

#include <cstring>
#include <utility>

#include "model/kv_cache.h"
#include "util/lazy_buffer.h"

namespace pensieve {
namespace {

constexpr size_t kMiB = size_t(1) << 20;

TEST(LazyBuffer, ReadsZeroAndCommitsOnlyTouchedPages) {
    LazyBuffer buf(256 * kMiB);
    ASSERT_EQ(buf.size(), 256 * kMiB);
    EXPECT_LT(buf.resident_bytes(), 4 * kMiB);
    for (size_t at : {size_t(0), 100 * kMiB, 256 * kMiB - 1}) buf[at] = 7;
    const size_t resident = buf.resident_bytes();
    EXPECT_GE(resident, 3 * size_t(4096));
    EXPECT_LT(resident, 8 * kMiB);  // three pages (or three huge pages), not the buffer
    EXPECT_EQ(buf[1], 0);
    EXPECT_EQ(buf[200 * kMiB], 0);

    LazyBuffer moved(std::move(buf));
    EXPECT_EQ(moved[100 * kMiB], 7);
    EXPECT_EQ(buf.size(), 0u);
    EXPECT_EQ(buf.data(), nullptr);
    LazyBuffer assigned;
    assigned = std::move(moved);
    EXPECT_EQ(assigned[256 * kMiB - 1], 7);
}

// synth-1b's shape (16 layers, 8 KV heads of 64) with 16 sequences of 16384 positions:
// 8 GiB of fp16 K and V reserved.
TEST(KvCacheMemory, LargePoolIsReservedNotCommitted) {
    const int n_layer = 16, kv_dim = 512, n_ctx = 16384, n_seq = 16;
    KvCache cache(n_layer, n_ctx, kv_dim, n_seq);
    EXPECT_EQ(cache.bytes(), size_t(n_layer) * n_ctx * n_seq * 2 * kv_dim * 2);
    EXPECT_EQ(cache.committed_bytes(), 0u);
    EXPECT_LT(cache.resident_bytes(), 16 * kMiB);

    // One sequence writes 100 positions in every layer: 7 blocks become committed.
    ASSERT_TRUE(cache.reserve(3, 100));
    for (int l = 0; l < n_layer; ++l)
        for (int p = 0; p < 100; ++p) {
            std::memset(cache.k_row(l, 3, p), 1, cache.k_row_bytes(l));
            std::memset(cache.v_row(l, 3, p), 2, cache.v_row_bytes(l));
        }
    EXPECT_EQ(cache.committed_bytes(), 7 * cache.block_bytes());
    const size_t resident = cache.resident_bytes();
    EXPECT_GE(resident, 100 * cache.position_bytes());  // the rows written
    EXPECT_LT(resident, cache.committed_bytes() + size_t(n_layer) * 4 * kMiB);

    // Blocks let go of are reused before untouched ones: no growth on a second sequence.
    cache.clear(3);
    ASSERT_TRUE(cache.reserve(5, 100));
    EXPECT_EQ(cache.committed_bytes(), 7 * cache.block_bytes());
    EXPECT_EQ(cache.length(5), 0);
}

TEST(KvCacheMemory, DescribeSaysReservedNotAllocated) {
    const std::string line = describe_kv_cache(KvType::F16, size_t(8) << 30, 262144);
    EXPECT_NE(line.find("8.00 GiB reserved for 262144 positions (32.00 KiB each)"), std::string::npos) << line;
    EXPECT_NE(describe_kv_cache(KvType::Q8_0, 68 * kMiB, 4096).find("68.00 MiB reserved"), std::string::npos);
}

}  // namespace
}  // namespace pensieve
