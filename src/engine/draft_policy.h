// Adaptive speculation: how many tokens to draft for a sequence, decided each step from
// what verification has shown so far and what a draft token costs, so that no flag needs
// tuning per model pair.
//
// The rule. Every drafted token costs one step of the drafter and one more verified row
// in the target's pass (c, in target passes); draft token i is kept only if it and every
// draft token before it are accepted (chance a each). k drafts give 1 + a + ... + a^k
// tokens in 1 + k*c passes: the policy drafts the k with the best ratio, and the drafter
// stops early once the chance of its whole draft so far falls below c times that ratio
// (the token would add less than it costs at the step's rate).
// The chance is learned per sequence: the running acceptance rate, and, when the drafter
// knows its own probability q of a token, the acceptance rate of tokens of similar q (a
// confident draft is accepted more often).
// When the rule says "draft nothing" a lone probe token is still drafted now and then,
// ever more rarely while probes fail, so the acceptance estimate can recover (a drafter
// that never agrees costs ~1 probe per 8-64 steps).
#pragma once

#include <array>
#include <cstdint>

namespace pensieve {

// What one draft token costs, in seconds, from the engine's own timings.
struct SpeculationCosts {
    double target_pass = 0;  // a target pass for this step's decoding rows without drafts
    double per_row = 0;      // extra target time per extra verified row
    double per_draft = 0;    // drafter time per draft token (0: prompt lookup)
    int rows = 1;            // sequences decoding together this step

    // A draft token's cost in units of one sequence's share of a pass; a quarter when
    // nothing is measured yet. With R sequences each drafting k tokens, a step takes
    // T + k (R per_row + per_draft) and yields R (1 + a + ... + a^k) tokens against R in
    // T: so a token costs (R per_row + per_draft) / T. One sequence alone pays only its
    // own row (reading the weights is shared); in a large batch, where a pass already
    // costs ~R rows, every drafted row delays every sequence and drafting stops paying.
    double token_cost() const;
    // The same for a verified row the drafter did not have to compute (a tree leaf).
    double row_cost() const;
};

// Running fit of the engine's pass timings: target pass time against the rows it held
// (decode passes only), and drafter time per draft token. Exponentially weighted, so it
// follows a host whose load changes.
class SpeculationCostModel {
public:
    void record_target_pass(int rows, double seconds);
    void record_draft(int draft_steps, double seconds);
    // The costs for a step with `rows` rows before drafts.
    SpeculationCosts costs(int rows) const;

private:
    // Weighted sums for least squares of seconds = a + b * rows.
    double w_ = 0, sx_ = 0, sy_ = 0, sxx_ = 0, sxy_ = 0;
    double draft_seconds_ = 0, draft_steps_ = 0;
    int64_t draft_runs_ = 0;
};

// Acceptance of draft tokens for one sequence, by the drafter's own probability q.
class AcceptanceModel {
public:
    AcceptanceModel();
    // Chance that a draft token is accepted, given that the ones before it were; q < 0
    // when the drafter does not know its probability.
    double chance(float q) const;
    void record(float q, bool accepted);

private:
    static constexpr int kBuckets = 5;  // q in [0,.2) [.2,.4) [.4,.6) [.6,.8) [.8,1]; and "all"
    static int bucket(float q);
    std::array<double, kBuckets + 1> accepted_{}, tried_{};
};

// The per-sequence decision.
class DraftPolicy {
public:
    // Most draft tokens to propose this step (0: none), within `room`.
    int max_tokens(const SpeculationCosts& costs, int room);
    // The drafter stops once the chance that every token of its draft so far is accepted
    // falls below this: a token is worth its cost only while it adds tokens at least at
    // the rate the whole step achieves (token cost x best rate, from max_tokens()).
    // A probe drafts its one token whatever its chance.
    double min_chance() const { return probing_ ? 0.0 : min_chance_; }
    // After verification: `accepted` of the draft's first tokens were kept. q[i] is the
    // drafter's probability of token i, or nullptr.
    void record(int drafted, int accepted, const float* q);

    // Tree drafts: whether to verify the drafter's second choice at draft position j as
    // well (a leaf: one more row, no drafter step). It adds a token when the chain gets to
    // j, is rejected there and the model picks the second choice instead; q are the
    // drafter's probabilities of the chain's tokens (nullptr: unknown). Worth it when that
    // chance is at least the leaf's row cost times the step's rate, as for a chain token.
    bool leaf_pays(int j, const float* q, const SpeculationCosts& costs) const;
    // A leaf whose position was reached and rejected: whether the model took it.
    void record_leaf(bool taken);

    const AcceptanceModel& acceptance() const { return acceptance_; }

private:
    AcceptanceModel acceptance_;
    double best_rate_ = 1.0, min_chance_ = 0.0;
    int steps_without_draft_ = 0;
    int probe_every_ = 8;  // doubles (to 64) after each probe that is rejected
    double leaf_taken_ = 1.0, leaf_tried_ = 2.0;  // second choices taken, of those tested
    bool probing_ = false;
};

}  // namespace pensieve
