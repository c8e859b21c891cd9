#include "engine/draft_policy.h"

#include <algorithm>

namespace pensieve {

namespace {

// Weight of the past in every running estimate, per new observation: ~30 steps of memory.
constexpr double kDecay = 0.97;

// Before any pass is timed: a draft token is assumed to cost a quarter of a target pass
// (a draft model ~10x smaller plus one verify row), so a fresh sequence drafts a little
// and then learns.
constexpr double kPriorTokenCost = 0.25;

// When every timed pass held the same number of rows the slope is unknown: assume each
// extra row adds 5% (decode is bound by reading the weights, which all rows share).
constexpr double kPriorRowShare = 0.05;
constexpr double kPriorWeight = 4.0;

}  // namespace

double SpeculationCosts::token_cost() const {
    if (target_pass <= 0) return kPriorTokenCost;
    return (rows * per_row + per_draft) / target_pass;
}

double SpeculationCosts::row_cost() const {
    if (target_pass <= 0) return kPriorRowShare;
    return rows * per_row / target_pass;
}

void SpeculationCostModel::record_target_pass(int rows, double seconds) {
    const double x = rows;
    w_ = w_ * kDecay + 1;
    sx_ = sx_ * kDecay + x;
    sy_ = sy_ * kDecay + seconds;
    sxx_ = sxx_ * kDecay + x * x;
    sxy_ = sxy_ * kDecay + x * seconds;
}

void SpeculationCostModel::record_draft(int draft_steps, double seconds) {
    // The draft model's first run pays its page faults and reads the whole prompt (37 ms
    // a token against 4 ms after, layer-skip synth-1b pair); a run after a rest catches
    // up on the tokens it skipped. Neither is the cost of one more draft token: skip the
    // first, and count no run as more than twice the estimate so far.
    if (++draft_runs_ == 1) return;
    double per_step = seconds / std::max(draft_steps, 1);
    if (draft_steps_ > 0) per_step = std::min(per_step, 2 * draft_seconds_ / draft_steps_);
    draft_seconds_ = draft_seconds_ * kDecay + per_step * std::max(draft_steps, 1);
    draft_steps_ = draft_steps_ * kDecay + std::max(draft_steps, 1);
}

SpeculationCosts SpeculationCostModel::costs(int rows) const {
    SpeculationCosts c;
    c.rows = std::max(rows, 1);
    if (draft_steps_ > 0) c.per_draft = draft_seconds_ / draft_steps_;
    if (w_ <= 0) return c;
    const double mx = sx_ / w_, my = sy_ / w_;
    // Least squares pulled towards the prior slope with the weight of kPriorWeight passes
    // one row apart: a few passes of another size, on a host whose timings jitter, must
    // not decide the slope alone (on stories260K one 2-row pass among 1-row ones fitted
    // a row as dear as a whole pass).
    const double sxx = sxx_ - w_ * mx * mx, sxy = sxy_ - w_ * mx * my;
    const double prior = kPriorRowShare * my / std::max(mx, 1.0);
    double slope = (sxy + kPriorWeight * prior) / (sxx + kPriorWeight);
    // A row never costs less than nothing, nor more than a whole pass of its own.
    slope = std::clamp(slope, 0.0, my / std::max(mx, 1.0));
    const double intercept = my - slope * mx;
    c.per_row = slope;
    c.target_pass = std::max(intercept + slope * std::max(rows, 1), 1e-9);
    return c;
}

AcceptanceModel::AcceptanceModel() {
    // Prior: one accepted of two tried, in every bucket.
    accepted_.fill(1.0);
    tried_.fill(2.0);
}

int AcceptanceModel::bucket(float q) { return std::clamp(int(q * kBuckets), 0, kBuckets - 1); }

double AcceptanceModel::chance(float q) const {
    const double overall = accepted_[kBuckets] / tried_[kBuckets];
    if (q < 0) return overall;
    // A bucket with few observations leans on the overall rate (two tokens' worth).
    const int b = bucket(q);
    return (accepted_[size_t(b)] + 2 * overall) / (tried_[size_t(b)] + 2);
}

void AcceptanceModel::record(float q, bool accepted) {
    for (int i = 0; i <= kBuckets; ++i) {
        if (i < kBuckets && (q < 0 || i != bucket(q))) continue;
        accepted_[size_t(i)] = accepted_[size_t(i)] * kDecay + (accepted ? 1 : 0);
        tried_[size_t(i)] = tried_[size_t(i)] * kDecay + 1;
    }
}

int DraftPolicy::max_tokens(const SpeculationCosts& costs, int room) {
    // Expected tokens per step with k drafts: 1 + a + a^2 + ... + a^k (each accepted only
    // if all before it were); time: 1 + k * cost target passes. Take the best ratio.
    const double cost = costs.token_cost(), accept = acceptance_.chance(-1);
    int k = 0;
    best_rate_ = 1.0;
    double expected = 1.0, all = 1.0;
    for (int n = 1; n <= room; ++n) {
        all *= accept;
        expected += all;
        const double rate = expected / (1.0 + n * cost);
        if (rate > best_rate_) {
            best_rate_ = rate;
            k = n;
        }
    }
    min_chance_ = cost * best_rate_;
    probing_ = false;
    if (k > 0) {
        steps_without_draft_ = 0;
        return k;
    }
    if (room > 0 && ++steps_without_draft_ >= probe_every_) {
        steps_without_draft_ = 0;
        probing_ = true;
        return 1;
    }
    return 0;
}

void DraftPolicy::record(int drafted, int accepted, const float* q) {
    // Tokens after the first rejected one were never tested: they say nothing.
    for (int i = 0; i < drafted && i <= accepted; ++i) acceptance_.record(q ? q[i] : -1.0f, i < accepted);
    if (probing_ && drafted > 0) probe_every_ = accepted > 0 ? 8 : std::min(probe_every_ * 2, 64);
    probing_ = false;
}

bool DraftPolicy::leaf_pays(int j, const float* q, const SpeculationCosts& costs) const {
    double reach = 1.0;
    for (int i = 0; i < j; ++i) reach *= acceptance_.chance(q ? q[i] : -1.0f);
    const double rejected = 1.0 - acceptance_.chance(q ? q[j] : -1.0f);
    return reach * rejected * (leaf_taken_ / leaf_tried_) >= costs.row_cost() * best_rate_;
}

void DraftPolicy::record_leaf(bool taken) {
    leaf_taken_ = leaf_taken_ * kDecay + (taken ? 1 : 0);
    leaf_tried_ = leaf_tried_ * kDecay + 1;
}

}  // namespace pensieve
