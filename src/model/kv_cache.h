// Keys and values of past tokens, per layer, per sequence, per position, stored as fp16
// (the default of other engines, and half the memory of f32).
//
// The forward pass reads and writes it only through k_row()/v_row(), one position at a
// time, so the storage behind those calls can become paged blocks shared between
// sequences without touching the models.
#pragma once

#include <cstdint>
#include <vector>

#include "util/fp16.h"

namespace pensieve {

class KvCache {
public:
    // n_seq sequences of up to n_ctx positions each; kv_dim = n_head_kv * head_dim.
    KvCache(int n_layer, int n_ctx, int kv_dim, int n_seq);

    int n_ctx() const { return n_ctx_; }
    int n_seq() const { return n_seq_; }
    int kv_dim() const { return kv_dim_; }
    size_t bytes() const { return (k_.size() + v_.size()) * sizeof(fp16_t); }

    fp16_t* k_row(int layer, int seq, int pos) { return &k_[index(layer, seq, pos)]; }
    fp16_t* v_row(int layer, int seq, int pos) { return &v_[index(layer, seq, pos)]; }
    const fp16_t* k_row(int layer, int seq, int pos) const { return &k_[index(layer, seq, pos)]; }
    const fp16_t* v_row(int layer, int seq, int pos) const { return &v_[index(layer, seq, pos)]; }

    // Number of positions of `seq` currently held (positions [0, length) are valid).
    int length(int seq) const { return lengths_[size_t(seq)]; }
    void set_length(int seq, int n) { lengths_[size_t(seq)] = n; }
    // Forgets positions >= pos of a sequence (e.g. rejected speculative tokens).
    void truncate(int seq, int pos) {
        if (lengths_[size_t(seq)] > pos) lengths_[size_t(seq)] = pos;
    }
    void clear(int seq) { lengths_[size_t(seq)] = 0; }

private:
    size_t index(int layer, int seq, int pos) const {
        return ((size_t(layer) * size_t(n_seq_) + size_t(seq)) * size_t(n_ctx_) + size_t(pos)) *
               size_t(kv_dim_);
    }
    int n_layer_, n_ctx_, kv_dim_, n_seq_;
    std::vector<fp16_t> k_, v_;
    std::vector<int> lengths_;
};

}  // namespace pensieve
