// Quantization formats: block sizes, the type table, quantize -> dequantize error per
// type, vec_dot against the dequantized reference, hand-built blocks that pin the bit
// layouts, and the real files in ../shared (decoded against the F16 original, and
// re-quantized from it to the very same bytes the reference quantizer wrote).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "quant/blocks.h"
#include "quant/quant_ref.h"
#include "quant/types.h"
#include "test_paths.h"
#include "util/error.h"

using namespace pensieve;

namespace {

// ---------------------------------------------------------------------------------- helpers

std::vector<float> gaussian(int64_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = scale * dist(rng);
    return v;
}

std::vector<uint8_t> quantize(GgmlType t, const std::vector<float>& x) {
    const TypeTraits& tt = type_traits(t);
    std::vector<uint8_t> q(row_bytes(t, int64_t(x.size())));
    tt.from_float(x.data(), q.data(), int64_t(x.size()));
    return q;
}

std::vector<float> dequantize(GgmlType t, const void* q, int64_t n) {
    std::vector<float> y(static_cast<size_t>(n));
    type_traits(t).to_float(q, y.data(), n);
    return y;
}

std::vector<float> round_trip(GgmlType t, const std::vector<float>& x) {
    const std::vector<uint8_t> q = quantize(t, x);
    return dequantize(t, q.data(), int64_t(x.size()));
}

// RMS(y - x) / RMS(x), over [begin, end).
double rel_rmse(const std::vector<float>& x, const std::vector<float>& y, size_t begin = 0, size_t end = SIZE_MAX) {
    end = std::min(end, x.size());
    double err = 0, ref = 0;
    for (size_t i = begin; i < end; ++i) {
        err += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
        ref += double(x[i]) * x[i];
    }
    return ref > 0 ? std::sqrt(err / ref) : std::sqrt(err);
}

bool all_finite(const std::vector<float>& v) {
    for (float f : v)
        if (!std::isfinite(f)) return false;
    return true;
}

// Every type that has kernels, with the quantize -> dequantize relative RMSE bound on
// N(0,1) data. Measured values (this implementation = the reference algorithm, 4096
// samples) are in the comments; bounds leave ~20-25% headroom. Ternary types cannot
// represent Gaussian data well (d is the block maximum, so |x| < max/2 rounds to 0);
// they also get an exact test on ternary data below.
struct TypeCase {
    GgmlType type;
    double rmse_bound;
};
const TypeCase kTypes[] = {
    {GgmlType::F32, 0.0},        // exact
    {GgmlType::F16, 2.6e-4},     // 2.1e-4
    {GgmlType::BF16, 2.1e-3},    // 1.65e-3
    {GgmlType::Q4_0, 0.11},      // 0.0877
    {GgmlType::Q4_1, 0.10},      // 0.0788
    {GgmlType::Q5_0, 0.054},     // 0.0431
    {GgmlType::Q5_1, 0.048},     // 0.0379
    {GgmlType::Q8_0, 0.0068},    // 0.00545
    {GgmlType::Q8_1, 0.0068},    // 0.00545
    {GgmlType::IQ4_NL, 0.097},   // 0.0774
    {GgmlType::Q2_K, 0.36},      // 0.298
    {GgmlType::Q3_K, 0.19},      // 0.153
    {GgmlType::Q4_K, 0.091},     // 0.0730
    {GgmlType::Q5_K, 0.045},     // 0.0361
    {GgmlType::Q6_K, 0.022},     // 0.0178
    {GgmlType::Q8_K, 0.009},     // 0.00723 (amax over 256 values, so coarser than Q8_0)
    {GgmlType::TQ1_0, 0.9},      // 0.824
    {GgmlType::TQ2_0, 0.9},      // 0.824
};

std::string case_name(const testing::TestParamInfo<TypeCase>& info) { return type_name(info.param.type); }

// ---------------------------------------------------------------------------------- layout

TEST(QuantBlocks, SizesMatchGguf) {
    EXPECT_EQ(sizeof(BlockQ4_0), 18u);
    EXPECT_EQ(sizeof(BlockQ4_1), 20u);
    EXPECT_EQ(sizeof(BlockQ5_0), 22u);
    EXPECT_EQ(sizeof(BlockQ5_1), 24u);
    EXPECT_EQ(sizeof(BlockQ8_0), 34u);
    EXPECT_EQ(sizeof(BlockQ8_1), 36u);
    EXPECT_EQ(sizeof(BlockIQ4_NL), 18u);
    EXPECT_EQ(sizeof(BlockQ2_K), 84u);
    EXPECT_EQ(sizeof(BlockQ3_K), 110u);
    EXPECT_EQ(sizeof(BlockQ4_K), 144u);
    EXPECT_EQ(sizeof(BlockQ5_K), 176u);
    EXPECT_EQ(sizeof(BlockQ6_K), 210u);
    EXPECT_EQ(sizeof(BlockQ8_K), 292u);
    EXPECT_EQ(sizeof(BlockTQ1_0), 54u);
    EXPECT_EQ(sizeof(BlockTQ2_0), 66u);
    // Field offsets that other tools rely on.
    EXPECT_EQ(offsetof(BlockQ2_K, d), 80u);
    EXPECT_EQ(offsetof(BlockQ3_K, d), 108u);
    EXPECT_EQ(offsetof(BlockQ4_K, qs), 16u);
    EXPECT_EQ(offsetof(BlockQ5_K, qs), 48u);
    EXPECT_EQ(offsetof(BlockQ6_K, scales), 192u);
    EXPECT_EQ(offsetof(BlockQ8_K, bsums), 260u);
    EXPECT_EQ(offsetof(BlockTQ1_0, qh), 48u);
}

TEST(QuantTable, TraitsMatchBlocks) {
    const std::map<GgmlType, std::pair<int64_t, size_t>> expected = {
        {GgmlType::F32, {1, 4}},          {GgmlType::F16, {1, 2}},
        {GgmlType::BF16, {1, 2}},         {GgmlType::Q4_0, {32, sizeof(BlockQ4_0)}},
        {GgmlType::Q4_1, {32, sizeof(BlockQ4_1)}},   {GgmlType::Q5_0, {32, sizeof(BlockQ5_0)}},
        {GgmlType::Q5_1, {32, sizeof(BlockQ5_1)}},   {GgmlType::Q8_0, {32, sizeof(BlockQ8_0)}},
        {GgmlType::Q8_1, {32, sizeof(BlockQ8_1)}},   {GgmlType::IQ4_NL, {32, sizeof(BlockIQ4_NL)}},
        {GgmlType::Q2_K, {256, sizeof(BlockQ2_K)}},  {GgmlType::Q3_K, {256, sizeof(BlockQ3_K)}},
        {GgmlType::Q4_K, {256, sizeof(BlockQ4_K)}},  {GgmlType::Q5_K, {256, sizeof(BlockQ5_K)}},
        {GgmlType::Q6_K, {256, sizeof(BlockQ6_K)}},  {GgmlType::Q8_K, {256, sizeof(BlockQ8_K)}},
        {GgmlType::TQ1_0, {256, sizeof(BlockTQ1_0)}}, {GgmlType::TQ2_0, {256, sizeof(BlockTQ2_0)}},
        // known, no kernels
        {GgmlType::IQ2_XXS, {256, 66}}, {GgmlType::IQ2_XS, {256, 74}}, {GgmlType::IQ3_XXS, {256, 98}},
        {GgmlType::IQ1_S, {256, 50}},   {GgmlType::IQ3_S, {256, 110}}, {GgmlType::IQ2_S, {256, 82}},
        {GgmlType::IQ4_XS, {256, 136}}, {GgmlType::IQ1_M, {256, 56}},  {GgmlType::MXFP4, {32, 17}},
        {GgmlType::I8, {1, 1}},         {GgmlType::I16, {1, 2}},       {GgmlType::I32, {1, 4}},
        {GgmlType::I64, {1, 8}},        {GgmlType::F64, {1, 8}},
    };
    int n_known = 0;
    for (uint32_t id = 0; id < 64; ++id) {
        const TypeTraits* t = find_type_traits(id);
        if (!t) continue;
        ++n_known;
        EXPECT_EQ(uint32_t(t->type), id);
        auto it = expected.find(t->type);
        ASSERT_NE(it, expected.end()) << t->name;
        EXPECT_EQ(t->block_size, it->second.first) << t->name;
        EXPECT_EQ(t->block_bytes, it->second.second) << t->name;
        EXPECT_EQ(type_from_name(t->name), t->type);
        if (t->supported) {
            EXPECT_TRUE(t->to_float && t->from_float && t->vec_dot) << t->name;
            const TypeTraits& vt = type_traits(t->vec_dot_type);
            EXPECT_TRUE(vt.supported && vt.from_float) << t->name;
            EXPECT_EQ(vt.block_size, t->block_size) << t->name;  // blocks pair up one to one
        } else {
            EXPECT_FALSE(t->to_float || t->vec_dot) << t->name;
        }
    }
    EXPECT_EQ(n_known, int(expected.size()));
    // Ids GGUF does not (or no longer) define.
    for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 40u, 1000u, 0xffffffffu})
        EXPECT_EQ(find_type_traits(id), nullptr) << id;
    EXPECT_THROW(type_traits(GgmlType(77)), Error);

    EXPECT_EQ(type_from_name("q4_k"), GgmlType::Q4_K);
    EXPECT_EQ(type_from_name("f16"), GgmlType::F16);
    EXPECT_EQ(type_from_name("Tq2_0"), GgmlType::TQ2_0);
    EXPECT_EQ(type_from_name("Q4_K_M"), std::nullopt);  // a file type mix, not a tensor type
    EXPECT_EQ(type_from_name(""), std::nullopt);
    EXPECT_EQ(std::string(type_name(GgmlType::IQ4_NL)), "IQ4_NL");
    EXPECT_EQ(row_bytes(GgmlType::Q4_K, 4096), 16u * 144u);
    EXPECT_EQ(row_bytes(GgmlType::F16, 10), 20u);
}

// ------------------------------------------------------------------ hand-built blocks (layouts)

TEST(QuantLayout, Q4_0NibbleOrder) {
    BlockQ4_0 b{};
    b.d = fp32_to_fp16(0.5f);
    b.qs[0] = 0x9F;  // weight 0: 15 - 8 = 7, weight 16: 9 - 8 = 1
    b.qs[15] = 0x08;  // weight 15: 0, weight 31: -8
    for (int j = 1; j < 15; ++j) b.qs[j] = 0x88;
    float y[32];
    quant::to_float_q4_0(&b, y, 32);
    EXPECT_EQ(y[0], 3.5f);
    EXPECT_EQ(y[16], 0.5f);
    EXPECT_EQ(y[15], 0.0f);
    EXPECT_EQ(y[31], -4.0f);
}

TEST(QuantLayout, Q5_0HighBits) {
    BlockQ5_0 b{};
    b.d = fp32_to_fp16(1.0f);
    const uint32_t qh = (1u << 3) | (1u << 20);  // weight 3 and weight 20 get bit 4
    std::memcpy(b.qh, &qh, 4);
    float y[32];
    quant::to_float_q5_0(&b, y, 32);
    EXPECT_EQ(y[3], 0.0f);    // 16 - 16
    EXPECT_EQ(y[20], 0.0f);
    EXPECT_EQ(y[4], -16.0f);  // 0 - 16
    EXPECT_EQ(y[19], -16.0f);
}

TEST(QuantLayout, Q4_KScalesAndOrder) {
    BlockQ4_K b{};
    b.d = fp32_to_fp16(1.0f);
    b.dmin = fp32_to_fp16(1.0f);
    // sub-block 1: scale 2, min 3; sub-block 6: scale 0x25 (37), min 0x31 (49)
    b.scales[1] = 2;
    b.scales[5] = 3;
    b.scales[10] = 0x15;                 // low nibbles: scale 5, min 1
    b.scales[2] |= uint8_t(0x2 << 6);    // scale top bits 2 -> 0x25
    b.scales[6] |= uint8_t(0x3 << 6);    // min top bits 3 -> 0x31
    b.qs[0] = 0x70;   // weight 0 (sub 0) = 0, weight 32 (sub 1) = 7
    b.qs[96 + 1] = 0x40;  // weight 193 (sub 6) = 0, weight 225 (sub 7) = 4
    float y[256];
    quant::to_float_q4_K(&b, y, 256);
    EXPECT_EQ(y[32], 2.0f * 7 - 3);
    EXPECT_EQ(y[0], 0.0f);
    EXPECT_EQ(y[193], -49.0f);
    uint8_t sc, mn;
    k4_scale_min(6, b.scales, sc, mn);
    EXPECT_EQ(sc, 0x25);
    EXPECT_EQ(mn, 0x31);
    EXPECT_EQ(y[225], 0.0f);  // sub 7: scale 0, min 0
}

TEST(QuantLayout, Q5_KHighBits) {
    BlockQ5_K b{};
    b.d = fp32_to_fp16(1.0f);
    for (int j = 0; j < 4; ++j) b.scales[j] = 1;                           // scales 0..3 = 1
    for (int j = 8; j < 12; ++j) b.scales[j] = 1;                          // scales 4..7 = 1
    b.qh[7] = 1 << 3;  // pair p = 1, high half: weight 64 + 32 + 7 = 103
    float y[256];
    quant::to_float_q5_K(&b, y, 256);
    for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], i == 103 ? 16.0f : 0.0f) << i;
}

TEST(QuantLayout, Q3_KHmaskAndScales) {
    BlockQ3_K b{};
    b.d = fp32_to_fp16(1.0f);
    // all scales = 33 (-> +1): low nibble 1, top bits 2 (0b10 -> 32)
    for (int j = 0; j < 8; ++j) b.scales[j] = 0x11;
    for (int j = 8; j < 12; ++j) b.scales[j] = 0xAA;
    EXPECT_EQ(q3k_scale(13, b.scales), 33);
    b.hmask[5] = 1 << 6;   // weight 6*32 + 5 = 197: high bit set
    b.qs[32 + 5] = 3 << 4;  // weight 128 + 2*32 + 5 = 197: low bits 3
    float y[256];
    quant::to_float_q3_K(&b, y, 256);
    EXPECT_EQ(y[197], 3.0f);
    EXPECT_EQ(y[0], -4.0f);
}

TEST(QuantLayout, Q6_KOrder) {
    BlockQ6_K b{};
    b.d = fp32_to_fp16(1.0f);
    for (int j = 0; j < 16; ++j) b.scales[j] = int8_t(j + 1);
    // weight 128 + 64 + 9 = 201 (half 1, slot 2): low nibble = high nibble of ql[64 + 9],
    // top bits at bit 4 of qh[32 + 9]
    b.ql[64 + 9] = 0x50;
    b.qh[32 + 9] = 2 << 4;
    float y[256];
    quant::to_float_q6_K(&b, y, 256);
    EXPECT_EQ(y[201], float(201 / 16 + 1) * ((0x5 | (2 << 4)) - 32));
    EXPECT_EQ(y[0], -32.0f);
}

TEST(QuantLayout, Q2_KOrder) {
    BlockQ2_K b{};
    b.d = fp32_to_fp16(1.0f);
    b.dmin = fp32_to_fp16(0.5f);
    for (int j = 0; j < 16; ++j) b.scales[j] = uint8_t(0x21);  // scale 1, min 2 -> -1
    b.qs[32 + 3] = 3 << 6;  // weight 128 + 96 + 3 = 227
    float y[256];
    quant::to_float_q2_K(&b, y, 256);
    EXPECT_EQ(y[227], 2.0f);
    EXPECT_EQ(y[226], -1.0f);
}

TEST(QuantLayout, TQ1_0Trits) {
    // A byte of trits t0..t4 (t0 most significant) stores ceil(v * 256 / 243).
    auto byte_of = [](std::initializer_list<int> trits) {
        int v = 0;
        for (int t : trits) v = v * 3 + t;
        return uint8_t((v * 256 + 242) / 243);
    };
    BlockTQ1_0 b{};
    b.d = fp32_to_fp16(2.0f);
    for (uint8_t& q : b.qs) q = byte_of({1, 1, 1, 1, 1});     // all zero weights
    for (uint8_t& q : b.qh) q = byte_of({1, 1, 1, 1, 0});     // 4 trits + padding
    b.qs[3] = byte_of({2, 1, 0, 1, 2});
    EXPECT_EQ(b.qs[3], 205);  // 194 * 256 / 243 = 204.4 -> 205
    b.qh[2] = byte_of({2, 1, 1, 0, 0});
    float y[256];
    quant::to_float_tq1_0(&b, y, 256);
    EXPECT_EQ(y[3], 2.0f);
    EXPECT_EQ(y[35], 0.0f);
    EXPECT_EQ(y[67], -2.0f);
    EXPECT_EQ(y[99], 0.0f);
    EXPECT_EQ(y[131], 2.0f);
    EXPECT_EQ(y[4], 0.0f);
    // qh[2] trits (2,1,1,0): weights 242, 246, 250, 254
    EXPECT_EQ(y[242], 2.0f);
    EXPECT_EQ(y[246], 0.0f);
    EXPECT_EQ(y[250], 0.0f);
    EXPECT_EQ(y[254], -2.0f);
    EXPECT_EQ(y[243], 0.0f);
}

TEST(QuantLayout, TQ2_0Order) {
    BlockTQ2_0 b{};
    b.d = fp32_to_fp16(1.0f);
    std::memset(b.qs, 0x55, sizeof b.qs);  // all trits 1 -> 0
    b.qs[32 + 7] = uint8_t(0x55 & ~(3 << 4)) | uint8_t(2 << 4);  // weight 128 + 64 + 7 = 199 -> +1
    float y[256];
    quant::to_float_tq2_0(&b, y, 256);
    for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], i == 199 ? 1.0f : 0.0f) << i;
}

TEST(QuantLayout, IQ4_NLLevels) {
    BlockIQ4_NL b{};
    b.d = fp32_to_fp16(0.25f);
    b.qs[2] = 0xF0;  // weight 2 -> level 0 (-127), weight 18 -> level 15 (113)
    float y[32];
    quant::to_float_iq4_nl(&b, y, 32);
    EXPECT_EQ(y[2], -127 * 0.25f);
    EXPECT_EQ(y[18], 113 * 0.25f);
}

// Activation formats carry their block sums.
TEST(QuantActivations, Q8_KBsumsAndQ8_1Sum) {
    const std::vector<float> x = gaussian(512, 7);
    std::vector<BlockQ8_K> k(2);
    quant::from_float_q8_K(x.data(), k.data(), 512);
    for (const BlockQ8_K& b : k)
        for (int j = 0; j < 16; ++j) {
            int s = 0;
            for (int l = 0; l < 16; ++l) s += b.qs[16 * j + l];
            EXPECT_EQ(b.bsums[j], s);
        }
    std::vector<BlockQ8_1> one(16);
    quant::from_float_q8_1(x.data(), one.data(), 512);
    for (const BlockQ8_1& b : one) {
        int s = 0;
        for (int8_t q : b.qs) s += q;
        EXPECT_NEAR(fp16_to_fp32(b.s), s * fp16_to_fp32(b.d), std::fabs(s * fp16_to_fp32(b.d)) * 2e-3 + 1e-6);
    }
    // The largest magnitude maps to exactly -127 / +127, never -128.
    for (const BlockQ8_K& b : k)
        for (int8_t q : b.qs) EXPECT_GE(q, -127);
}

// ---------------------------------------------------------------------------------- round trips

class QuantType : public testing::TestWithParam<TypeCase> {};

TEST_P(QuantType, GaussianRoundTrip) {
    const GgmlType t = GetParam().type;
    const std::vector<float> x = gaussian(4096, 1234);
    const std::vector<float> y = round_trip(t, x);
    ASSERT_TRUE(all_finite(y));
    const double e = rel_rmse(x, y);
    std::printf("[ rmse     ] %-6s N(0,1) rel-RMSE %.5f (bound %.4g)\n", type_name(t), e, GetParam().rmse_bound);
    EXPECT_LE(e, GetParam().rmse_bound);
    // Re-quantizing the dequantized values (already near the grid) loses no more.
    const std::vector<float> z = round_trip(t, y);
    EXPECT_LE(rel_rmse(y, z), GetParam().rmse_bound);
}

TEST_P(QuantType, ZerosStayZero) {
    const GgmlType t = GetParam().type;
    const std::vector<float> x(512, 0.0f);
    const std::vector<float> y = round_trip(t, x);
    for (float v : y) ASSERT_EQ(v, 0.0f) << type_name(t);
}

TEST_P(QuantType, Constant) {
    const GgmlType t = GetParam().type;
    for (float c : {0.5f, -1.25f}) {
        const std::vector<float> x(512, c);
        const std::vector<float> y = round_trip(t, x);
        ASSERT_TRUE(all_finite(y));
        // A constant is on every format's grid (up to fp16 rounding of the scale).
        const double e = rel_rmse(x, y);
        std::printf("[ rmse     ] %-6s constant %+.2f rel-RMSE %.5f\n", type_name(t), c, e);
        EXPECT_LE(e, 0.02) << type_name(t) << " c=" << c;
    }
}

TEST_P(QuantType, HugeOutlier) {
    const GgmlType t = GetParam().type;
    std::vector<float> x = gaussian(1024, 99);
    const size_t at = 300;  // in the second 256-weight block
    x[at] = 1000.0f;
    const std::vector<float> y = round_trip(t, x);
    ASSERT_TRUE(all_finite(y));
    // The outlier itself survives (it sets its block's scale)...
    const double tol = t == GgmlType::Q2_K ? 0.1 : (t == GgmlType::Q3_K ? 0.05 : 0.01);
    EXPECT_NEAR(y[at], 1000.0f, 1000.0 * tol) << type_name(t);
    // ... and blocks without it keep their usual accuracy (K-quant scales are per 256).
    const double e = std::max(rel_rmse(x, y, 0, 256), rel_rmse(x, y, 512, x.size()));
    EXPECT_LE(e, GetParam().rmse_bound) << type_name(t);
}

TEST_P(QuantType, TinyValues) {
    const GgmlType t = GetParam().type;
    for (float scale : {1e-3f, 1e-6f}) {
        const std::vector<float> x = gaussian(1024, 5, scale);
        const std::vector<float> y = round_trip(t, x);
        ASSERT_TRUE(all_finite(y)) << type_name(t);
        const double e = rel_rmse(x, y);
        std::printf("[ rmse     ] %-6s N(0,%g) rel-RMSE %.5f\n", type_name(t), double(scale), e);
        if (scale == 1e-3f) {
            // fp16 block scales are still (sub)normal numbers with enough precision here.
            EXPECT_LE(e, std::max(GetParam().rmse_bound * 1.5, 0.01)) << type_name(t);
        } else {
            // 1e-6: fp16 block scales fall below the smallest subnormal (6e-8) and round
            // to zero or to one subnormal step, exactly as in the reference quantizer
            // (we keep its bytes). Worst case measured: Q4_K/Q5_K at 3.2, where d
            // flushes to 0 but dmin rounds up to 6e-8, so every weight becomes -63*dmin.
            // All we ask: finite, and bounded.
            EXPECT_LE(e, 4.0) << type_name(t);
        }
    }
}

// ---------------------------------------------------------------------------------- vec_dot

TEST_P(QuantType, VecDotMatchesDequantized) {
    const GgmlType t = GetParam().type;
    const TypeTraits& tt = type_traits(t);
    const GgmlType at = tt.vec_dot_type;
    for (int64_t n : {256, 1024, 4096}) {
        const std::vector<float> w = gaussian(n, uint32_t(n) + 1);
        const std::vector<float> x = gaussian(n, uint32_t(n) + 2);
        const std::vector<uint8_t> wq = quantize(t, w);
        const std::vector<uint8_t> xq = quantize(at, x);
        const std::vector<float> wd = dequantize(t, wq.data(), n);
        const std::vector<float> xd = dequantize(at, xq.data(), n);

        const float got = tt.vec_dot(n, wq.data(), xq.data());
        double exact_q = 0, exact = 0, abs_sum = 0, norm_w = 0, norm_x = 0;
        for (int64_t i = 0; i < n; ++i) {
            exact_q += double(wd[i]) * xd[i];
            exact += double(wd[i]) * x[i];
            abs_sum += std::fabs(double(wd[i]) * xd[i]);
            norm_w += double(wd[i]) * wd[i];
            norm_x += double(x[i]) * x[i];
        }
        // 1) Against the dequantized activations: only float rounding separates them
        //    (plus, for Q8_1, the fp16 rounding of each block's stored sum s).
        double tol = 1e-5 * abs_sum + 1e-6;
        if (at == GgmlType::Q8_1) {
            const BlockQ8_1* xb = reinterpret_cast<const BlockQ8_1*>(xq.data());
            for (int64_t b = 0; b < n / 32; ++b) {
                float lo = wd[size_t(32 * b)];
                for (int j = 0; j < 32; ++j) lo = std::min(lo, wd[size_t(32 * b + j)]);
                tol += std::fabs(lo) * std::fabs(fp16_to_fp32(xb[b].s)) * (1.0 / 2048) + 1e-4;
            }
        }
        EXPECT_NEAR(got, exact_q, tol) << type_name(t) << " n=" << n;
        // 2) Against the true activations: the activation quantization error
        //    |w . (x - x^)| <= |w| |x - x^| with |x - x^| <= 1% |x| for the Q8 formats.
        const double act_err = (at == GgmlType::F32) ? 1e-6 : (at == GgmlType::F16 ? 1e-3 : 1e-2);
        EXPECT_NEAR(got, exact, act_err * std::sqrt(norm_w * norm_x) + 1e-4) << type_name(t) << " n=" << n;
    }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantType, testing::ValuesIn(kTypes), case_name);

// Ternary data is exactly representable in the ternary types (and in Q2_K-style grids).
TEST(QuantTernary, ExactOnTernaryData) {
    std::mt19937 rng(3);
    std::vector<float> x(1024);
    for (size_t i = 0; i < x.size(); ++i) {
        const int t = int(rng() % 3) - 1;
        x[i] = 0.75f * float(t);
    }
    x[0] = 0.75f;  // every block must reach the maximum for d = max|x| to be exact
    x[256] = -0.75f;
    x[512] = 0.75f;
    x[768] = 0.75f;
    for (GgmlType t : {GgmlType::TQ1_0, GgmlType::TQ2_0}) {
        const std::vector<float> y = round_trip(t, x);
        for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], x[i]) << type_name(t) << " at " << i;
    }
}

// ---------------------------------------------------------------------------------- real files

std::string model_path(const std::string& name) { return shared_dir() + "/models/" + name; }

std::vector<float> tensor_floats(const GgufTensor& t) {
    return dequantize(t.type, t.data, t.n_elements());
}

// Error bound of each type relative to the F16 original, for the N(0, 0.02) weights of
// the synthetic models (same shape of distribution as the Gaussian test above).
double file_bound(GgmlType t) {
    for (const TypeCase& c : kTypes)
        if (c.type == t) return c.rmse_bound;
    return 0;
}

// Every tensor of a quantized file decodes to within its type's error of the F16
// original, and re-quantizing the F16 original reproduces the file's bytes exactly (same
// reference algorithm: a wrong layout or rounding rule breaks one or both).
void check_file_against_f16(const std::string& file, std::map<GgmlType, int>& types_seen) {
    const std::string f16_path = model_path("synth-tiny-F16.gguf");
    const std::string q_path = model_path(file);
    if (!std::filesystem::exists(f16_path) || !std::filesystem::exists(q_path))
        GTEST_SKIP() << "model files not found under " << shared_dir();
    auto f16 = GgufFile::open(f16_path);
    auto q = GgufFile::open(q_path);
    for (const GgufTensor& qt : q->tensors()) {
        ++types_seen[qt.type];
        const GgufTensor& ft = f16->tensor(qt.name);
        ASSERT_EQ(qt.n_elements(), ft.n_elements()) << qt.name;
        const std::vector<float> ref = tensor_floats(ft);
        const std::vector<float> got = tensor_floats(qt);
        ASSERT_TRUE(all_finite(got)) << qt.name;
        if (qt.type == ft.type) {
            EXPECT_EQ(std::memcmp(qt.data, ft.data, qt.nbytes), 0) << qt.name;
            continue;
        }
        const double e = rel_rmse(ref, got);
        EXPECT_LE(e, file_bound(qt.type)) << file << ": " << qt.name << " (" << type_name(qt.type) << ")";
        if (qt.name == "blk.0.attn_q.weight" || qt.name == "blk.0.ffn_down.weight" || qt.name == "output.weight")
            std::printf("[ file     ] %-24s %-24s %-5s rel-RMSE vs F16 %.5f\n", file.c_str(), qt.name.c_str(),
                        type_name(qt.type), e);

        // Re-quantize the F16 values row by row and compare bytes.
        const std::vector<uint8_t> mine = quantize(qt.type, ref);
        ASSERT_EQ(mine.size(), qt.nbytes) << qt.name;
        const size_t bb = type_traits(qt.type).block_bytes;
        size_t diff_blocks = 0;
        for (size_t off = 0; off < mine.size(); off += bb)
            if (std::memcmp(mine.data() + off, qt.data + off, bb) != 0) ++diff_blocks;
        EXPECT_EQ(diff_blocks, 0u) << file << ": " << qt.name << " (" << type_name(qt.type) << "): "
                                   << diff_blocks << " of " << mine.size() / bb << " blocks differ";
    }
}

TEST(QuantRealFiles, Q8_0) {
    std::map<GgmlType, int> seen;
    check_file_against_f16("synth-tiny-Q8_0.gguf", seen);
    EXPECT_GT(seen[GgmlType::Q8_0], 0);
}

TEST(QuantRealFiles, Q4_0) {
    std::map<GgmlType, int> seen;
    check_file_against_f16("synth-tiny-Q4_0.gguf", seen);
    EXPECT_GT(seen[GgmlType::Q4_0], 0);
}

TEST(QuantRealFiles, Q4_K_M) {
    std::map<GgmlType, int> seen;
    check_file_against_f16("synth-tiny-Q4_K_M.gguf", seen);
    EXPECT_GT(seen[GgmlType::Q4_K], 0);
    EXPECT_GT(seen[GgmlType::Q6_K], 0);
}

TEST(QuantRealFiles, TQ2_0) {
    std::map<GgmlType, int> seen;
    check_file_against_f16("synth-tiny-TQ2_0.gguf", seen);
    EXPECT_GT(seen[GgmlType::TQ2_0], 0);
}

// The ternary file's TQ2_0 tensors should still resemble the originals: the sign of every
// weight that TQ2_0 keeps non-zero agrees with the F16 weight.
TEST(QuantRealFiles, TQ2_0SignsAgree) {
    const std::string f16_path = model_path("synth-tiny-F16.gguf");
    const std::string q_path = model_path("synth-tiny-TQ2_0.gguf");
    if (!std::filesystem::exists(f16_path) || !std::filesystem::exists(q_path)) GTEST_SKIP();
    auto f16 = GgufFile::open(f16_path);
    auto q = GgufFile::open(q_path);
    const GgufTensor& qt = q->tensor("blk.0.attn_q.weight");
    ASSERT_EQ(qt.type, GgmlType::TQ2_0);
    const std::vector<float> ref = tensor_floats(f16->tensor("blk.0.attn_q.weight"));
    const std::vector<float> got = tensor_floats(qt);
    int nonzero = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        if (got[i] == 0) continue;
        ++nonzero;
        ASSERT_EQ(got[i] > 0, ref[i] > 0) << i;
    }
    EXPECT_GT(nonzero, 0);
}

}  // namespace
