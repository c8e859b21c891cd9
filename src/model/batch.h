// A batch of tokens for one forward pass. Tokens may belong to several sequences (each
// with its own KV cache slot) and sit at any positions: prompt chunks and single decode
// tokens of different requests travel together, which turns every weight product into a
// matrix-matrix product.
#pragma once

#include <cstdint>
#include <vector>

namespace pensieve {

struct Batch {
    std::vector<int32_t> tokens;
    std::vector<int32_t> positions;
    std::vector<int32_t> seq_ids;
    std::vector<uint8_t> want_logits;  // 1: return next-token logits for this token
    // Segment of each token for encoders with token-type embeddings (BERT: 0 for the first
    // text of a pair, 1 for the second); empty: every token is segment 0. Set it after the
    // tokens, one entry per token.
    std::vector<int32_t> token_types;
    // Cache slot of each token's keys and values; empty: its position. A tree row (the
    // verification of a tree draft, engine/drafter.h) stands at `positions[t]` but keeps
    // its keys and values in a spare slot past its sequence's chain of tokens: it sees its
    // sequence's positions before its own from the cache and its own from that slot, so
    // two rows of one sequence can stand at the same position. Slots follow the rule
    // positions follow without trees: contiguous per sequence from its length. Only for
    // models whose tree_rows() is true (model.h). Set it after the tokens.
    std::vector<int32_t> kv_slots;

    void clear() {
        tokens.clear();
        positions.clear();
        seq_ids.clear();
        want_logits.clear();
        token_types.clear();
        kv_slots.clear();
    }
    void add(int32_t token, int32_t pos, int32_t seq, bool logits) {
        tokens.push_back(token);
        positions.push_back(pos);
        seq_ids.push_back(seq);
        want_logits.push_back(logits ? 1 : 0);
    }
    int64_t size() const { return int64_t(tokens.size()); }
    // Where token t's keys and values are stored, and all of them.
    int32_t slot(int64_t t) const { return kv_slots.empty() ? positions[size_t(t)] : kv_slots[size_t(t)]; }
    const std::vector<int32_t>& slots() const { return kv_slots.empty() ? positions : kv_slots; }
    // Whether token t is a tree row (its slot is not its position).
    bool tree_row(int64_t t) const { return slot(t) != positions[size_t(t)]; }
    bool has_tree_rows() const {
        for (int64_t t = 0; t < size(); ++t)
            if (tree_row(t)) return true;
        return false;
    }
    int64_t n_logits() const {
        int64_t n = 0;
        for (uint8_t w : want_logits) n += w;
        return n;
    }
};

}  // namespace pensieve
