#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include "util/error.h"

using namespace pensieve;

namespace {

// Plain sampling: no filters, temperature 1, fixed seed.
SamplingParams plain_params(uint64_t seed = 1234) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

SamplingParams greedy_params() {
    SamplingParams p = plain_params();
    p.temperature = 0.0f;
    return p;
}

std::vector<double> softmax(const std::vector<float>& logits, double temperature = 1.0) {
    double max = logits[0];
    for (float l : logits) max = std::max(max, double(l));
    std::vector<double> p(logits.size());
    double sum = 0;
    for (size_t i = 0; i < logits.size(); ++i) sum += p[i] = std::exp((logits[i] - max) / temperature);
    for (auto& x : p) x /= sum;
    return p;
}

// Tokens drawn n times from the same logits (no history changes).
std::map<int32_t, int> draw_counts(Sampler& s, const std::vector<float>& logits, int n) {
    std::map<int32_t, int> counts;
    for (int i = 0; i < n; ++i) counts[s.sample(logits.data())]++;
    return counts;
}

std::set<int32_t> drawn_set(Sampler& s, const std::vector<float>& logits, int n) {
    std::set<int32_t> seen;
    for (int i = 0; i < n; ++i) seen.insert(s.sample(logits.data()));
    return seen;
}

// A larger pseudo-random vocabulary, reproducible without <random> distributions.
std::vector<float> random_logits(int n, uint64_t seed) {
    std::vector<float> logits(n);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (auto& l : logits) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        l = float(double(x >> 11) * 0x1.0p-53 * 20.0 - 10.0);
    }
    return logits;
}

}  // namespace

TEST(Sampler, GreedyPicksArgmax) {
    Sampler s(greedy_params(), 6);
    std::vector<float> logits = {0.1f, 2.0f, -1.0f, 5.5f, 5.4f, 0.0f};
    EXPECT_EQ(s.sample(logits.data()), 3);
    logits[0] = 9.0f;
    EXPECT_EQ(s.sample(logits.data()), 0);
    ASSERT_EQ(s.last_candidates().size(), 1u);
    EXPECT_EQ(s.last_candidates()[0].id, 0);
    EXPECT_FLOAT_EQ(s.last_candidates()[0].prob, 1.0f);
}

TEST(Sampler, GreedyTiesGoToLowestId) {
    Sampler s(greedy_params(), 5);
    std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, 3.0f};
    EXPECT_EQ(s.sample(logits.data()), 1);
}

TEST(Sampler, NegativeTemperatureIsGreedy) {
    SamplingParams p = plain_params();
    p.temperature = -1.0f;
    Sampler s(p, 4);
    std::vector<float> logits = {0.0f, 0.5f, 0.4f, 0.45f};
    for (int i = 0; i < 100; ++i) EXPECT_EQ(s.sample(logits.data()), 1);
}

TEST(Sampler, GreedyIgnoresNaN) {
    Sampler s(greedy_params(), 4);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> logits = {nan, 1.0f, nan, 0.5f};
    EXPECT_EQ(s.sample(logits.data()), 1);
}

TEST(Sampler, TemperatureToZeroApproachesGreedy) {
    SamplingParams p = plain_params();
    p.temperature = 1e-4f;
    Sampler s(p, 5);
    std::vector<float> logits = {1.0f, 1.49f, 1.5f, 0.0f, 1.3f};
    for (int i = 0; i < 2000; ++i) ASSERT_EQ(s.sample(logits.data()), 2);
}

TEST(Sampler, LowTemperatureSharpensHighTemperatureFlattens) {
    std::vector<float> logits = {0.0f, 1.0f};
    SamplingParams cold = plain_params();
    cold.temperature = 0.5f;
    SamplingParams hot = plain_params();
    hot.temperature = 2.0f;
    Sampler sc(cold, 2), sh(hot, 2);
    const int n = 20000;
    const double cold_p1 = draw_counts(sc, logits, n)[1] / double(n);
    const double hot_p1 = draw_counts(sh, logits, n)[1] / double(n);
    EXPECT_NEAR(cold_p1, softmax(logits, 0.5)[1], 0.02);
    EXPECT_NEAR(hot_p1, softmax(logits, 2.0)[1], 0.02);
}

TEST(Sampler, TopKOneEqualsGreedy) {
    const auto logits = random_logits(5000, 7);
    SamplingParams p = plain_params();
    p.top_k = 1;
    p.temperature = 1.5f;
    Sampler topk(p, 5000), greedy(greedy_params(), 5000);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(topk.sample(logits.data()), greedy.sample(logits.data()));
}

TEST(Sampler, TopKKeepsOnlyTheKBest) {
    const int n = 3000;
    const auto logits = random_logits(n, 11);
    SamplingParams p = plain_params();
    p.top_k = 5;
    p.temperature = 5.0f;  // flat: every one of the 5 gets drawn
    Sampler s(p, n);

    std::vector<int32_t> order(n);
    for (int i = 0; i < n; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    const std::set<int32_t> best5(order.begin(), order.begin() + 5);

    EXPECT_EQ(drawn_set(s, logits, 2000), best5);
    ASSERT_EQ(s.last_candidates().size(), 5u);
    for (size_t i = 0; i < 5; ++i) EXPECT_EQ(s.last_candidates()[i].id, order[i]);  // sorted
}

TEST(Sampler, TopKBreaksTiesByLowestId) {
    SamplingParams p = plain_params();
    p.top_k = 2;
    Sampler s(p, 5);
    std::vector<float> logits = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    EXPECT_EQ(drawn_set(s, logits, 500), (std::set<int32_t>{0, 1}));
}

TEST(Sampler, TopPKeepsSmallestSetReachingP) {
    // Probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 (logits are their logs).
    std::vector<float> logits = {std::log(0.0625f), std::log(0.25f), std::log(0.5f), std::log(0.125f),
                                 std::log(0.0625f)};
    SamplingParams p = plain_params();

    p.top_p = 0.7f;  // 0.5 < 0.7 <= 0.75 -> {2, 1}
    Sampler a(p, 5);
    EXPECT_EQ(drawn_set(a, logits, 2000), (std::set<int32_t>{1, 2}));
    ASSERT_EQ(a.last_candidates().size(), 2u);
    EXPECT_NEAR(a.last_candidates()[0].prob, 2.0 / 3.0, 1e-5);  // renormalized

    p.top_p = 0.8f;  // 0.75 < 0.8 <= 0.875 -> {2, 1, 3}
    Sampler b(p, 5);
    EXPECT_EQ(drawn_set(b, logits, 2000), (std::set<int32_t>{1, 2, 3}));

    p.top_p = 0.4f;  // the top token alone already reaches it
    Sampler c(p, 5);
    EXPECT_EQ(drawn_set(c, logits, 500), (std::set<int32_t>{2}));

    p.top_p = 0.0f;  // allowed: only the most likely token
    Sampler d(p, 5);
    EXPECT_EQ(drawn_set(d, logits, 500), (std::set<int32_t>{2}));
}

TEST(Sampler, TopPOnLargeVocabMatchesReference) {
    // No top-k, so top-p has to find the nucleus in an unsorted vocabulary (through its
    // growing partial sorts); compare with a straightforward full sort.
    const int n = 50000;
    const auto logits = random_logits(n, 3);
    SamplingParams p = plain_params();
    p.top_p = 0.5f;
    Sampler s(p, n);
    s.sample(logits.data());

    std::vector<int32_t> order(n);
    for (int i = 0; i < n; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    const auto probs = softmax(logits);
    size_t keep = 0;
    double mass = 0;
    while (mass < 0.5) mass += probs[order[keep++]];

    ASSERT_EQ(s.last_candidates().size(), keep);
    for (size_t i = 0; i < keep; ++i) EXPECT_EQ(s.last_candidates()[i].id, order[i]);
    EXPECT_GT(keep, 64u);  // exercised more than one partial-sort chunk
}

TEST(Sampler, TopKThenTopP) {
    // top-p renormalizes over the top-k survivors.
    std::vector<float> logits = {std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)};
    SamplingParams p = plain_params();
    p.top_k = 2;      // {0: 4/7, 1: 3/7}
    p.top_p = 0.55f;  // 4/7 = 0.571 reaches it alone
    Sampler s(p, 4);
    EXPECT_EQ(drawn_set(s, logits, 500), (std::set<int32_t>{0}));
}

TEST(Sampler, MinPDropsBelowFractionOfMax) {
    std::vector<float> logits = {std::log(0.5f), std::log(0.2f), std::log(0.04f), std::log(0.26f)};
    SamplingParams p = plain_params();
    p.min_p = 0.1f;  // threshold 0.05: drops token 2 (0.04)
    Sampler s(p, 4);
    EXPECT_EQ(drawn_set(s, logits, 3000), (std::set<int32_t>{0, 1, 3}));

    p.min_p = 0.45f;  // threshold 0.225: keeps 0 and 3
    Sampler t(p, 4);
    EXPECT_EQ(drawn_set(t, logits, 3000), (std::set<int32_t>{0, 3}));

    p.min_p = 1.0f;  // only the max
    Sampler u(p, 4);
    EXPECT_EQ(drawn_set(u, logits, 500), (std::set<int32_t>{0}));
}

TEST(Sampler, RepeatPenaltyDividesPositiveAndMultipliesNegative) {
    SamplingParams p = greedy_params();
    p.repeat_penalty = 2.0f;
    Sampler s(p, 4);
    // Token 0 (3.0) beats token 1 (2.0) until penalized: 3.0 / 2 = 1.5 < 2.0.
    std::vector<float> logits = {3.0f, 2.0f, -1.0f, -1.5f};
    EXPECT_EQ(s.sample(logits.data()), 0);
    s.accept(0);
    EXPECT_EQ(s.sample(logits.data()), 1);
    EXPECT_FLOAT_EQ(s.last_candidates()[0].logit, 2.0f);

    // Negative logits get more negative: -1.0 * 2 = -2.0 < -1.5.
    std::vector<float> negative = {-10.0f, -10.0f, -1.0f, -1.5f};
    EXPECT_EQ(s.sample(negative.data()), 2);
    s.accept(2);
    EXPECT_EQ(s.sample(negative.data()), 3);

    // Repeat penalty does not grow with the count.
    s.accept(2);
    s.accept(2);
    std::vector<float> third = {-10.0f, -10.0f, -1.0f, -2.1f};
    EXPECT_EQ(s.sample(third.data()), 2);  // -2.0 > -2.1
}

TEST(Sampler, FrequencyPenaltyScalesWithCount) {
    SamplingParams p = plain_params();
    p.frequency_penalty = 0.5f;
    p.temperature = 1.0f;
    Sampler s(p, 3);
    std::vector<float> logits = {1.0f, 1.0f, 1.0f};
    s.accept(1);
    s.accept(1);
    s.accept(2);
    s.sample(logits.data());
    std::map<int32_t, float> adjusted;
    for (const auto& c : s.last_candidates()) adjusted[c.id] = c.logit;
    EXPECT_FLOAT_EQ(adjusted[0], 1.0f);
    EXPECT_FLOAT_EQ(adjusted[1], 0.0f);  // 1 - 2 * 0.5
    EXPECT_FLOAT_EQ(adjusted[2], 0.5f);  // 1 - 1 * 0.5
}

TEST(Sampler, PresencePenaltyIsPaidOnce) {
    SamplingParams p = plain_params();
    p.presence_penalty = 0.7f;
    Sampler s(p, 3);
    std::vector<float> logits = {1.0f, 1.0f, 1.0f};
    for (int i = 0; i < 5; ++i) s.accept(1);
    s.accept(2);
    s.sample(logits.data());
    std::map<int32_t, float> adjusted;
    for (const auto& c : s.last_candidates()) adjusted[c.id] = c.logit;
    EXPECT_FLOAT_EQ(adjusted[0], 1.0f);
    EXPECT_FLOAT_EQ(adjusted[1], 0.3f);
    EXPECT_FLOAT_EQ(adjusted[2], 0.3f);
}

TEST(Sampler, PenaltiesCombine) {
    SamplingParams p = plain_params();
    p.repeat_penalty = 2.0f;
    p.frequency_penalty = 0.25f;
    p.presence_penalty = 0.5f;
    Sampler s(p, 2);
    s.accept(0);
    s.accept(0);
    std::vector<float> logits = {4.0f, 1.0f};
    s.sample(logits.data());
    std::map<int32_t, float> adjusted;
    for (const auto& c : s.last_candidates()) adjusted[c.id] = c.logit;
    EXPECT_FLOAT_EQ(adjusted[0], 4.0f / 2.0f - 2 * 0.25f - 0.5f);
    EXPECT_FLOAT_EQ(adjusted[1], 1.0f);
}

TEST(Sampler, PenaltyWindowForgetsOldTokens) {
    SamplingParams p = greedy_params();
    p.repeat_penalty = 10.0f;
    p.repeat_last_n = 3;
    Sampler s(p, 5);
    std::vector<float> logits = {5.0f, 1.0f, 1.0f, 1.0f, 0.0f};
    s.accept(0);
    EXPECT_EQ(s.sample(logits.data()), 1);  // 0 is penalized to 0.5
    s.accept(4);
    s.accept(4);
    EXPECT_EQ(s.sample(logits.data()), 1);  // window [0, 4, 4]: still penalized
    s.accept(4);
    EXPECT_EQ(s.sample(logits.data()), 0);  // window [4, 4, 4]: 0 left it
}

TEST(Sampler, PenaltyWindowZeroIsOffAndMinusOneIsWholeHistory) {
    std::vector<float> logits = {5.0f, 1.0f, 0.0f};

    SamplingParams off = greedy_params();
    off.repeat_penalty = 10.0f;
    off.repeat_last_n = 0;
    Sampler a(off, 3);
    a.accept(0);
    EXPECT_EQ(a.sample(logits.data()), 0);

    SamplingParams whole = greedy_params();
    whole.repeat_penalty = 10.0f;
    whole.repeat_last_n = -1;
    Sampler b(whole, 3);
    b.accept(0);
    for (int i = 0; i < 1000; ++i) b.accept(2);
    EXPECT_EQ(b.sample(logits.data()), 1);
}

TEST(Sampler, ResetClearsHistory) {
    SamplingParams p = greedy_params();
    p.repeat_penalty = 10.0f;
    Sampler s(p, 3);
    std::vector<float> logits = {5.0f, 1.0f, 0.0f};
    s.accept(0);
    EXPECT_EQ(s.sample(logits.data()), 1);
    s.reset();
    EXPECT_TRUE(s.history().empty());
    EXPECT_EQ(s.sample(logits.data()), 0);
}

TEST(Sampler, AcceptRejectsOutOfRangeToken) {
    Sampler s(plain_params(), 10);
    EXPECT_THROW(s.accept(10), Error);
    EXPECT_THROW(s.accept(-1), Error);
    EXPECT_NO_THROW(s.accept(9));
}

TEST(Sampler, SameSeedSameSequence) {
    const int n = 1000;
    const auto logits = random_logits(n, 5);
    SamplingParams p;  // the defaults: top-k, top-p, min-p, temperature all on
    p.seed = 42;
    p.temperature = 1.5f;
    p.repeat_penalty = 1.1f;
    Sampler a(p, n), b(p, n);
    std::vector<int32_t> first;
    for (int i = 0; i < 300; ++i) {
        const int32_t ta = a.sample(logits.data());
        const int32_t tb = b.sample(logits.data());
        ASSERT_EQ(ta, tb);
        a.accept(ta);
        b.accept(tb);
        first.push_back(ta);
    }
    // reset() with a fixed seed replays the same sequence.
    a.reset();
    for (int i = 0; i < 300; ++i) {
        const int32_t t = a.sample(logits.data());
        ASSERT_EQ(t, first[i]);
        a.accept(t);
    }
}

TEST(Sampler, FixedSeedIsPortable) {
    // The RNG path is specified bit for bit (mt19937_64 raw output, 53-bit doubles), so
    // these tokens must be the same with every compiler and standard library.
    std::vector<float> logits(10, 0.0f);  // uniform over 10 tokens
    Sampler s(plain_params(/*seed=*/42), 10);
    std::vector<int32_t> got;
    for (int i = 0; i < 8; ++i) got.push_back(s.sample(logits.data()));

    std::mt19937_64 reference(42);
    std::vector<int32_t> expected;
    for (int i = 0; i < 8; ++i) expected.push_back(int32_t(double(reference() >> 11) * 0x1.0p-53 * 10.0));
    EXPECT_EQ(got, expected);
}

TEST(Sampler, DifferentSeedsDiffer) {
    std::vector<float> logits(50, 0.0f);
    Sampler a(plain_params(1), 50), b(plain_params(2), 50);
    int differences = 0;
    for (int i = 0; i < 200; ++i) differences += a.sample(logits.data()) != b.sample(logits.data());
    EXPECT_GT(differences, 150);  // independent uniform draws agree ~2% of the time
}

TEST(Sampler, RandomSeedIsDrawnAndReported) {
    SamplingParams p = plain_params(SamplingParams::kRandomSeed);
    Sampler a(p, 50), b(p, 50);
    EXPECT_NE(a.seed(), b.seed());  // 2^-64 chance of a false failure
}

TEST(Sampler, EmpiricalDistributionMatchesSoftmax) {
    const std::vector<float> logits = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f, 2.5f};
    Sampler s(plain_params(99), int32_t(logits.size()));
    const int n = 20000;
    const auto counts = draw_counts(s, logits, n);
    const auto expected = softmax(logits);
    for (size_t i = 0; i < logits.size(); ++i) {
        const double observed = counts.count(int32_t(i)) ? counts.at(int32_t(i)) / double(n) : 0.0;
        // Standard error is at most sqrt(0.25 / 20000) = 0.0035; allow ~4 of them.
        EXPECT_NEAR(observed, expected[i], 0.015) << "token " << i;
    }
    // last_candidates() reports the same distribution.
    for (const auto& c : s.last_candidates()) EXPECT_NEAR(c.prob, expected[c.id], 1e-6);
}

TEST(Sampler, NeverDrawsImpossibleTokens) {
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> logits = {-inf, 0.0f, nan, 0.0f, -inf};
    Sampler s(plain_params(), 5);
    EXPECT_EQ(drawn_set(s, logits, 1000), (std::set<int32_t>{1, 3}));

    std::vector<float> all_impossible = {-inf, -inf, nan};
    Sampler t(plain_params(), 3);
    EXPECT_EQ(t.sample(all_impossible.data()), 0);  // defined, no crash

    std::vector<float> with_inf = {0.0f, inf, 1.0f};
    EXPECT_EQ(drawn_set(t, with_inf, 200), (std::set<int32_t>{1}));
}

TEST(Sampler, DoesNotModifyLogits) {
    auto logits = random_logits(2000, 9);
    const auto copy = logits;
    SamplingParams p;
    p.seed = 1;
    p.repeat_penalty = 1.3f;
    Sampler s(p, 2000);
    s.accept(5);
    for (int i = 0; i < 10; ++i) s.sample(logits.data());
    EXPECT_EQ(logits, copy);
}

TEST(SamplingParams, DefaultsAreValid) { EXPECT_NO_THROW(SamplingParams{}.validate()); }

TEST(SamplingParams, ValidateRejectsBadValues) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    auto rejects = [](auto mutate) {
        SamplingParams p;
        mutate(p);
        EXPECT_THROW(p.validate(), Error);
    };
    rejects([&](SamplingParams& p) { p.temperature = nan; });
    rejects([&](SamplingParams& p) { p.temperature = inf; });
    rejects([&](SamplingParams& p) { p.top_p = nan; });
    rejects([&](SamplingParams& p) { p.top_p = -0.1f; });
    rejects([&](SamplingParams& p) { p.top_p = 1.5f; });
    rejects([&](SamplingParams& p) { p.min_p = nan; });
    rejects([&](SamplingParams& p) { p.min_p = -0.01f; });
    rejects([&](SamplingParams& p) { p.min_p = 1.01f; });
    rejects([&](SamplingParams& p) { p.repeat_penalty = 0.0f; });
    rejects([&](SamplingParams& p) { p.repeat_penalty = -1.0f; });
    rejects([&](SamplingParams& p) { p.repeat_penalty = nan; });
    rejects([&](SamplingParams& p) { p.frequency_penalty = nan; });
    rejects([&](SamplingParams& p) { p.presence_penalty = inf; });
    rejects([&](SamplingParams& p) { p.repeat_last_n = -2; });

    // Constructing a Sampler validates too.
    SamplingParams bad;
    bad.top_p = nan;
    EXPECT_THROW(Sampler(bad, 10), Error);
    EXPECT_THROW(Sampler(SamplingParams{}, 0), Error);
}

TEST(SamplingParams, ValidateAcceptsEdgeValues) {
    auto accepts = [](auto mutate) {
        SamplingParams p;
        mutate(p);
        EXPECT_NO_THROW(p.validate());
    };
    accepts([](SamplingParams& p) { p.temperature = -1.0f; });  // greedy
    accepts([](SamplingParams& p) { p.temperature = 0.0f; });
    accepts([](SamplingParams& p) { p.top_p = 0.0f; });
    accepts([](SamplingParams& p) { p.top_p = 1.0f; });
    accepts([](SamplingParams& p) { p.min_p = 0.0f; });
    accepts([](SamplingParams& p) { p.min_p = 1.0f; });
    accepts([](SamplingParams& p) { p.top_k = -5; });
    accepts([](SamplingParams& p) { p.repeat_last_n = -1; });
    accepts([](SamplingParams& p) { p.frequency_penalty = -2.0f; });
    accepts([](SamplingParams& p) { p.seed = 0; });
}

// ---------------------------------------------------------------------------------------
// Speculative sampling: keep a draft x ~ q with min(1, p/q), else draw from the residual.

namespace {

// Pearson's chi-square of observed counts against expected probabilities (over the
// tokens with expected mass; a count where p == 0 makes it infinite).
double chi_square(const std::map<int32_t, int>& counts, const std::vector<double>& p, int n) {
    double chi2 = 0.0;
    for (size_t i = 0; i < p.size(); ++i) {
        const double observed = counts.count(int32_t(i)) ? counts.at(int32_t(i)) : 0.0;
        if (p[i] == 0.0) {
            if (observed > 0) return std::numeric_limits<double>::infinity();
            continue;
        }
        chi2 += (observed - n * p[i]) * (observed - n * p[i]) / (n * p[i]);
    }
    return chi2;
}

struct SpeculativeRun {
    std::map<int32_t, int> counts;
    int kept = 0;
};

// n draws: x from q (a second sampler on the draft's logits, as a drafter does), then the
// target's sample_speculative with that x and q.
SpeculativeRun run_speculative(const std::vector<float>& target, const std::vector<float>& draft,
                               const SamplingParams& target_params, const SamplingParams& draft_params, int n) {
    const int32_t V = int32_t(target.size());
    Sampler p(target_params, V), q(draft_params, V);
    SpeculativeRun run;
    for (int i = 0; i < n; ++i) {
        const int32_t x = q.sample(draft.data());
        const auto c = q.last_candidates();
        const std::vector<TokenProb> dist(c.begin(), c.end());
        const int32_t token = p.sample_speculative(target.data(), x, dist);
        run.counts[token]++;
        run.kept += token == x;
    }
    return run;
}

// The output is distributed as p, whatever q, and the draft is kept with probability
// sum_i min(p_i, q_i) (the overlap of the two distributions). 40000 draws over 8 tokens:
// chi-square with 7 degrees of freedom stays below 24.3 with probability 0.999 (seeds
// fixed, so the test is deterministic; a wrong residual gives chi2 in the hundreds).
TEST(SpeculativeSampling, OutputIsDistributedAsTheTarget) {
    const std::vector<float> target = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f, 2.5f, 0.0f, 1.5f};
    const std::vector<float> draft = {2.0f, 1.0f, 0.5f, 3.5f, 1.0f, 0.5f, 0.0f, 1.5f};
    const int n = 40000;
    const SpeculativeRun run = run_speculative(target, draft, plain_params(7), plain_params(8), n);
    const auto p = softmax(target), q = softmax(draft);
    EXPECT_LT(chi_square(run.counts, p, n), 24.3);
    double overlap = 0.0;
    for (size_t i = 0; i < p.size(); ++i) overlap += std::min(p[i], q[i]);
    EXPECT_NEAR(run.kept / double(n), overlap, 0.01);  // ~4 standard errors
    std::printf("[ speculative ] kept %.3f (overlap %.3f), chi2 %.1f\n", run.kept / double(n), overlap,
                chi_square(run.counts, p, n));
    // Sample-and-compare (the rule for guesses) would keep sum_i p_i q_i of them: less.
    double match = 0.0;
    for (size_t i = 0; i < p.size(); ++i) match += p[i] * q[i];
    EXPECT_GT(run.kept / double(n), match + 0.1);
}

// Filters on either side: the target's top-k removes tokens the draft proposes (never
// kept), the draft's top-k leaves target tokens only the residual can reach.
TEST(SpeculativeSampling, FiltersOnEitherSideKeepTheTargetDistribution) {
    const std::vector<float> target = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f, 2.5f, 0.0f, 1.5f};
    const std::vector<float> draft = {3.0f, 1.0f, 0.5f, 2.0f, 2.5f, 0.5f, 0.0f, 1.5f};
    SamplingParams tp = plain_params(11), dp = plain_params(12);
    tp.top_k = 4;
    tp.temperature = 0.7f;
    dp.top_k = 3;
    const int n = 40000;
    const SpeculativeRun run = run_speculative(target, draft, tp, dp, n);
    // p: the 4 best target logits {3, 5, 1, 7} at temperature 0.7, nothing else.
    std::vector<float> kept(target.size(), -std::numeric_limits<float>::infinity());
    for (int id : {3, 5, 1, 7}) kept[size_t(id)] = target[size_t(id)];
    const auto p = softmax(kept, 0.7);
    EXPECT_LT(chi_square(run.counts, p, n), 16.3);  // 3 degrees of freedom, p = 0.001
}

TEST(SpeculativeSampling, IdenticalDistributionsKeepEveryDraft) {
    const std::vector<float> logits = random_logits(64, 5);
    const SpeculativeRun run = run_speculative(logits, logits, plain_params(1), plain_params(2), 5000);
    EXPECT_EQ(run.kept, 5000);
}

TEST(SpeculativeSampling, GreedyTargetTakesTheArgmax) {
    const std::vector<float> target = {1.0f, 2.0f, 0.5f, 3.0f};
    const std::vector<float> draft = {3.0f, 2.0f, 0.5f, 1.0f};
    const SpeculativeRun run = run_speculative(target, draft, greedy_params(), plain_params(3), 2000);
    ASSERT_EQ(run.counts.size(), 1u);
    EXPECT_EQ(run.counts.begin()->first, 3);
}

}  // namespace
