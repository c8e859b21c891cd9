#include "engine/embed.h"

#include <cmath>
#include <mutex>

#include "util/error.h"

namespace pensieve {

int embedding_max_tokens(const Model& model) {
    const int learned = model.memory_layout().max_positions;
    return learned > 0 ? learned : model.config().n_ctx_train;
}

std::vector<float> embed_tokens(Model& model, ThreadPool& pool, const std::vector<int32_t>& tokens,
                                Pooling pooling) {
    const int n = int(tokens.size());
    if (n == 0) fail("the input is empty");
    const int limit = embedding_max_tokens(model);
    if (n > limit) fail("the input is ", n, " tokens but this model embeds at most ", limit);
    const int64_t E = model.config().n_embd;
    Batch batch;
    for (int i = 0; i < n; ++i) batch.add(tokens[size_t(i)], i, 0, true);
    std::vector<float> rows(size_t(n) * size_t(E)), pooled(static_cast<size_t>(E));
    ForwardOutputs out;
    out.embeddings = rows.data();
    {
        std::lock_guard<std::mutex> turn(model.forward_mutex());
        KvCache cache = model.make_cache(n, 1);
        model.forward(batch, cache, pool, out);
    }
    pool_sequences(rows.data(), E, batch, pooling, pooled.data());
    return pooled;
}

void l2_normalize(std::vector<float>& v) {
    double sum = 0.0;
    for (float x : v) sum += double(x) * x;
    if (sum == 0.0) return;
    const float inv = float(1.0 / std::sqrt(sum));
    for (float& x : v) x *= inv;
}

}  // namespace pensieve
