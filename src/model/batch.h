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

    void clear() { tokens.clear(); positions.clear(); seq_ids.clear(); want_logits.clear(); token_types.clear(); }
    void add(int32_t token, int32_t pos, int32_t seq, bool logits) {
        tokens.push_back(token);
        positions.push_back(pos);
        seq_ids.push_back(seq);
        want_logits.push_back(logits ? 1 : 0);
    }
    int64_t size() const { return int64_t(tokens.size()); }
    int64_t n_logits() const {
        int64_t n = 0;
        for (uint8_t w : want_logits) n += w;
        return n;
    }
};

}  // namespace pensieve
