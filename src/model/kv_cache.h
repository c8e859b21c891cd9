// Keys and values of past tokens, stored in fixed-size blocks ("pages") of kBlockSize
// positions. Each sequence has a block table: position p of sequence s lives in block
// table[s][p / kBlockSize] at offset p % kBlockSize. Blocks are reference counted, so
// sequences (and the prefix cache) can share the blocks of a common prompt prefix
// without copying; a block returns to the free list when its last user lets go.
//
// Element type (KvType, --cache-type): one row is the kv_dim values of one position and
// one layer, either
//   F16   kv_dim fp16 values (2 bytes each; the default), or
//   Q8_0  kv_dim / 32 GGUF Q8_0 blocks (fp16 scale + 32 int8: 34 bytes per 32 values,
//         53% of F16). A head whose size is a multiple of 32 owns whole blocks, so
//         attention can dot a Q8_0-quantized query with it in integers.
// The cache stores bytes; the forward pass interprets rows by type(). Within one block
// the rows of consecutive positions are row_bytes() apart (attention reads them in runs).
//
// The forward pass reads and writes only through k_row()/v_row(). Shared blocks are
// always full blocks of an earlier prompt and are never written: a sequence only writes
// positions at or after its own length, and a shared prefix ends on a block boundary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pensieve {

enum class KvType : uint32_t { F16 = 0, Q8_0 = 1 };  // values are stored in cache files

const char* kv_type_name(KvType type);          // "f16", "q8_0"
KvType parse_kv_type(const std::string& name);  // fails (Error) on unknown names
// Bytes of one row of kv_dim values; fails if the type cannot hold such a row (Q8_0
// needs kv_dim to be a multiple of 32).
size_t kv_row_bytes(KvType type, int kv_dim);

class KvCache {
public:
    static constexpr int kBlockSize = 16;

    // n_seq sequences of up to n_ctx positions each; kv_dim = n_head_kv * head_dim.
    // n_blocks: size of the block pool (0: enough for every sequence to fill its context).
    KvCache(int n_layer, int n_ctx, int kv_dim, int n_seq, int n_blocks = 0, KvType type = KvType::F16);

    int n_ctx() const { return n_ctx_; }
    int n_seq() const { return n_seq_; }
    int n_layer() const { return n_layer_; }
    int kv_dim() const { return kv_dim_; }
    int n_blocks() const { return n_blocks_; }
    KvType type() const { return type_; }
    size_t row_bytes() const { return row_bytes_; }
    size_t bytes() const { return k_.size() + v_.size(); }
    // K and V of one position in every layer.
    size_t position_bytes() const { return 2 * size_t(n_layer_) * row_bytes_; }
    size_t block_bytes() const { return kBlockSize * position_bytes(); }

    uint8_t* k_row(int layer, int seq, int pos) { return &k_[row_index(layer, seq, pos)]; }
    uint8_t* v_row(int layer, int seq, int pos) { return &v_[row_index(layer, seq, pos)]; }
    const uint8_t* k_row(int layer, int seq, int pos) const { return &k_[row_index(layer, seq, pos)]; }
    const uint8_t* v_row(int layer, int seq, int pos) const { return &v_[row_index(layer, seq, pos)]; }

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
    // Raw block storage for one layer (kBlockSize rows of row_bytes()), for saving/loading.
    size_t layer_block_bytes() const { return kBlockSize * row_bytes_; }
    uint8_t* k_block(int layer, int block) { return &k_[block_index(layer, block)]; }
    uint8_t* v_block(int layer, int block) { return &v_[block_index(layer, block)]; }

private:
    size_t block_index(int layer, int block) const {
        return (size_t(layer) * size_t(n_blocks_) + size_t(block)) * layer_block_bytes();
    }
    size_t row_index(int layer, int seq, int pos) const {
        const int block = tables_[size_t(seq)][size_t(pos / kBlockSize)];
        return block_index(layer, block) + size_t(pos % kBlockSize) * row_bytes_;
    }

    int n_layer_, n_ctx_, kv_dim_, n_seq_, n_blocks_;
    KvType type_;
    size_t row_bytes_;
    std::vector<uint8_t> k_, v_;           // [layer][block][kBlockSize][row_bytes]
    std::vector<int> refs_;                // per block
    std::vector<int> free_;                // free block ids (stack)
    std::vector<std::vector<int>> tables_; // per sequence
    std::vector<int> lengths_;             // per sequence
};

}  // namespace pensieve
