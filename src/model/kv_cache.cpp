#include "model/kv_cache.h"

#include <cassert>

#include "util/error.h"

namespace pensieve {

KvCache::KvCache(int n_layer, int n_ctx, int kv_dim, int n_seq, int n_blocks)
    : n_layer_(n_layer), n_ctx_(n_ctx), kv_dim_(kv_dim), n_seq_(n_seq), n_blocks_(n_blocks) {
    if (n_layer <= 0 || n_ctx <= 0 || kv_dim <= 0 || n_seq <= 0 || n_blocks < 0)
        fail("invalid KV cache shape: ", n_layer, " layers, ", n_ctx, " positions, ", kv_dim,
             " dims, ", n_seq, " sequences, ", n_blocks, " blocks");
    const int per_seq = (n_ctx + kBlockSize - 1) / kBlockSize;
    if (n_blocks_ == 0) n_blocks_ = per_seq * n_seq;
    const size_t n = size_t(n_layer) * size_t(n_blocks_) * kBlockSize * size_t(kv_dim);
    try {
        k_.assign(n, 0);
        v_.assign(n, 0);
    } catch (const std::bad_alloc&) {
        fail("out of memory allocating the KV cache (", 2 * n * sizeof(fp16_t) / (1 << 20),
             " MiB); use a smaller context (-c) or fewer parallel slots");
    }
    refs_.assign(size_t(n_blocks_), 0);
    free_.reserve(size_t(n_blocks_));
    for (int b = n_blocks_ - 1; b >= 0; --b) free_.push_back(b);  // hand out low ids first
    tables_.resize(size_t(n_seq));
    lengths_.assign(size_t(n_seq), 0);
}

int KvCache::allocate_block() {
    if (free_.empty()) return -1;
    const int b = free_.back();
    free_.pop_back();
    refs_[size_t(b)] = 1;
    return b;
}

void KvCache::release_block(int block) {
    assert(refs_[size_t(block)] > 0);
    if (--refs_[size_t(block)] == 0) free_.push_back(block);
}

bool KvCache::reserve(int seq, int n_positions) {
    if (n_positions > n_ctx_) return false;
    std::vector<int>& table = tables_[size_t(seq)];
    const size_t need = size_t((n_positions + kBlockSize - 1) / kBlockSize);
    if (need <= table.size()) return true;
    if (need - table.size() > free_.size()) return false;
    while (table.size() < need) table.push_back(allocate_block());
    return true;
}

void KvCache::truncate(int seq, int pos) {
    if (pos < 0) pos = 0;
    if (lengths_[size_t(seq)] > pos) lengths_[size_t(seq)] = pos;
    std::vector<int>& table = tables_[size_t(seq)];
    const size_t keep = size_t((pos + kBlockSize - 1) / kBlockSize);
    while (table.size() > keep) {
        release_block(table.back());
        table.pop_back();
    }
}

void KvCache::attach_prefix(int seq, const std::vector<int>& blocks) {
    if (!tables_[size_t(seq)].empty() || lengths_[size_t(seq)] != 0)
        fail("attach_prefix: sequence ", seq, " is not empty");
    for (int b : blocks) retain_block(b);
    tables_[size_t(seq)] = blocks;
    lengths_[size_t(seq)] = int(blocks.size()) * kBlockSize;
}

}  // namespace pensieve
