// One sequence's way from logits to output: the sampler, the grammar mask, stop strings,
// UTF-8 streaming and logprobs, for one request. The scheduler owns one per busy slot and
// feeds it one logits row per sampled position; everything about *what* the request
// generates lives here, everything about *when* (batching, KV, speculation) lives in the
// scheduler.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/grammar_matcher.h"
#include "engine/request.h"
#include "engine/sampler.h"
#include "engine/stop_strings.h"
#include "util/utf8.h"

namespace pensieve {

class Tokenizer;

// A speculative token proposed for the position being sampled (drafter.h), with the
// drafter's own probability of it (0 when unknown) and, when the drafter sampled it, the
// distribution q it was drawn from.
struct DraftToken {
    int32_t token = -1;
    float prob = 0.0f;
    std::span<const TokenProb> q;  // empty: a deterministic guess
};

class SequenceDecoder {
public:
    // params.options drive sampling, stops and the grammar; params.prompt seeds the
    // sampler's penalty history.
    SequenceDecoder(const RequestParams& params, const Tokenizer& tokenizer, int32_t n_vocab);

    struct Step {
        int32_t token = -1;
        // The token is part of the output: `event` carries it (its text may be empty while
        // a character or a possible stop string is incomplete). False for the
        // end-of-generation token, which ends the request without being output.
        bool emitted = false;
        TokenEvent event;
        std::optional<FinishReason> finish;  // the request ends with this token
        bool draft_accepted = false;         // the token is the proposed draft token
    };

    // Samples the next token from one row of logits (n_vocab floats, not modified).
    // With a proposal (speculative decoding) the step also says whether the draft token
    // is kept. Either way the output distribution is the one without drafts (greedy:
    // identical tokens):
    // - a deterministic guess (prompt lookup, a greedy draft): sample exactly as without
    //   drafts and keep the draft only when it equals the sample (so a seeded request
    //   gives the same tokens with or without drafts);
    // - a sampled draft (proposed->q): speculative sampling, Sampler::sample_speculative,
    //   which keeps more drafts when q is close to the model's distribution.
    Step next(const float* logits, const DraftToken* proposed = nullptr);
    uint64_t seed() const { return sampler_.seed(); }

    // At the end: text held back (a partial character or stop string) that is output
    // after all; empty if a stop string matched.
    std::string tail();
    const std::string& stop_string() const { return stops_.matched(); }
    int n_generated() const { return n_generated_; }

private:
    const float* apply_grammar(const float* logits);
    void add_logprobs(const float* logits, TokenEvent& ev) const;

    const Tokenizer& tokenizer_;
    GenerateOptions options_;
    int n_top_logprobs_;
    bool want_logprobs_;
    int32_t n_vocab_;
    Sampler sampler_;
    StopStringMatcher stops_;
    std::unique_ptr<GrammarMatcher> grammar_;  // constrained output, if asked for
    std::vector<float> masked_;                // logits with the grammar's mask applied
    Utf8Streamer utf8_;
    int n_generated_ = 0;
};

}  // namespace pensieve
