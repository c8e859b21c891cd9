#include "server/server_context.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace pensieve::server {

namespace {

int default_ctx(const ServerOptions& o, const Model& m) {
    if (o.n_ctx > 0) return o.n_ctx;
    return std::min(m.config().n_ctx_train > 0 ? m.config().n_ctx_train : 4096, 4096);
}

// One line per 5 s of a long prompt's prefill, and one at its end (counts only).
void log_prefill_progress(const PrefillProgress& p) {
    const int computed = p.done - p.cached;
    const double rate = p.seconds > 0 ? computed / p.seconds : 0.0;
    if (p.finished)
        std::fprintf(stderr, "pensieve: slot %d read its prompt: %d tokens (%d from the cache) in %.1f s, %.0f tok/s\n",
                     p.slot, p.total, p.cached, p.seconds, rate);
    else
        std::fprintf(stderr, "pensieve: slot %d reading its prompt: %d / %d tokens (%.0f%%), %.0f tok/s\n", p.slot,
                     p.done, p.total, 100.0 * p.done / std::max(1, p.total), rate);
}

SchedulerConfig scheduler_config(const ServerOptions& o, int n_ctx, const Model& m) {
    SchedulerConfig c;
    c.n_slots = std::max(1, o.n_parallel);
    c.n_ctx = n_ctx;
    c.n_batch = o.n_batch;
    c.prefill_chunk_decoding = o.prefill_chunk_decoding;
    c.max_queue = std::max(0, o.max_queue);
    c.lookup_draft = o.lookup_draft;
    c.draft_model = o.draft_model;
    c.draft_layers = o.draft_layers;
    c.draft_max = o.draft_max;
    c.draft_p_min = o.draft_p_min;
    c.draft_adaptive = !o.draft_fixed;
    c.draft_tree = o.draft_tree;
    c.cache_dir = o.cache_dir;
    c.reuse_prefix = o.prefix_cache;
    c.cache_type = o.cache_type;
    if (o.log_requests) c.on_prefill_progress = log_prefill_progress;
    if (o.cache_ram_mib >= 0) {
        // MiB -> KV blocks of this model (K and V rows of the cache type, every layer,
        // kBlockSize positions).
        const size_t block_bytes =
            KvCache::kBlockSize * m.position_bytes(o.cache_type);
        c.cache_blocks = int(size_t(o.cache_ram_mib) * (size_t(1) << 20) / block_bytes);
    }
    return c;
}

// Ids of the texts that are control tokens (those are dropped from generated text unless
// shown), sorted; end-of-generation tokens never appear in the text anyway.
std::vector<int32_t> control_tokens_of(const Tokenizer& tok, const std::vector<std::string_view>& texts) {
    std::vector<int32_t> ids;
    for (std::string_view t : texts) {
        const int32_t id = tok.find_token(t);
        if (id >= 0 && tok.is_control(id) && !tok.is_end_of_generation(id)) ids.push_back(id);
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

}  // namespace

Engine::Engine(Model& m, const Tokenizer& tok, ThreadPool& pool, const ServerOptions& o, std::string id)
    : Engine(LoadedModel(), m, tok, pool, o, std::move(id)) {}

// The references point at the objects the unique_ptrs own, which stay put when `owned`
// takes the pointers over.
Engine::Engine(LoadedModel lm, const ServerOptions& o, std::string id)
    : Engine(std::move(lm), *lm.model, *lm.tokenizer, *lm.pool, o, std::move(id)) {}

Engine::Engine(LoadedModel&& lm, Model& m, const Tokenizer& tok, ThreadPool& pool, const ServerOptions& o, std::string id)
    : owned(std::move(lm)),
      model(m),
      tokenizer(tok),
      pool(pool),
      model_id(std::move(id)),
      created(std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch()).count()),
      n_ctx(default_ctx(o, m)),
      chat(ChatFormatter::for_model(m.file(), tok, o.chat_template_source)),
      shown_control_tokens(control_tokens_of(tok, chat.reply_special_texts())),
      scheduler(m, tok, pool, scheduler_config(o, n_ctx, m)),
      encoder(m, pool) {}

ChatPrompt Engine::chat_prompt(const json& messages, const json& tools) const {
    return make_chat_prompt(tokenizer, messages, tools,
                            [this](const json& m, const json& t) { return chat.render(m, t, true); });
}

std::vector<int32_t> Engine::tokenize_prompt(const std::string& text, bool parse_special) const {
    return tokenize_prompt_text(tokenizer, text, parse_special);
}

Tracked::Tracked(ServerContext& ctx, std::shared_ptr<Engine> engine, std::shared_ptr<RequestStream> stream)
    : ctx_(ctx), engine_(std::move(engine)), stream_(std::move(stream)) {
    std::lock_guard<std::mutex> lock(ctx_.mutex_);
    ctx_.streams_.insert(stream_);
}

Tracked::~Tracked() {
    if (!finished_) stream_->cancel();  // nobody will read the rest: free the slot
    std::lock_guard<std::mutex> lock(ctx_.mutex_);
    ctx_.streams_.erase(stream_);
}

std::unique_ptr<Tracked> ServerContext::submit(Engine& e, RequestParams params, const std::string& endpoint) {
    auto stream = e.scheduler.submit(std::move(params));
    metrics.record_generation(endpoint);
    return std::make_unique<Tracked>(*this, e.shared_from_this(), std::move(stream));
}

size_t ServerContext::in_flight() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return streams_.size();
}

void ServerContext::cancel_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& s : streams_) s->cancel();
}

}  // namespace pensieve::server
