// Speculative decoding: a Drafter guesses the next few tokens of a sequence cheaply; the
// scheduler feeds them after the sequence's pending token in the same forward pass, and
// the sequence's decoder keeps each draft token that it would have sampled anyway
// (SequenceDecoder::next with the proposal). Accepted tokens cost one row of a batched
// pass instead of a pass each; rejected ones cost a row and are forgotten.
//
// The scheduler only asks for proposals and reports what was kept; how a drafter guesses
// (prompt lookup, a small draft model, the target's own first layers; a second choice
// per position for a tree of drafts) stays behind this interface; how many tokens it may
// risk per sequence is the scheduler's DraftPolicy (draft_policy.h).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/sampler.h"

namespace pensieve {

class AcceptanceModel;
class KvCache;
class Model;
class ThreadPool;
class Tokenizer;

// Speculative tokens for one sequence. probs[i] is the drafter's own probability of
// tokens[i]; empty when the drafter does not know it. When the drafter sampled its tokens
// (a request that samples), dists[i] is the whole distribution q tokens[i] was drawn
// from, for speculative sampling (Sampler::sample_speculative); empty for guesses.
// For tree drafts, alts[i] is the drafter's best token other than tokens[i] at the same
// position (its second choice) and alt_probs[i] its probability; empty when the drafter
// has none. The scheduler may verify some of them as leaves beside the chain.
struct Draft {
    std::vector<int32_t> tokens;
    std::vector<float> probs;
    std::vector<std::vector<TokenProb>> dists;
    std::vector<int32_t> alts;
    std::vector<float> alt_probs;
};

// One sequence asking for a draft this step.
struct DraftRequest {
    int seq = 0;                                // the slot: sequence id in the target's KV cache
    const std::vector<int32_t>* context = nullptr;  // tokens whose KV the target holds, in order
    int32_t next_token = -1;                    // sampled, fed this step at position context->size()
    int max_tokens = 0;                         // most tokens to draft (draft_policy.h); > 0
    // A drafter that knows its own probability q of each token stops once the chance that
    // its whole draft so far is accepted (the product of acceptance->chance(q)) falls
    // below min_chance (from the second token on: the first is the policy's call): a
    // token that is probably rejected costs more than it saves.
    const AcceptanceModel* acceptance = nullptr;
    double min_chance = 0;
    // The request's sampling: a drafter may draw its draft with it (seeded from `seed`)
    // and fill Draft::dists. Null or greedy: guess greedily.
    const SamplingParams* sampling = nullptr;
    uint64_t seed = 0;
    Draft draft;                                // filled by propose(); may stay empty
};

class Drafter {
public:
    virtual ~Drafter() = default;

    // Most draft tokens per sequence and step (the scheduler reserves batch room for them).
    virtual int max_tokens() const = 0;
    // A new request starts in sequence `seq`: forget what the drafter kept for it.
    virtual void reset(int seq) {}
    // Fills each request's draft, all sequences at once (a model-based drafter batches
    // them into one pass per draft position). Returns true when it spent a forward pass.
    virtual bool propose(std::vector<DraftRequest>& requests) = 0;
    // After verification the target keeps the first n_tokens of `seq` (the accepted drafts
    // included): state past that is stale.
    virtual void keep(int seq, int n_tokens) {}
};

// Prompt lookup: the continuation after the latest earlier occurrence of the last 2-4
// tokens (no model; good for code edits, quoting, structured output).
std::unique_ptr<Drafter> make_lookup_drafter(int max_tokens);

struct DraftModelOptions {
    int n_vocab = 0;       // the target's vocabulary size; the draft model's must equal it
    int max_tokens = 8;    // drafts per step
    float p_min = 0.0f;    // also stop drafting once the draft model's own probability falls below
    int n_ctx = 4096;      // per sequence, as the target's
    int n_seq = 1;         // the target's slots
    // > 0: the draft is the model's own first n_layers layers and output head (an early
    // exit, Model::early_exit()): no second file and no extra weights in memory.
    int n_layers = 0;
    // With n_layers: the target's own cache, whose first n_layers layers are what the
    // draft would compute for the same tokens. The draft reads the positions the target
    // holds instead of keeping a copy (no catch-up pass, no memory of its own), writes its
    // draft positions after them and rolls them back once it has proposed: the target's
    // verify pass writes those positions itself.
    KvCache* target_cache = nullptr;
};

// A small model with the target's vocabulary proposes greedily. It keeps its own KV cache
// (f16, one sequence per slot; or shares the target's, see target_cache), catches up on
// tokens it has not seen in one batched pass, and backs off (2-16 steps) after a step in
// which it proposed nothing. Throws Error if
// its vocabulary differs from the target's, or if an early exit is asked of a model
// without one.
std::unique_ptr<Drafter> make_draft_model_drafter(Model& draft, const Tokenizer& tokenizer, ThreadPool& pool,
                                                  const DraftModelOptions& options);

}  // namespace pensieve
