// Perplexity of a model on a token stream, windowed the way ../shared/reference/README.md
// describes (and other engines' perplexity tools do): consecutive windows of n_ctx tokens,
// first token of each replaced by BOS, only the second half of each window scored.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/kv_cache.h"

namespace pensieve {

class Model;
class ThreadPool;

struct PerplexityResult {
    double ppl = 0.0;
    double nll_mean = 0.0;   // mean negative log-likelihood per scored token
    double ppl_stderr = 0.0; // standard error of ppl (delta method)
    int64_t n_scored = 0;
    int n_windows = 0;
};

// tokens: the whole text tokenized once, with BOS. on_window(done, total, ppl so far) is
// called after each window (progress). Throws Error if the text is shorter than one window.
// cache_type: element type of the KV cache the windows run with.
PerplexityResult perplexity(Model& model, ThreadPool& pool, const std::vector<int32_t>& tokens,
                            int n_ctx, int32_t bos_id, int n_batch,
                            const std::function<void(int, int, double)>& on_window = {},
                            KvType cache_type = KvType::F16);

}  // namespace pensieve
