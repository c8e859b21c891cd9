// The Mamba-2 steps of model/ssm.h on cases the reference file (one group) does not reach:
// heads sharing B and C by group, and the gated RMS norm over several groups; the AVX2
// selective scan, exp and Mamba-2's chunked scan (kernels/ssm_scan.h) against their scalar
// references. Under 50 ms.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/ssm_scan.h"
#include "model/ssm.h"

namespace pensieve {
namespace {

std::vector<float> random_values(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

// 4 heads of 2 channels in 2 groups of d_state 3: heads 0-1 read group 0, heads 2-3 group 1.
constexpr int64_t kHeads = 4, kHeadDim = 2, kGroups = 2, kState = 3, kInner = kHeads * kHeadDim;

TEST(Ssm, Mamba2ScanTwoStepsFromZeroMatchTheRecurrence) {
    std::mt19937 rng(7);
    const auto x1 = random_values(kInner, rng), x2 = random_values(kInner, rng);
    const auto dt1 = random_values(kHeads, rng, 0.01f, 0.5f), dt2 = random_values(kHeads, rng, 0.01f, 0.5f);
    const auto A = random_values(kHeads, rng, -4.0f, -0.5f), D = random_values(kHeads, rng);
    const auto B1 = random_values(kGroups * kState, rng), B2 = random_values(kGroups * kState, rng);
    const auto C1 = random_values(kGroups * kState, rng), C2 = random_values(kGroups * kState, rng);
    std::vector<float> S(size_t(kInner * kState), 0.0f), y1(kInner), y2(kInner);
    ssd_scan_step(S.data(), x1.data(), dt1.data(), A.data(), B1.data(), C1.data(), D.data(), y1.data(), kHeads,
                  kHeadDim, kGroups, kState);
    ssd_scan_step(S.data(), x2.data(), dt2.data(), A.data(), B2.data(), C2.data(), D.data(), y2.data(), kHeads,
                  kHeadDim, kGroups, kState);
    for (int64_t h = 0; h < kHeads; ++h) {
        const int64_t g = h / (kHeads / kGroups);
        for (int64_t i = 0; i < kHeadDim; ++i) {
            const int64_t c = h * kHeadDim + i;
            double want1 = D[h] * x1[c], want2 = D[h] * x2[c];
            for (int64_t s = 0; s < kState; ++s) {
                const int64_t gs = g * kState + s;
                const double s1 = double(dt1[h]) * x1[c] * B1[gs];  // from a zero state
                const double s2 = std::exp(double(dt2[h]) * A[h]) * s1 + double(dt2[h]) * x2[c] * B2[gs];
                want1 += s1 * C1[gs];
                want2 += s2 * C2[gs];
                EXPECT_NEAR(S[c * kState + s], s2, 1e-5) << "head " << h << " channel " << i << " state " << s;
            }
            EXPECT_NEAR(y1[c], want1, 1e-5) << "head " << h << " channel " << i;
            EXPECT_NEAR(y2[c], want2, 1e-5) << "head " << h << " channel " << i;
        }
    }
}

TEST(Ssm, Mamba2HeadsReadOnlyTheirGroupsBAndC) {
    std::mt19937 rng(11);
    const auto x = random_values(kInner, rng), dt = random_values(kHeads, rng, 0.01f, 0.5f);
    const auto A = random_values(kHeads, rng, -4.0f, -0.5f), D = random_values(kHeads, rng);
    auto B = random_values(kGroups * kState, rng), C = random_values(kGroups * kState, rng);
    const auto S0 = random_values(size_t(kInner * kState), rng);
    auto run = [&] {
        std::vector<float> S = S0, y(kInner);
        ssd_scan_step(S.data(), x.data(), dt.data(), A.data(), B.data(), C.data(), D.data(), y.data(), kHeads,
                      kHeadDim, kGroups, kState);
        return y;
    };
    const auto before = run();
    for (int64_t s = 0; s < kState; ++s) {  // group 1 only
        B[kState + s] += 1.0f;
        C[kState + s] -= 1.0f;
    }
    const auto after = run();
    const int64_t group0 = kInner / kGroups;  // the channels of heads 0 and 1
    for (int64_t c = 0; c < kInner; ++c) {
        if (c < group0) EXPECT_EQ(after[c], before[c]) << "channel " << c << " of group 0 changed";
        else EXPECT_GT(std::fabs(after[c] - before[c]), 1e-4f) << "channel " << c << " of group 1 unchanged";
    }
}

TEST(Ssm, GatedGroupRmsNormNormalisesEachGroupAlone) {
    std::mt19937 rng(3);
    const int64_t n = 8, groups = 2, size = n / groups;
    const auto y0 = random_values(n, rng), z = random_values(n, rng, 0.5f, 2.0f);
    const auto w = random_values(n, rng, 0.5f, 1.5f);
    std::vector<float> y = y0;
    gated_group_rms_norm(y.data(), z.data(), w.data(), n, groups, 1e-6f);
    for (int64_t g = 0; g < groups; ++g) {
        double sum_sq = 0.0;
        for (int64_t i = g * size; i < (g + 1) * size; ++i) {
            const double gated = y0[i] * (z[i] / (1.0 + std::exp(-z[i])));
            sum_sq += gated * gated;
        }
        const double rms = std::sqrt(sum_sq / double(size) + 1e-6);
        for (int64_t i = g * size; i < (g + 1) * size; ++i) {
            const double gated = y0[i] * (z[i] / (1.0 + std::exp(-z[i])));
            EXPECT_NEAR(y[i], gated / rms * w[i], 1e-5) << "group " << g << " value " << i;
        }
    }
    // Scaling group 1's input leaves group 0 as it was (one norm per group, not per row).
    std::vector<float> y_scaled = y0;
    for (int64_t i = size; i < n; ++i) y_scaled[i] *= 10.0f;
    gated_group_rms_norm(y_scaled.data(), z.data(), w.data(), n, groups, 1e-6f);
    for (int64_t i = 0; i < size; ++i) EXPECT_EQ(y_scaled[i], y[i]);
}

TEST(SsmKernels, ExpWithinTwoUlpOfStdExp) {
    // The scan's exponents dt A are <= 0 (dt > 0, A < 0): the range the kernel serves.
    std::vector<float> x;
    for (float v = -87.0f; v <= 0.0f; v += 0.0137f) x.push_back(v);
    for (float v : {0.0f, -0.0f, -1e-8f, -0.5f, -1.0f}) x.push_back(v);
    std::vector<float> got(x.size());
    exp_nonpositive_avx2(x.data(), got.data(), int64_t(x.size()));
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        const double want = std::exp(double(x[i]));
        worst = std::max(worst, std::fabs(got[i] - want) / want);
    }
    EXPECT_LT(worst, 2.5e-7) << "relative error";  // 2 ulp of a float
    // Far below: 0, never a NaN or a negative.
    float tiny_in[3] = {-100.0f, -1000.0f, -INFINITY}, tiny[3];
    exp_nonpositive_avx2(tiny_in, tiny, 3);
    for (float t : tiny) EXPECT_EQ(t, 0.0f) << t;
}

TEST(SsmKernels, SelectiveScanAvx2FollowsTheScalarStep) {
    for (int64_t d_state : {16, 13}) {  // 13: the scalar tail too
        std::mt19937 rng(11);
        const int64_t I = 37;
        const auto A = random_values(size_t(I * d_state), rng, -8.0f, -0.1f), D = random_values(size_t(I), rng);
        std::vector<float> h_ref(size_t(I * d_state), 0.0f), h_simd = h_ref;
        double worst = 0, scale = 0;
        for (int step = 0; step < 50; ++step) {
            const auto u = random_values(size_t(I), rng), dt = random_values(size_t(I), rng, 0.001f, 2.0f);
            const auto B = random_values(size_t(d_state), rng), C = random_values(size_t(d_state), rng);
            std::vector<float> y_ref(static_cast<size_t>(I)), y_simd(static_cast<size_t>(I));
            selective_scan_step(h_ref.data(), u.data(), dt.data(), A.data(), B.data(), C.data(), D.data(), y_ref.data(), I,
                                d_state);
            selective_scan_avx2(h_simd.data(), u.data(), dt.data(), A.data(), B.data(), C.data(), D.data(), y_simd.data(),
                                I, d_state);
            for (int64_t c = 0; c < I; ++c) {
                worst = std::max(worst, double(std::fabs(y_ref[size_t(c)] - y_simd[size_t(c)])));
                scale = std::max(scale, double(std::fabs(y_ref[size_t(c)])));
            }
        }
        EXPECT_LT(worst, 1e-5 * std::max(1.0, scale)) << "d_state " << d_state;
        for (size_t i = 0; i < h_ref.size(); ++i) ASSERT_NEAR(h_ref[i], h_simd[i], 1e-5 * (1 + std::fabs(h_ref[i])));
    }
}

// The chunked SSD scan (one sequence's tokens at once) against the recurrence token by
// token: outputs and the final state, for head sizes the kernel takes, groups shared by
// several heads, a d_state that is not a multiple of 8, a segment of 2.3 chunks, and a
// head range that leaves the other heads' state alone.
void check_chunked_scan(int64_t head_dim, int64_t d_state, int64_t n_tokens) {
    const int64_t H = 8, G = 2, I = H * head_dim, CC = I + 2 * G * d_state, h0 = 2, h1 = 7;
    std::mt19937 rng(uint32_t(head_dim * 1000 + d_state + n_tokens));
    const auto xbc = random_values(size_t(n_tokens * CC), rng);
    const auto dt = random_values(size_t(n_tokens * H), rng, 1e-3f, 0.3f);
    const auto A = random_values(size_t(H), rng, -16.0f, -0.5f), D = random_values(size_t(H), rng);
    const auto S0 = random_values(size_t(I * d_state), rng);
    std::vector<float> S_step = S0, S_chunk = S0, y_step(size_t(n_tokens * I), 0.0f), y_chunk = y_step;
    for (int64_t t = 0; t < n_tokens; ++t) {
        const float* xt = xbc.data() + t * CC;
        ssd_scan_heads(S_step.data(), xt, dt.data() + t * H, A.data(), xt + I, xt + I + G * d_state, D.data(),
                       y_step.data() + t * I, H, head_dim, G, d_state, h0, h1);
    }
    const SsdShape shape{H, head_dim, G, d_state};
    ASSERT_TRUE(ssd_chunked_supported(shape));
    const SsdTokens tokens{xbc.data(), xbc.data() + I, xbc.data() + I + G * d_state, CC, dt.data(), y_chunk.data(), I,
                           n_tokens};
    ssd_scan_chunked_avx2(S_chunk.data(), tokens, A.data(), D.data(), shape, h0, h1);
    // The sums run in another order: within 1e-5 of the values' scale (measured ~1e-6).
    const float scale = 1.0f + float(d_state) * 0.1f;
    for (size_t i = 0; i < y_step.size(); ++i) ASSERT_NEAR(y_chunk[i], y_step[i], 2e-5f * scale) << "y " << i;
    for (size_t i = 0; i < S_step.size(); ++i) ASSERT_NEAR(S_chunk[i], S_step[i], 2e-5f * scale) << "S " << i;
    for (int64_t i = 0; i < h0 * head_dim * d_state; ++i) ASSERT_EQ(S_chunk[size_t(i)], S0[size_t(i)]);
}

TEST(SsmKernels, SsdStepAvx2FollowsTheScalarStep) {
    for (int64_t d_state : {16, 20, 128}) {
        const int64_t H = 6, P = 4, G = 3, I = H * P;
        std::mt19937 rng{uint32_t(d_state)};
        const auto x = random_values(size_t(I), rng), dt = random_values(size_t(H), rng, 1e-3f, 0.3f);
        const auto A = random_values(size_t(H), rng, -16.0f, -0.5f), D = random_values(size_t(H), rng);
        const auto B = random_values(size_t(G * d_state), rng), C = random_values(size_t(G * d_state), rng);
        const auto S0 = random_values(size_t(I * d_state), rng);
        std::vector<float> S_ref = S0, S_simd = S0, y_ref(size_t(I), 0.0f), y_simd = y_ref;
        ssd_scan_heads(S_ref.data(), x.data(), dt.data(), A.data(), B.data(), C.data(), D.data(), y_ref.data(), H, P, G,
                       d_state, 1, 5);
        ssd_scan_step_avx2(S_simd.data(), x.data(), dt.data(), A.data(), B.data(), C.data(), D.data(), y_simd.data(), H,
                           P, G, d_state, 1, 5);
        for (size_t i = 0; i < S_ref.size(); ++i) ASSERT_NEAR(S_simd[i], S_ref[i], 1e-6f) << i;  // fma vs mul + add
        for (size_t i = 0; i < y_ref.size(); ++i) ASSERT_NEAR(y_simd[i], y_ref[i], 1e-5f * float(d_state)) << i;
    }
}

TEST(SsmKernels, ChunkedSsdScanFollowsTheRecurrence) {
    check_chunked_scan(32, 16, 75);
    check_chunked_scan(64, 128, 70);
    check_chunked_scan(16, 20, 5);
    check_chunked_scan(8, 8, 33);
    EXPECT_FALSE(ssd_chunked_supported({8, 12, 1, 16}));
}

}  // namespace
}  // namespace pensieve
