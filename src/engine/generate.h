// Single-sequence text generation: prompt prefill in chunks, then sample one token at a
// time, streaming text (valid UTF-8, stop strings held back) to a callback. Used by
// `pensieve run`; the server's scheduler batches many of these.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampler.h"

#include <memory>

namespace pensieve {

class Grammar;
class Model;
class KvCache;
class Tokenizer;
class ThreadPool;

struct GenerateOptions {
    int n_predict = -1;                    // < 0: until end of generation or context full
    int n_batch = 512;                     // prompt tokens per forward pass
    SamplingParams sampling;
    std::vector<std::string> stop;         // stop strings (not included in the output)
    bool ignore_eos = false;
    // Constrained output: only token sequences of this grammar (JSON schema, GBNF) are
    // sampled; generation ends when the grammar is complete.
    std::shared_ptr<const Grammar> grammar;
};

struct GenerateResult {
    std::vector<int32_t> tokens;           // generated ids
    std::string text;                      // generated text (what on_text received)
    int n_prompt = 0;
    double prompt_seconds = 0.0;
    double generate_seconds = 0.0;         // from first sampled token to the end
    std::string stop_reason;               // "eos", "stop", "length", "context", "cancelled"

    double prompt_tps() const { return prompt_seconds > 0 ? n_prompt / prompt_seconds : 0.0; }
    // The first token comes from the prompt pass; the rest each took one decode step.
    double generate_tps() const {
        return generate_seconds > 0 && tokens.size() > 1 ? double(tokens.size() - 1) / generate_seconds : 0.0;
    }
};

// Runs prompt → continuation on sequence 0 of `cache` (cleared first). on_text receives
// each piece of new text; returning false cancels. Throws Error if the prompt does not
// fit in the cache's context.
GenerateResult generate(Model& model, const Tokenizer& tokenizer, KvCache& cache, ThreadPool& pool,
                        const std::vector<int32_t>& prompt, const GenerateOptions& options,
                        const std::function<bool(std::string_view)>& on_text);

// Evaluates `tokens` on sequence `seq` starting at the cache's current length, n_batch at a
// time; returns the logits after the last token (n_vocab floats).
std::vector<float> prefill(Model& model, KvCache& cache, ThreadPool& pool,
                           const std::vector<int32_t>& tokens, int seq, int n_batch);

}  // namespace pensieve
