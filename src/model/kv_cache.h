// Keys and values of past tokens, stored as fp16 in fixed-size blocks ("pages") of
// kBlockSize positions. Each sequence has a block table: position p of sequence s lives
// in block table[s][p / kBlockSize] at offset p % kBlockSize. Blocks are reference
// counted, so sequences (and the prefix cache) can share the blocks of a common prompt
// prefix without copying; a block returns to the free list when its last user lets go.
//
// The forward pass reads and writes only through k_row()/v_row(). Shared blocks are
// always full blocks of an earlier prompt and are never written: a sequence only writes
// positions at or after its own length, and a shared prefix ends on a block boundary.
#pragma once

#include <cstdint>
#include <vector>

#include "util/fp16.h"

namespace pensieve {

class KvCache {
public:
    static constexpr int kBlockSize = 16;

    // n_seq sequences of up to n_ctx positions each; kv_dim = n_head_kv * head_dim.
    // n_blocks: size of the block pool (0: enough for every sequence to fill its context).
    KvCache(int n_layer, int n_ctx, int kv_dim, int n_seq, int n_blocks = 0);

    int n_ctx() const { return n_ctx_; }
    int n_seq() const { return n_seq_; }
    int n_layer() const { return n_layer_; }
    int kv_dim() const { return kv_dim_; }
    int n_blocks() const { return n_blocks_; }
    size_t bytes() const { return (k_.size() + v_.size()) * sizeof(fp16_t); }
    size_t block_bytes() const { return 2 * size_t(n_layer_) * kBlockSize * size_t(kv_dim_) * sizeof(fp16_t); }

    fp16_t* k_row(int layer, int seq, int pos) { return &k_[row_index(layer, seq, pos)]; }
    fp16_t* v_row(int layer, int seq, int pos) { return &v_[row_index(layer, seq, pos)]; }
    const fp16_t* k_row(int layer, int seq, int pos) const { return &k_[row_index(layer, seq, pos)]; }
    const fp16_t* v_row(int layer, int seq, int pos) const { return &v_[row_index(layer, seq, pos)]; }

    // --- sequences ---
    // Positions [0, length) of `seq` hold valid keys/values.
    int length(int seq) const { return lengths_[size_t(seq)]; }
    void set_length(int seq, int n) { lengths_[size_t(seq)] = n; }
    // Positions `seq` can hold without new blocks.
    int capacity(int seq) const { return int(tables_[size_t(seq)].size()) * kBlockSize; }
    // Makes room for positions [0, n_positions); false if the pool ran out of blocks
    // (nothing is changed then).
    bool reserve(int seq, int n_positions);
    // Forgets positions >= pos and lets go of blocks no longer needed.
    void truncate(int seq, int pos);
    void clear(int seq) { truncate(seq, 0); }
    const std::vector<int>& block_table(int seq) const { return tables_[size_t(seq)]; }
    // Makes an empty sequence start with shared full blocks (a cached prefix).
    void attach_prefix(int seq, const std::vector<int>& blocks);

    // --- blocks ---
    int free_blocks() const { return int(free_.size()); }
    int allocate_block();              // -1 when none is free; the caller holds one reference
    void retain_block(int block) { ++refs_[size_t(block)]; }
    void release_block(int block);
    int block_refs(int block) const { return refs_[size_t(block)]; }
    // Raw block storage for one layer (kBlockSize rows of kv_dim), for saving/loading.
    fp16_t* k_block(int layer, int block) { return &k_[block_index(layer, block)]; }
    fp16_t* v_block(int layer, int block) { return &v_[block_index(layer, block)]; }

private:
    size_t block_index(int layer, int block) const {
        return (size_t(layer) * size_t(n_blocks_) + size_t(block)) * kBlockSize * size_t(kv_dim_);
    }
    size_t row_index(int layer, int seq, int pos) const {
        const int block = tables_[size_t(seq)][size_t(pos / kBlockSize)];
        return block_index(layer, block) + size_t(pos % kBlockSize) * size_t(kv_dim_);
    }

    int n_layer_, n_ctx_, kv_dim_, n_seq_, n_blocks_;
    std::vector<fp16_t> k_, v_;            // [layer][block][kBlockSize][kv_dim]
    std::vector<int> refs_;                // per block
    std::vector<int> free_;                // free block ids (stack)
    std::vector<std::vector<int>> tables_; // per sequence
    std::vector<int> lengths_;             // per sequence
};

}  // namespace pensieve
