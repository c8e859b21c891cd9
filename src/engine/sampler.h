// Token sampling: logits -> next token id.
//
// The pipeline, in order (the same order as llama.cpp's default chain, so the same
// parameters mean the same thing here as there):
//
//   penalties (repeat / frequency / presence over the last repeat_last_n accepted tokens)
//   -> greedy argmax, if temperature <= 0 (or top_k == 1); otherwise
//   -> top-k -> top-p -> min-p   (each on the softmax of the surviving logits, at T = 1)
//   -> temperature -> one draw from the seeded RNG.
//
// It runs once per generated token over the whole vocabulary (32k..150k entries), so
// nothing allocates after construction, top-k uses a selection instead of a sort, top-p
// sorts only as far as it needs, and greedy is a single pass over the logits.
//
// Determinism: the RNG is std::mt19937_64 (its raw output is fixed by the C++ standard)
// and doubles are built from its bits here, not by std::uniform_real_distribution (whose
// algorithm differs between standard libraries). Every ordering uses a total order
// (logit descending, then id ascending), so the same seed and the same logits give the
// same tokens on any platform.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace pensieve {

struct SamplingParams {
    float temperature = 0.8f;        // <= 0: greedy (argmax, ties -> lowest id)
    int32_t top_k = 40;              // <= 0: off
    float top_p = 0.95f;             // >= 1: off; 0 keeps only the most likely token
    float min_p = 0.05f;             // <= 0: off
    float repeat_penalty = 1.0f;     // 1: off (llama.cpp-style: logit>0 ? logit/p : logit*p)
    int32_t repeat_last_n = 64;      // window for all penalties; 0: off, -1: whole history
    float frequency_penalty = 0.0f;  // OpenAI-style: logit -= count * fp
    float presence_penalty = 0.0f;   // OpenAI-style: logit -= (count>0) * pp
    uint64_t seed = kRandomSeed;     // kRandomSeed: seed from std::random_device
    static constexpr uint64_t kRandomSeed = ~uint64_t(0);

    // Throws Error with a user-facing message on bad values. Accepted ranges:
    // temperature finite (negative = greedy, as llama.cpp); top_p in [0, 1]; min_p in
    // [0, 1]; repeat_penalty finite and > 0; frequency/presence penalties finite;
    // repeat_last_n >= -1; top_k any (<= 0 = off).
    void validate() const;
};

// One surviving candidate of the last sample() call.
struct TokenProb {
    int32_t id;
    float logit;  // after penalties, before temperature
    float prob;   // in the final distribution the token was drawn from
};

class Sampler {
public:
    // Validates params (throws Error) and allocates the per-vocabulary buffers.
    Sampler(const SamplingParams& params, int32_t n_vocab);

    // Picks the next token from raw logits (n_vocab floats; not modified). NaN logits
    // count as -inf. Does not accept() the token: the caller does, once it keeps it.
    int32_t sample(const float* logits);

    // Speculative sampling (Leviathan et al. 2023; Chen et al. 2023): `draft` was drawn from
    // the drafter's distribution q (its live candidates, probabilities summing to 1). Keeps
    // it with probability min(1, p(draft) / q(draft)), where p is the distribution sample()
    // would draw from; otherwise draws from the residual max(0, p - q), renormalised. The
    // token returned is distributed exactly as sample()'s, and equals `draft` only when the
    // draft is kept. Greedy: the argmax, as sample(). Does not accept() the token.
    int32_t sample_speculative(const float* logits, int32_t draft, std::span<const TokenProb> q);

    // Appends a token to the history the penalties look at (prompt tokens too).
    // Throws Error if the id is outside [0, n_vocab).
    void accept(int32_t token);

    // Clears the history and re-seeds the RNG: with a fixed seed the sampler then repeats
    // exactly; with kRandomSeed it draws a fresh random seed.
    void reset();

    // The candidates the last sample() drew from, with their probabilities. Sorted by
    // probability when top-k or top-p ran; otherwise in id order. Greedy: one entry,
    // the chosen token, prob 1. Valid until the next sample()/reset().
    std::span<const TokenProb> last_candidates() const {
        return {candidates_.data(), n_candidates_};
    }

    const SamplingParams& params() const { return params_; }
    int32_t n_vocab() const { return n_vocab_; }
    uint64_t seed() const { return seed_; }  // the seed in use (the drawn one for kRandomSeed)
    const std::vector<int32_t>& history() const { return history_; }

private:
    void seed_rng();
    double next_unit_double();  // uniform in [0, 1), 53 random bits

    float penalized_logit(float logit, int32_t count) const;
    float effective_logit(const float* logits, int32_t id) const;  // sanitized + penalized

    int32_t pick_argmax(const float* logits);
    void load_candidates(const float* logits);
    void gather_top_k(const float* logits);  // load + top-k in one pass, for small k
    void keep_top_k();
    void keep_top_p();
    void keep_min_p();
    void keep_candidates(const float* logits);  // penalties, top-k, top-p, min-p: the live candidates
    int32_t draw_with_temperature();
    void normalize_with_temperature();         // candidates' prob = their final distribution
    int32_t draw_from_residual(std::span<const TokenProb> q);
    float max_candidate_logit() const;

    SamplingParams params_;
    int32_t n_vocab_;
    uint64_t seed_ = 0;
    std::mt19937_64 rng_;
    bool penalize_ = false;  // some penalty is on and the window is not empty

    std::vector<int32_t> history_;
    // token_counts_[id]: occurrences of id in the penalty window, kept up to date by
    // accept() so sample() needs no counting pass.
    std::vector<int32_t> token_counts_;

    std::vector<TokenProb> candidates_;  // n_vocab entries; the first n_candidates_ are live
    std::vector<float> draft_prob_;      // n_vocab entries, 0 but during sample_speculative: q by id
    size_t n_candidates_ = 0;
    bool candidates_sorted_ = false;  // live candidates are in descending-logit order
};

}  // namespace pensieve
