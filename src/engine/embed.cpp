#include "engine/embed.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <string>

#include "util/error.h"

namespace pensieve {

int embedding_max_tokens(const Model& model) {
    const int learned = model.memory_layout().max_positions;
    return learned > 0 ? learned : model.config().n_ctx_train;
}

void check_embedding_input(const Model& model, const std::vector<int32_t>& tokens) {
    const int n = int(tokens.size());
    if (n == 0) fail("the input is empty");
    const int limit = embedding_max_tokens(model);
    if (n > limit) fail("the input is ", n, " tokens but this model embeds at most ", limit);
    const int n_vocab = model.config().n_vocab;
    for (int32_t id : tokens)
        if (id < 0 || id >= n_vocab) fail("token id ", id, " is outside the vocabulary (", n_vocab, ")");
}

std::vector<std::pair<size_t, size_t>> pass_groups(const std::vector<size_t>& lengths, size_t max_tokens) {
    std::vector<std::pair<size_t, size_t>> groups;
    size_t first = 0;
    while (first < lengths.size()) {
        size_t last = first, tokens = 0;
        while (last < lengths.size() && (last == first || tokens + lengths[last] <= max_tokens))
            tokens += lengths[last++];
        groups.emplace_back(first, last);
        first = last;
    }
    return groups;
}

void encode_pass(Model& model, ThreadPool& pool, const std::vector<std::vector<int32_t>>& inputs,
                 const std::vector<std::vector<int32_t>>& types, size_t first, size_t last, const ForwardOutputs& out) {
    Batch batch;
    size_t longest = 0;
    for (size_t i = first; i < last; ++i) {
        const std::vector<int32_t>& tokens = inputs[i];
        for (size_t t = 0; t < tokens.size(); ++t) batch.add(tokens[t], int32_t(t), int32_t(i - first), true);
        if (!types.empty()) batch.token_types.insert(batch.token_types.end(), types[i].begin(), types[i].end());
        longest = std::max(longest, tokens.size());
    }
    std::lock_guard<std::mutex> turn(model.forward_mutex());
    KvCache cache = model.make_cache(int(longest), int(last - first));
    model.forward(batch, cache, pool, out);
}

void check_embedding_inputs(const Model& model, const std::vector<std::vector<int32_t>>& inputs) {
    for (size_t i = 0; i < inputs.size(); ++i) {
        try {
            check_embedding_input(model, inputs[i]);
        } catch (const Error& e) {
            if (inputs.size() == 1) throw;
            fail("input[", i, "]: ", e.what());
        }
    }
}

std::vector<std::vector<float>> embed_inputs(Model& model, ThreadPool& pool,
                                             const std::vector<std::vector<int32_t>>& inputs,
                                             const std::vector<Pooling>& poolings) {
    check_embedding_inputs(model, inputs);
    if (poolings.size() != 1 && poolings.size() != inputs.size()) fail("one pooling per input, or one for all");
    std::vector<size_t> lengths;
    for (const std::vector<int32_t>& in : inputs) lengths.push_back(in.size());
    const size_t E = size_t(model.config().n_embd);
    std::vector<std::vector<float>> vectors;
    for (const auto& [first, last] : pass_groups(lengths, kEncoderPassTokens)) {
        // Per-token rows, pooled here as asked (the model's own pooling may differ).
        size_t n_tokens = 0;
        for (size_t i = first; i < last; ++i) n_tokens += lengths[i];
        std::vector<float> rows(n_tokens * E);
        ForwardOutputs out;
        out.embeddings = rows.data();
        encode_pass(model, pool, inputs, {}, first, last, out);
        const float* x = rows.data();
        for (size_t i = first; i < last; ++i) {
            Batch one;  // the input's rows alone, for pool_sequences
            for (size_t t = 0; t < lengths[i]; ++t) one.add(0, int32_t(t), 0, true);
            std::vector<float>& v = vectors.emplace_back(E);
            pool_sequences(x, int64_t(E), one, poolings[poolings.size() == 1 ? 0 : i], v.data());
            x += lengths[i] * E;
        }
    }
    return vectors;
}

std::vector<float> embed_tokens(Model& model, ThreadPool& pool, const std::vector<int32_t>& tokens,
                                Pooling pooling) {
    return embed_inputs(model, pool, {tokens}, pooling)[0];
}

void l2_normalize(std::vector<float>& v) {
    double sum = 0.0;
    for (float x : v) sum += double(x) * x;
    if (sum == 0.0) return;
    const float inv = float(1.0 / std::sqrt(sum));
    for (float& x : v) x *= inv;
}

}  // namespace pensieve
