// Continuous batching: many requests share the model. Each active request owns a slot
// (a sequence in the KV cache). At every step the scheduler gathers one decode token from
// each generating slot plus prompt chunks of slots still reading their prompt, runs them
// through the model as ONE batch, samples for every slot that produced logits, and
// streams the text out. Requests join between steps and leave the moment they finish or
// their client goes away.
//
// When a request ends, the full KV blocks of its tokens go to the prefix cache
// (prefix_cache.h); a new request whose prompt starts with the same tokens (the next turn
// of a chat, an agent re-sending its system prompt) attaches those blocks and computes
// only the part that is new, whichever slot it lands in.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/decoder.h"
#include "engine/draft_policy.h"
#include "engine/drafter.h"
#include "engine/prefix_cache.h"
#include "engine/request.h"
#include "model/kv_cache.h"
#include "util/error.h"

namespace pensieve {

class Model;
class Tokenizer;
class ThreadPool;

// Progress of a long prompt (at least SchedulerConfig::progress_min_tokens to compute):
// reported every progress_seconds while it is read, and once when it is done.
struct PrefillProgress {
    int slot = 0;
    int done = 0;       // prompt tokens in the cache now (cached ones included)
    int total = 0;      // prompt tokens
    int cached = 0;     // of those, reused from the prefix cache
    double seconds = 0; // since the request got its slot
    bool finished = false;
};

struct SchedulerConfig {
    int n_slots = 1;       // requests generating at once
    int n_ctx = 4096;      // context per slot (prompt + generated tokens)
    int n_batch = 512;     // most tokens in one forward pass
    // Prompt tokens in one pass while other slots are generating (0: up to n_batch). A pass
    // is a pause in every stream, so a long prompt arriving is read in these smaller
    // chunks; the weights are read once per chunk, which is cheap beside 128 tokens of
    // prompt math (measured in bench/RESULTS.md, "a long prompt among streams").
    int prefill_chunk_decoding = 128;
    int max_queue = 64;    // requests waiting for a slot before submit() refuses more
    bool reuse_prefix = true;
    // KV blocks kept for the prefix cache beyond what the slots need (-1: one context's
    // worth). Each block holds KvCache::kBlockSize positions of every layer.
    int cache_blocks = -1;
    std::string cache_dir;  // non-empty: evicted prefix blocks persist here across restarts
    // Element type of the main model's KV cache (--cache-type). The draft model's small
    // cache stays f16.
    KvType cache_type = KvType::F16;
    // Speculative decoding by prompt lookup: up to this many draft tokens per step, taken
    // from earlier occurrences of the latest tokens (0: off).
    int lookup_draft = 0;
    // Speculative decoding with a draft model (same vocabulary, much smaller): it proposes
    // up to draft_max tokens greedily each step; the main model verifies them in one pass.
    // How many, per sequence and step, adapts to the acceptance and costs measured so far
    // (draft_policy.h).
    Model* draft_model = nullptr;
    // Without a draft model: > 0 drafts with the model's own first draft_layers layers
    // and output head (self-speculation; LLaMA-family models).
    int draft_layers = 0;
    int draft_max = 8;
    // The draft model also stops once its own probability of a token is below this (0:
    // only the adaptive rule decides).
    float draft_p_min = 0.0f;
    // false: every step drafts as many tokens as allowed (lookup_draft or draft_max),
    // whatever they cost (--draft-fixed; for measuring a fixed length).
    bool draft_adaptive = true;
    // Tree drafts: beside the chain, verify the drafter's second choice at the positions
    // where the draft policy expects it to pay (DraftPolicy::leaf_pays; with fixed
    // drafting, everywhere), so a rejected position can still keep a token. Needs an
    // fp16 cache and a model that verifies tree rows (Model::tree_rows()). Off by
    // default: on the layer-skip synth-1b pair the model takes the second choice at only
    // 1 of 3 rejections, and the leaves' rows cost what they add (bench/RESULTS.md).
    bool draft_tree = false;
    // Called on the scheduler thread with a long prompt's progress (the server logs it);
    // never with the prompt's text.
    std::function<void(const PrefillProgress&)> on_prefill_progress;
    int progress_min_tokens = 2048;
    double progress_seconds = 5.0;
};

struct SchedulerStats {
    int n_slots = 0;
    int active = 0;
    int queued = 0;
    uint64_t requests_started = 0;
    uint64_t requests_finished = 0;
    uint64_t requests_cancelled = 0;
    uint64_t requests_rejected = 0;
    uint64_t prompt_tokens = 0;       // prompt tokens computed (excludes reused ones)
    uint64_t cached_prompt_tokens = 0;// prompt tokens whose KV was reused
    uint64_t generated_tokens = 0;
    double prompt_seconds = 0;        // time in forward passes that carried prompt tokens
    double decode_seconds = 0;        // time in forward passes with only decode tokens
    uint64_t steps = 0;
    uint64_t draft_tokens = 0;        // speculative tokens proposed
    uint64_t draft_accepted = 0;      // ... and kept
    uint64_t draft_model_runs = 0;    // steps in which the draft model ran (it backs off when unsure)
    uint64_t draft_leaves = 0;        // second choices verified beside the chain (tree drafts)
    uint64_t draft_leaves_taken = 0;  // ... and kept (draft_tokens/draft_accepted count the chains)
    uint64_t sampling_passes = 0;     // per request and pass that sampled it: generated / this = tokens per pass
    int largest_prefill_beside_decode = 0;  // most prompt tokens in a pass that also generated (a stream's pause)
    size_t kv_bytes = 0;              // reserved for the whole block pool
    size_t kv_bytes_committed = 0;    // occupied by the blocks used so far (the pool fills lazily)
    KvType kv_type = KvType::F16;
    int64_t kv_tokens_used = 0;       // positions held by active sequences
    int64_t kv_tokens_capacity = 0;   // positions the whole block pool can hold
    int64_t kv_blocks_free = 0;
    int64_t kv_blocks_active = 0;     // distinct blocks the active sequences read
    int64_t kv_block_refs_active = 0; // sum of the active sequences' block-table sizes
    int64_t prompt_tokens_pending = 0; // prompt tokens admitted but not yet read
    size_t state_bytes_per_sequence = 0;  // recurrent models: one sequence's state, any length
    int64_t state_snapshots = 0;          // recurrent models: state snapshots held now
    size_t state_snapshot_bytes = 0;      // ... and their memory
    PrefixCacheStats prefix;
};

// submit() refuses with this when the queue is full (HTTP 429/503 + Retry-After).
class QueueFullError : public Error {
public:
    using Error::Error;
};

class Scheduler {
public:
    Scheduler(Model& model, const Tokenizer& tokenizer, ThreadPool& pool, SchedulerConfig config);
    ~Scheduler();
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    // Queues a request. Throws Error if it can never run (prompt empty or too long for
    // the context, prompt + n_predict past the context, bad sampling parameters) and
    // QueueFullError if too many requests are already waiting.
    std::shared_ptr<RequestStream> submit(RequestParams params);

    SchedulerStats stats() const;
    const SchedulerConfig& config() const { return config_; }

    // Stops taking requests; queued and active requests finish as Cancelled;
    // the scheduler thread exits. Called by the destructor.
    void shutdown();

private:
    struct Slot;
    struct Pending {
        RequestParams params;
        std::shared_ptr<RequestStream> stream;
        double submitted_at;
    };

    void loop();
    void admit_waiting();
    Slot* free_slot();
    void start(Slot& slot, Pending&& req);
    bool reserve(Slot& slot, int n_positions);
    void update_cache_stats();
    void report_prefill_progress();

    // One step: drop cancelled, propose drafts, add decode tokens, add prefill chunks,
    // forward, verify and emit.
    struct StepBatch;
    void step();
    void drop_cancelled();
    void propose_drafts();
    void add_decode_tokens(StepBatch& b);
    void add_prefill_chunks(StepBatch& b);
    void pick_up_shared_blocks(Slot& slot);
    bool follows_a_leader(const Slot& slot, const StepBatch& b) const;
    void share_prefilled_blocks(const StepBatch& b);
    bool forward(const StepBatch& b, float* logits);
    void verify_and_emit(Slot& slot, const float* rows);
    void keep_verified(Slot& slot, int n_tokens);
    void choose_leaves(Slot& slot, int room);
    void keep_leaf(Slot& slot, int pos, int kv_slot, int32_t token);
    SequenceDecoder::Step decode_and_emit(Slot& slot, const float* logits, const DraftToken* proposed = nullptr);
    void finish(Slot& slot, FinishReason reason, const std::string& error = "", int error_status = 500);

    Model& model_;
    const Tokenizer& tokenizer_;
    ThreadPool& pool_;
    SchedulerConfig config_;
    KvCache cache_;
    std::unique_ptr<PrefixCache> prefix_;  // null when prefix reuse is off
    std::unique_ptr<Drafter> drafter_;     // speculative decoding (prompt lookup, draft model), or null
    SpeculationCostModel spec_costs_;      // timings that size each slot's drafts
    SpeculationCosts step_costs_;          // this step's, from spec_costs_ (propose_drafts)
    std::vector<std::unique_ptr<Slot>> slots_;

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Pending> queue_;
    bool stopping_ = false;
    SchedulerStats stats_;
    std::thread thread_;
};

}  // namespace pensieve
