#include "model/kv_cache.h"

#include <cassert>

#include "quant/blocks.h"
#include "util/error.h"
#include "util/fp16.h"

namespace pensieve {

const char* kv_type_name(KvType type) {
    switch (type) {
        case KvType::F16: return "f16";
        case KvType::Q8_0: return "q8_0";
    }
    return "?";
}

KvType parse_kv_type(const std::string& name) {
    if (name == "f16") return KvType::F16;
    if (name == "q8_0") return KvType::Q8_0;
    fail("unknown KV cache type '", name, "' (supported: f16, q8_0)");
}

size_t kv_row_bytes(KvType type, int kv_dim) {
    switch (type) {
        case KvType::F16: return size_t(kv_dim) * sizeof(fp16_t);
        case KvType::Q8_0:
            if (kv_dim % QK8_0 != 0)
                fail("a q8_0 KV cache needs the KV width (", kv_dim, ") to be a multiple of ", QK8_0,
                     "; use --cache-type f16");
            return size_t(kv_dim / QK8_0) * sizeof(BlockQ8_0);
    }
    fail("invalid KV cache type ", uint32_t(type));
}

KvCache::KvCache(int n_layer, int n_ctx, int kv_dim, int n_seq, int n_blocks, KvType type)
    : n_layer_(n_layer), n_ctx_(n_ctx), kv_dim_(kv_dim), n_seq_(n_seq), n_blocks_(n_blocks), type_(type) {
    if (n_layer <= 0 || n_ctx <= 0 || kv_dim <= 0 || n_seq <= 0 || n_blocks < 0)
        fail("invalid KV cache shape: ", n_layer, " layers, ", n_ctx, " positions, ", kv_dim,
             " dims, ", n_seq, " sequences, ", n_blocks, " blocks");
    row_bytes_ = kv_row_bytes(type, kv_dim);
    const int per_seq = (n_ctx + kBlockSize - 1) / kBlockSize;
    if (n_blocks_ == 0) n_blocks_ = per_seq * n_seq;
    const size_t n = size_t(n_layer) * size_t(n_blocks_) * layer_block_bytes();
    try {
        k_.assign(n, 0);
        v_.assign(n, 0);
    } catch (const std::bad_alloc&) {
        fail("out of memory allocating the ", kv_type_name(type), " KV cache (", 2 * n / (1 << 20),
             " MiB); use a smaller context (-c), fewer parallel slots or --cache-type q8_0");
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
