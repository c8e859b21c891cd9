#include "engine/generate.h"

#include "engine/scheduler.h"
#include "model/model.h"
#include "util/error.h"

namespace pensieve {

std::vector<float> prefill(Model& model, KvCache& cache, ThreadPool& pool,
                           const std::vector<int32_t>& tokens, int seq, int n_batch) {
    const int n_vocab = model.config().n_vocab;
    std::vector<float> logits(static_cast<size_t>(n_vocab));
    Batch batch;
    const size_t n = tokens.size();
    // An encoder reads its prompt in one pass (model.h: encoder_decoder).
    const size_t step = model.config().encoder_decoder && cache.length(seq) == 0 ? std::max<size_t>(n, 1) : size_t(n_batch);
    for (size_t start = 0; start < n; start += step) {
        const size_t end = std::min(n, start + step);
        batch.clear();
        const int base = cache.length(seq);
        for (size_t i = start; i < end; ++i)
            batch.add(tokens[i], base + int(i - start), seq, i + 1 == n);
        model.forward(batch, cache, pool, logits.data());
    }
    return logits;
}

GenerateResult generate(Model& model, const Tokenizer& tokenizer, const KvCache& shape, ThreadPool& pool,
                        const std::vector<int32_t>& prompt, const GenerateOptions& options,
                        const std::function<bool(std::string_view)>& on_text) {
    SchedulerConfig config;
    config.n_slots = 1;
    config.n_ctx = shape.n_ctx();
    config.n_batch = options.n_batch;
    config.max_queue = 1;
    config.reuse_prefix = false;
    config.cache_type = shape.type();
    Scheduler scheduler(model, tokenizer, pool, config);

    RequestParams params;
    params.prompt = prompt;
    params.options = options;
    std::shared_ptr<RequestStream> stream = scheduler.submit(std::move(params));

    GenerateResult result;
    bool cancelled = false;  // tokens the scheduler made before it saw the cancel are dropped
    auto emit = [&](const std::string& text) {
        if (text.empty() || cancelled) return;
        result.text += text;
        if (!on_text(text)) {
            cancelled = true;
            stream->cancel();
        }
    };
    for (;;) {
        std::optional<RequestStream::Event> ev = stream->next(std::chrono::hours(24));
        if (!ev) continue;
        if (auto* t = std::get_if<TokenEvent>(&*ev)) {
            if (cancelled) continue;
            result.tokens.push_back(t->token);
            emit(t->text);
            continue;
        }
        const FinishEvent& f = std::get<FinishEvent>(*ev);
        if (f.reason == FinishReason::Error) fail(f.error);
        if (f.reason != FinishReason::Cancelled) emit(f.tail_text);
        result.finish = f.reason;
        result.n_prompt = f.n_prompt;
        result.prompt_seconds = f.prompt_seconds;
        result.generate_seconds = f.generate_seconds;
        return result;
    }
}

}  // namespace pensieve
