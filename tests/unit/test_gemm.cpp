// matmul batch invariance: a (weight row, token) result must be bit-identical whatever
// else is in the batch (alone, among 1..37 tokens, at any position) and whatever the
// thread count. The scheduler and greedy golden tests rely on it. For types with
// multi-token kernels (gemm.h) this checks that gemm and gemv agree bit for bit; for the
// others, that tiling vec_dot keeps it. Also: matmul stays close to the scalar reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"
#include "quant/types.h"
#include "util/thread_pool.h"

namespace pensieve {
namespace {

using T = GgmlType;

struct Shape {
    int64_t rows, cols;
};

// Random weights quantized with the reference quantizer.
std::vector<uint8_t> make_weights(T type, Shape s, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> row(size_t(s.cols));
    std::vector<uint8_t> out(row_bytes(type, s.cols) * size_t(s.rows));
    for (int64_t r = 0; r < s.rows; ++r) {
        for (float& v : row) v = dist(rng);
        type_traits(type).from_float(row.data(), out.data() + size_t(r) * row_bytes(type, s.cols), s.cols);
    }
    return out;
}

std::vector<float> make_tokens(int64_t n, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> x(size_t(n * cols));
    for (float& v : x) v = dist(rng);
    return x;
}

bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

class GemmInvariance : public ::testing::TestWithParam<T> {
protected:
    // Shapes with odd block counts and row counts that are not multiples of 4 or 16.
    Shape shape() const {
        const int64_t bs = type_traits(GetParam()).block_size;
        return bs == 256 ? Shape{53, 3 * 256} : Shape{53, 7 * 32};
    }
};

TEST_P(GemmInvariance, BatchedMatchesAloneBitForBit) {
    const T type = GetParam();
    const Shape s = shape();
    const std::vector<uint8_t> wbytes = make_weights(type, s, 1);
    const WeightMatrix w{wbytes.data(), type, s.rows, s.cols};
    constexpr int64_t kTokens = 37;
    const std::vector<float> x = make_tokens(kTokens, s.cols, 2);

    // Each token alone, one thread: the reference for everything below.
    std::vector<float> alone(size_t(kTokens * s.rows));
    {
        ThreadPool pool(1);
        MatmulScratch scratch;
        for (int64_t t = 0; t < kTokens; ++t)
            matmul(w, x.data() + t * s.cols, 1, alone.data() + t * s.rows, pool, scratch);
    }

    for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        MatmulScratch scratch;
        std::vector<float> y(size_t(kTokens * s.rows));
        // Prefixes of every length: token t at position t, batch sizes 1..37.
        for (int64_t n = 1; n <= kTokens; ++n) {
            matmul(w, x.data(), n, y.data(), pool, scratch);
            for (int64_t t = 0; t < n; ++t)
                ASSERT_TRUE(same_bits(y.data() + t * s.rows, alone.data() + t * s.rows, size_t(s.rows)))
                    << type_name(type) << " threads " << threads << " batch " << n << " token " << t;
        }
        // Rotations: every token at every position of a full batch.
        std::vector<float> xr(x.size());
        for (int64_t shift = 1; shift < kTokens; ++shift) {
            for (int64_t i = 0; i < kTokens; ++i)
                std::memcpy(xr.data() + i * s.cols, x.data() + ((i + shift) % kTokens) * s.cols,
                            size_t(s.cols) * sizeof(float));
            matmul(w, xr.data(), kTokens, y.data(), pool, scratch);
            for (int64_t i = 0; i < kTokens; ++i) {
                const int64_t t = (i + shift) % kTokens;
                ASSERT_TRUE(same_bits(y.data() + i * s.rows, alone.data() + t * s.rows, size_t(s.rows)))
                    << type_name(type) << " threads " << threads << " shift " << shift << " position " << i;
            }
        }
    }
}

// Enough tokens and columns that the gemm path runs several passes over its panels.
TEST_P(GemmInvariance, ManyTokensMatchAlone) {
    const T type = GetParam();
    const Shape s{20, 4096};
    const std::vector<uint8_t> wbytes = make_weights(type, s, 3);
    const WeightMatrix w{wbytes.data(), type, s.rows, s.cols};
    constexpr int64_t kTokens = 150;
    const std::vector<float> x = make_tokens(kTokens, s.cols, 4);
    ThreadPool pool(2);
    MatmulScratch scratch;
    std::vector<float> y(size_t(kTokens * s.rows)), one(size_t(s.rows));
    matmul(w, x.data(), kTokens, y.data(), pool, scratch);
    for (int64_t t = 0; t < kTokens; ++t) {
        matmul(w, x.data() + t * s.cols, 1, one.data(), pool, scratch);
        ASSERT_TRUE(same_bits(y.data() + t * s.rows, one.data(), size_t(s.rows))) << type_name(type) << " token " << t;
    }
}

// Close to the scalar reference dot on the same quantized activations (only the float
// summation order differs): relative to sum |w| |x|, as in test_simd_kernels.cpp.
TEST_P(GemmInvariance, CloseToScalarReference) {
    const T type = GetParam();
    const Shape s = shape();
    const std::vector<uint8_t> wbytes = make_weights(type, s, 5);
    const WeightMatrix w{wbytes.data(), type, s.rows, s.cols};
    constexpr int64_t kTokens = 21;
    const std::vector<float> x = make_tokens(kTokens, s.cols, 6);
    ThreadPool pool(2);
    MatmulScratch scratch;
    std::vector<float> y(size_t(kTokens * s.rows));
    matmul(w, x.data(), kTokens, y.data(), pool, scratch);

    const TypeTraits& wt = type_traits(type);
    const TypeTraits& xt = type_traits(wt.vec_dot_type);
    std::vector<uint8_t> xq(row_bytes(wt.vec_dot_type, s.cols));
    std::vector<float> wf(size_t(s.cols));
    for (int64_t t = 0; t < kTokens; ++t) {
        const float* xt_row = x.data() + t * s.cols;
        xt.from_float(xt_row, xq.data(), s.cols);
        for (int64_t r = 0; r < s.rows; ++r) {
            const float ref = wt.vec_dot(s.cols, w.row(r), xq.data());
            wt.to_float(w.row(r), wf.data(), s.cols);
            double mag = 0;
            for (int64_t i = 0; i < s.cols; ++i) mag += std::fabs(double(wf[size_t(i)]) * xt_row[i]);
            EXPECT_NEAR(y[size_t(t * s.rows + r)], ref, 1e-5 * mag + 1e-6)
                << type_name(type) << " token " << t << " row " << r;
        }
    }
}

// Narrow batches (2..15 tokens: decode steps of several requests, speculative verify),
// several narrow panels (16..64 tokens), and whole gemm panels plus a narrow rest (69,
// 79 tokens), at row counts that exercise the narrow kernel's sliding last group (40
// rows), whole groups only (32), a thread with fewer than 16 rows (53 rows on 4
// threads) and a matrix smaller than one group (7 rows).
TEST_P(GemmInvariance, NarrowBatchesMatchAlone) {
    const T type = GetParam();
    const int64_t bs = type_traits(type).block_size;
    const int64_t cols = bs == 256 ? 4 * 256 : 45 * 32;
    for (int64_t rows : {40, 32, 53, 7}) {
        const Shape s{rows, cols};
        const std::vector<uint8_t> wbytes = make_weights(type, s, 7);
        const WeightMatrix w{wbytes.data(), type, s.rows, s.cols};
        constexpr int64_t kTokens = 80;
        const std::vector<float> x = make_tokens(kTokens, s.cols, 8);
        std::vector<float> alone(size_t(kTokens * s.rows));
        {
            ThreadPool pool(1);
            MatmulScratch scratch;
            for (int64_t t = 0; t < kTokens; ++t)
                matmul(w, x.data() + t * s.cols, 1, alone.data() + t * s.rows, pool, scratch);
        }
        for (int threads : {1, 2, 4}) {
            ThreadPool pool(threads);
            MatmulScratch scratch;
            std::vector<float> y(size_t(kTokens * s.rows));
            for (int64_t n : {2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 20, 31, 32, 33, 37, 64, 65, 69, 79}) {
                for (int64_t first : {int64_t(0), kTokens - n}) {  // two different token sets
                    matmul(w, x.data() + first * s.cols, n, y.data(), pool, scratch);
                    for (int64_t t = 0; t < n; ++t)
                        ASSERT_TRUE(same_bits(y.data() + t * s.rows, alone.data() + (first + t) * s.rows,
                                              size_t(s.rows)))
                            << type_name(type) << " rows " << rows << " threads " << threads << " batch " << n
                            << " first " << first << " token " << t;
                }
            }
        }
    }
}

// The narrow kernel itself, for every token count it accepts (1..16), against gemv.
TEST_P(GemmInvariance, NarrowKernelMatchesGemv) {
    const T type = GetParam();
    const GemmKernels* g = kernels_for(type).gemm;
    if (!g || !g->narrow) GTEST_SKIP() << "no narrow kernel for " << type_name(type);
    const TypeTraits& wt = type_traits(type);
    const Shape s{35, 9 * wt.block_size};
    const std::vector<uint8_t> wbytes = make_weights(type, s, 9);
    const int lanes = g->panel_tokens;
    const std::vector<float> x = make_tokens(lanes, s.cols, 10);
    const size_t xbytes = row_bytes(wt.vec_dot_type, s.cols);
    std::vector<uint8_t> xq(xbytes * size_t(lanes));
    for (int t = 0; t < lanes; ++t)
        type_traits(wt.vec_dot_type).from_float(x.data() + t * s.cols, xq.data() + size_t(t) * xbytes, s.cols);
    std::vector<float> ref(size_t(lanes * s.rows));
    for (int t = 0; t < lanes; ++t)
        g->gemv(wbytes.data(), row_bytes(type, s.cols), s.cols, 0, s.rows, xq.data() + size_t(t) * xbytes,
                ref.data() + t * s.rows);
    std::vector<uint8_t> panel_store(g->panel_bytes(s.cols) + 64);
    uint8_t* panel = panel_store.data() + (64 - reinterpret_cast<uintptr_t>(panel_store.data()) % 64) % 64;
    for (int n = 1; n <= lanes; ++n) {
        g->pack(xq.data(), xbytes, n, s.cols, panel);
        std::vector<float> y(size_t(n * s.rows), -1.0f);
        g->narrow(wbytes.data(), row_bytes(type, s.cols), s.cols, 0, s.rows, panel, n, y.data(), s.rows);
        ASSERT_TRUE(same_bits(y.data(), ref.data(), y.size())) << type_name(type) << " n " << n;
    }
}

INSTANTIATE_TEST_SUITE_P(Kernels, GemmInvariance,
                         ::testing::Values(T::Q4_0, T::Q8_0, T::Q5_0, T::IQ4_NL, T::Q4_K, T::Q5_K, T::Q6_K, T::TQ2_0, T::F32, T::F16,
                                           T::BF16),
                         [](const ::testing::TestParamInfo<T>& info) { return std::string(type_name(info.param)); });

}  // namespace
}  // namespace pensieve
