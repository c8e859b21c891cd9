// Low-bit kernels beyond the float-tolerance checks of test_simd_kernels.cpp:
//
//  - Q2_K, Q3_K, TQ1_0, TQ2_0 SIMD dots compute the reference's integer sums exactly:
//    with every scale 1 the float steps are exact too, so results must be equal.
//  - The TQ2_0 lookup-table kernel (kernels/lut.h) is bit-identical to the scalar
//    reference (same integers, same float steps), for any row range, alone or through
//    its GemmKernels (the PENSIEVE_LUT=1 path of matmul).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/lut.h"
#include "quant/blocks.h"
#include "quant/types.h"
#include "util/fp16.h"

namespace pensieve {
namespace {

using T = GgmlType;

// Q8_K activations with consistent block sums: random in -127..127, or all `fixed`.
std::vector<uint8_t> q8k_row(int64_t n, std::mt19937& rng, float d, const int* fixed = nullptr) {
    std::vector<uint8_t> x(row_bytes(T::Q8_K, n));
    auto* b = reinterpret_cast<BlockQ8_K*>(x.data());
    std::uniform_int_distribution<int> q(-127, 127);
    for (int64_t i = 0; i < n / QK_K; ++i) {
        b[i].d = d;
        for (int j = 0; j < QK_K; ++j) b[i].qs[j] = int8_t(fixed ? fixed[j % 2] : q(rng));
        for (int j = 0; j < QK_K / 16; ++j) {
            int s = 0;
            for (int l = 0; l < 16; ++l) s += b[i].qs[16 * j + l];
            b[i].bsums[j] = int16_t(s);
        }
    }
    return x;
}

void put_fp16(uint8_t* p, float v) {
    const fp16_t h = fp32_to_fp16(v);
    std::memcpy(p, &h, 2);
}

// Random bytes (every code, including TQ2_0's unused 3 and any TQ1_0 byte) with every
// fp16 scale field set to `scale` (random in +-0.05 when scale is 0).
std::vector<uint8_t> weight_rows(T t, int64_t rows, int64_t n, std::mt19937& rng, float scale) {
    std::vector<uint8_t> w(row_bytes(t, n) * size_t(rows));
    for (auto& v : w) v = uint8_t(rng());
    std::vector<size_t> fields;
    size_t block = 0;
    switch (t) {
        case T::Q2_K: fields = {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)}; block = sizeof(BlockQ2_K); break;
        case T::Q3_K: fields = {offsetof(BlockQ3_K, d)}; block = sizeof(BlockQ3_K); break;
        case T::TQ1_0: fields = {offsetof(BlockTQ1_0, d)}; block = sizeof(BlockTQ1_0); break;
        case T::TQ2_0: fields = {offsetof(BlockTQ2_0, d)}; block = sizeof(BlockTQ2_0); break;
        default: ADD_FAILURE() << "unexpected type"; return w;
    }
    std::uniform_real_distribution<float> u(-0.05f, 0.05f);
    for (size_t b = 0; b < w.size() / block; ++b)
        for (size_t f : fields) put_fp16(&w[b * block + f], scale != 0 ? scale : u(rng));
    return w;
}

// ------------------------------------------------------------------ exact integer sums

TEST(LowBitDot, IntegerSumsExactWithUnitScales) {
    std::mt19937 rng(77);
    for (T t : {T::Q2_K, T::Q3_K, T::TQ1_0, T::TQ2_0})
        for (KernelLevel level : {KernelLevel::Avx2, KernelLevel::Avx512}) {
            if (!cpu_supports(level)) continue;
            const VecDotFn simd = vec_dot_at(t, level);
            const VecDotFn ref = vec_dot_at(t, KernelLevel::Scalar);
            ASSERT_NE(simd, nullptr) << type_name(t) << " " << kernel_level_name(level);
            // |sum| < 2^24 for 2 blocks, so every partial sum is an exact float
            for (int64_t nb : {1, 2})
                for (int rep = 0; rep < 200; ++rep) {
                    const int64_t n = nb * QK_K;
                    const std::vector<uint8_t> w = weight_rows(t, 1, n, rng, 1.0f);
                    const std::vector<uint8_t> x = q8k_row(n, rng, 1.0f);
                    EXPECT_EQ(simd(n, w.data(), x.data()), ref(n, w.data(), x.data()))
                        << type_name(t) << " " << kernel_level_name(level) << " rep " << rep;
                }
        }
}

// ------------------------------------------------------------------ TQ2_0 lookup tables

class TernaryLut : public ::testing::Test {
protected:
    void SetUp() override {
        if (!cpu_supports(KernelLevel::Avx512)) GTEST_SKIP() << "CPU lacks avx512";
    }

    // LUT results for rows [r0, r1) against the scalar reference, bit for bit.
    static void check(const std::vector<uint8_t>& w, int64_t cols, int64_t r0, int64_t r1,
                      const std::vector<uint8_t>& x, const std::string& what) {
        const size_t rb = row_bytes(T::TQ2_0, cols);
        uint8_t* lut = static_cast<uint8_t*>(std::aligned_alloc(64, simd::tq2_lut_bytes(cols)));
        simd::tq2_lut_build(x.data(), cols, lut);
        std::vector<float> y(size_t(r1 - r0) + 1, -7.0f);  // one extra: must stay untouched
        simd::tq2_lut_gemv(w.data(), rb, cols, r0, r1, lut, x.data(), y.data());
        std::free(lut);
        const VecDotFn ref = vec_dot_at(T::TQ2_0, KernelLevel::Scalar);
        for (int64_t r = r0; r < r1; ++r)
            ASSERT_EQ(y[size_t(r - r0)], ref(cols, w.data() + size_t(r) * rb, x.data())) << what << " row " << r;
        EXPECT_EQ(y.back(), -7.0f) << what << ": wrote past r1";
    }
};

TEST_F(TernaryLut, RandomMatchesReferenceBitForBit) {
    std::mt19937 rng(3);
    for (int64_t nb : {1, 2, 3, 16, 22})
        for (int64_t rows : {1, 5, 16, 17, 40}) {
            const int64_t cols = nb * QK_K;
            const std::vector<uint8_t> w = weight_rows(T::TQ2_0, rows, cols, rng, 0.0f);
            const std::vector<uint8_t> x = q8k_row(cols, rng, 0.0123f);
            const std::string what = "cols " + std::to_string(cols) + " rows " + std::to_string(rows);
            check(w, cols, 0, rows, x, what);
            if (rows > 3) check(w, cols, 3, rows - 1, x, what + " sub-range");
        }
}

TEST_F(TernaryLut, QuantizedWeightsAndActivations) {  // real TQ2_0 / Q8_K bytes, as a model has
    std::mt19937 rng(8);
    std::normal_distribution<float> g(0.0f, 1.0f);
    const int64_t rows = 48, cols = 2048;
    std::vector<float> f(size_t(rows * cols));
    for (float& v : f) v = g(rng);
    std::vector<uint8_t> w(row_bytes(T::TQ2_0, cols) * rows), x(row_bytes(T::Q8_K, cols));
    type_traits(T::TQ2_0).from_float(f.data(), w.data(), rows * cols);
    type_traits(T::Q8_K).from_float(f.data(), x.data(), cols);
    check(w, cols, 0, rows, x, "quantized");
}

TEST_F(TernaryLut, ExtremeCodesAndActivations) {
    std::mt19937 rng(9);
    const int64_t rows = 20, cols = 4 * QK_K;
    const int plus[2] = {127, 127}, minus[2] = {-127, -127}, alt[2] = {127, -127};
    // 0xFF: every code 3 (w = +2), the largest table values; 0xAA: all +1; 0x00: all -1
    for (uint8_t fill : {uint8_t(0x00), uint8_t(0x55), uint8_t(0xAA), uint8_t(0xFF), uint8_t(0x1B)})
        for (const int* q : {plus, minus, alt}) {
            std::vector<uint8_t> w = weight_rows(T::TQ2_0, rows, cols, rng, 0.5f);
            for (size_t b = 0; b < w.size() / sizeof(BlockTQ2_0); ++b)
                std::memset(&w[b * sizeof(BlockTQ2_0)], fill, QK_K / 4);
            check(w, cols, 0, rows, q8k_row(cols, rng, 0.25f, q), "fill " + std::to_string(fill) + " q " + std::to_string(q[0]));
        }
    // fp16 scale extremes
    for (float s : {65504.0f, -65504.0f, 6.1035156e-05f, 0.0f}) {
        std::vector<uint8_t> w = weight_rows(T::TQ2_0, rows, cols, rng, 1.0f);
        for (size_t b = 0; b < w.size() / sizeof(BlockTQ2_0); ++b) put_fp16(&w[b * sizeof(BlockTQ2_0) + offsetof(BlockTQ2_0, d)], s);
        check(w, cols, 0, rows, q8k_row(cols, rng, 1e-3f), "scale " + std::to_string(s));
    }
}

// The GemmKernels wrapper (PENSIEVE_LUT=1 in matmul): gemv and panels of gemm agree with
// the reference for every token, whatever its position in the panel.
TEST_F(TernaryLut, GemmKernelsMatchReference) {
    const GemmKernels* g = simd::avx512_lut_gemm(T::TQ2_0);
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(simd::avx512_lut_gemm(T::Q4_0), nullptr);
    std::mt19937 rng(21);
    const int64_t rows = 70, cols = 3 * QK_K, tokens = 19;
    const size_t rb = row_bytes(T::TQ2_0, cols), xb = row_bytes(T::Q8_K, cols);
    const std::vector<uint8_t> w = weight_rows(T::TQ2_0, rows, cols, rng, 0.0f);
    std::vector<uint8_t> x;
    for (int64_t t = 0; t < tokens; ++t) {
        const std::vector<uint8_t> row = q8k_row(cols, rng, 0.01f + 0.001f * float(t));
        x.insert(x.end(), row.begin(), row.end());
    }
    const VecDotFn ref = vec_dot_at(T::TQ2_0, KernelLevel::Scalar);

    // two panels: 16 tokens, then 3
    const int lanes = g->panel_tokens;
    const int64_t n_panels = (tokens + lanes - 1) / lanes;
    const size_t pb = g->panel_bytes(cols);
    uint8_t* panels = static_cast<uint8_t*>(std::aligned_alloc(64, pb * size_t(n_panels)));
    uint8_t* scratch = static_cast<uint8_t*>(std::aligned_alloc(64, (g->scratch_bytes(cols) + 63) / 64 * 64));
    for (int64_t p = 0; p < n_panels; ++p)
        g->pack(x.data() + size_t(p * lanes) * xb, xb, int(std::min<int64_t>(lanes, tokens - p * lanes)), cols,
                panels + size_t(p) * pb);
    std::vector<float> y(size_t(tokens * rows), -1.0f);
    g->gemm(w.data(), rb, cols, 0, rows, panels, n_panels, int(tokens - (n_panels - 1) * lanes), y.data(), rows, scratch);
    std::free(panels);
    std::free(scratch);
    for (int64_t t = 0; t < tokens; ++t)
        for (int64_t r = 0; r < rows; ++r)
            ASSERT_EQ(y[size_t(t * rows + r)], ref(cols, w.data() + size_t(r) * rb, x.data() + size_t(t) * xb))
                << "gemm token " << t << " row " << r;

    std::vector<float> y1(size_t(rows), -1.0f);
    g->gemv(w.data(), rb, cols, 5, rows, x.data() + 4 * xb, y1.data());
    for (int64_t r = 5; r < rows; ++r) ASSERT_EQ(y1[size_t(r)], ref(cols, w.data() + size_t(r) * rb, x.data() + 4 * xb));
    for (int64_t r = 0; r < 5; ++r) EXPECT_EQ(y1[size_t(r)], -1.0f);
}

}  // namespace
}  // namespace pensieve
