// One request, start to finish, as a plain function call: a one-slot Scheduler (the
// only decode loop there is) fed one prompt, its stream drained into on_text. For tests
// and tools that want the continuation of one prompt; `pensieve run` and the server use
// the Scheduler directly.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/request.h"

namespace pensieve {

class Model;
class KvCache;
class Tokenizer;
class ThreadPool;

struct GenerateResult {
    std::vector<int32_t> tokens;           // generated ids
    std::string text;                      // generated text (what on_text received)
    int n_prompt = 0;
    double prompt_seconds = 0.0;
    double generate_seconds = 0.0;         // from first sampled token to the end
    FinishReason finish = FinishReason::EndOfGeneration;

    double prompt_tps() const { return prompt_seconds > 0 ? n_prompt / prompt_seconds : 0.0; }
    // The first token comes from the prompt pass; the rest each took one decode step.
    double generate_tps() const {
        return generate_seconds > 0 && tokens.size() > 1 ? double(tokens.size() - 1) / generate_seconds : 0.0;
    }
};

// Runs prompt -> continuation on a one-slot scheduler whose KV cache has `shape`'s
// context length and element type (`shape` itself is not touched). on_text receives each
// piece of new text; returning false cancels. Throws Error if the request cannot run
// (empty prompt, prompt plus n_predict past the context, ...).
GenerateResult generate(Model& model, const Tokenizer& tokenizer, const KvCache& shape, ThreadPool& pool,
                        const std::vector<int32_t>& prompt, const GenerateOptions& options,
                        const std::function<bool(std::string_view)>& on_text);

// Evaluates `tokens` on sequence `seq` starting at the cache's current length, n_batch at a
// time; returns the logits after the last token (n_vocab floats).
std::vector<float> prefill(Model& model, KvCache& cache, ThreadPool& pool,
                           const std::vector<int32_t>& tokens, int seq, int n_batch);

}  // namespace pensieve
