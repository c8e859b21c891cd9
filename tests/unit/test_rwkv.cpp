// The RWKV steps of model/rwkv.h on inputs small enough to check by hand: the WKV6
// recurrence (bonus for the current token, decay of the state), the per-head group norm,
// and the token shift across interleaved sequences. The reference file (two heads of 64)
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
