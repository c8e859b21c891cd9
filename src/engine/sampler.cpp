#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "util/error.h"

namespace pensieve {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Up to this k, top-k keeps a heap of the k best while reading the logits; above it, it
// copies everything and uses nth_element (the heap's log k per insertion would lose).
constexpr int32_t kHeapTopKLimit = 1024;

// Total order for candidates: higher logit first, then lower id. Being total (no two
// candidates compare equal) makes every sort and selection give the same result on every
// standard library.
bool ranks_higher(const TokenProb& a, const TokenProb& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// exp((logit - max) / T): the softmax weight of a candidate relative to the best one.
// Computed in double: 1/T may exceed the float range for a tiny T, and glibc's double exp
// measured no slower than its float one here.
float relative_weight(float logit, float max_logit, double inv_temperature) {
    return static_cast<float>(std::exp((double(logit) - double(max_logit)) * inv_temperature));
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Parameters

void SamplingParams::validate() const {
    if (!std::isfinite(temperature)) fail("temperature must be a finite number");
    if (!(top_p >= 0.0f && top_p <= 1.0f)) fail("top_p must be between 0 and 1, got ", top_p);
    if (!(min_p >= 0.0f && min_p <= 1.0f)) fail("min_p must be between 0 and 1, got ", min_p);
    if (!(std::isfinite(repeat_penalty) && repeat_penalty > 0.0f))
        fail("repeat_penalty must be greater than 0, got ", repeat_penalty);
    if (!std::isfinite(frequency_penalty)) fail("frequency_penalty must be a finite number");
    if (!std::isfinite(presence_penalty)) fail("presence_penalty must be a finite number");
    if (repeat_last_n < -1)
        fail("repeat_last_n must be -1 (whole history), 0 (off) or positive, got ", repeat_last_n);
}

// ---------------------------------------------------------------------------------------
// Set-up, history, RNG

Sampler::Sampler(const SamplingParams& params, int32_t n_vocab) : params_(params), n_vocab_(n_vocab) {
    params_.validate();
    if (n_vocab <= 0) fail("sampler needs a vocabulary of at least one token, got ", n_vocab);
    candidates_.resize(static_cast<size_t>(n_vocab));
    penalize_ = params_.repeat_last_n != 0 && (params_.repeat_penalty != 1.0f || params_.frequency_penalty != 0.0f ||
                                               params_.presence_penalty != 0.0f);
    if (penalize_) token_counts_.assign(static_cast<size_t>(n_vocab), 0);
    seed_rng();
}

void Sampler::seed_rng() {
    if (params_.seed == SamplingParams::kRandomSeed) {
        std::random_device device;
        seed_ = (uint64_t(device()) << 32) ^ uint64_t(device());
    } else {
        seed_ = params_.seed;
    }
    rng_.seed(seed_);
}

double Sampler::next_unit_double() {
    // The top 53 bits of one 64-bit draw, scaled by 2^-53: exactly uniform on the grid
    // of doubles k/2^53 in [0, 1).
    return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

void Sampler::reset() {
    history_.clear();
    std::fill(token_counts_.begin(), token_counts_.end(), 0);
    n_candidates_ = 0;
    seed_rng();
}

void Sampler::accept(int32_t token) {
    if (token < 0 || token >= n_vocab_) fail("token id ", token, " is outside the vocabulary (", n_vocab_, " tokens)");
    history_.push_back(token);
    if (!penalize_) return;

    // Slide the penalty window: the new token enters, the one repeat_last_n back leaves.
    token_counts_[token]++;
    const int32_t window = params_.repeat_last_n;
    if (window > 0 && history_.size() > static_cast<size_t>(window)) {
        token_counts_[history_[history_.size() - 1 - window]]--;
    }
}

// ---------------------------------------------------------------------------------------
// Penalties

float Sampler::penalized_logit(float logit, int32_t count) const {
    // Repeat penalty (llama.cpp / CTRL paper): push the logit toward "less likely" whatever
    // its sign; dividing a negative logit would make the token *more* likely.
    if (params_.repeat_penalty != 1.0f) {
        logit = logit > 0.0f ? logit / params_.repeat_penalty : logit * params_.repeat_penalty;
    }
    // OpenAI-style: frequency scales with the count, presence is paid once.
    return logit - static_cast<float>(count) * params_.frequency_penalty - params_.presence_penalty;
}

float Sampler::effective_logit(const float* logits, int32_t id) const {
    // NaN becomes -inf (never chosen); +inf becomes the largest float, so the
    // "logit - max" of the softmax stays finite.
    float logit = logits[id];
    if (std::isnan(logit)) logit = kNegInf;
    if (logit > std::numeric_limits<float>::max()) logit = std::numeric_limits<float>::max();
    if (penalize_ && token_counts_[id] > 0) logit = penalized_logit(logit, token_counts_[id]);
    return logit;
}

// ---------------------------------------------------------------------------------------
// Sampling steps

int32_t Sampler::sample(const float* logits) {
    if (params_.temperature <= 0.0f || params_.top_k == 1) return pick_argmax(logits);
    keep_candidates(logits);
    return draw_with_temperature();
}

void Sampler::keep_candidates(const float* logits) {
    const bool small_top_k = params_.top_k > 0 && params_.top_k <= kHeapTopKLimit && params_.top_k < n_vocab_;
    if (small_top_k) {
        gather_top_k(logits);
    } else {
        load_candidates(logits);
        keep_top_k();
    }
    keep_top_p();
    keep_min_p();
}

int32_t Sampler::sample_speculative(const float* logits, int32_t draft, std::span<const TokenProb> q) {
    if (params_.temperature <= 0.0f || params_.top_k == 1) return pick_argmax(logits);
    keep_candidates(logits);
    normalize_with_temperature();
    double p_draft = 0.0, q_draft = 0.0;
    for (size_t i = 0; i < n_candidates_; ++i)
        if (candidates_[i].id == draft) p_draft = candidates_[i].prob;
    for (const TokenProb& t : q)
        if (t.id == draft) q_draft = t.prob;
    // Keep with probability min(1, p/q): u * q < p for u uniform in [0, 1).
    if (next_unit_double() * q_draft < p_draft) return draft;
    return draw_from_residual(q);
}

// Where q put more mass than p, the draft was kept less often than p asks; the residual
// max(0, p - q) hands that mass back, so keep-or-resample together draw exactly from p.
int32_t Sampler::draw_from_residual(std::span<const TokenProb> q) {
    if (draft_prob_.empty()) draft_prob_.assign(size_t(n_vocab_), 0.0f);
    for (const TokenProb& t : q)
        if (t.id >= 0 && t.id < n_vocab_) draft_prob_[size_t(t.id)] = t.prob;
    auto residual = [&](size_t i) {
        return std::max(0.0, double(candidates_[i].prob) - double(draft_prob_[size_t(candidates_[i].id)]));
    };
    double total = 0.0;
    for (size_t i = 0; i < n_candidates_; ++i) total += residual(i);
    // total == 0: p == q up to rounding (the rejection was itself a rounding event): draw from p.
    const bool from_p = !(total > 0.0);
    if (from_p) total = 1.0;
    const double point = next_unit_double() * total;
    double cumulative = 0.0;
    size_t chosen = n_candidates_, last = 0;
    for (size_t i = 0; i < n_candidates_; ++i) {
        const double w = from_p ? double(candidates_[i].prob) : residual(i);
        if (w <= 0.0) continue;
        last = i;  // rounding can leave the point at the very top: then the last possible token
        cumulative += w;
        if (point < cumulative) {
            chosen = i;
            break;
        }
    }
    if (chosen == n_candidates_) chosen = last;
    for (const TokenProb& t : q)
        if (t.id >= 0 && t.id < n_vocab_) draft_prob_[size_t(t.id)] = 0.0f;
    return candidates_[chosen].id;
}

int32_t Sampler::pick_argmax(const float* logits) {
    // One pass; strict '>' keeps the lowest id among ties.
    int32_t best_id = 0;
    float best = kNegInf;
    for (int32_t id = 0; id < n_vocab_; ++id) {
        const float logit = effective_logit(logits, id);
        if (logit > best) {
            best = logit;
            best_id = id;
        }
    }
    candidates_[0] = {best_id, best, 1.0f};
    n_candidates_ = 1;
    candidates_sorted_ = true;
    return best_id;
}

void Sampler::load_candidates(const float* logits) {
    for (int32_t id = 0; id < n_vocab_; ++id) candidates_[id] = {id, effective_logit(logits, id), 0.0f};
    n_candidates_ = static_cast<size_t>(n_vocab_);
    candidates_sorted_ = false;
}

void Sampler::gather_top_k(const float* logits) {
    // Keep the k best seen so far in a heap whose top is the worst of them. Almost every
    // token loses to that worst one at the first comparison, so this is one cheap pass
    // over the vocabulary with no copy of it.
    const size_t k = static_cast<size_t>(params_.top_k);
    TokenProb* heap = candidates_.data();
    size_t size = 0;
    for (int32_t id = 0; id < n_vocab_; ++id) {
        const TokenProb candidate = {id, effective_logit(logits, id), 0.0f};
        if (size < k) {
            heap[size++] = candidate;
            std::push_heap(heap, heap + size, ranks_higher);
        } else if (ranks_higher(candidate, heap[0])) {
            std::pop_heap(heap, heap + k, ranks_higher);
            heap[k - 1] = candidate;
            std::push_heap(heap, heap + k, ranks_higher);
        }
    }
    std::sort(heap, heap + k, ranks_higher);
    n_candidates_ = k;
    candidates_sorted_ = true;
}

void Sampler::keep_top_k() {
    if (params_.top_k <= 0 || static_cast<size_t>(params_.top_k) >= n_candidates_) return;
    // Select the k best in O(n), then order just those k.
    const auto begin = candidates_.begin();
    const auto kth = begin + params_.top_k;
    std::nth_element(begin, kth - 1, begin + n_candidates_, ranks_higher);
    std::sort(begin, kth, ranks_higher);
    n_candidates_ = static_cast<size_t>(params_.top_k);
    candidates_sorted_ = true;
}

float Sampler::max_candidate_logit() const {
    if (candidates_sorted_) return candidates_[0].logit;
    float max = kNegInf;
    for (size_t i = 0; i < n_candidates_; ++i) max = std::max(max, candidates_[i].logit);
    return max;
}

void Sampler::keep_top_p() {
    // Keep the smallest set of most likely tokens whose probability reaches top_p.
    if (params_.top_p >= 1.0f) return;
    const float max_logit = max_candidate_logit();
    if (max_logit == kNegInf) return;  // all impossible: nothing to rank

    double total = 0.0;
    for (size_t i = 0; i < n_candidates_; ++i) total += relative_weight(candidates_[i].logit, max_logit, 1.0);
    const double target = double(params_.top_p) * total;

    // Sort only as far as needed: order the next chunk of best candidates, walk it, and
    // double the chunk if the mass is not reached yet. With a peaked distribution (the
    // usual case) one small chunk is enough and the full vocabulary is never sorted.
    const auto begin = candidates_.begin();
    const auto end = begin + n_candidates_;
    size_t sorted = candidates_sorted_ ? n_candidates_ : 0;
    size_t chunk = 64;
    double mass = 0.0;
    for (size_t i = 0; i < n_candidates_; ++i) {
        if (i == sorted) {
            const size_t next = std::min(n_candidates_, sorted + chunk);
            std::partial_sort(begin + sorted, begin + next, end, ranks_higher);
            sorted = next;
            chunk *= 2;
        }
        mass += relative_weight(candidates_[i].logit, max_logit, 1.0);
        if (mass >= target) {
            n_candidates_ = i + 1;
            break;
        }
    }
    candidates_sorted_ = true;  // what is left is the sorted prefix
}

void Sampler::keep_min_p() {
    // Drop tokens whose probability is below min_p times the top probability. In logit
    // terms: p/p_max = exp(logit - max) >= min_p  <=>  logit >= max + log(min_p),
    // so no softmax is needed. Compaction keeps the current order.
    if (params_.min_p <= 0.0f) return;
    const float max_logit = max_candidate_logit();
    if (max_logit == kNegInf) return;
    const float threshold = max_logit + std::log(params_.min_p);

    size_t kept = 0;
    for (size_t i = 0; i < n_candidates_; ++i) {
        if (candidates_[i].logit >= threshold) candidates_[kept++] = candidates_[i];
    }
    n_candidates_ = kept;  // >= 1: the max itself always passes
}

// The candidates' final distribution, as draw_with_temperature() draws from it.
void Sampler::normalize_with_temperature() {
    const float max_logit = max_candidate_logit();
    if (max_logit == kNegInf) {
        candidates_[0].prob = 1.0f;
        n_candidates_ = 1;
        return;
    }
    const double inv_temperature = 1.0 / double(params_.temperature);
    double total = 0.0;
    for (size_t i = 0; i < n_candidates_; ++i) {
        candidates_[i].prob = relative_weight(candidates_[i].logit, max_logit, inv_temperature);
        total += candidates_[i].prob;
    }
    for (size_t i = 0; i < n_candidates_; ++i) candidates_[i].prob = float(candidates_[i].prob / total);
}

int32_t Sampler::draw_with_temperature() {
    const float max_logit = max_candidate_logit();
    if (max_logit == kNegInf) {
        // Every token is impossible (all logits -inf or NaN): there is nothing to draw
        // from, so fall back to the first candidate rather than divide 0 by 0.
        candidates_[0].prob = 1.0f;
        n_candidates_ = 1;
        return candidates_[0].id;
    }

    // Softmax at temperature T, shifted by the max so exp never overflows. The walk below
    // adds the same stored weights in the same order, so it ends exactly at the total.
    const double inv_temperature = 1.0 / double(params_.temperature);
    double total = 0.0;
    for (size_t i = 0; i < n_candidates_; ++i) {
        candidates_[i].prob = relative_weight(candidates_[i].logit, max_logit, inv_temperature);
        total += candidates_[i].prob;
    }

    // Walk the cumulative distribution up to a uniform point in [0, total).
    const double point = next_unit_double() * total;
    double cumulative = 0.0;
    size_t chosen = n_candidates_;
    for (size_t i = 0; i < n_candidates_; ++i) {
        cumulative += candidates_[i].prob;
        if (point < cumulative) {
            chosen = i;
            break;
        }
    }
    // Rounding can leave the point at the very top: take the last token that is possible.
    if (chosen == n_candidates_) {
        chosen = n_candidates_ - 1;
        while (chosen > 0 && candidates_[chosen].prob <= 0.0f) --chosen;
    }

    for (size_t i = 0; i < n_candidates_; ++i) candidates_[i].prob = float(candidates_[i].prob / total);
    return candidates_[chosen].id;
}

}  // namespace pensieve
