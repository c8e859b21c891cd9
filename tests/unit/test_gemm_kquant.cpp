// K-quant multi-token kernels (src/kernels/gemm_kquant_avx512.cpp), called directly:
//  - gemm (tokens in lanes) and gemv (rows in lanes) give bit-identical results for every
//    (row, token), for 1..37 tokens, any position in a panel and any row range;
//  - both stay within float-summation-order distance of the scalar reference vec_dot,
//    also at the integer extremes (largest quants, scales and activations: no overflow);
//  - through matmul, a token's result does not depend on the batch or the thread count
//    (test_gemm.cpp covers Q4_K and Q6_K the same way; Q5_K is only here).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"
#include "quant/blocks.h"
#include "quant/types.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace pensieve {
namespace {

using T = GgmlType;

// Random weight bytes (every quant and scale bit pattern) with sane fp16 super-block
// scales; `extreme` sets every quant and sub-block scale to its largest magnitude.
std::vector<uint8_t> random_weights(T type, int64_t rows, int64_t cols, std::mt19937& rng, bool extreme) {
    const size_t rb = row_bytes(type, cols);
    std::vector<uint8_t> w(rb * size_t(rows));
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> scale(0.002f, 0.02f);
    for (uint8_t& b : w) b = extreme ? 0xFF : uint8_t(byte(rng));
    const size_t bs = type_traits(type).block_bytes;
    for (size_t off = 0; off < w.size(); off += bs) {
        uint8_t* blk = w.data() + off;
        const fp16_t d = fp32_to_fp16(scale(rng)), dmin = fp32_to_fp16(scale(rng));
        if (type == T::Q6_K) {
            auto* q = reinterpret_cast<BlockQ6_K*>(blk);
            if (extreme) {  // -128 scales with 0 quants (q - 32 = -32): the largest products
                for (int j = 0; j < 16; ++j) q->scales[j] = -128;
                std::memset(q->ql, 0, sizeof q->ql);
                std::memset(q->qh, 0, sizeof q->qh);
            }
            std::memcpy(&q->d, &d, 2);
        } else {  // Q4_K and Q5_K start with d, dmin
            std::memcpy(blk, &d, 2);
            std::memcpy(blk + 2, &dmin, 2);
        }
    }
    return w;
}

// n Q8_K rows: from random floats through the reference quantizer, or (extreme) every
// activation +-127 with consistent bsums.
std::vector<uint8_t> random_activations(int64_t n, int64_t cols, std::mt19937& rng, bool extreme) {
    const size_t rb = row_bytes(T::Q8_K, cols);
    std::vector<uint8_t> x(rb * size_t(n));
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> f(static_cast<size_t>(cols));
    for (int64_t t = 0; t < n; ++t) {
        uint8_t* row = x.data() + size_t(t) * rb;
        if (!extreme) {
            for (float& v : f) v = g(rng);
            type_traits(T::Q8_K).from_float(f.data(), row, cols);
            continue;
        }
        auto* b = reinterpret_cast<BlockQ8_K*>(row);
        const int sign = t % 2 ? -1 : 1;  // all +127 or all -127: bsums at their extremes
        for (int64_t i = 0; i < cols / QK_K; ++i) {
            b[i].d = 0.01f;
            for (int j = 0; j < QK_K; ++j) b[i].qs[j] = int8_t(sign * 127);
            for (int j = 0; j < QK_K / 16; ++j) b[i].bsums[j] = int16_t(sign * 127 * 16);
        }
    }
    return x;
}

uint8_t* align64(std::vector<uint8_t>& v, size_t bytes) {
    v.resize(bytes + 64);
    const auto p = reinterpret_cast<uintptr_t>(v.data());
    return v.data() + (64 - p % 64) % 64;
}

class KQuantGemm : public ::testing::TestWithParam<T> {
protected:
    void SetUp() override {
        kernels_ = gemm_at(GetParam(), KernelLevel::Avx512);
        if (!kernels_) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
    }

    // y[t * rows + r] by gemm over rows [r0, r1): tokens packed 16 per panel.
    void run_gemm(const std::vector<uint8_t>& w, int64_t rows, int64_t cols, const std::vector<uint8_t>& x,
                  int64_t n, int64_t r0, int64_t r1, std::vector<float>& y) {
        const GemmKernels& k = *kernels_;
        const size_t xrb = row_bytes(T::Q8_K, cols), pb = k.panel_bytes(cols);
        const int64_t np = (n + 15) / 16;
        std::vector<uint8_t> pbuf, sbuf;
        uint8_t* panels = align64(pbuf, pb * size_t(np));
        for (int64_t p = 0; p < np; ++p)
            k.pack(x.data() + size_t(16 * p) * xrb, xrb, int(std::min<int64_t>(16, n - 16 * p)), cols, panels + size_t(p) * pb);
        k.gemm(w.data(), row_bytes(GetParam(), cols), cols, r0, r1, panels, np, int(n - 16 * (np - 1)), y.data(), rows,
               align64(sbuf, k.scratch_bytes(cols)));
    }

    const GemmKernels* kernels_ = nullptr;
};

TEST_P(KQuantGemm, GemmMatchesGemvBitForBit) {
    const T type = GetParam();
    const int64_t rows = 37, cols = 5 * QK_K;  // rows: not a multiple of 4 or 16
    std::mt19937 rng(11);
    for (bool extreme : {false, true}) {
        const std::vector<uint8_t> w = random_weights(type, rows, cols, rng, extreme);
        const std::vector<uint8_t> x = random_activations(37, cols, rng, extreme);
        const size_t xrb = row_bytes(T::Q8_K, cols);
        const size_t wrb = row_bytes(type, cols);
        // gemv: each token alone, all rows; the reference for every gemm run below.
        std::vector<float> alone(size_t(37 * rows));
        for (int64_t t = 0; t < 37; ++t)
            kernels_->gemv(w.data(), wrb, cols, 0, rows, x.data() + size_t(t) * xrb, alone.data() + t * rows);
        // gemv over a row range that does not start at a group boundary.
        std::vector<float> part(size_t(rows), -1.0f);
        kernels_->gemv(w.data(), wrb, cols, 5, 30, x.data(), part.data());
        for (int64_t r = 5; r < 30; ++r) ASSERT_EQ(std::memcmp(&part[size_t(r)], &alone[size_t(r)], 4), 0) << "row " << r;

        for (int64_t n = 1; n <= 37; ++n) {
            for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, rows}, {3, 22}}) {
                std::vector<float> y(size_t(n * rows), -1.0f);
                run_gemm(w, rows, cols, x, n, r0, r1, y);
                for (int64_t t = 0; t < n; ++t)
                    for (int64_t r = r0; r < r1; ++r)
                        ASSERT_EQ(std::memcmp(&y[size_t(t * rows + r)], &alone[size_t(t * rows + r)], 4), 0)
                            << type_name(type) << (extreme ? " extreme" : "") << " batch " << n << " token " << t
                            << " row " << r << ": " << y[size_t(t * rows + r)] << " vs " << alone[size_t(t * rows + r)];
            }
        }
    }
}

// Against the scalar reference vec_dot: integer sums are exact in both, so only float
// order differs. Tolerance relative to sum |x| (|w| + |min part|), as test_simd_kernels.
TEST_P(KQuantGemm, CloseToScalarReference) {
    const T type = GetParam();
    const TypeTraits& wt = type_traits(type);
    const int64_t rows = 21, cols = 3 * QK_K, n = 19;
    std::mt19937 rng(12);
    for (bool extreme : {false, true}) {
        const std::vector<uint8_t> w = random_weights(type, rows, cols, rng, extreme);
        const std::vector<uint8_t> x = random_activations(n, cols, rng, extreme);
        const size_t xrb = row_bytes(T::Q8_K, cols), wrb = row_bytes(type, cols);
        std::vector<float> y(size_t(n * rows));
        run_gemm(w, rows, cols, x, n, 0, rows, y);
        const size_t ncols = static_cast<size_t>(cols);
        std::vector<float> wf(ncols), minf(ncols, 0.0f), xf(ncols);
        for (int64_t r = 0; r < rows; ++r) {
            const uint8_t* wrow = w.data() + size_t(r) * wrb;
            wt.to_float(wrow, wf.data(), cols);
            if (type != T::Q6_K) {  // the min part alone: d zeroed
                std::vector<uint8_t> m(wrow, wrow + wrb);
                for (size_t off = 0; off < wrb; off += wt.block_bytes) std::memset(&m[off], 0, 2);
                wt.to_float(m.data(), minf.data(), cols);
            }
            for (int64_t t = 0; t < n; ++t) {
                const uint8_t* xrow = x.data() + size_t(t) * xrb;
                type_traits(T::Q8_K).to_float(xrow, xf.data(), cols);
                double mag = 0;
                for (int64_t i = 0; i < cols; ++i)
                    mag += std::fabs(double(xf[size_t(i)])) * (std::fabs(double(wf[size_t(i)])) + std::fabs(double(minf[size_t(i)])));
                const float ref = wt.vec_dot(cols, wrow, xrow);
                EXPECT_NEAR(y[size_t(t * rows + r)], ref, 1e-5 * mag + 1e-6)
                    << type_name(type) << (extreme ? " extreme" : "") << " token " << t << " row " << r;
            }
        }
    }
}

// Through matmul (the dispatch-chosen path): every prefix of a 37-token batch and 1..3
// threads give each token's result bit for bit as when it runs alone.
TEST_P(KQuantGemm, MatmulBatchInvariant) {
    const T type = GetParam();
    if (kernels_for(type).gemm != kernels_) GTEST_SKIP() << "kernel level capped (PENSIEVE_KERNELS)";
    const int64_t rows = 53, cols = 4 * QK_K, n_tokens = 37;
    std::mt19937 rng(13);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> wf(size_t(rows * cols)), x(size_t(n_tokens * cols));
    for (float& v : wf) v = g(rng);
    for (float& v : x) v = g(rng);
    std::vector<uint8_t> wq(row_bytes(type, cols) * size_t(rows));
    for (int64_t r = 0; r < rows; ++r)
        type_traits(type).from_float(wf.data() + r * cols, wq.data() + size_t(r) * row_bytes(type, cols), cols);
    const WeightMatrix w{wq.data(), type, rows, cols};

    std::vector<float> alone(size_t(n_tokens * rows));
    {
        ThreadPool pool(1);
        MatmulScratch scratch;
        for (int64_t t = 0; t < n_tokens; ++t) matmul(w, x.data() + t * cols, 1, alone.data() + t * rows, pool, scratch);
    }
    for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        MatmulScratch scratch;
        std::vector<float> y(size_t(n_tokens * rows));
        for (int64_t n = 1; n <= n_tokens; ++n) {
            matmul(w, x.data(), n, y.data(), pool, scratch);
            ASSERT_EQ(std::memcmp(y.data(), alone.data(), size_t(n * rows) * sizeof(float)), 0)
                << type_name(type) << " threads " << threads << " batch " << n;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Avx512, KQuantGemm, ::testing::Values(T::Q4_K, T::Q5_K, T::Q6_K),
                         [](const ::testing::TestParamInfo<T>& info) { return std::string(type_name(info.param)); });

}  // namespace
}  // namespace pensieve
