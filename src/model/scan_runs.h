// The recurrent layers' scans (Mamba's selective scan, Mamba-2's SSD, RWKV's WKV) in
// parallel over their independent units: channels or heads. A scan is sequential in the
// tokens of one sequence, but each unit's state evolves on its own, so the pool's threads
// take unit ranges and each walks the tokens in order.
//
// The cache keeps a snapshot of the recurrent states at some block ends (KvCache: every
// kSnapshotEvery-th block, and a sequence's latest block end, where the prefix cache
// resumes). A snapshot must see every unit at that position and no further, so the batch
// is cut into runs that end where a sequence reaches such a block end: one parallel pass
// per run, then the snapshot. Other block ends need no cut: the cache would drop their
// snapshots when the sequence moves on anyway. A 512-token prefill is 2-3 runs per layer
// (one per block end, 32, before snapshots were sparse); a decode step of several
// sequences is one.
//
// Same arithmetic in the same order per unit as the one-thread loop: results are bit for
// bit those of a single thread (test_arch_conformance checks batched = one by one).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "model/blocks.h"
#include "model/kv_cache.h"
#include "util/thread_pool.h"

namespace pensieve {

// per_token(t): the serial part of token t (conv or shift state pushes), before its run's
// scan. scan(t0, t1, u0, u1): tokens [t0, t1) of units [u0, u1), in token order.
// unit_cost: multiply-adds per unit and token (to keep small scans on one thread).
// Whether the state after token t must be snapshot: a block end that is a keeper, or the
// last block end of t's sequence in the batch.
inline std::vector<uint8_t> snapshot_points(const Batch& batch) {
    const int64_t n = batch.size();
    std::vector<uint8_t> wanted(size_t(n), 0);
    std::vector<int> seen;  // sequences whose last block end is already marked (walking back)
    for (int64_t t = n - 1; t >= 0; --t) {
        const int pos = batch.positions[size_t(t)], seq = batch.seq_ids[size_t(t)];
        if (!KvCache::ends_block(pos)) continue;
        const bool last = std::find(seen.begin(), seen.end(), seq) == seen.end();
        if (last) seen.push_back(seq);
        wanted[size_t(t)] = last || KvCache::keeps_snapshot(pos / KvCache::kBlockSize);
    }
    return wanted;
}

// per_token(t): the serial part of token t (conv or shift state pushes), before its run's
// scan. scan(t0, t1, u0, u1): tokens [t0, t1) of units [u0, u1), in token order.
// unit_cost: multiply-adds per unit and token (to keep small scans on one thread).
template <typename PerToken, typename Scan>
void scan_in_runs(int layer, Pass& p, int64_t units, int64_t unit_cost, PerToken per_token, Scan scan) {
    // Chunks of at least ~32K multiply-adds: below that, waking the pool costs more.
    constexpr int64_t kMinWork = 32 * 1024;
    const std::vector<uint8_t> wanted = snapshot_points(p.batch);
    std::vector<int> ended;  // sequences that reached a snapshot point in this run
    for (int64_t t0 = 0; t0 < p.n;) {
        int64_t t1 = t0;
        ended.clear();
        for (; t1 < p.n; ++t1) {
            const int seq = p.batch.seq_ids[size_t(t1)];
            if (std::find(ended.begin(), ended.end(), seq) != ended.end()) break;
            if (wanted[size_t(t1)]) ended.push_back(seq);
        }
        for (int64_t t = t0; t < t1; ++t) per_token(t);
        const int64_t grain = std::max<int64_t>(1, kMinWork / std::max<int64_t>(1, (t1 - t0) * unit_cost));
        p.pool.parallel_for(units, grain, [&](int64_t u0, int64_t u1) { scan(t0, t1, u0, u1); });
        for (int64_t t = t0; t < t1; ++t)
            if (wanted[size_t(t)])
                p.cache.on_position_done(layer, p.batch.seq_ids[size_t(t)], p.batch.positions[size_t(t)]);
        t0 = t1;
    }
}

}  // namespace pensieve
