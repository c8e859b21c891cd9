#include "util/read_bandwidth.h"

#include <algorithm>
#include <memory>

#include "util/error.h"
#include "util/timer.h"

namespace pensieve {

namespace {

// A plain sum: the compiler vectorizes it (AVX2 at the x86-64-v3 baseline), and one
// vector add per 32 loaded bytes keeps the loop far below DRAM speed, so memory sets the pace.
uint64_t sum_words(const uint64_t* p, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; ++i) s += p[i];
    return s;
}

// Thread t's share [begin, end) of n words.
size_t slice_begin(size_t n, int t, int n_threads) { return n * size_t(t) / size_t(n_threads); }

}  // namespace

ReadBandwidth measure_read_bandwidth(ThreadPool& pool, size_t bytes, int passes) {
    if (passes < 1) fail("bandwidth: passes must be at least 1");
    const size_t n = bytes / sizeof(uint64_t);
    if (n < size_t(pool.size())) fail("bandwidth: buffer of ", bytes, " bytes is too small");
    std::unique_ptr<uint64_t[]> words(new uint64_t[n]);
    uint64_t* w = words.get();
    const int T = pool.size();
    // Each thread writes its own slice first, so its pages sit where it will read them.
    pool.run([&](int t, int) {
        for (size_t i = slice_begin(n, t, T); i < slice_begin(n, t + 1, T); ++i) w[i] = i;
    });

    ReadBandwidth r;
    std::vector<uint64_t> partial(static_cast<size_t>(T));
    for (int pass = 0; pass < passes; ++pass) {
        Timer timer;
        pool.run([&](int t, int) {
            const size_t b = slice_begin(n, t, T);
            partial[size_t(t)] = sum_words(w + b, slice_begin(n, t + 1, T) - b);
        });
        const double seconds = timer.seconds();
        r.pass_gbs.push_back(double(n * sizeof(uint64_t)) / seconds / 1e9);
        r.checksum = 0;
        for (uint64_t s : partial) r.checksum += s;
    }
    std::vector<double> sorted = r.pass_gbs;
    std::sort(sorted.begin(), sorted.end());
    r.best_gbs = sorted.back();
    const size_t mid = sorted.size() / 2;
    r.median_gbs = sorted.size() % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    return r;
}

}  // namespace pensieve
