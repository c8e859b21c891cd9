// The RWKV steps of model/rwkv.h on inputs small enough to check by hand: the WKV6
// recurrence (bonus for the current token, decay of the state), the WKV7 recurrence (the
// generalized delta rule), the per-head group and L2 norms, and the token shift across
// interleaved sequences. The reference file (two heads of 64)
// checks the whole model; these pin each step. Under 1 ms.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "model/rwkv.h"
#include "util/thread_pool.h"

namespace pensieve {
namespace {

// One head of 2: step 1 from a zero state, step 2 from what step 1 left (worked by hand:
// kv[i][j] = k[i] v[j];  y[j] = Σ_i r[i] (u[i] kv[i][j] + S[i][j]);  S = w[i] S + kv).
TEST(Rwkv, Wkv6TwoStepsByHand) {
    const std::vector<float> u = {0.1f, 0.2f}, w = {0.5f, 0.25f};
    std::vector<float> S(4, 0.0f), y(2);
    const std::vector<float> r1 = {1.0f, 2.0f}, k1 = {1.0f, 0.5f}, v1 = {2.0f, -1.0f};
    wkv6_step(S.data(), r1.data(), k1.data(), v1.data(), w.data(), u.data(), y.data(), 1, 2);
    // y = 1 * 0.1 * (2, -1) + 2 * 0.2 * (1, -0.5): only the bonus sees the current token.
    EXPECT_FLOAT_EQ(y[0], 0.6f);
    EXPECT_FLOAT_EQ(y[1], -0.3f);
    EXPECT_EQ(S, (std::vector<float>{2.0f, -1.0f, 1.0f, -0.5f}));  // S = kv (the zero state decayed)

    const std::vector<float> r2 = {0.5f, -1.0f}, k2 = {2.0f, 1.0f}, v2 = {1.0f, 3.0f};
    wkv6_step(S.data(), r2.data(), k2.data(), v2.data(), w.data(), u.data(), y.data(), 1, 2);
    // i = 0: 0.5 * (0.1 * (2, 6) + (2, -1)) = (1.1, -0.2);  i = 1: -1 * (0.2 * (1, 3) + (1, -0.5)) = (-1.2, -0.1)
    EXPECT_NEAR(y[0], -0.1f, 1e-6);
    EXPECT_NEAR(y[1], -0.3f, 1e-6);
    // S = w[i] S + kv: (0.5 (2, -1) + (2, 6), 0.25 (1, -0.5) + (1, 3))
    EXPECT_FLOAT_EQ(S[0], 3.0f);
    EXPECT_FLOAT_EQ(S[1], 5.5f);
    EXPECT_FLOAT_EQ(S[2], 1.25f);
    EXPECT_FLOAT_EQ(S[3], 2.875f);
}

// Two heads of 2: head 1 reads only its own channels and its own state (head 0's inputs
// copied into head 1 give head 0's result; changing head 0 leaves head 1 alone).
TEST(Rwkv, Wkv6HeadsAreIndependent) {
    std::vector<float> r = {1.0f, 2.0f, 1.0f, 2.0f}, k = {1.0f, 0.5f, 1.0f, 0.5f}, v = {2.0f, -1.0f, 2.0f, -1.0f};
    const std::vector<float> w = {0.5f, 0.25f, 0.5f, 0.25f}, u = {0.1f, 0.2f, 0.1f, 0.2f};
    std::vector<float> S(8, 0.0f), y(4);
    wkv6_step(S.data(), r.data(), k.data(), v.data(), w.data(), u.data(), y.data(), 2, 2);
    EXPECT_FLOAT_EQ(y[2], 0.6f);
    EXPECT_FLOAT_EQ(y[3], -0.3f);
    EXPECT_EQ(std::vector<float>(S.begin() + 4, S.end()), (std::vector<float>{2.0f, -1.0f, 1.0f, -0.5f}));
    r[0] = 5.0f;
    k[1] = -3.0f;
    wkv6_step(S.data(), r.data(), k.data(), v.data(), w.data(), u.data(), y.data(), 2, 2);
    // head 1, second step with the same inputs: i = 0: 1 * (0.1 (2, -1) + (2, -1)) = (2.2, -1.1);
    // i = 1: 2 * (0.2 (1, -0.5) + (1, -0.5)) = (2.4, -1.2)
    EXPECT_NEAR(y[2], 4.6f, 1e-6);
    EXPECT_NEAR(y[3], -2.3f, 1e-6);
}

// One head of 2, from a non-zero state S[i][j] (i value, j key) = ((1, 2), (3, 4)):
//   sa = S a = (1, 3) for a = (1, 0)
//   S' = S diag(w) + v k^T + sa b^T
//      = ((0.5, 0.5), (1.5, 1)) + ((1, 2), (-1, -2)) + ((0.5, 1), (1.5, 3)) = ((2, 3.5), (2, 2))
//   y  = S' r = (5.5, 4) for r = (1, 1): the output reads the state after the step.
TEST(Rwkv, Wkv7StepByHand) {
    std::vector<float> S = {1.0f, 2.0f, 3.0f, 4.0f}, y(2);
    const std::vector<float> r = {1.0f, 1.0f}, w = {0.5f, 0.25f}, k = {1.0f, 2.0f}, v = {1.0f, -1.0f};
    const std::vector<float> a = {1.0f, 0.0f}, b = {0.5f, 1.0f};
    wkv7_step(S.data(), r.data(), w.data(), k.data(), v.data(), a.data(), b.data(), y.data(), 1, 2);
    EXPECT_EQ(S, (std::vector<float>{2.0f, 3.5f, 2.0f, 2.0f}));
    EXPECT_FLOAT_EQ(y[0], 5.5f);
    EXPECT_FLOAT_EQ(y[1], 4.0f);
}

// The delta rule as RWKV-7 uses it (a = -kk, b = kk ⊙ iclr): with no decay (w = 1), an
// in-context learning rate of 1 and k = kk a unit vector, the step replaces what the state
// held for kk by v, so reading the state back at kk (r = kk) gives v whatever S was; and
// heads stay apart (head 1 gets the same inputs from a zero state and gives the same y).
TEST(Rwkv, Wkv7DeltaRuleOverwritesTheKeysValue) {
    const std::vector<float> kk = {0.6f, 0.8f, 0.6f, 0.8f}, neg = {-0.6f, -0.8f, -0.6f, -0.8f};
    const std::vector<float> w = {1.0f, 1.0f, 1.0f, 1.0f}, v = {5.0f, -7.0f, 5.0f, -7.0f};
    std::vector<float> S = {1.0f, 2.0f, 3.0f, 4.0f, 0.0f, 0.0f, 0.0f, 0.0f}, y(4);
    wkv7_step(S.data(), kk.data(), w.data(), kk.data(), v.data(), neg.data(), kk.data(), y.data(), 2, 2);
    EXPECT_NEAR(y[0], 5.0f, 1e-5);
    EXPECT_NEAR(y[1], -7.0f, 1e-5);
    EXPECT_NEAR(y[2], 5.0f, 1e-5);
    EXPECT_NEAR(y[3], -7.0f, 1e-5);
    // Directions orthogonal to kk keep what they held: S (-0.8, 0.6) = (0.4, 0) before and after.
    EXPECT_NEAR(-0.8f * S[0] + 0.6f * S[1], 0.4f, 1e-5);
    EXPECT_NEAR(-0.8f * S[2] + 0.6f * S[3], 0.0f, 1e-5);
}

// Each head divided by its own L2 norm: (3, 4) / 5 and (0, 2) / 2; a zero head stays zero
// (the norm is floored at eps instead of dividing by 0).
TEST(Rwkv, HeadL2NormNormalisesEachHeadAlone) {
    std::vector<float> x = {3.0f, 4.0f, 0.0f, 2.0f, 0.0f, 0.0f};
    head_l2_norm(x.data(), 6, 2, 1e-12f);
    EXPECT_FLOAT_EQ(x[0], 0.6f);
    EXPECT_FLOAT_EQ(x[1], 0.8f);
    EXPECT_FLOAT_EQ(x[2], 0.0f);
    EXPECT_FLOAT_EQ(x[3], 1.0f);
    EXPECT_EQ(x[4], 0.0f);
    EXPECT_EQ(x[5], 0.0f);
}

// dim 4 in heads of 2: (1, 3) has mean 2 and variance 1, (10, 20) mean 15 and variance 25;
// each normalises to (-1, 1) alone, then the per-channel weight and bias apply.
TEST(Rwkv, HeadGroupNormNormalisesEachHeadAlone) {
    std::vector<float> y = {1.0f, 3.0f, 10.0f, 20.0f};
    const std::vector<float> w = {1.0f, 2.0f, 1.0f, 1.0f}, b = {0.0f, 0.0f, 0.5f, 0.0f};
    head_group_norm(y.data(), w.data(), b.data(), 4, 2, 1e-9f);
    EXPECT_NEAR(y[0], -1.0f, 1e-6);
    EXPECT_NEAR(y[1], 2.0f, 1e-6);
    EXPECT_NEAR(y[2], -0.5f, 1e-6);
    EXPECT_NEAR(y[3], 1.0f, 1e-6);
}

// A batch interleaving two sequences: each token's previous row is the latest earlier row
// of its own sequence, or the state kept in memory for its first token in the batch
// (zeros for a new sequence). The state itself is not changed.
TEST(Rwkv, TokenShiftReadsTheSameSequencesPreviousRow) {
    MemoryLayout layout;
    layout.layers.push_back(LayerMemory::recurrent(2));
    KvCache cache(layout, 64, 2);
    float* saved = cache.state(0, 1);
    saved[0] = 7.0f;
    saved[1] = 8.0f;
    Batch batch;  // seq 0 (new), seq 1, seq 0, seq 1
    batch.add(0, 0, 0, false);
    batch.add(0, 0, 1, false);
    batch.add(0, 1, 0, false);
    batch.add(0, 1, 1, false);
    ThreadPool pool(1);
    Scratch scratch;
    Pass p(batch, cache, pool, scratch);
    const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7.5f, 8.5f};
    std::vector<float> prev(8, -1.0f);
    token_shift(0, x.data(), prev.data(), 2, p);
    EXPECT_EQ(prev, (std::vector<float>{0, 0, 7, 8, 1, 2, 3, 4}));
    EXPECT_EQ(saved[0], 7.0f);
    EXPECT_EQ(saved[1], 8.0f);
}

}  // namespace
}  // namespace pensieve
