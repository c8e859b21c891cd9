#include "engine/generate.h"

#include "engine/grammar_matcher.h"
#include "engine/stop_strings.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/thread_pool.h"
#include "util/timer.h"
#include "util/utf8.h"

namespace pensieve {

std::vector<float> prefill(Model& model, KvCache& cache, ThreadPool& pool,
                           const std::vector<int32_t>& tokens, int seq, int n_batch) {
    const int n_vocab = model.config().n_vocab;
    std::vector<float> logits(static_cast<size_t>(n_vocab));
    Batch batch;
    const size_t n = tokens.size();
    for (size_t start = 0; start < n; start += size_t(n_batch)) {
        const size_t end = std::min(n, start + size_t(n_batch));
        batch.clear();
        const int base = cache.length(seq);
        for (size_t i = start; i < end; ++i)
            batch.add(tokens[i], base + int(i - start), seq, i + 1 == n);
        model.forward(batch, cache, pool, logits.data());
    }
    return logits;
}

GenerateResult generate(Model& model, const Tokenizer& tokenizer, KvCache& cache, ThreadPool& pool,
                        const std::vector<int32_t>& prompt, const GenerateOptions& options,
                        const std::function<bool(std::string_view)>& on_text) {
    GenerateResult result;
    result.n_prompt = int(prompt.size());
    if (prompt.empty()) fail("the prompt is empty (no tokens)");
    if (int(prompt.size()) >= cache.n_ctx())
        fail("the prompt is ", prompt.size(), " tokens, the context holds ", cache.n_ctx(),
             "; use a larger context (-c)");
    cache.clear(0);

    Sampler sampler(options.sampling, model.config().n_vocab);
    for (int32_t t : prompt) sampler.accept(t);
    StopStringMatcher stops(options.stop);
    std::unique_ptr<GrammarMatcher> grammar;
    if (options.grammar) grammar = std::make_unique<GrammarMatcher>(options.grammar, tokenizer);
    Utf8Streamer utf8;

    // Emits text to the caller; false when the caller cancelled.
    auto emit = [&](const std::string& text) {
        if (text.empty()) return true;
        result.text += text;
        return on_text(text);
    };

    Timer timer;
    std::vector<float> logits = prefill(model, cache, pool, prompt, 0, options.n_batch);
    result.prompt_seconds = timer.seconds();
    timer.reset();

    Batch batch;
    for (;;) {
        if (options.n_predict >= 0 && int(result.tokens.size()) >= options.n_predict) {
            result.stop_reason = "length";
            break;
        }
        if (grammar) grammar->mask_logits(logits.data());
        const int32_t token = sampler.sample(logits.data());
        // A complete grammar allows nothing but end-of-generation: it ends even with ignore_eos.
        if ((!options.ignore_eos || grammar) && tokenizer.is_end_of_generation(token)) {
            result.stop_reason = "eos";
            break;
        }
        if (grammar) grammar->accept_token(token);
        sampler.accept(token);
        result.tokens.push_back(token);
        const std::string text = stops.feed(utf8.feed(tokenizer.token_to_piece(token)));
        if (!emit(text)) {
            result.stop_reason = "cancelled";
            break;
        }
        if (stops.stopped()) {
            result.stop_reason = "stop";
            break;
        }
        if (grammar && grammar->can_only_end()) {
            result.stop_reason = "eos";
            break;
        }
        if (cache.length(0) >= cache.n_ctx()) {
            result.stop_reason = "context";
            break;
        }
        if (options.n_predict >= 0 && int(result.tokens.size()) >= options.n_predict) {
            result.stop_reason = "length";
            break;
        }
        batch.clear();
        batch.add(token, cache.length(0), 0, true);
        model.forward(batch, cache, pool, logits.data());
    }
    if (result.stop_reason != "stop" && result.stop_reason != "cancelled")
        emit(stops.feed(utf8.flush()) + stops.flush());
    result.generate_seconds = timer.seconds();
    return result;
}

}  // namespace pensieve
