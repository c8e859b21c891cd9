#include "engine/scheduler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "engine/decoder.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace pensieve {

namespace {

double now_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

struct Scheduler::Slot {
    int id = 0;
    bool busy = false;
    std::vector<int32_t> tokens;  // tokens whose KV is in this slot's cache, in order

    // The request being served.
    RequestParams params;
    std::shared_ptr<RequestStream> stream;
    std::unique_ptr<SequenceDecoder> decoder;  // logits -> token -> text, for this request
    int32_t next_token = -1;  // sampled, to be fed at the next step
    std::vector<int32_t> draft;  // speculative tokens fed after next_token this step
    std::vector<int32_t> model_draft;  // proposed by the draft model for this step
    // The draft model's backoff: after a step where it ran and proposed nothing (every
    // first guess below draft_p_min), it sits out 2, 4, ... up to 16 steps, since its
    // forward pass costs time whether or not it proposes; a proposal resets it.
    int draft_idle_runs = 0;
    int draft_rest = 0;
    int first_row = -1;          // this step's first logits row, -1: none
    int n_cached = 0;
    double submitted_at = 0, started_at = 0, first_token_at = 0;

    bool prefilling() const { return tokens.size() < params.prompt.size(); }
    int n_generated() const { return decoder ? decoder->n_generated() : 0; }
};

namespace {

int blocks_per_context(int n_ctx) { return (n_ctx + KvCache::kBlockSize - 1) / KvCache::kBlockSize; }

int pool_blocks(const SchedulerConfig& c) {
    const int per_ctx = blocks_per_context(c.n_ctx);
    const int extra = !c.reuse_prefix ? 0 : c.cache_blocks < 0 ? per_ctx : c.cache_blocks;
    return per_ctx * c.n_slots + extra;
}

}  // namespace

Scheduler::Scheduler(Model& model, const Tokenizer& tokenizer, ThreadPool& pool, SchedulerConfig config)
    : model_(model),
      tokenizer_(tokenizer),
      pool_(pool),
      config_(config),
      cache_(model.make_cache(config.n_ctx, config.n_slots, pool_blocks(config), config.cache_type)) {
    if (config_.n_batch < 1) fail("batch size must be at least 1");
    if (config_.reuse_prefix)
        prefix_ = std::make_unique<PrefixCache>(cache_, model_identity(model.file()), config_.cache_dir);
    if (config_.draft_model) {
        if (config_.draft_model->config().n_vocab != model.config().n_vocab)
            fail("the draft model's vocabulary (", config_.draft_model->config().n_vocab,
                 " tokens) differs from the model's (", model.config().n_vocab, ")");
        draft_cache_ = std::make_unique<KvCache>(config_.draft_model->make_cache(config_.n_ctx, config_.n_slots));
    }
    for (int i = 0; i < config_.n_slots; ++i) {
        slots_.push_back(std::make_unique<Slot>());
        slots_.back()->id = i;
    }
    stats_.n_slots = config_.n_slots;
    stats_.kv_bytes = cache_.bytes();
    stats_.kv_type = cache_.type();
    stats_.kv_tokens_capacity = int64_t(cache_.n_blocks()) * KvCache::kBlockSize;
    stats_.kv_blocks_free = cache_.free_blocks();
    thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { shutdown(); }

std::shared_ptr<RequestStream> Scheduler::submit(RequestParams params) {
    const int n_prompt = int(params.prompt.size());
    if (n_prompt == 0) fail("the prompt is empty");
    if (n_prompt >= config_.n_ctx)
        fail("the prompt is ", n_prompt, " tokens but the context holds ", config_.n_ctx,
             " (prompt plus at least one generated token)");
    if (params.options.n_predict > 0 && n_prompt + params.options.n_predict > config_.n_ctx)
        fail("the prompt (", n_prompt, " tokens) plus max tokens (", params.options.n_predict,
             ") exceed the context of ", config_.n_ctx, " tokens");
    params.options.sampling.validate();
    for (int32_t t : params.prompt)
        if (t < 0 || t >= model_.config().n_vocab) fail("token id ", t, " is outside the vocabulary");

    auto stream = std::make_shared<RequestStream>();
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) throw QueueFullError("the server is shutting down");
        if (int(queue_.size()) >= config_.max_queue) {
            ++stats_.requests_rejected;
            throw QueueFullError("too many requests are waiting; try again shortly");
        }
        queue_.push_back(Pending{std::move(params), stream, now_seconds()});
        stats_.queued = int(queue_.size());
    }
    wake_.notify_one();
    return stream;
}

SchedulerStats Scheduler::stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
}

void Scheduler::shutdown() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
}

void Scheduler::loop() {
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] {
                if (stopping_ || !queue_.empty()) return true;
                for (const auto& s : slots_)
                    if (s->busy) return true;
                return false;
            });
            if (stopping_) break;
        }
        admit_waiting();
        step();
    }
    // Shutting down: everything still queued or running ends as cancelled.
    std::deque<Pending> left;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        left.swap(queue_);
        stats_.queued = 0;
    }
    for (auto& p : left) {
        FinishEvent f;
        f.reason = FinishReason::Cancelled;
        f.n_prompt = int(p.params.prompt.size());
        p.stream->push(f);
    }
    for (auto& s : slots_)
        if (s->busy) finish(*s, FinishReason::Cancelled);
    if (prefix_) prefix_->save_all();
}

// Moves queued requests into free slots (first come, first served).
void Scheduler::admit_waiting() {
    for (;;) {
        Pending req;
        Slot* slot = nullptr;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            // Drop queued requests whose client already left.
            while (!queue_.empty() && queue_.front().stream->cancelled()) {
                FinishEvent f;
                f.reason = FinishReason::Cancelled;
                queue_.front().stream->push(f);
                queue_.pop_front();
                ++stats_.requests_cancelled;
            }
            if (queue_.empty()) return;
            slot = free_slot();
            if (!slot) return;
            req = std::move(queue_.front());
            queue_.pop_front();
            stats_.queued = int(queue_.size());
        }
        start(*slot, std::move(req));
    }
}

Scheduler::Slot* Scheduler::free_slot() {
    for (auto& s : slots_)
        if (!s->busy) return s.get();
    return nullptr;
}

void Scheduler::start(Slot& slot, Pending&& req) {
    slot.busy = true;
    slot.params = std::move(req.params);
    slot.stream = std::move(req.stream);
    slot.decoder = std::make_unique<SequenceDecoder>(slot.params, tokenizer_, model_.config().n_vocab);
    slot.next_token = -1;
    slot.submitted_at = req.submitted_at;
    slot.started_at = now_seconds();
    slot.first_token_at = 0;

    // Reuse the longest cached prefix; at least the last prompt token is computed, since
    // its logits start the generation.
    cache_.clear(slot.id);
    if (draft_cache_) draft_cache_->clear(slot.id);
    slot.draft_idle_runs = 0;
    slot.draft_rest = 0;
    const std::vector<int32_t>& prompt = slot.params.prompt;
    int reused = 0;
    if (prefix_) reused = prefix_->attach_longest_prefix(slot.id, prompt, (prompt.size() - 1) / KvCache::kBlockSize);
    slot.tokens.assign(prompt.begin(), prompt.begin() + reused);
    slot.n_cached = reused;

    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.requests_started;
    stats_.cached_prompt_tokens += uint64_t(reused);
    stats_.active++;
}

// Makes room in the block pool for a slot's next positions, evicting cached prefixes
// nobody uses if needed. The pool holds a full context per slot, so this only fails if
// blocks leaked; the request then ends with an error rather than corrupting others.
bool Scheduler::reserve(Slot& slot, int n_positions) {
    while (!cache_.reserve(slot.id, n_positions))
        if (!prefix_ || !prefix_->evict_one()) return false;
    return true;
}

// Draft tokens by prompt lookup: find the most recent earlier occurrence of the last n
// tokens (n = 4, 3, 2) and propose the tokens that followed it. Free to compute, and on
// code edits, summaries and quoted text the model often repeats exactly that.
static std::vector<int32_t> lookup_draft(const std::vector<int32_t>& history, int max_draft) {
    std::vector<int32_t> draft;
    const int64_t h = int64_t(history.size());
    for (int n = 4; n >= 2 && draft.empty() && max_draft > 0; --n) {
        if (h < n + 1) continue;
        const int32_t* suffix = history.data() + (h - n);
        for (int64_t j = h - n - 1; j >= 0; --j) {
            if (!std::equal(suffix, suffix + n, history.data() + j)) continue;
            for (int64_t k = j + n; k < h && int(draft.size()) < max_draft; ++k) draft.push_back(history[size_t(k)]);
            break;
        }
    }
    return draft;
}

// One forward pass over every busy slot.
void Scheduler::step() {
    // Cancelled requests leave before we spend compute on them.
    for (auto& s : slots_)
        if (s->busy && s->stream->cancelled()) finish(*s, FinishReason::Cancelled);

    Batch batch;
    int budget = config_.n_batch;
    bool has_prompt = false;
    int n_prompt_tokens = 0;
    int n_rows = 0;  // logits rows, in batch order

    if (draft_cache_) {
        std::vector<Slot*> decoding;
        for (auto& s : slots_) {
            if (!s->busy || s->prefilling() || int(s->tokens.size()) + 1 >= config_.n_ctx) continue;
            if (s->draft_rest > 0) {
                --s->draft_rest;
                s->model_draft.clear();
                continue;
            }
            decoding.push_back(s.get());
        }
        if (!decoding.empty()) propose_with_draft_model(decoding);
    }

    // Decode tokens first (with their draft tokens, if speculating), so generation never
    // waits behind a long prompt.
    for (auto& s : slots_) {
        s->first_row = -1;
        s->draft.clear();
        if (!s->busy || s->prefilling() || budget == 0) continue;
        const int pos = int(s->tokens.size());
        if (pos >= config_.n_ctx) {
            finish(*s, FinishReason::ContextFull);
            continue;
        }
        if (config_.lookup_draft > 0 && !draft_cache_) {
            const int n_predict = s->params.options.n_predict;
            int room = std::min({config_.lookup_draft, budget - 1, config_.n_ctx - pos - 1});
            if (n_predict >= 0) room = std::min(room, n_predict - s->n_generated() - 1);
            if (room > 0) {
                std::vector<int32_t> history = s->tokens;
                history.push_back(s->next_token);
                s->draft = lookup_draft(history, room);
            }
        }
        if (draft_cache_) s->draft = std::move(s->model_draft);
        if (!reserve(*s, pos + 1 + int(s->draft.size()))) {
            finish(*s, FinishReason::Error, "the KV cache is full");
            continue;
        }
        s->first_row = n_rows;
        batch.add(s->next_token, pos, s->id, true);
        s->tokens.push_back(s->next_token);
        for (int32_t d : s->draft) {
            batch.add(d, int(s->tokens.size()), s->id, true);
            s->tokens.push_back(d);
        }
        n_rows += 1 + int(s->draft.size());
        budget -= 1 + int(s->draft.size());
    }
    // Then prompt chunks, as much as the batch has room for.
    for (auto& s : slots_) {
        if (!s->busy || !s->prefilling() || budget == 0 || s->first_row >= 0) continue;
        const size_t n_prompt = s->params.prompt.size();
        const int chunk_end = int(std::min(n_prompt, s->tokens.size() + size_t(budget)));
        if (!reserve(*s, chunk_end)) {
            finish(*s, FinishReason::Error, "the KV cache is full");
            continue;
        }
        while (s->tokens.size() < n_prompt && budget > 0) {
            const size_t i = s->tokens.size();
            const bool last = i + 1 == n_prompt;
            batch.add(s->params.prompt[i], int(i), s->id, last);
            s->tokens.push_back(s->params.prompt[i]);
            if (last) s->first_row = n_rows++;
            --budget;
            ++n_prompt_tokens;
        }
        has_prompt = true;
    }
    if (batch.size() == 0) return;

    const int n_vocab = model_.config().n_vocab;
    std::vector<float> logits(size_t(n_rows) * size_t(n_vocab));
    Timer timer;
    try {
        model_.forward(batch, cache_, pool_, logits.data());
    } catch (const std::exception& e) {
        // A failed pass leaves the cache of every slot in it unknown: end them all.
        for (auto& s : slots_) {
            if (!s->busy) continue;
            s->tokens.clear();
            cache_.clear(s->id);
            finish(*s, FinishReason::Error, e.what());
        }
        return;
    }
    const double seconds = timer.seconds();
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ++stats_.steps;
        (has_prompt ? stats_.prompt_seconds : stats_.decode_seconds) += seconds;
        stats_.prompt_tokens += uint64_t(n_prompt_tokens);
    }
    for (auto& s : slots_)
        if (s->busy && s->first_row >= 0) verify_and_emit(*s, &logits[size_t(s->first_row) * size_t(n_vocab)]);

    update_cache_stats();
}

// Samples the slot's next token from the first logits row; each draft token the sample
// agrees with is kept (its KV is already computed) and the next row decides the token
// after it. Sampling exactly as without drafts and keeping a draft only when it equals
// the sample leaves the output distribution unchanged (greedy: identical tokens).
void Scheduler::verify_and_emit(Slot& slot, const float* rows) {
    const int n_vocab = model_.config().n_vocab;
    const int base = int(slot.tokens.size()) - int(slot.draft.size());  // KV length without drafts
    int accepted = 0;
    std::optional<FinishReason> finished;
    for (size_t i = 0; i <= slot.draft.size(); ++i) {
        const SequenceDecoder::Step d = decode_and_emit(slot, rows + i * size_t(n_vocab));
        if (d.finish) {
            finished = d.finish;
            break;
        }
        const int32_t token = d.token;
        if (i < slot.draft.size() && token == slot.draft[i]) {
            ++accepted;
            continue;
        }
        slot.next_token = token;
        break;
    }
    if (!slot.draft.empty()) {
        // Forget the rejected drafts' keys and values.
        cache_.truncate(slot.id, base + accepted);
        slot.tokens.resize(size_t(base + accepted));
        if (draft_cache_) draft_cache_->truncate(slot.id, base + accepted);
        std::lock_guard<std::mutex> lock(mutex_);
        stats_.draft_tokens += slot.draft.size();
        stats_.draft_accepted += uint64_t(accepted);
    }
    if (finished) finish(slot, *finished);
}

// softmax(row)[token], computed stably (max subtracted first).
static float top_probability(const float* row, int n, int32_t token) {
    const float mx = *std::max_element(row, row + n);
    double sum = 0.0;
    for (int i = 0; i < n; ++i) sum += std::exp(double(row[i] - mx));
    return float(std::exp(double(row[token] - mx)) / sum);
}

// Runs the draft model for every decoding slot: first it catches up on the tokens it has
// not seen (the prompt, accepted tokens, the pending token) in one batch, then proposes
// tokens greedily, one batched pass per draft position.
void Scheduler::propose_with_draft_model(const std::vector<Slot*>& slots) {
    Model& draft = *config_.draft_model;
    const int n_vocab = draft.config().n_vocab;
    int budget = config_.n_batch;
    std::vector<int> room(slots.size());
    Batch batch;
    std::vector<Slot*> rows;  // slot of each logits row
    for (size_t i = 0; i < slots.size(); ++i) {
        Slot& s = *slots[i];
        s.model_draft.clear();
        const int pos = int(s.tokens.size());  // position of next_token
        const int n_predict = s.params.options.n_predict;
        room[i] = std::min({config_.draft_max, budget - 1, config_.n_ctx - pos - 1});
        if (n_predict >= 0) room[i] = std::min(room[i], n_predict - s.n_generated() - 1);
        if (room[i] <= 0) continue;
        const int have = std::min(draft_cache_->length(s.id), pos);
        draft_cache_->truncate(s.id, have);
        for (int p = have; p < pos; ++p) batch.add(s.tokens[size_t(p)], p, s.id, false);
        batch.add(s.next_token, pos, s.id, true);
        rows.push_back(&s);
        budget -= 1 + room[i];
    }
    const std::vector<Slot*> ran = rows;  // slots the draft model runs for this step
    if (!ran.empty()) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++stats_.draft_model_runs;
    }
    std::vector<float> logits;
    for (int step = 0; !rows.empty(); ++step) {
        logits.resize(rows.size() * size_t(n_vocab));
        try {
            draft.forward(batch, *draft_cache_, pool_, logits.data());
        } catch (const std::exception&) {
            // A draft failure only costs the speculation: forget the draft state.
            for (Slot* s : slots) {
                draft_cache_->clear(s->id);
                s->model_draft.clear();
            }
            return;
        }
        batch.clear();
        std::vector<Slot*> next_rows;
        for (size_t r = 0; r < rows.size(); ++r) {
            Slot& s = *rows[r];
            const float* row = &logits[r * size_t(n_vocab)];
            const int32_t token = int32_t(std::max_element(row, row + n_vocab) - row);
            // An unsure draft is usually rejected, and every rejected token costs the main
            // model a row of its batch: stop proposing once the draft's own probability of
            // its choice falls below draft_p_min.
            if (top_probability(row, n_vocab, token) < config_.draft_p_min) continue;
            s.model_draft.push_back(token);
            const size_t i = size_t(std::find(slots.begin(), slots.end(), &s) - slots.begin());
            if (int(s.model_draft.size()) >= room[i] || tokenizer_.is_end_of_generation(token)) continue;
            batch.add(token, draft_cache_->length(s.id), s.id, true);
            next_rows.push_back(&s);
        }
        rows.swap(next_rows);
    }
    for (Slot* s : ran) {
        if (!s->model_draft.empty()) {
            s->draft_idle_runs = 0;
            continue;
        }
        s->draft_idle_runs = std::min(s->draft_idle_runs + 1, 4);
        s->draft_rest = 1 << s->draft_idle_runs;  // 2, 4, 8, 16 steps
    }
}

void Scheduler::update_cache_stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    int64_t used = 0, refs = 0;
    std::unordered_set<int> distinct;
    for (int i = 0; i < cache_.n_seq(); ++i) {
        used += cache_.length(i);
        refs += int64_t(cache_.block_table(i).size());
        distinct.insert(cache_.block_table(i).begin(), cache_.block_table(i).end());
    }
    stats_.kv_tokens_used = used;
    stats_.kv_blocks_active = int64_t(distinct.size());
    stats_.kv_block_refs_active = refs;
    stats_.kv_blocks_free = cache_.free_blocks();
    if (prefix_) stats_.prefix = prefix_->stats();
}

// Samples one token from one logits row and streams it out. The caller ends the request
// when the step says so.
SequenceDecoder::Step Scheduler::decode_and_emit(Slot& slot, const float* logits) {
    if (slot.first_token_at == 0) slot.first_token_at = now_seconds();
    SequenceDecoder::Step d = slot.decoder->next(logits);
    if (!d.emitted) return d;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ++stats_.generated_tokens;
    }
    slot.stream->push(std::move(d.event));
    return d;
}

void Scheduler::finish(Slot& slot, FinishReason reason, const std::string& error) {
    FinishEvent f;
    f.reason = reason;
    f.error = error;
    if (slot.decoder) {
        f.stop_string = slot.decoder->stop_string();
        f.tail_text = slot.decoder->tail();  // bytes held back are output after all
    }
    const double now = now_seconds();
    f.n_prompt = int(slot.params.prompt.size());
    f.n_cached = slot.n_cached;
    f.n_generated = slot.n_generated();
    f.dropped_messages = slot.params.dropped_messages;
    f.queue_seconds = slot.started_at - slot.submitted_at;
    f.prompt_seconds = (slot.first_token_at > 0 ? slot.first_token_at : now) - slot.started_at;
    f.generate_seconds = slot.first_token_at > 0 ? now - slot.first_token_at : 0.0;
    {
        // Counted before the client hears of it, so stats() seen after the final event
        // already include this request.
        std::lock_guard<std::mutex> lock(mutex_);
        stats_.active--;
        if (reason == FinishReason::Cancelled) ++stats_.requests_cancelled;
        else ++stats_.requests_finished;
    }
    slot.stream->push(std::move(f));

    // The full blocks of every token fed go to the prefix cache for later requests; the
    // slot itself lets go of all its blocks. (A token sampled but never fed is not in the
    // cache, and `tokens` excludes it.)
    if (prefix_) prefix_->insert(slot.id, slot.tokens);
    cache_.clear(slot.id);
    slot.tokens.clear();
    slot.busy = false;
    slot.stream.reset();
    slot.decoder.reset();
}

}  // namespace pensieve
