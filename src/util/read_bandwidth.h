// The machine's memory read bandwidth, measured: the ceiling of generation speed.
// Decoding one token reads every weight matrix once, so tokens/s <= bandwidth / bytes of
// weights per token. The host is shared and its bandwidth swings (34-77 GB/s for 2 threads
// from one minute to the next), so speed figures carry a bandwidth measured in the same run
// (bench/compare.sh, `pensieve bench --bandwidth`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "util/thread_pool.h"

namespace pensieve {

struct ReadBandwidth {
    std::vector<double> pass_gbs;  // GB/s (1e9 bytes/s) of each pass, in order
    double best_gbs = 0;
    double median_gbs = 0;
    uint64_t checksum = 0;  // sum of the buffer's 64-bit words: proves every byte was read
};

// Fills a buffer of `bytes` (rounded down to whole 64-bit words per thread) with word i = i,
// then times `passes` reads of all of it, the pool's threads each summing one contiguous
// slice. A buffer much larger than the caches (1 GiB) measures DRAM, not cache.
ReadBandwidth measure_read_bandwidth(ThreadPool& pool, size_t bytes, int passes);

}  // namespace pensieve
