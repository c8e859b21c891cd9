#include "engine/perplexity.h"

#include <algorithm>
#include <cmath>

#include "model/model.h"
#include "util/error.h"

namespace pensieve {

namespace {

// -log softmax(logits)[target], computed stably in double.
double negative_log_prob(const float* logits, int n_vocab, int32_t target) {
    float max_val = logits[0];
    for (int i = 1; i < n_vocab; ++i) max_val = std::max(max_val, logits[i]);
    double sum = 0.0;
    for (int i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i]) - max_val);
    return std::log(sum) - (double(logits[target]) - max_val);
}

}  // namespace

PerplexityResult perplexity(Model& model, ThreadPool& pool, const std::vector<int32_t>& tokens,
                            int n_ctx, int32_t bos_id, int n_batch,
                            const std::function<void(int, int, double)>& on_window, KvType cache_type) {
    if (n_ctx < 4) fail("perplexity context must be at least 4 tokens");
    const int n_windows = int(tokens.size() / size_t(n_ctx));
    if (n_windows == 0)
        fail("the text has ", tokens.size(), " tokens, fewer than one window of ", n_ctx);
    const int n_vocab = model.config().n_vocab;
    n_batch = std::max(1, std::min(n_batch, n_ctx));

    KvCache cache = model.make_cache(n_ctx, 1, 0, cache_type);
    std::vector<float> logits(size_t(n_ctx) * size_t(n_vocab));
    Batch batch;
    PerplexityResult r;
    r.n_windows = n_windows;
    double nll_sum = 0.0, nll_sq_sum = 0.0;

    for (int w = 0; w < n_windows; ++w) {
        const size_t start = size_t(w) * size_t(n_ctx);
        cache.clear(0);
        // Every position gets logits; evaluate n_batch tokens per forward pass.
        for (int b0 = 0; b0 < n_ctx; b0 += n_batch) {
            const int b1 = std::min(n_ctx, b0 + n_batch);
            batch.clear();
            for (int j = b0; j < b1; ++j) {
                const int32_t tok = (j == 0 && bos_id >= 0) ? bos_id : tokens[start + size_t(j)];
                batch.add(tok, j, 0, true);
            }
            model.forward(batch, cache, pool, &logits[size_t(b0) * size_t(n_vocab)]);
        }
        for (int j = n_ctx / 2; j <= n_ctx - 2; ++j) {
            const double nll = negative_log_prob(&logits[size_t(j) * size_t(n_vocab)], n_vocab,
                                                 tokens[start + size_t(j) + 1]);
            nll_sum += nll;
            nll_sq_sum += nll * nll;
            ++r.n_scored;
        }
        if (on_window) on_window(w + 1, n_windows, std::exp(nll_sum / double(r.n_scored)));
    }
    r.nll_mean = nll_sum / double(r.n_scored);
    r.ppl = std::exp(r.nll_mean);
    const double var = nll_sq_sum / double(r.n_scored) - r.nll_mean * r.nll_mean;
    r.ppl_stderr = r.n_scored > 1 ? r.ppl * std::sqrt(std::max(0.0, var) / double(r.n_scored - 1)) : 0.0;
    return r;
}

}  // namespace pensieve
