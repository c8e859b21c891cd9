// The memory of a model's sequences between forward passes ("KV cache" for short; it
// also holds recurrent state). Positions live in fixed-size blocks ("pages") of
// kBlockSize positions; each sequence has a block table: position p of sequence s lives in
// block table[s][p / kBlockSize] at offset p % kBlockSize. Blocks are reference counted,
// so sequences (and the prefix cache) share the blocks of a common prompt prefix without
// copying; a block returns to the free list when its last user lets go.
//
// What a block holds is set per layer by a MemoryLayout (the model's make_cache):
//   Attention  K and V rows of each position, k_dim and v_dim values wide (they may
//              differ per layer and between K and V); `window` > 0 marks a sliding-window
//              layer (attention reads only the last `window` positions).
//   Recurrent  one live state per sequence (Mamba conv + SSM state, RWKV token shift +
//              WKV state: state_floats floats) and, for some blocks, a snapshot of the
//              state after the block's last position. Sharing a prefix of full blocks
//              resumes from the last block's snapshot instead of re-reading the prompt.
//              Snapshots live in a pool of their own, not in the blocks: one is 15 MB
//              for a 1.3B Mamba, so a snapshot per 16-position block cost ~1 GB per 1000
//              prompt tokens (and a 32K context reserved 30 GB). A sequence keeps the
//              snapshot of every kSnapshotEvery-th block it writes, of the block its
//              prompt ended in (keep_snapshot), and of its latest block; the pool drops
//              the least recently used unpinned snapshot when it is full. A block
//              without a snapshot still links a cached prefix; resuming stops at the last
//              block that has one.
//   None       nothing (a layer without memory).
// The caller asks what the memory supports before it truncates or shares:
//   can_truncate()      any position (speculative rollback): attention-only memories;
//                       a recurrent state cannot be rolled back except to a block end
//                       that kept its snapshot (can_truncate_to).
//   can_share_prefix()  full blocks of a prompt (the prefix cache): both kinds, unless
//                       the layout says a prompt is read as a whole (an encoder's).
//
// Element type of attention rows (KvType, --cache-type): F16 (2 bytes a value, the
// default) or Q8_0 (GGUF Q8_0 blocks: 34 bytes per 32 values, 53% of F16; a head whose
// size is a multiple of 32 owns whole blocks, so attention dots a Q8_0 query with it in
// integers). Recurrent state is always fp32, and so are the rows of a layer marked f32.
//
// Only the model's blocks (model/blocks.h) read and write rows and states; architecture
// files never touch these bytes. Shared blocks are always full blocks of an earlier
// prompt and are never written: a sequence only writes positions at or after its own
// length, and a shared prefix ends on a block boundary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "util/lazy_buffer.h"

namespace pensieve {

enum class KvType : uint32_t { F16 = 0, Q8_0 = 1 };  // values are stored in cache files

const char* kv_type_name(KvType type);          // "f16", "q8_0"
KvType parse_kv_type(const std::string& name);  // fails (Error) on unknown names
// Bytes of one row of kv_dim values; fails if the type cannot hold such a row (Q8_0
// needs kv_dim to be a multiple of 32).
size_t kv_row_bytes(KvType type, int kv_dim);

// What one layer keeps per position / per sequence.
struct LayerMemory {
    enum class Kind { None, Attention, Recurrent };
    Kind kind = Kind::Attention;
    int k_dim = 0, v_dim = 0;  // Attention: values per position (KV heads x head size)
    int window = 0;            // Attention: sliding window in positions (0: every position)
    int state_floats = 0;      // Recurrent: floats of one sequence's state
    // Attention: rows in fp32 whatever the cache type. Multi-head latent attention keeps its
    // latent so: the absorbed per-head projections amplify fp16 rounding of the latent
    // (deepseek2.gguf: worst prompt logit error 0.0107 with fp16 rows, 0.0047 with fp32;
    // the tolerance is 0.01), and the latent is still far smaller than decompressed heads.
    bool f32 = false;

    static LayerMemory attention(int k_dim, int v_dim, int window = 0) {
        return {Kind::Attention, k_dim, v_dim, window, 0};
    }
    static LayerMemory recurrent(int state_floats) { return {Kind::Recurrent, 0, 0, 0, state_floats}; }
};

struct MemoryLayout {
    std::vector<LayerMemory> layers;
    // > 0: positions past this cannot be represented (learned absolute position
    // embeddings, GPT-2): a cache of a longer context is refused when it is made, not
    // mid-generation.
    int max_positions = 0;
    // false: a position's memory depends on the prompt positions after it (an encoder's
    // bidirectional attention: T5), so no prompt prefix can be shared or resumed.
    bool prefix_shareable = true;

    static MemoryLayout uniform_attention(int n_layer, int kv_dim);
    bool has(LayerMemory::Kind kind) const;
    // One line for `pensieve info`, e.g. "paged KV, 22 layers, window 4096 on 11".
    std::string describe() const;
};

class KvCache {
public:
    static constexpr int kBlockSize = 16;
    // Every this many blocks (256 positions) a sequence keeps its snapshot: a conversation
    // that branches off an earlier prompt re-reads at most this much of the common prefix.
    static constexpr int kSnapshotEvery = 16;

    // n_seq sequences of up to n_ctx positions each. n_blocks: size of the block pool
    // (0: enough for every sequence to fill its context).
    KvCache(const MemoryLayout& layout, int n_ctx, int n_seq, int n_blocks = 0, KvType type = KvType::F16);
    // n_layer uniform attention layers of kv_dim (= n_head_kv * head_dim) K and V values.
    KvCache(int n_layer, int n_ctx, int kv_dim, int n_seq, int n_blocks = 0, KvType type = KvType::F16)
        : KvCache(MemoryLayout::uniform_attention(n_layer, kv_dim), n_ctx, n_seq, n_blocks, type) {}

    const MemoryLayout& layout() const { return layout_; }
    const LayerMemory& layer(int l) const { return layout_.layers[size_t(l)]; }
    int n_ctx() const { return n_ctx_; }
    int n_seq() const { return n_seq_; }
    int n_layer() const { return int(layout_.layers.size()); }
    int n_blocks() const { return n_blocks_; }
    KvType type() const { return type_; }
    // Bytes reserved for the whole block pool, the snapshot pool and the live states. The pool is committed
    // lazily (util/lazy_buffer.h): committed_bytes() is what blocks used so far occupy.
    size_t bytes() const { return data_.size() + snapshots_.size() + states_.size() * sizeof(float); }
    size_t committed_bytes() const {
        return size_t(blocks_touched_) * block_bytes_ + size_t(slots_touched_) * snapshot_bytes() +
               states_.size() * sizeof(float);
    }
    // Memory the kernel backs right now (mincore); for tests and diagnostics.
    size_t resident_bytes() const {
        return data_.resident_bytes() + snapshots_.resident_bytes() + states_.size() * sizeof(float);
    }
    // Bytes one block holds in every layer (K and V rows; 0 for a recurrent-only model).
    size_t block_bytes() const { return block_bytes_; }
    // Bytes of one state snapshot (every recurrent layer; 0 without recurrent layers).
    size_t snapshot_bytes() const { return state_floats_ * sizeof(float); }
    // Memory per position, snapshots counted at one per kSnapshotEvery blocks: for sizing
    // (--cache-ram, --max-ram, `pensieve info`).
    size_t position_bytes() const {
        return (block_bytes_ + snapshot_bytes() / kSnapshotEvery) / kBlockSize;
    }
    int n_snapshot_slots() const { return int(slots_.size()); }
    int snapshots_held() const { return int(slots_.size() - free_slots_.size()); }

    // --- what this memory supports (ask before truncating or sharing) ---
    bool can_truncate() const { return !recurrent_; }
    bool can_truncate_to(int seq, int pos) const;
    bool can_share_prefix() const { return layout_.prefix_shareable; }
    // Whether a sequence may resume after `block` (its last shared block): always for
    // attention-only memories; for recurrent ones, when the block kept its snapshot.
    bool can_resume_after(int block) const { return !recurrent_ || has_snapshot(block); }
    bool has_snapshot(int block) const { return recurrent_ && snapshot_of_[size_t(block)] >= 0; }

    // --- attention rows (model/blocks only) ---
    size_t k_row_bytes(int l) const { return layers_[size_t(l)].k_row; }
    size_t v_row_bytes(int l) const { return layers_[size_t(l)].v_row; }
    uint8_t* k_row(int l, int seq, int pos) { return &data_[row_index(l, seq, pos, false)]; }
    uint8_t* v_row(int l, int seq, int pos) { return &data_[row_index(l, seq, pos, true)]; }
    const uint8_t* k_row(int l, int seq, int pos) const { return &data_[row_index(l, seq, pos, false)]; }
    const uint8_t* v_row(int l, int seq, int pos) const { return &data_[row_index(l, seq, pos, true)]; }

    // --- recurrent state (model/blocks only) ---
    // The live state of `seq` in layer l (state_floats floats; zero for an empty sequence).
    float* state(int l, int seq) { return &states_[size_t(seq) * state_floats_ + layers_[size_t(l)].state_offset]; }
    // Called after a recurrent layer consumed position `pos` of `seq`: at a block's last
    // position the state is kept as that block's snapshot (if the pool has room), and the
    // sequence's previous snapshot goes unless it is kept (keeps_snapshot, keep_snapshot).
    // A model may skip block ends that are neither kept nor the sequence's last in the
    // batch (model/scan_runs.h).
    void on_position_done(int l, int seq, int pos);
    // Keeps the snapshot of the last full block of `seq` when the sequence moves on (the
    // end of a prompt: a regenerated reply resumes there).
    void keep_snapshot(int seq);
    // Whether position pos is the last of its block (where recurrent states are snapshot).
    static bool ends_block(int pos) { return (pos + 1) % kBlockSize == 0; }
    // Whether a sequence keeps the snapshot of its block j when it moves on.
    static bool keeps_snapshot(int j) { return (j + 1) % kSnapshotEvery == 0; }

    // --- sequences ---
    // Positions [0, length) of `seq` are in memory.
    int length(int seq) const { return lengths_[size_t(seq)]; }
    void set_length(int seq, int n) { lengths_[size_t(seq)] = n; }
    // Positions `seq` can hold without new blocks.
    int capacity(int seq) const { return int(tables_[size_t(seq)].size()) * kBlockSize; }
    // Makes room for positions [0, n_positions); false if the pool ran out of blocks
    // (nothing is changed then).
    bool reserve(int seq, int n_positions);
    // Forgets positions >= pos and lets go of blocks no longer needed. Fails (Error) where
    // !can_truncate_to(seq, pos).
    void truncate(int seq, int pos);
    void clear(int seq) { truncate(seq, 0); }
    // Copies the keys and values of position `from` of `seq` to its position `to`, in every
    // attention layer (a tree row that was kept moves from its spare slot to its place).
    void copy_position(int seq, int from, int to);
    const std::vector<int>& block_table(int seq) const { return tables_[size_t(seq)]; }
    // Appends shared full blocks (a cached prefix, or more of it) to a sequence that ends
    // on a block boundary with no block reserved past its length; recurrent layers resume
    // from the last block's snapshot.
    void attach_prefix(int seq, const std::vector<int>& blocks);
    // Whether attach_prefix may append to `seq` now.
    bool can_attach_prefix(int seq) const { return length(seq) == capacity(seq); }
    // Throws Error if a batch is malformed for this memory (unknown sequence ids,
    // positions that are not the next contiguous positions of their sequence or past the
    // context), else reserves the blocks the batch will write.
    void reserve_batch(const std::vector<int32_t>& seq_ids, const std::vector<int32_t>& positions);
    // After a forward pass: each sequence's length becomes one past its last batch position.
    void commit_batch(const std::vector<int32_t>& seq_ids, const std::vector<int32_t>& positions);

    // --- blocks ---
    int free_blocks() const { return int(free_.size()); }
    int allocate_block();              // -1 when none is free; the caller holds one reference
    void retain_block(int block) { ++refs_[size_t(block)]; }
    void release_block(int block);
    int block_refs(int block) const { return refs_[size_t(block)]; }
    // A block's contents in every layer (block_bytes()), for saving to / loading from disk.
    void copy_block_out(int block, uint8_t* out) const;
    void copy_block_in(int block, const uint8_t* in);
    // Its snapshot (snapshot_bytes()): out returns false if it has none; in takes a slot
    // of the pool, false if none is free (the block then has no snapshot).
    bool copy_snapshot_out(int block, uint8_t* out) const;
    bool copy_snapshot_in(int block, const uint8_t* in);
    // Identifies the layout and element type (a block file is only loaded into the same).
    uint64_t layout_fingerprint() const;

private:
    struct LayerStore {
        size_t k_row = 0, v_row = 0;  // bytes of one K / V row
        size_t offset = 0;            // start of this layer's blocks in data_
        size_t block = 0;             // bytes of one block of this layer
        size_t state_offset = 0;      // floats into one sequence's states
    };
    size_t row_index(int l, int seq, int pos, bool v) const {
        const LayerStore& s = layers_[size_t(l)];
        const int block = tables_[size_t(seq)][size_t(pos / kBlockSize)];
        return s.offset + size_t(block) * s.block + (v ? kBlockSize * s.k_row : 0) +
               size_t(pos % kBlockSize) * (v ? s.v_row : s.k_row);
    }
    float* slot_state(int l, int slot) {
        return reinterpret_cast<float*>(&snapshots_[(size_t(slot) * state_floats_ + layers_[size_t(l)].state_offset) * sizeof(float)]);
    }
    int take_slot(int seq, int block_index);  // a slot for table[seq][block_index]; -1: none
    int free_slot();                          // a slot to fill (evicting LRU if need be); -1: none
    void give_slot(int slot, int block, bool keep);
    void drop_snapshot(int block);
    bool pinned(int slot) const;  // a live sequence's resume point, or written in this pass
    void restore_states(int seq);  // live states from the snapshot of the last full block

    MemoryLayout layout_;
    int n_ctx_, n_seq_, n_blocks_;
    KvType type_;
    std::vector<LayerStore> layers_;
    size_t block_bytes_ = 0, state_floats_ = 0;
    LazyBuffer data_;                      // per layer: [block][K rows | V rows | snapshot]
    std::vector<float> states_;            // [seq][layer state]
    std::vector<int> refs_;                // per block
    std::vector<int> free_;                // free block ids (stack: reused blocks before untouched ones)
    int blocks_touched_ = 0;               // blocks ever handed out = the pool's low ids [0, this)
    std::vector<std::vector<int>> tables_; // per sequence
    std::vector<int> lengths_;             // per sequence

    // Recurrent snapshots: a pool of slots, each one state of every recurrent layer.
    struct Slot {
        int block = -1;      // whose snapshot it holds (-1: free)
        uint64_t used = 0;   // clock of its last write or restore (LRU)
        bool keep = false;   // not dropped when its sequence moves on
    };
    bool recurrent_ = false;
    int first_recurrent_ = -1;             // the layer that takes slots at block ends
    LazyBuffer snapshots_;                 // [slot][state_floats_ floats]
    std::vector<Slot> slots_;
    std::vector<int> free_slots_;          // stack, low ids first
    int slots_touched_ = 0;
    std::vector<int> snapshot_of_;         // per block: its slot or -1
    std::vector<int> latest_;              // per sequence: block of its latest own snapshot, or -1
    uint64_t clock_ = 0, pass_clock_ = 0;  // pass_clock_: the clock when the pass began
};

// One line for logs, e.g. "KV cache f16: 8.00 GiB reserved for 65536 positions (128.00 KiB
// each); memory is committed as sequences fill it".
std::string describe_kv_cache(KvType type, size_t bytes, int64_t positions);

}  // namespace pensieve
