// F32 gemm kernels (gemm_f32_avx512.cpp): every (row, token) result must be
// bit-identical to the scalar reference vec_dot_f32, whichever kernel computes it
// (gemm, narrow, gemv), at any row count, column count (masked tails), token count and
// thread count. Checked with memcmp, not a tolerance: the stories260K golden test sits
// close to its limit and any other summation order moves it past (NOTES.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"
#include "quant/types.h"
#include "util/thread_pool.h"

namespace pensieve {
namespace {

const GemmKernels* f32_gemm() { return gemm_at(GgmlType::F32, KernelLevel::Avx512); }

// Values of mixed magnitude and sign so that rounding differs between summation orders.
std::vector<float> random_floats(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::uniform_int_distribution<int> exp(-6, 6);
    std::vector<float> v(n);
    for (float& f : v) f = std::ldexp(dist(rng), exp(rng));
    return v;
}

// y_ref[t * rows + r] = vec_dot_f32(w[r], x[t]).
std::vector<float> reference(const std::vector<float>& w, const std::vector<float>& x, int64_t rows, int64_t cols,
                             int64_t tokens) {
    const VecDotFn dot = type_traits(GgmlType::F32).vec_dot;
    std::vector<float> y(size_t(rows * tokens));
    for (int64_t t = 0; t < tokens; ++t)
        for (int64_t r = 0; r < rows; ++r) y[size_t(t * rows + r)] = dot(cols, &w[size_t(r * cols)], &x[size_t(t * cols)]);
    return y;
}

bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

uint8_t* aligned64(std::vector<uint8_t>& store, size_t bytes) {
    store.resize(bytes + 64);
    return store.data() + (64 - reinterpret_cast<uintptr_t>(store.data()) % 64) % 64;
}

class GemmF32 : public ::testing::Test {
protected:
    void SetUp() override {
        if (!f32_gemm()) GTEST_SKIP() << "no AVX-512 on this CPU";
    }
};

TEST_F(GemmF32, InstalledForMatmul) { EXPECT_EQ(kernels_for(GgmlType::F32).gemm, f32_gemm()); }

// Each kernel called directly over every row range shape it gets from matmul.
TEST_F(GemmF32, KernelsMatchVecDotBitForBit) {
    const GemmKernels& g = *f32_gemm();
    std::mt19937 rng(11);
    for (int iter = 0; iter < 60; ++iter) {
        const int64_t rows = std::uniform_int_distribution<int64_t>(1, 53)(rng);
        const int64_t cols = iter < 8 ? int64_t(16 * (iter + 1) - (iter % 2))  // 15, 32, 47, 64, ...
                                      : std::uniform_int_distribution<int64_t>(7, 300)(rng);
        const int64_t tokens = std::uniform_int_distribution<int64_t>(1, 37)(rng);
        const std::vector<float> w = random_floats(size_t(rows * cols), uint32_t(100 + iter));
        const std::vector<float> x = random_floats(size_t(tokens * cols), uint32_t(200 + iter));
        const std::vector<float> ref = reference(w, x, rows, cols, tokens);
        const auto* wb = reinterpret_cast<const uint8_t*>(w.data());
        const auto* xb = reinterpret_cast<const uint8_t*>(x.data());
        const size_t row_b = size_t(cols) * sizeof(float);
        // A row range not starting at 0 as well: threads get [r0, r1).
        const int64_t r0 = rows > 20 ? 3 : 0;
        const size_t n_out = size_t(tokens * rows);

        // gemv, one token at a time.
        std::vector<float> y(n_out, -7.0f);
        for (int64_t t = 0; t < tokens; ++t) g.gemv(wb, row_b, cols, r0, rows, xb + size_t(t) * row_b, &y[size_t(t * rows)]);
        for (int64_t t = 0; t < tokens; ++t)
            ASSERT_TRUE(same_bits(&y[size_t(t * rows + r0)], &ref[size_t(t * rows + r0)], size_t(rows - r0)))
                << "gemv rows " << rows << " cols " << cols << " token " << t;

        // Pack all tokens into panels.
        const int lanes = g.panel_tokens;
        const int64_t n_panels = (tokens + lanes - 1) / lanes;
        const int last_n = int(tokens - (n_panels - 1) * lanes);
        const size_t pbytes = g.panel_bytes(cols);
        std::vector<uint8_t> pstore, sstore;
        uint8_t* panels = aligned64(pstore, pbytes * size_t(n_panels));
        for (int64_t p = 0; p < n_panels; ++p)
            g.pack(xb + size_t(p * lanes) * row_b, row_b, p == n_panels - 1 ? last_n : lanes, cols, panels + size_t(p) * pbytes);

        // gemm over all panels.
        std::fill(y.begin(), y.end(), -7.0f);
        g.gemm(wb, row_b, cols, r0, rows, panels, n_panels, last_n, y.data(), rows, aligned64(sstore, g.scratch_bytes(cols)));
        for (int64_t t = 0; t < tokens; ++t)
            ASSERT_TRUE(same_bits(&y[size_t(t * rows + r0)], &ref[size_t(t * rows + r0)], size_t(rows - r0)))
                << "gemm rows " << rows << " cols " << cols << " tokens " << tokens << " token " << t;

        // narrow per panel (needs at least 16 rows).
        if (rows - r0 >= 16) {
            std::fill(y.begin(), y.end(), -7.0f);
            for (int64_t p = 0; p < n_panels; ++p)
                g.narrow(wb, row_b, cols, r0, rows, panels + size_t(p) * pbytes, p == n_panels - 1 ? last_n : lanes,
                         &y[size_t(p * lanes * rows)], rows);
            for (int64_t t = 0; t < tokens; ++t)
                ASSERT_TRUE(same_bits(&y[size_t(t * rows + r0)], &ref[size_t(t * rows + r0)], size_t(rows - r0)))
                    << "narrow rows " << rows << " cols " << cols << " tokens " << tokens << " token " << t;
        }
    }
}

// Through matmul (kernel choice by token count, row split by thread count).
TEST_F(GemmF32, MatmulMatchesVecDotBitForBit) {
    std::mt19937 rng(12);
    for (int iter = 0; iter < 40; ++iter) {
        const int64_t rows = std::uniform_int_distribution<int64_t>(1, 53)(rng);
        const int64_t cols = std::uniform_int_distribution<int64_t>(7, 300)(rng);
        const std::vector<float> w = random_floats(size_t(rows * cols), uint32_t(300 + iter));
        const WeightMatrix wm{w.data(), GgmlType::F32, rows, cols};
        constexpr int64_t kMaxTokens = 37;
        const std::vector<float> x = random_floats(size_t(kMaxTokens * cols), uint32_t(400 + iter));
        const std::vector<float> ref = reference(w, x, rows, cols, kMaxTokens);
        for (int threads = 1; threads <= 3; ++threads) {
            ThreadPool pool(threads);
            MatmulScratch scratch;
            for (int64_t tokens : {int64_t(1), int64_t(2), int64_t(5), int64_t(16), int64_t(17), kMaxTokens,
                                   std::uniform_int_distribution<int64_t>(1, kMaxTokens)(rng)}) {
                std::vector<float> y(size_t(tokens * rows), -7.0f);
                matmul(wm, x.data(), tokens, y.data(), pool, scratch);
                ASSERT_TRUE(same_bits(y.data(), ref.data(), y.size()))
                    << "rows " << rows << " cols " << cols << " tokens " << tokens << " threads " << threads;
            }
        }
    }
}

// Over 64 tokens matmul switches to the gemm kernel for whole panels.
TEST_F(GemmF32, ManyTokensThroughGemm) {
    const int64_t rows = 70, cols = 131, tokens = 150;
    const std::vector<float> w = random_floats(size_t(rows * cols), 5);
    const std::vector<float> x = random_floats(size_t(tokens * cols), 6);
    const std::vector<float> ref = reference(w, x, rows, cols, tokens);
    const WeightMatrix wm{w.data(), GgmlType::F32, rows, cols};
    for (int threads = 1; threads <= 3; ++threads) {
        ThreadPool pool(threads);
        MatmulScratch scratch;
        std::vector<float> y(size_t(tokens * rows));
        matmul(wm, x.data(), tokens, y.data(), pool, scratch);
        ASSERT_TRUE(same_bits(y.data(), ref.data(), y.size())) << "threads " << threads;
    }
}

}  // namespace
}  // namespace pensieve
