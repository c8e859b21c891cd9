#include "engine/scheduler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "engine/decoder.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
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
    Draft draft;              // speculative tokens fed after next_token this step
    // Tree leaves of this step: the drafter's second choice for draft token `index`,
    // standing at that token's position, verified in logits row first_row + `row`, its
    // keys and values in the spare cache slot `kv_slot` past the chain.
    struct Leaf {
        int index = 0;
        int32_t token = -1;
        int row = 0, kv_slot = 0;
    };
    std::vector<Leaf> leaves;
    DraftPolicy draft_policy;  // how many tokens to draft, learned from this request's drafts
    int first_row = -1;          // this step's first logits row, -1: none
    int n_cached = 0;
    int n_passes = 0;             // forward passes that sampled for this request (1 + accepted drafts each)
    int n_drafted = 0, n_draft_accepted = 0;
    double submitted_at = 0, started_at = 0, first_token_at = 0;
    double progress_at = 0;        // last prefill progress report
    bool progress_done = false;    // the prompt's last report was made

    bool prefilling() const { return tokens.size() < params.prompt.size(); }
    bool decoding() const { return busy && !prefilling(); }
    int n_generated() const { return decoder ? decoder->n_generated() : 0; }
};

namespace {

// Full blocks of a prompt that may come from the prefix cache: at least the last prompt
// token is computed, since its logits start the generation.
size_t reusable_blocks(const std::vector<int32_t>& prompt) { return (prompt.size() - 1) / KvCache::kBlockSize; }

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
    if (config_.prefill_chunk_decoding < 0) fail("the prefill chunk must not be negative");
    // Speculation rolls rejected draft tokens back: only for memories that can truncate
    // anywhere (a recurrent state cannot).
    if (!cache_.can_truncate()) {
        config_.lookup_draft = 0;
        config_.draft_model = nullptr;
        config_.draft_layers = 0;
    }
    // A memory whose prompt is read as a whole (an encoder's) shares no prefixes.
    if (!cache_.can_share_prefix()) config_.reuse_prefix = false;
    if (!model_.tree_rows() || cache_.type() != KvType::F16) config_.draft_tree = false;
    if (config_.reuse_prefix)
        prefix_ = std::make_unique<PrefixCache>(cache_, cache_identity(model, config_.n_ctx), config_.cache_dir);
    // The draft model's own rollback is a truncation too.
    if (config_.draft_model && config_.draft_model->memory_layout().has(LayerMemory::Kind::Recurrent))
        config_.draft_model = nullptr;
    if (config_.draft_model || config_.draft_layers > 0) {
        DraftModelOptions o;
        o.n_vocab = model.config().n_vocab;
        o.max_tokens = config_.draft_max;
        o.p_min = config_.draft_p_min;
        o.n_ctx = config_.n_ctx;
        o.n_seq = config_.n_slots;
        o.n_layers = config_.draft_model ? 0 : config_.draft_layers;
        if (o.n_layers > 0) o.target_cache = &cache_;  // the first layers' KV is the target's own
        drafter_ = make_draft_model_drafter(config_.draft_model ? *config_.draft_model : model_, tokenizer_, pool_, o);
    } else if (config_.lookup_draft > 0) {
        drafter_ = make_lookup_drafter(config_.lookup_draft);
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
    stats_.kv_bytes_committed = cache_.committed_bytes();
    thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { shutdown(); }

std::shared_ptr<RequestStream> Scheduler::submit(RequestParams params) {
    if (model_.config().embedding_only)
        fail("this model (", model_.config().arch, ") produces embeddings only and cannot generate text",
             " (use /v1/embeddings or `pensieve embed`)");
    const int n_prompt = int(params.prompt.size());
    if (n_prompt == 0) fail("the prompt is empty");
    if (n_prompt >= config_.n_ctx)
        fail("the prompt is ", n_prompt, " tokens but the context holds ", config_.n_ctx,
             " (prompt plus at least one generated token)");
    if (params.options.n_predict > 0 && int64_t(n_prompt) + params.options.n_predict > config_.n_ctx)
        fail("the prompt (", n_prompt, " tokens) plus max tokens (", params.options.n_predict,
             ") exceed the context of ", config_.n_ctx, " tokens");
    if (model_.config().encoder_decoder && n_prompt > config_.n_batch)
        fail("the prompt is ", n_prompt, " tokens but this encoder-decoder reads it in one pass of at most ",
             config_.n_batch, " (the batch size)");
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
    SchedulerStats s = stats_;
    if (prefix_) s.prefix.disk_writes = prefix_->disk_writes();   // the writer works while we sleep
    return s;
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
    // The decoder first: a grammar whose start already exceeds the matcher's work budget
    // is refused (400) before the request takes the slot.
    std::unique_ptr<SequenceDecoder> decoder;
    try {
        decoder = std::make_unique<SequenceDecoder>(req.params, tokenizer_, model_.config().n_vocab);
    } catch (const Error& e) {
        FinishEvent f;
        f.reason = FinishReason::Error;
        f.error = e.what();
        f.error_status = 400;
        f.n_prompt = int(req.params.prompt.size());
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ++stats_.requests_started;
            ++stats_.requests_finished;
        }
        req.stream->push(std::move(f));
        return;
    }
    slot.busy = true;
    slot.params = std::move(req.params);
    slot.stream = std::move(req.stream);
    slot.decoder = std::move(decoder);
    slot.next_token = -1;
    slot.submitted_at = req.submitted_at;
    slot.started_at = now_seconds();
    slot.first_token_at = 0;
    slot.progress_at = slot.started_at;
    slot.progress_done = false;

    // Reuse the longest cached prefix (reusable_blocks).
    cache_.clear(slot.id);
    if (drafter_) drafter_->reset(slot.id);
    slot.draft_policy = DraftPolicy{};
    slot.n_passes = slot.n_drafted = slot.n_draft_accepted = 0;
    const std::vector<int32_t>& prompt = slot.params.prompt;
    int reused = 0;
    if (prefix_) reused = prefix_->attach_longest_prefix(slot.id, prompt, reusable_blocks(prompt));
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

// Work for one forward pass, gathered slot by slot.
struct Scheduler::StepBatch {
    Batch batch;
    int budget = 0;           // tokens the batch may still take
    int n_rows = 0;           // logits rows, in batch order
    int n_prompt_tokens = 0;  // prompt tokens in the batch (for the stats)
    bool generating = false;  // some slot's next token is in the batch: its stream waits for the pass
    struct Chunk {
        Slot* slot;
        size_t begin, end;  // prompt positions [begin, end) in the batch
    };
    std::vector<Chunk> prefilled;  // the prompt chunks in the batch, slot by slot
    std::vector<std::pair<int64_t, int32_t>> tree_rows;  // (batch index, cache slot) of each tree leaf
};

// One forward pass over every busy slot.
void Scheduler::step() {
    drop_cancelled();
    propose_drafts();
    StepBatch b;
    b.budget = config_.n_batch;
    add_decode_tokens(b);
    b.generating = b.n_rows > 0;
    // Streams wait for the whole pass: with some generating, prompts come in small chunks.
    // (An encoder reads its prompt in one pass, so it keeps the whole budget.)
    if (b.generating && config_.prefill_chunk_decoding > 0 && !model_.config().encoder_decoder)
        b.budget = std::min(b.budget, config_.prefill_chunk_decoding);
    add_prefill_chunks(b);
    if (b.batch.size() == 0) return;
    if (!b.tree_rows.empty()) {
        b.batch.kv_slots = b.batch.positions;
        for (const auto& [t, slot] : b.tree_rows) b.batch.kv_slots[size_t(t)] = slot;
    }

    const size_t n_vocab = size_t(model_.config().n_vocab);
    std::vector<float> logits(size_t(b.n_rows) * n_vocab);
    if (!forward(b, logits.data())) return;
    for (auto& s : slots_)
        if (s->busy && s->first_row >= 0) verify_and_emit(*s, &logits[size_t(s->first_row) * n_vocab]);
    if (b.n_prompt_tokens > 0) {
        share_prefilled_blocks(b);
        report_prefill_progress();
    }
    update_cache_stats();
}

// Long prompts say how far they are (the server's log): a 11,000-token agent prompt is
// tens of seconds of prefill before the first token, which should not look like a hang.
void Scheduler::report_prefill_progress() {
    if (!config_.on_prefill_progress) return;
    const double now = now_seconds();
    for (auto& s : slots_) {
        if (!s->busy || s->progress_done) continue;
        const int total = int(s->params.prompt.size());
        if (total - s->n_cached < config_.progress_min_tokens) continue;
        const bool finished = !s->prefilling();
        if (!finished && now - s->progress_at < config_.progress_seconds) continue;
        s->progress_at = now;
        s->progress_done = finished;
        config_.on_prefill_progress(
            PrefillProgress{s->id, int(s->tokens.size()), total, s->n_cached, now - s->started_at, finished});
    }
}

// Cancelled requests leave before we spend compute on them.
void Scheduler::drop_cancelled() {
    for (auto& s : slots_)
        if (s->busy && s->stream->cancelled()) finish(*s, FinishReason::Cancelled);
}

// Asks the drafter (if any) for speculative tokens for every decoding slot, within the
// room each has left: batch budget (one row is the pending token itself), context, and
// max tokens.
// Each slot's DraftPolicy sizes its draft from the costs measured so far.
void Scheduler::propose_drafts() {
    for (auto& s : slots_) {
        s->draft = Draft{};
        s->leaves.clear();
    }
    if (!drafter_) return;
    int n_decoding = 0;
    for (auto& s : slots_) n_decoding += s->decoding();
    const SpeculationCosts costs = step_costs_ = spec_costs_.costs(n_decoding);
    std::vector<DraftRequest> requests;
    int budget = config_.n_batch;
    for (auto& s : slots_) {
        if (!s->decoding()) continue;
        const int pos = int(s->tokens.size());  // position of next_token
        const int n_predict = s->params.options.n_predict;
        int room = std::min({drafter_->max_tokens(), budget - 1, config_.n_ctx - pos - 1});
        if (n_predict >= 0) room = std::min(room, n_predict - s->n_generated() - 1);
        const int n = room <= 0 ? 0 : config_.draft_adaptive ? s->draft_policy.max_tokens(costs, room) : room;
        budget -= 1 + n;
        if (n == 0) continue;
        DraftRequest r;
        r.seq = s->id;
        r.context = &s->tokens;
        r.next_token = s->next_token;
        r.max_tokens = n;
        r.sampling = &s->params.options.sampling;
        r.seed = s->decoder->seed();
        if (config_.draft_adaptive) {
            r.acceptance = &s->draft_policy.acceptance();
            r.min_chance = s->draft_policy.min_chance();
        }
        requests.push_back(std::move(r));
    }
    if (requests.empty()) return;
    Timer timer;
    const bool ran = drafter_->propose(requests);
    if (ran) {
        size_t longest = 0;
        for (const DraftRequest& r : requests) longest = std::max(longest, r.draft.tokens.size());
        spec_costs_.record_draft(int(longest), timer.seconds());
        std::lock_guard<std::mutex> lock(mutex_);
        ++stats_.draft_model_runs;
    }
    for (DraftRequest& r : requests) slots_[size_t(r.seq)]->draft = std::move(r.draft);
}

// Each generating slot's pending token, then its draft tokens. Decode tokens go first so
// generation never waits behind a long prompt.
void Scheduler::add_decode_tokens(StepBatch& b) {
    for (auto& s : slots_) {
        s->first_row = -1;
        if (!s->decoding() || b.budget == 0) continue;
        const int pos = int(s->tokens.size());
        if (pos >= config_.n_ctx) {
            finish(*s, FinishReason::ContextFull);
            continue;
        }
        const int n_draft = int(s->draft.tokens.size());
        choose_leaves(*s, std::min(b.budget, config_.n_ctx - pos) - 1 - n_draft);
        const int n_leaves = int(s->leaves.size());
        if (!reserve(*s, pos + 1 + n_draft + n_leaves)) {
            finish(*s, FinishReason::Error, "the KV cache is full");
            continue;
        }
        s->first_row = b.n_rows;
        b.batch.add(s->next_token, pos, s->id, true);
        s->tokens.push_back(s->next_token);
        for (int32_t d : s->draft.tokens) {
            b.batch.add(d, int(s->tokens.size()), s->id, true);
            s->tokens.push_back(d);
        }
        // Leaves after the chain: their slots continue the sequence past it.
        for (int m = 0; m < n_leaves; ++m) {
            Slot::Leaf& leaf = s->leaves[size_t(m)];
            leaf.row = 1 + n_draft + m;
            leaf.kv_slot = pos + 1 + n_draft + m;
            b.batch.add(leaf.token, pos + 1 + leaf.index, s->id, true);
            b.tree_rows.emplace_back(b.batch.size() - 1, leaf.kv_slot);
        }
        b.n_rows += 1 + n_draft + n_leaves;
        b.budget -= 1 + n_draft + n_leaves;
    }
}

// Tree drafts: the drafter's second choices worth verifying beside the chain (at most
// `room`), by the slot's draft policy; with fixed drafting, every one.
void Scheduler::choose_leaves(Slot& s, int room) {
    s.leaves.clear();
    const Draft& d = s.draft;
    if (!config_.draft_tree || d.alts.size() != d.tokens.size()) return;
    const float* q = d.probs.size() == d.tokens.size() ? d.probs.data() : nullptr;
    for (int i = 0; i < int(d.tokens.size()) && int(s.leaves.size()) < room; ++i)
        if (d.alts[size_t(i)] >= 0 && (!config_.draft_adaptive || s.draft_policy.leaf_pays(i, q, step_costs_)))
            s.leaves.push_back(Slot::Leaf{i, d.alts[size_t(i)]});
}

// Prompt chunks of the slots still reading their prompt, as much as the batch has room
// for; only a prompt's last token needs logits (they start its generation). A chunk that
// stops short of its prompt ends on a block boundary: full blocks are what the prefix
// cache shares with other sequences.
void Scheduler::add_prefill_chunks(StepBatch& b) {
    constexpr size_t B = KvCache::kBlockSize;
    for (auto& s : slots_) {
        if (!s->busy || !s->prefilling() || b.budget == 0 || s->first_row >= 0) continue;
        pick_up_shared_blocks(*s);
        if (follows_a_leader(*s, b)) continue;
        const size_t n_prompt = s->params.prompt.size();
        // An encoder reads the whole prompt in one pass: it waits for a batch with room.
        if (model_.config().encoder_decoder && n_prompt - s->tokens.size() > size_t(b.budget)) continue;
        size_t chunk_end = std::min(n_prompt, s->tokens.size() + size_t(b.budget));
        if (chunk_end < n_prompt && chunk_end / B * B > s->tokens.size()) chunk_end = chunk_end / B * B;
        if (!reserve(*s, int(chunk_end))) {
            finish(*s, FinishReason::Error, "the KV cache is full");
            continue;
        }
        b.prefilled.push_back({s.get(), s->tokens.size(), chunk_end});
        while (s->tokens.size() < chunk_end) {
            const size_t i = s->tokens.size();
            const bool last = i + 1 == n_prompt;
            b.batch.add(s->params.prompt[i], int(i), s->id, last);
            s->tokens.push_back(s->params.prompt[i]);
            if (last) s->first_row = b.n_rows++;
            --b.budget;
            ++b.n_prompt_tokens;
        }
    }
}

// Blocks of this slot's prompt that other sequences computed since its last step: two
// requests reading the same system prompt, or a client's retry of a request whose prompt
// is still being read (an agent CLI gives up on a slow first request and sends it again).
void Scheduler::pick_up_shared_blocks(Slot& s) {
    if (!prefix_) return;
    const std::vector<int32_t>& prompt = s.params.prompt;
    const int got = prefix_->attach_more(s.id, prompt, reusable_blocks(prompt));
    if (got == 0) return;
    const size_t from = s.tokens.size();
    s.tokens.insert(s.tokens.end(), prompt.begin() + long(from), prompt.begin() + long(from) + got);
    s.n_cached += got;
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.cached_prompt_tokens += uint64_t(got);
}

// True when another slot's chunk in this step computes the next block of this slot's
// prompt (the same tokens from the start): this slot skips the step and picks the block
// up from the prefix cache at the next one, rather than computing it a second time. Only
// a chunk already in the batch leads, so two slots never wait for each other and nobody
// waits for a block that is not being computed.
bool Scheduler::follows_a_leader(const Slot& s, const StepBatch& b) const {
    constexpr size_t B = KvCache::kBlockSize;
    if (!prefix_ || !cache_.can_share_prefix()) return false;
    const std::vector<int32_t>& prompt = s.params.prompt;
    const size_t pos = s.tokens.size(), end = pos + B;
    if (pos % B != 0 || end > reusable_blocks(prompt) * B) return false;  // a block it could not pick up
    for (const StepBatch::Chunk& c : b.prefilled)
        if (c.begin < end && end <= c.end && std::equal(prompt.begin(), prompt.begin() + long(end), c.slot->tokens.begin()))
            return true;
    return false;
}

// After a step: the full blocks just computed from prompts go to the prefix cache now,
// not only when their requests end (see pick_up_shared_blocks). A recurrent model keeps
// the state snapshot where a prompt ended (a regenerated reply resumes there).
void Scheduler::share_prefilled_blocks(const StepBatch& b) {
    if (!prefix_) return;
    for (const StepBatch::Chunk& c : b.prefilled) {
        if (!c.slot->busy) continue;
        prefix_->insert(c.slot->id, c.slot->tokens);
        if (c.end >= c.slot->params.prompt.size()) cache_.keep_snapshot(c.slot->id);
    }
}

// Runs the batch. A failed pass leaves the cache of every slot in it unknown: they all
// end with the error, and the step returns false.
bool Scheduler::forward(const StepBatch& b, float* logits) {
    Timer timer;
    try {
        std::lock_guard<std::mutex> turn(model_.forward_mutex());
        model_.forward(b.batch, cache_, pool_, logits);
    } catch (const std::exception& e) {
        for (auto& s : slots_) {
            if (!s->busy) continue;
            s->tokens.clear();
            cache_.clear(s->id);
            finish(*s, FinishReason::Error, e.what());
        }
        return false;
    }
    const double seconds = timer.seconds();
    if (drafter_ && b.n_prompt_tokens == 0) spec_costs_.record_target_pass(b.n_rows, seconds);
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.steps;
    (b.n_prompt_tokens > 0 ? stats_.prompt_seconds : stats_.decode_seconds) += seconds;
    stats_.prompt_tokens += uint64_t(b.n_prompt_tokens);
    if (b.generating)
        stats_.largest_prefill_beside_decode = std::max(stats_.largest_prefill_beside_decode, b.n_prompt_tokens);
    return true;
}

// Samples the slot's next token from the first logits row; each draft token the decoder
// keeps (its KV is already computed) moves on to the next row, which decides the token
// after it. The first token not kept becomes the pending token of the next step, unless a
// tree leaf at its position is that very token: then its KV is computed too, and the
// leaf's row samples one more token.
void Scheduler::verify_and_emit(Slot& slot, const float* rows) {
    const size_t n_vocab = size_t(model_.config().n_vocab);
    const Draft& draft = slot.draft;
    const int n_draft = int(draft.tokens.size());
    const int base = int(slot.tokens.size()) - n_draft;  // KV length without drafts
    int accepted = 0;
    ++slot.n_passes;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ++stats_.sampling_passes;
    }
    std::optional<FinishReason> finished;
    const Slot::Leaf* taken = nullptr;  // the leaf kept, if any
    for (int i = 0; i <= n_draft; ++i) {
        DraftToken proposal;
        if (i < n_draft) {
            proposal.token = draft.tokens[size_t(i)];
            if (!draft.probs.empty()) proposal.prob = draft.probs[size_t(i)];
            if (!draft.dists.empty()) proposal.q = draft.dists[size_t(i)];
        }
        SequenceDecoder::Step d;
        try {
            d = decode_and_emit(slot, rows + size_t(i) * n_vocab, i < n_draft ? &proposal : nullptr);
        } catch (const Error& e) {
            // Sampling fails only on the request's own constraints (a grammar too
            // ambiguous to follow): that request ends with a 400, the others go on.
            finish(slot, FinishReason::Error, e.what(), 400);
            return;
        }
        if (d.finish) {
            finished = d.finish;
            break;
        }
        if (d.draft_accepted) {
            ++accepted;
            continue;
        }
        slot.next_token = d.token;
        const auto leaf = std::find_if(slot.leaves.begin(), slot.leaves.end(),
                                       [&](const Slot::Leaf& l) { return l.index == i; });
        if (i == n_draft || leaf == slot.leaves.end()) break;
        slot.draft_policy.record_leaf(leaf->token == d.token);
        if (leaf->token != d.token) break;
        taken = &*leaf;
        try {
            d = decode_and_emit(slot, rows + size_t(leaf->row) * n_vocab, nullptr);
        } catch (const Error& e) {
            finish(slot, FinishReason::Error, e.what(), 400);
            return;
        }
        if (d.finish) finished = d.finish;
        else slot.next_token = d.token;
        break;
    }
    if (n_draft > 0) {
        if (!finished) slot.draft_policy.record(n_draft, accepted, draft.probs.empty() ? nullptr : draft.probs.data());
        if (taken) keep_leaf(slot, base + accepted, taken->kv_slot, taken->token);
        else keep_verified(slot, base + accepted);
        slot.n_drafted += n_draft;
        slot.n_draft_accepted += accepted;
        std::lock_guard<std::mutex> lock(mutex_);
        stats_.draft_tokens += uint64_t(n_draft);
        stats_.draft_accepted += uint64_t(accepted);
        stats_.draft_leaves += uint64_t(slot.leaves.size());
        stats_.draft_leaves_taken += taken ? 1 : 0;
    }
    if (finished) finish(slot, *finished);
}

// A kept leaf at position `pos`: its keys and values move from their spare slot to that
// position, which the slot keeps with everything before it. The drafter never saw the
// leaf's token: its own state ends before it.
void Scheduler::keep_leaf(Slot& slot, int pos, int kv_slot, int32_t token) {
    cache_.copy_position(slot.id, kv_slot, pos);
    cache_.truncate(slot.id, pos + 1);
    slot.tokens.resize(size_t(pos));
    slot.tokens.push_back(token);
    drafter_->keep(slot.id, pos);
}

// After verification the slot keeps its first n_tokens positions: the rejected drafts'
// keys and values are forgotten (here and in the drafter's own state).
void Scheduler::keep_verified(Slot& slot, int n_tokens) {
    cache_.truncate(slot.id, n_tokens);
    slot.tokens.resize(size_t(n_tokens));
    drafter_->keep(slot.id, n_tokens);
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
    int64_t pending = 0;
    for (auto& s : slots_)
        if (s->busy) pending += int64_t(s->params.prompt.size()) - int64_t(s->tokens.size());
    stats_.prompt_tokens_pending = std::max<int64_t>(pending, 0);
    stats_.kv_blocks_active = int64_t(distinct.size());
    stats_.kv_block_refs_active = refs;
    stats_.kv_blocks_free = cache_.free_blocks();
    stats_.kv_bytes_committed = cache_.committed_bytes();
    stats_.state_bytes_per_sequence = cache_.snapshot_bytes();
    stats_.state_snapshots = cache_.snapshots_held();
    stats_.state_snapshot_bytes = size_t(cache_.snapshots_held()) * cache_.snapshot_bytes();
    if (prefix_) stats_.prefix = prefix_->stats();
}

// Samples one token from one logits row and streams it out. The caller ends the request
// when the step says so.
SequenceDecoder::Step Scheduler::decode_and_emit(Slot& slot, const float* logits, const DraftToken* proposed) {
    if (slot.first_token_at == 0) slot.first_token_at = now_seconds();
    SequenceDecoder::Step d = slot.decoder->next(logits, proposed);
    if (!d.emitted) return d;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ++stats_.generated_tokens;
    }
    slot.stream->push(std::move(d.event));
    return d;
}

void Scheduler::finish(Slot& slot, FinishReason reason, const std::string& error, int error_status) {
    FinishEvent f;
    f.reason = reason;
    f.error = error;
    f.error_status = error_status;
    if (slot.decoder) {
        f.stop_string = slot.decoder->stop_string();
        f.tail_text = slot.decoder->tail();  // bytes held back are output after all
    }
    const double now = now_seconds();
    f.n_prompt = int(slot.params.prompt.size());
    f.n_cached = slot.n_cached;
    f.n_generated = slot.n_generated();
    f.dropped_messages = slot.params.dropped_messages;
    f.n_passes = slot.n_passes;
    f.n_drafted = slot.n_drafted;
    f.n_draft_accepted = slot.n_draft_accepted;
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
