// Recurrent state snapshots (model/kv_cache.h): which block ends keep one, how much memory
// they take, what happens when their pool is full, and how the prefix cache (RAM and
// disk) resumes from them. The memory is driven by hand: each position sets every state
// value to its position + 1, so a restored state says which block end it came from.
#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include <unistd.h>

#include "drain_stream.h"
#include "engine/prefix_cache.h"
#include "engine/scheduler.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "server/metrics.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "util/thread_pool.h"

namespace pensieve {
namespace {

constexpr int B = KvCache::kBlockSize;
constexpr int kLayers = 2, kState = 64;

MemoryLayout recurrent_layout(int state_floats = kState) {
    MemoryLayout m;
    m.layers.assign(kLayers, LayerMemory::recurrent(state_floats));
    return m;
}

// Positions [length, length + n) of `seq`, one pass of a few positions at a time, as a
// model's forward would write them.
void feed(KvCache& c, int seq, int n) {
    for (int done = 0; done < n;) {
        const int step = std::min(n - done, 7);
        std::vector<int32_t> seqs, positions;
        for (int i = 0; i < step; ++i) seqs.push_back(seq), positions.push_back(c.length(seq) + i);
        c.reserve_batch(seqs, positions);
        for (int32_t pos : positions)
            for (int l = 0; l < kLayers; ++l) {
                std::fill_n(c.state(l, seq), c.layer(l).state_floats, float(pos + 1));
                c.on_position_done(l, seq, pos);
            }
        c.commit_batch(seqs, positions);
        done += step;
    }
}

// Block indices of `seq` that can be resumed after.
std::vector<int> resumable(const KvCache& c, int seq) {
    std::vector<int> out;
    const std::vector<int>& table = c.block_table(seq);
    for (int j = 0; j < c.length(seq) / B; ++j)
        if (c.can_resume_after(table[size_t(j)])) out.push_back(j);
    return out;
}

std::vector<int32_t> prompt_of(int n, int salt = 0) {
    std::vector<int32_t> t;
    for (int i = 0; i < n; ++i) t.push_back(int32_t((i * 7 + salt) % 1000));
    return t;
}

TEST(StateSnapshots, KeptEveryNthBlockAtThePromptEndAndAtTheLatest) {
    KvCache c(recurrent_layout(), 2048, 1);
    EXPECT_EQ(c.block_bytes(), 0u);  // blocks carry no state: snapshots live in their own pool
    feed(c, 0, 21 * B + 5);           // the prompt ends in block 20
    c.keep_snapshot(0);
    feed(c, 0, 20 * B);               // generation goes on to block 40
    const int every = KvCache::kSnapshotEvery;
    EXPECT_EQ(resumable(c, 0), (std::vector<int>{every - 1, 20, 2 * every - 1, 40}));
    EXPECT_EQ(c.snapshots_held(), 4);
    // Rolled back to the prompt end, the state is the one after its last full block.
    ASSERT_TRUE(c.can_truncate_to(0, 21 * B));
    EXPECT_FALSE(c.can_truncate_to(0, 22 * B));  // that block end was dropped
    c.truncate(0, 21 * B);
    EXPECT_EQ(c.state(1, 0)[kState - 1], float(21 * B));
}

TEST(StateSnapshots, LongContextsReserveAFewSnapshotsNotOnePerBlock) {
    // 1 MiB of state per snapshot, a 32K context: one snapshot per block would reserve 2 GiB.
    const int state = 1 << 17;
    KvCache c(recurrent_layout(state), 32768, 1);
    const size_t per_block = 2048 * c.snapshot_bytes();
    EXPECT_LT(c.bytes(), per_block / 10);
    EXPECT_EQ(c.position_bytes(), c.snapshot_bytes() / KvCache::kSnapshotEvery / B);
}

TEST(StateSnapshots, AFullPoolDropsTheLeastRecentlyUsedUnpinnedSnapshot) {
    KvCache c(recurrent_layout(), 16 * B, 1);  // 16 blocks: 16 / 16 + 3 + 1 = 5 slots
    ASSERT_EQ(c.n_snapshot_slots(), 5);
    for (int j = 0; j < 8; ++j) {  // keep every block end: more than the pool holds
        feed(c, 0, B);
        c.keep_snapshot(0);
    }
    EXPECT_EQ(c.snapshots_held(), 5);
    EXPECT_EQ(resumable(c, 0), (std::vector<int>{3, 4, 5, 6, 7}));  // the oldest went first
    c.truncate(0, 4 * B);  // resuming marks a snapshot used
    EXPECT_EQ(c.state(0, 0)[0], float(4 * B));
}

TEST(StateSnapshots, PrefixCacheResumesFromTheLastSnapshotOfTheCommonPrefix) {
    KvCache c(recurrent_layout(), 2048, 2);
    PrefixCache prefix(c, 7);
    const std::vector<int32_t> first = prompt_of(40 * B + 3);
    feed(c, 0, int(first.size()));
    prefix.insert(0, first);
    c.clear(0);
    // The same 40 blocks: resumes after the latest (block 39).
    EXPECT_EQ(prefix.attach_longest_prefix(1, first, 64), 40 * B);
    EXPECT_EQ(c.state(0, 1)[0], float(40 * B));
    c.clear(1);
    // Diverging inside block 25: the last snapshot before it is block 15's.
    std::vector<int32_t> branch(first.begin(), first.begin() + 25 * B + 4);
    branch.push_back(999);
    EXPECT_EQ(prefix.attach_longest_prefix(1, branch, 64), 16 * B);
    EXPECT_EQ(c.state(1, 1)[0], float(16 * B));
}

TEST(StateSnapshots, DiskFilesCarryStateOnlyWhereTheBlockKeptIt) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("pensieve_snapshots_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    const std::vector<int32_t> prompt = prompt_of(40 * B + 3, 1);
    size_t snapshot_bytes = 0;
    {
        KvCache c(recurrent_layout(4096), 2048, 1);  // snapshots far larger than the files' headers
        snapshot_bytes = c.snapshot_bytes();
        feed(c, 0, int(prompt.size()));
        PrefixCache prefix(c, 7, dir.string());
        prefix.insert(0, prompt);
        prefix.save_all();
    }
    size_t files = 0, bytes = 0;
    for (const auto& f : fs::recursive_directory_iterator(dir))
        if (f.is_regular_file()) ++files, bytes += f.file_size();
    EXPECT_EQ(files, 40u);
    EXPECT_GT(bytes, 3 * snapshot_bytes);  // blocks 15, 31 and 39 carry one, the rest none
    EXPECT_LT(bytes, 4 * snapshot_bytes);
    // A restart resumes after block 39, reading the chain of small files.
    KvCache c(recurrent_layout(4096), 2048, 1);
    PrefixCache prefix(c, 7, dir.string());
    EXPECT_EQ(prefix.attach_longest_prefix(0, prompt, 64), 40 * B);
    EXPECT_EQ(c.state(1, 0)[kState - 1], float(40 * B));
    EXPECT_EQ(prefix.stats().disk_hit_blocks, 40u);
    fs::remove_all(dir);
}

// Through the scheduler on a real Mamba file: a reply regenerated from the same prompt
// resumes at the prompt's last full block (its snapshot was kept while the first reply
// moved on two blocks), and /metrics states the state size and the snapshots held.
TEST(StateSnapshots, RegeneratedReplyResumesAtThePromptEnd) {
    auto model = load_model(shared_dir() + "/models/arch/mamba.gguf");
    auto tok = Tokenizer::from_gguf(model->file());
    ThreadPool pool(2);
    SchedulerConfig c;
    c.n_slots = 1;
    c.n_ctx = 256;
    c.reuse_prefix = true;
    Scheduler sched(*model, *tok, pool, c);
    RequestParams p;
    p.prompt = prompt_of(40);  // full blocks 0 and 1; block 1 ends the reusable prefix
    p.options.n_predict = 24;  // on to position 63: blocks 2 and 3 end after the prompt's
    p.options.sampling.temperature = 0.0f;
    p.options.ignore_eos = true;
    const testing_support::Collected first = testing_support::drain(*sched.submit(p));
    const testing_support::Collected again = testing_support::drain(*sched.submit(p));
    EXPECT_EQ(first.finish.n_cached, 0);
    EXPECT_EQ(again.finish.n_cached, 2 * B);
    EXPECT_EQ(again.tokens, first.tokens);

    const SchedulerStats st = sched.stats();
    EXPECT_GT(st.state_bytes_per_sequence, 0u);
    EXPECT_GE(st.state_snapshots, 2);
    EXPECT_EQ(st.state_snapshot_bytes, size_t(st.state_snapshots) * st.state_bytes_per_sequence);
    const std::string text = server::Metrics().render(&st);
    EXPECT_NE(text.find("pensieve_state_bytes_per_sequence " + std::to_string(st.state_bytes_per_sequence) + "\n"),
              std::string::npos) << text;
    EXPECT_NE(text.find("pensieve_state_snapshots " + std::to_string(st.state_snapshots) + "\n"), std::string::npos);
}

}  // namespace
}  // namespace pensieve
