// SIMD kernels against the scalar reference (quant/), at every level this CPU can run.
//
// Dot products: integer block sums are exact in both, so the only difference allowed is
// float summation order: |simd - ref| <= 1e-5 * sum_i |x_i| * (|w_i| + |offset_i|), where
// offset_i is the "min" part of weights that have one (K-quant dmin*m, Q4_1/Q5_1 m) —
// those are summed separately and can cancel against the rest.
// Activation quantizers: bytes must be identical to the reference (golden tests compare
// against another engine that uses the reference rounding).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/dispatch.h"
#include "quant/blocks.h"
#include "quant/types.h"
#include "util/fp16.h"

namespace pensieve {
namespace {

using T = GgmlType;

const KernelLevel kSimdLevels[] = {KernelLevel::Avx2, KernelLevel::Avx512};

// Types whose vec_dot every SIMD level must provide.
const T kDotTypes[] = {T::F32, T::F16,  T::BF16, T::Q4_0, T::Q4_1, T::Q5_0, T::Q5_1,
                       T::Q8_0, T::IQ4_NL, T::Q4_K, T::Q5_K, T::Q6_K, T::TQ2_0,
                       T::Q2_K, T::Q3_K, T::TQ1_0};

// ------------------------------------------------------------------ block fields

// Byte offsets of the fp16 scale fields in one block, and of the field that only scales
// the quants (zeroing it leaves just the offset part: Q4_1/Q5_1 m, K-quant -dmin*m).
struct ScaleFields {
    std::vector<int> fp16;
    int quant_scale = -1;  // fp16 field to zero for the offset part; -1: type has no offset
};

ScaleFields scale_fields(T t) {
    switch (t) {
        case T::Q4_0: case T::Q5_0: case T::Q8_0: case T::IQ4_NL: return {{0}, -1};
        case T::Q4_1: case T::Q5_1: return {{0, 2}, 0};
        case T::Q4_K: case T::Q5_K: return {{0, 2}, 0};
        case T::Q6_K: return {{offsetof(BlockQ6_K, d)}, -1};
        case T::TQ2_0: return {{offsetof(BlockTQ2_0, d)}, -1};
        case T::Q2_K: return {{offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)}, offsetof(BlockQ2_K, d)};
        case T::Q3_K: return {{offsetof(BlockQ3_K, d)}, -1};
        case T::TQ1_0: return {{offsetof(BlockTQ1_0, d)}, -1};
        default: return {{}, -1};
    }
}

void put_fp16(uint8_t* p, fp16_t h) { std::memcpy(p, &h, 2); }

// ------------------------------------------------------------------ data makers

struct Rows {
    std::vector<uint8_t> w, x;  // weight row (type t) and activation row (its vec_dot_type)
};

bool is_float_type(T t) { return t == T::F32 || t == T::F16 || t == T::BF16; }

// Random float values of moderate range for the float formats.
void fill_float_row(T t, int64_t n, std::mt19937& rng, std::vector<uint8_t>& out, float scale) {
    std::normal_distribution<float> g(0.0f, scale);
    std::vector<float> f(static_cast<size_t>(n));
    for (float& v : f) v = g(rng);
    out.resize(row_bytes(t, n));
    type_traits(t).from_float(f.data(), out.data(), n);
}

// Random weight bytes (every bit pattern of the quants), sane random fp16 scales.
void random_weights(T t, int64_t n, std::mt19937& rng, std::vector<uint8_t>& w) {
    if (is_float_type(t)) return fill_float_row(t, n, rng, w, 1.0f);
    const TypeTraits& tt = type_traits(t);
    w.resize(row_bytes(t, n));
    for (auto& b : w) b = uint8_t(rng());
    std::uniform_real_distribution<float> u(-0.05f, 0.05f);
    for (size_t blk = 0; blk < w.size() / tt.block_bytes; ++blk)
        for (int off : scale_fields(t).fp16) put_fp16(&w[blk * tt.block_bytes + off], fp32_to_fp16(u(rng)));
}

// Activations with consistent side data (Q8_1 s, Q8_K bsums); quants in -127..127 as the
// quantizers produce, or exactly `fixed_q` when given.
void make_activations(T xt, int64_t n, std::mt19937& rng, std::vector<uint8_t>& x, float d,
                      const int* fixed_q = nullptr) {
    std::uniform_int_distribution<int> q(-127, 127);
    x.resize(row_bytes(xt, n));
    auto next_q = [&](int64_t i) { return int8_t(fixed_q ? fixed_q[i % 2] : q(rng)); };
    if (xt == T::Q8_0 || xt == T::Q8_1) {
        const size_t bb = type_traits(xt).block_bytes;
        const int qs_off = xt == T::Q8_0 ? 2 : 4;
        for (int64_t b = 0; b < n / 32; ++b) {
            uint8_t* blk = &x[size_t(b) * bb];
            int sum = 0;
            for (int j = 0; j < 32; ++j) {
                const int8_t v = next_q(32 * b + j);
                blk[qs_off + j] = uint8_t(v);
                sum += v;
            }
            const fp16_t dh = fp32_to_fp16(d);
            put_fp16(blk, dh);
            if (xt == T::Q8_1) put_fp16(blk + 2, fp32_to_fp16(fp16_to_fp32(dh) * float(sum)));
        }
    } else if (xt == T::Q8_K) {
        auto* blocks = reinterpret_cast<BlockQ8_K*>(x.data());
        for (int64_t b = 0; b < n / QK_K; ++b) {
            blocks[b].d = d;
            for (int j = 0; j < QK_K; ++j) blocks[b].qs[j] = next_q(QK_K * b + j);
            for (int j = 0; j < QK_K / 16; ++j) {
                int s = 0;
                for (int l = 0; l < 16; ++l) s += blocks[b].qs[16 * j + l];
                blocks[b].bsums[j] = int16_t(s);
            }
        }
    }
}

// Tolerance scale: sum_i |x_i| * (|w_i| + |offset_i|), in double.
double magnitude(T t, int64_t n, const std::vector<uint8_t>& w, const std::vector<uint8_t>& x) {
    const TypeTraits& tt = type_traits(t);
    std::vector<float> wf(static_cast<size_t>(n)), xf(static_cast<size_t>(n)), off(static_cast<size_t>(n), 0.0f);
    tt.to_float(w.data(), wf.data(), n);
    type_traits(tt.vec_dot_type).to_float(x.data(), xf.data(), n);
    const ScaleFields sf = scale_fields(t);
    if (sf.quant_scale >= 0) {
        std::vector<uint8_t> w0 = w;
        for (size_t blk = 0; blk < w0.size() / tt.block_bytes; ++blk) put_fp16(&w0[blk * tt.block_bytes + sf.quant_scale], 0);
        tt.to_float(w0.data(), off.data(), n);
    }
    double m = 0;
    for (int64_t i = 0; i < n; ++i) m += std::fabs(double(xf[i])) * (std::fabs(double(wf[i])) + std::fabs(double(off[i])));
    return m;
}

// ------------------------------------------------------------------ dot product tests

struct DotParam {
    T type;
    KernelLevel level;
};

void PrintTo(const DotParam& p, std::ostream* os) { *os << type_name(p.type) << "/" << kernel_level_name(p.level); }

std::string dot_param_name(const ::testing::TestParamInfo<DotParam>& info) {
    return std::string(type_name(info.param.type)) + "_" + kernel_level_name(info.param.level);
}

class SimdDot : public ::testing::TestWithParam<DotParam> {
protected:
    void SetUp() override {
        if (!cpu_supports(GetParam().level)) GTEST_SKIP() << "CPU lacks " << kernel_level_name(GetParam().level);
        if (GetParam().type == T::BF16 && GetParam().level == KernelLevel::Avx512 && !cpu_features().avx512_bf16)
            GTEST_SKIP() << "CPU lacks AVX512_BF16";
        simd_ = vec_dot_at(GetParam().type, GetParam().level);
        if (!simd_ && GetParam().level == KernelLevel::Avx512 &&
            (GetParam().type == T::Q4_1 || GetParam().type == T::Q5_1))
            GTEST_SKIP() << "no AVX-512 kernel by design (AVX2 is faster)";
        ASSERT_NE(simd_, nullptr) << "no " << kernel_level_name(GetParam().level) << " kernel";
        ref_ = vec_dot_at(GetParam().type, KernelLevel::Scalar);
    }

    // Compares SIMD with the reference on one pair of rows.
    void check(int64_t n, const std::vector<uint8_t>& w, const std::vector<uint8_t>& x, const std::string& what) {
        const T t = GetParam().type;
        const float ref = ref_(n, w.data(), x.data());
        const float got = simd_(n, w.data(), x.data());
        const double tol = 1e-5 * magnitude(t, n, w, x) + 1e-30;
        ASSERT_TRUE(std::isfinite(ref)) << what;
        EXPECT_NEAR(got, ref, tol) << what << " n=" << n;
    }

    T xtype() const { return type_traits(GetParam().type).vec_dot_type; }
    int64_t block() const { return type_traits(xtype()).block_size; }

    VecDotFn simd_ = nullptr, ref_ = nullptr;
};

TEST_P(SimdDot, RandomRows) {
    const T t = GetParam().type;
    std::mt19937 rng(1234 + int(t));
    std::vector<uint8_t> w, x;
    // n: one block, an odd count of blocks (tails of the unrolled loops), a model row
    const int64_t bs = is_float_type(t) ? 32 : block();
    for (int64_t nblocks : {1, 2, 3, 5, 7, 33, 128}) {
        const int64_t n = nblocks * bs;
        for (int rep = 0; rep < 20; ++rep) {
            random_weights(t, n, rng, w);
            if (is_float_type(t)) fill_float_row(t, n, rng, x, 2.0f);
            else make_activations(xtype(), n, rng, x, 0.001f + 0.01f * float(rep));
            check(n, w, x, "random rep " + std::to_string(rep));
        }
    }
    if (!is_float_type(t)) return;
    for (int64_t n : {1, 3, 8, 15, 16, 17, 31, 63, 65, 127, 129, 4101}) {  // float formats take any n
        fill_float_row(t, n, rng, w, 1.0f);
        fill_float_row(t, n, rng, x, 1.0f);
        check(n, w, x, "tail");
    }
}

TEST_P(SimdDot, QuantizedFromFloats) {  // activations from the reference quantizer, as matmul makes them
    const T t = GetParam().type;
    std::mt19937 rng(99 + int(t));
    std::normal_distribution<float> g(0.0f, 1.0f);
    const int64_t n = 4096;
    std::vector<float> xf(n);
    std::vector<uint8_t> w, x(row_bytes(xtype(), n));
    for (int rep = 0; rep < 10; ++rep) {
        for (float& v : xf) v = g(rng);
        type_traits(xtype()).from_float(xf.data(), x.data(), n);
        random_weights(t, n, rng, w);
        check(n, w, x, "rep " + std::to_string(rep));
    }
}

TEST_P(SimdDot, EdgeCases) {
    const T t = GetParam().type;
    std::mt19937 rng(5);
    const int64_t n = (is_float_type(t) ? 32 : block()) * 9;
    std::vector<uint8_t> w, x;
    const size_t wbytes = row_bytes(t, n);

    if (is_float_type(t)) {
        // zeros; largest finite values of the format; tiny normals
        const std::vector<float> values = {0.0f, 65504.0f, -65504.0f, 6.1035156e-05f, 1.0e-3f};
        for (float a : values)
            for (float b : values) {
                std::vector<float> fa(n, a), fb(n, b);
                for (int64_t i = 1; i < n; i += 2) fb[size_t(i)] = -b;  // alternate signs: cancellation
                w.resize(wbytes);
                x.resize(wbytes);
                type_traits(t).from_float(fa.data(), w.data(), n);
                type_traits(t).from_float(fb.data(), x.data(), n);
                check(n, w, x, "extremes " + std::to_string(a) + " " + std::to_string(b));
            }
        return;
    }

    const TypeTraits& tt = type_traits(t);
    const ScaleFields sf = scale_fields(t);
    auto set_scales = [&](fp16_t h) {
        for (size_t blk = 0; blk < wbytes / tt.block_bytes; ++blk)
            for (int off : sf.fp16) put_fp16(&w[blk * tt.block_bytes + off], h);
    };

    // All zeros.
    w.assign(wbytes, 0);
    const int zero_q[2] = {0, 0};
    make_activations(xtype(), n, rng, x, 0.0f, zero_q);
    check(n, w, x, "zeros");

    // Largest-magnitude quants: every weight bit set / clear, activations at +-127.
    const int plus[2] = {127, 127}, minus[2] = {-127, -127}, alt[2] = {127, -127};
    for (uint8_t fill : {uint8_t(0x00), uint8_t(0xFF), uint8_t(0x80), uint8_t(0x7F), uint8_t(0x0F), uint8_t(0xF0)})
        for (const int* q : {plus, minus, alt}) {
            w.assign(wbytes, fill);
            set_scales(fp32_to_fp16(0.5f));
            make_activations(xtype(), n, rng, x, 0.25f, q);
            check(n, w, x, "fill " + std::to_string(fill) + " q " + std::to_string(q[0]) + "," + std::to_string(q[1]));
        }

    // Scales at fp16 extremes (largest finite, smallest normal, a subnormal, negative max).
    for (fp16_t h : {fp16_t(0x7BFF), fp16_t(0x0400), fp16_t(0x0001), fp16_t(0xFBFF)}) {
        random_weights(t, n, rng, w);
        set_scales(h);
        // largest activation scale whose side data stays finite (Q8_1 s = d * sum q is fp16)
        const float big = xtype() == T::Q8_K ? 1.0e4f : xtype() == T::Q8_1 ? 10.0f : 60000.0f;
        make_activations(xtype(), n, rng, x, big);
        check(n, w, x, "fp16 scale " + std::to_string(h));
        make_activations(xtype(), n, rng, x, 6.1035156e-05f);
        check(n, w, x, "fp16 scale small act " + std::to_string(h));
    }
}

// F32/F16 and the 32-weight formats add in the same order at every SIMD level, so
// results do not depend on the machine: AVX2 and AVX-512 must agree bit for bit.
TEST(SimdDotOrder, IdenticalAcrossLevels) {
    if (!cpu_supports(KernelLevel::Avx512)) GTEST_SKIP() << "CPU lacks avx512";
    std::mt19937 rng(11);
    std::vector<uint8_t> w, x;
    for (T t : {T::F32, T::F16, T::Q4_0, T::Q8_0, T::Q5_0, T::IQ4_NL})
        for (int64_t nb : {1, 2, 3, 5, 6, 7, 128, 131}) {
            const int64_t n = nb * (is_float_type(t) ? 16 : 32) + (is_float_type(t) && nb % 2 ? 4 : 0);
            random_weights(t, n, rng, w);
            if (is_float_type(t)) fill_float_row(t, n, rng, x, 1.0f);
            else make_activations(type_traits(t).vec_dot_type, n, rng, x, 0.01f);
            const float a = vec_dot_at(t, KernelLevel::Avx2)(n, w.data(), x.data());
            const float b = vec_dot_at(t, KernelLevel::Avx512)(n, w.data(), x.data());
            EXPECT_EQ(a, b) << type_name(t) << " n=" << n;
        }
}

// The F16 and BF16 dot tiles (several rows x tokens at once, matmul's path without a
// gemm) give vec_dot's bits for every pair, at every tile shape, for sizes on and off
// the fast paths (F16: n % 16; BF16: 128-value steps, 32-value steps, masked tail).
class SimdDotTile : public ::testing::TestWithParam<T> {};

TEST_P(SimdDotTile, TileIsVecDotPairByPair) {
    if (active_kernel_level() < KernelLevel::Avx512) GTEST_SKIP() << "no avx512 kernels here";
    const T type = GetParam();
    const TypeKernels& k = kernels_for(type);
    ASSERT_NE(k.dot_tile.fn, nullptr);
    const int rows = k.dot_tile.rows, tokens = k.dot_tile.tokens;
    std::mt19937 rng(5);
    for (int64_t n : {16, 48, 2048, 2052, 40, 160, 200}) {
        const size_t rb = size_t(n) * 2;  // F16 and BF16: 2 bytes a value
        std::vector<uint8_t> w, x, row;
        for (int r = 0; r < std::max(rows, tokens); ++r) {
            random_weights(type, n, rng, row);
            w.insert(w.end(), row.begin(), row.end());
            fill_float_row(type, n, rng, row, 1.0f);
            x.insert(x.end(), row.begin(), row.end());
        }
        for (int nr = 1; nr <= rows; ++nr)
            for (int nt = 1; nt <= tokens; ++nt) {
                const int64_t ldy = 7;
                std::vector<float> y(size_t(ldy) * size_t(tokens), -1.0f);
                k.dot_tile.fn(n, w.data(), rb, nr, x.data(), rb, nt, y.data(), ldy);
                for (int r = 0; r < nr; ++r)
                    for (int t = 0; t < nt; ++t)
                        EXPECT_EQ(y[size_t(t * ldy + r)], k.vec_dot(n, w.data() + r * rb, x.data() + t * rb))
                            << "n=" << n << " tile " << nr << "x" << nt << " (" << r << ", " << t << ")";
                EXPECT_EQ(y[size_t(nr)], -1.0f) << "wrote past the tile";
            }
    }
}

INSTANTIATE_TEST_SUITE_P(Kernels, SimdDotTile, ::testing::Values(T::F16, T::BF16),
                         [](const auto& info) { return std::string(type_name(info.param)); });

std::vector<DotParam> dot_params() {
    std::vector<DotParam> p;
    for (KernelLevel l : kSimdLevels)
        for (T t : kDotTypes) p.push_back({t, l});
    return p;
}

INSTANTIATE_TEST_SUITE_P(Kernels, SimdDot, ::testing::ValuesIn(dot_params()), dot_param_name);

// ------------------------------------------------------------------ activation quantizers

struct QuantParam {
    T type;
    KernelLevel level;
};

void PrintTo(const QuantParam& p, std::ostream* os) { *os << type_name(p.type) << "/" << kernel_level_name(p.level); }

std::string quant_param_name(const ::testing::TestParamInfo<QuantParam>& info) {
    return std::string(type_name(info.param.type)) + "_" + kernel_level_name(info.param.level);
}

class SimdQuantize : public ::testing::TestWithParam<QuantParam> {
protected:
    void SetUp() override {
        if (!cpu_supports(GetParam().level)) GTEST_SKIP() << "CPU lacks " << kernel_level_name(GetParam().level);
        simd_ = from_float_at(GetParam().type, GetParam().level);
        ASSERT_NE(simd_, nullptr);
        ref_ = from_float_at(GetParam().type, KernelLevel::Scalar);
    }

    void check(const std::vector<float>& src, const std::string& what) {
        const T t = GetParam().type;
        const int64_t n = int64_t(src.size());
        std::vector<uint8_t> a(row_bytes(t, n), 0xAA), b(row_bytes(t, n), 0x55);
        ref_(src.data(), a.data(), n);
        simd_(src.data(), b.data(), n);
        ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size())) << what;
    }

    FromFloatFn simd_ = nullptr, ref_ = nullptr;
};

TEST_P(SimdQuantize, RandomRowsByteIdentical) {
    std::mt19937 rng(42);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::uniform_int_distribution<int> e(-40, 40);
    const int64_t n = 4096;
    std::vector<float> src(n);
    for (int rep = 0; rep < 300; ++rep) {
        const float scale = std::ldexp(1.0f, e(rng));  // magnitudes 2^-40 .. 2^40
        for (float& v : src) v = (rep % 2 ? g(rng) : u(rng)) * scale;
        check(src, "rep " + std::to_string(rep));
    }
}

TEST_P(SimdQuantize, EdgeRowsByteIdentical) {
    const T t = GetParam().type;
    const int64_t n = 1024;
    std::vector<float> src(n);
    check(std::vector<float>(n, 0.0f), "zeros");
    check(std::vector<float>(n, -0.0f), "negative zeros");
    check(std::vector<float>(n, 3.0f), "constant");

    // Half-way ties: the scale is exactly 1 (Q8_0: amax 127; Q8_K: max -127), so
    // k + 0.5 lands on a tie (Q8_0 rounds away from zero, Q8_K to even).
    for (int64_t i = 0; i < n; ++i) src[size_t(i)] = float(int(i % 253) - 126) + 0.5f * float(i % 3 == 0 ? 1 : -1);
    for (int64_t b = 0; b < n; b += 32) src[size_t(b)] = t == T::Q8_0 ? 127.0f : -127.0f;
    check(src, "ties");

    // Opposite-sign maxima of equal magnitude: the first one sets the sign of the scale.
    std::fill(src.begin(), src.end(), 0.25f);
    for (int64_t b = 0; b < n; b += 256) {
        src[size_t(b + 5)] = -3.0f;
        src[size_t(b + 100)] = 3.0f;
    }
    check(src, "equal opposite maxima");
    for (int64_t b = 0; b < n; b += 256) std::swap(src[size_t(b + 5)], src[size_t(b + 100)]);
    check(src, "equal opposite maxima swapped");

    // One non-zero per block; tiny and large values.
    std::fill(src.begin(), src.end(), 0.0f);
    for (int64_t b = 0; b < n; b += 32) src[size_t(b + b / 32 % 32)] = float(b + 1);
    check(src, "one per block");
    // (Not smaller: below ~1e-37 the reference's 1/d overflows to inf and 0*inf is NaN.)
    for (int64_t i = 0; i < n; ++i) src[size_t(i)] = float(i % 7 - 3) * 1e-36f;
    check(src, "tiny");
    for (int64_t i = 0; i < n; ++i) src[size_t(i)] = float(i % 11 - 5) * 1e6f;
    check(src, "large");
}

std::vector<QuantParam> quant_params() {
    std::vector<QuantParam> p;
    for (KernelLevel l : kSimdLevels)
        for (T t : {T::Q8_0, T::Q8_K}) p.push_back({t, l});
    return p;
}

INSTANTIATE_TEST_SUITE_P(Kernels, SimdQuantize, ::testing::ValuesIn(quant_params()), quant_param_name);

// ------------------------------------------------------------------ dispatch

TEST(KernelDispatch, ChoosesSimdWhereAvailable) {
    const KernelLevel level = active_kernel_level();
    for (T t : kDotTypes) {
        const TypeKernels& k = kernels_for(t);
        ASSERT_NE(k.vec_dot, nullptr) << type_name(t);
        EXPECT_LE(k.vec_dot_level, level) << type_name(t);
        if (level >= KernelLevel::Avx2 && t != T::F32) {  // F32: reference kept on purpose (dispatch.cpp)
            EXPECT_NE(k.vec_dot_level, KernelLevel::Scalar) << type_name(t);
        }
    }
    // Types without SIMD kernels still get the reference.
    EXPECT_EQ(kernels_for(T::Q8_K).vec_dot, type_traits(T::Q8_K).vec_dot);
    EXPECT_NE(describe_kernels().find("Q4_K"), std::string::npos);
}

TEST(KernelDispatch, ScalarIsTheReference) {
    for (T t : kDotTypes) EXPECT_EQ(vec_dot_at(t, KernelLevel::Scalar), type_traits(t).vec_dot);
    EXPECT_EQ(from_float_at(T::Q8_K, KernelLevel::Scalar), type_traits(T::Q8_K).from_float);
}

}  // namespace
}  // namespace pensieve
