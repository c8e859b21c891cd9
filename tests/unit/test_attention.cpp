// fp16-cache attention: the GQA/tile kernels (one K/V row load shared by the query heads
// of a group and by a tile of tokens) must give exactly the bits of the one-head loop
// they replaced, whatever the group size, head size, tile size or prefix length. The
// reference below is that loop, kept verbatim; results are compared with memcmp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_simd.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "util/fp16.h"

namespace pensieve {
namespace {

std::vector<float> random_floats(std::mt19937& rng, size_t n, float sigma) {
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

std::vector<fp16_t> random_halves(std::mt19937& rng, size_t n, float sigma) {
    std::vector<fp16_t> v(n);
    std::normal_distribution<float> dist(0.0f, sigma);
    for (fp16_t& h : v) h = fp32_to_fp16(dist(rng));
    return v;
}

bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

// The per-(token, head) loop of LlamaModel::attend_f16 before tiling.
void reference_head(const float* q, int hd, const fp16_t* const* k_rows, const fp16_t* const* v_rows, int n_pos,
                    float scale, float* out) {
    std::vector<float> qh(static_cast<size_t>(hd)), scores(static_cast<size_t>(n_pos)), acc(static_cast<size_t>(hd), 0.0f);
    for (int i = 0; i < hd; ++i) qh[size_t(i)] = fp16_to_fp32(fp32_to_fp16(q[i]));
    for (int j = 0; j < n_pos; ++j) scores[size_t(j)] = dot_f32_f16(qh.data(), k_rows[j], hd) * scale;
    softmax_scores(scores.data(), n_pos);  // the one attention softmax (tested against softmax() below)
    for (int j = 0; j < n_pos; ++j) {
        const float p = fp16_to_fp32(fp32_to_fp16(scores[size_t(j)]));
        axpy_f16(p, v_rows[j], acc.data(), hd);
    }
    std::copy(acc.begin(), acc.end(), out);
}

// Rows of one KV head, scattered in memory (each row its own offset in a bigger buffer,
// like cache rows of one head inside kv_dim-wide rows of paged blocks).
struct Rows {
    std::vector<fp16_t> data;
    std::vector<const fp16_t*> ptr;
    Rows(std::mt19937& rng, int n_rows, int hd, int row_stride) {
        data = random_halves(rng, size_t(n_rows) * size_t(row_stride), 1.0f);
        std::vector<int> slot(static_cast<size_t>(n_rows));
        for (int j = 0; j < n_rows; ++j) slot[size_t(j)] = j;
        std::shuffle(slot.begin(), slot.end(), rng);
        const int offset = row_stride - hd;  // the head's slice is not at the row start
        for (int j = 0; j < n_rows; ++j) ptr.push_back(&data[size_t(slot[size_t(j)]) * size_t(row_stride) + size_t(offset)]);
    }
};

TEST(AttentionKernels, RowsMatchOneQueryKernels) {
    std::mt19937 rng(7);
    for (int n : {8, 16, 24, 40, 64, 80, 128, 6, 12, 20}) {
        for (int nq : {1, 2, 3, 4, 5, 7, 8, 9}) {
            for (int n_rows : {1, 3, 7, 8, 9, 16, 17, 33}) {
                Rows k(rng, n_rows, n, n + 8);
                const std::vector<float> q = random_floats(rng, size_t(nq) * size_t(n), 1.0f);
                const size_t stride = size_t(n_rows) + 3;
                std::vector<float> got(size_t(nq) * stride, -1.0f), want = got;
                dot_f32_f16_rows(q.data(), nq, k.ptr.data(), n_rows, n, 0.125f, got.data(), stride);
                for (int g = 0; g < nq; ++g)
                    for (int r = 0; r < n_rows; ++r)
                        want[size_t(g) * stride + size_t(r)] = dot_f32_f16(&q[size_t(g) * size_t(n)], k.ptr[size_t(r)], n) * 0.125f;
                ASSERT_TRUE(same_bits(got.data(), want.data(), got.size())) << "dot n=" << n << " nq=" << nq << " rows=" << n_rows;

                const std::vector<float> p = random_floats(rng, size_t(nq) * stride, 0.3f);
                std::vector<float> acc_got = random_floats(rng, size_t(nq) * size_t(n), 1.0f), acc_want = acc_got;
                axpy_f16_rows(p.data(), stride, nq, k.ptr.data(), n_rows, n, acc_got.data());
                for (int g = 0; g < nq; ++g)
                    for (int r = 0; r < n_rows; ++r)
                        axpy_f16(p[size_t(g) * stride + size_t(r)], k.ptr[size_t(r)], &acc_want[size_t(g) * size_t(n)], n);
                ASSERT_TRUE(same_bits(acc_got.data(), acc_want.data(), acc_got.size()))
                    << "axpy n=" << n << " nq=" << nq << " rows=" << n_rows;
            }
        }
    }
}

// Each SIMD level's row kernels, called directly (the public functions use only the
// best level): AVX2 and AVX-512 must give the bits of the one-query kernels, and both
// must be within float rounding of a scalar double-precision reference: |error| <=
// 1e-6 * sum |terms| (fp32 accumulation over at most 128 terms stays below ~1.5e-5 of
// it in the worst case; random signs keep it near 1e-7).
TEST(AttentionKernels, EachLevelMatchesOneQueryKernelsAndScalar) {
    struct Level { const char* name; simd::DotRowsFn dot; simd::AxpyRowsFn axpy; };
    std::vector<Level> levels{{"avx2", simd::avx2_dot_f32_f16_rows, simd::avx2_axpy_f16_rows}};
    if (cpu_supports(KernelLevel::Avx512))
        levels.push_back({"avx512", simd::avx512_dot_f32_f16_rows, simd::avx512_axpy_f16_rows});
    std::mt19937 rng(5);
    for (const Level& level : levels) {
        for (int n : {8, 16, 24, 40, 64, 72, 80, 128, 136, 256}) {
            for (int nq : {1, 2, 3, 4, 5, 7, 8}) {
                for (int n_rows : {1, 7, 8, 9, 17, 33}) {
                    Rows k(rng, n_rows, n, n + 8);
                    const std::vector<float> q = random_floats(rng, size_t(nq) * size_t(n), 1.0f);
                    const size_t stride = size_t(n_rows) + 3;
                    std::vector<float> got(size_t(nq) * stride, -1.0f), want = got;
                    level.dot(q.data(), nq, k.ptr.data(), n_rows, n, 0.125f, got.data(), stride);
                    for (int g = 0; g < nq; ++g)
                        for (int r = 0; r < n_rows; ++r) {
                            const float* qg = &q[size_t(g) * size_t(n)];
                            want[size_t(g) * stride + size_t(r)] = dot_f32_f16(qg, k.ptr[size_t(r)], n) * 0.125f;
                            double exact = 0, magnitude = 0;
                            for (int i = 0; i < n; ++i) {
                                const double term = double(qg[i]) * double(fp16_to_fp32_ref(k.ptr[size_t(r)][i]));
                                exact += term;
                                magnitude += std::abs(term);
                            }
                            ASSERT_NEAR(got[size_t(g) * stride + size_t(r)], exact * 0.125, 1e-6 * magnitude * 0.125)
                                << level.name << " dot n=" << n << " nq=" << nq << " row " << r;
                        }
                    ASSERT_TRUE(same_bits(got.data(), want.data(), got.size()))
                        << level.name << " dot n=" << n << " nq=" << nq << " rows=" << n_rows;

                    const std::vector<float> p = random_floats(rng, size_t(nq) * stride, 0.3f);
                    const std::vector<float> acc0 = random_floats(rng, size_t(nq) * size_t(n), 1.0f);
                    std::vector<float> acc_got = acc0, acc_want = acc0;
                    level.axpy(p.data(), stride, nq, k.ptr.data(), n_rows, n, acc_got.data());
                    for (int g = 0; g < nq; ++g) {
                        for (int r = 0; r < n_rows; ++r)
                            axpy_f16(p[size_t(g) * stride + size_t(r)], k.ptr[size_t(r)], &acc_want[size_t(g) * size_t(n)], n);
                        for (int i = 0; i < n; ++i) {
                            double exact = acc0[size_t(g) * size_t(n) + size_t(i)], magnitude = std::abs(exact);
                            for (int r = 0; r < n_rows; ++r) {
                                const double term = double(p[size_t(g) * stride + size_t(r)]) *
                                                    double(fp16_to_fp32_ref(k.ptr[size_t(r)][i]));
                                exact += term;
                                magnitude += std::abs(term);
                            }
                            ASSERT_NEAR(acc_got[size_t(g) * size_t(n) + size_t(i)], exact, 1e-6 * magnitude)
                                << level.name << " axpy n=" << n << " nq=" << nq << " i " << i;
                        }
                    }
                    ASSERT_TRUE(same_bits(acc_got.data(), acc_want.data(), acc_got.size()))
                        << level.name << " axpy n=" << n << " nq=" << nq << " rows=" << n_rows;
                }
            }
        }
    }
}

// Several sequences, each with a cached prefix (offset) and a chunk of 1..40 new tokens,
// cut into tiles of every size; each tile must reproduce the per-(token, head) loop.
TEST(AttentionKernels, TilesMatchPerHeadLoop) {
    std::mt19937 rng(11);
    struct Shape { int group, hd; };
    for (Shape s : {Shape{4, 64}, Shape{1, 64}, Shape{2, 128}, Shape{8, 32}, Shape{3, 48}, Shape{4, 8}, Shape{2, 6}}) {
        const float scale = 1.0f / std::sqrt(float(s.hd));
        const int width = s.group * s.hd;
        for (int seq = 0; seq < 6; ++seq) {
            const int offset = std::uniform_int_distribution<int>(0, 200)(rng);
            const int chunk = 1 + (seq * 7 + s.hd) % 40;
            const int rows = offset + chunk;
            Rows k(rng, rows, s.hd, s.hd * 3), v(rng, rows, s.hd, s.hd * 3);
            // queries with a wide spread so the softmax is neither flat nor one-hot
            const std::vector<float> q = random_floats(rng, size_t(chunk) * size_t(width), 2.0f);
            std::vector<int> n_pos(static_cast<size_t>(chunk));
            for (int t = 0; t < chunk; ++t) n_pos[size_t(t)] = offset + t + 1;

            std::vector<float> want(size_t(chunk) * size_t(width));
            for (int t = 0; t < chunk; ++t)
                for (int g = 0; g < s.group; ++g)
                    reference_head(&q[size_t(t) * size_t(width) + size_t(g * s.hd)], s.hd, k.ptr.data(), v.ptr.data(),
                                   n_pos[size_t(t)], scale, &want[size_t(t) * size_t(width) + size_t(g * s.hd)]);

            std::vector<KernelLevel> levels{KernelLevel::Avx2};
            if (cpu_supports(KernelLevel::Avx512)) levels.push_back(KernelLevel::Avx512);
            for (KernelLevel level : levels) {
                for (int tile : {1, 2, 5, 16, 40}) {
                    std::vector<float> got(want.size(), -1.0f);
                    for (int t0 = 0; t0 < chunk; t0 += tile) {
                        const int n_tok = std::min(tile, chunk - t0);
                        // exactly the size asked for, so an overrun shows under ASan
                        std::vector<float> scratch(attend_f16_tile_scratch(n_tok, s.group, s.hd, n_pos[size_t(t0 + n_tok - 1)]));
                        simd::attend_f16_tile_at(level, &q[size_t(t0) * size_t(width)], size_t(width),
                                                 &n_pos[size_t(t0)], n_tok, s.group, s.hd, k.ptr.data(), v.ptr.data(),
                                                 scale, &got[size_t(t0) * size_t(width)], size_t(width), scratch.data());
                    }
                    ASSERT_TRUE(same_bits(got.data(), want.data(), got.size()))
                        << kernel_level_name(level) << " group=" << s.group << " hd=" << s.hd << " offset=" << offset
                        << " chunk=" << chunk << " tile=" << tile;
                }
            }
        }
    }
}

// The score options (window, soft-cap, ALiBi, sinks) against the textbook formula in
// double, and bit-identical across tilings and across where a token's rows start (a
// shift by a multiple of kScoreAlign, as attend_f16 makes when it drops rows before a
// window), at both kernel levels.
struct ModsCase {
    int window;
    float cap, max_bias;
    bool sinks;
};

void textbook_head(const float* q, int hd, const fp16_t* const* k_rows, const fp16_t* const* v_rows, int n_pos,
                   int first, float cap, float slope, const float* sink, float scale, double* out) {
    std::vector<double> s(static_cast<size_t>(n_pos));
    double mx = sink ? double(*sink) : -INFINITY;
    for (int j = first; j < n_pos; ++j) {
        double d = 0;
        for (int i = 0; i < hd; ++i) d += double(fp16_to_fp32(fp32_to_fp16(q[i]))) * double(fp16_to_fp32(k_rows[j][i]));
        d *= scale;
        if (cap > 0) d = cap * std::tanh(d / cap);
        d -= slope * double(n_pos - 1 - j);
        s[size_t(j)] = d;
        mx = std::max(mx, d);
    }
    double sum = sink ? std::exp(double(*sink) - mx) : 0.0;
    for (int j = first; j < n_pos; ++j) sum += s[size_t(j)] = std::exp(s[size_t(j)] - mx);
    std::fill(out, out + hd, 0.0);
    for (int j = first; j < n_pos; ++j)
        for (int i = 0; i < hd; ++i) out[i] += s[size_t(j)] / sum * double(fp16_to_fp32(v_rows[j][i]));
}

TEST(AttentionKernels, ScoreOptionsFollowTheFormulaAtAnyTiling) {
    std::mt19937 rng(23);
    const int group = 4, hd = 64, width = group * hd, chunk = 37, offset = 50, rows = offset + chunk;
    const float scale = 0.125f;
    Rows k(rng, rows + kScoreAlign, hd, hd * 2), v(rng, rows + kScoreAlign, hd, hd * 2);
    const std::vector<float> q = random_floats(rng, size_t(chunk) * size_t(width), 2.0f);
    const float slopes[group] = {0.5f, 0.25f, 0.125f, 0.0625f};
    const float sinks[group] = {0.3f, -1.0f, 2.0f, 0.0f};
    for (ModsCase c : {ModsCase{0, 10.0f, 0, false}, ModsCase{20, 0, 0, false}, ModsCase{0, 0, 8.0f, false},
                       ModsCase{0, 0, 0, true}, ModsCase{16, 0, 0, true}, ModsCase{23, 5.0f, 8.0f, true}}) {
        std::vector<int> n_pos(static_cast<size_t>(chunk)), first(static_cast<size_t>(chunk));
        for (int t = 0; t < chunk; ++t) {
            n_pos[size_t(t)] = offset + t + 1;
            first[size_t(t)] = c.window > 0 ? std::max(0, n_pos[size_t(t)] - c.window) : 0;
        }
        ScoreOptions mods;
        mods.first = c.window > 0 ? first.data() : nullptr;
        mods.soft_cap = c.cap;
        mods.alibi = c.max_bias > 0 ? slopes : nullptr;
        mods.sinks = c.sinks ? sinks : nullptr;
        const std::string what = "window " + std::to_string(c.window) + " cap " + std::to_string(c.cap) + " alibi " +
                                 std::to_string(c.max_bias) + " sinks " + std::to_string(c.sinks);

        std::vector<KernelLevel> levels{KernelLevel::Avx2};
        if (cpu_supports(KernelLevel::Avx512)) levels.push_back(KernelLevel::Avx512);
        std::vector<float> first_result;
        for (KernelLevel level : levels)
            for (int tile : {1, 3, 16, 37}) {
                std::vector<float> got(size_t(chunk) * size_t(width), -1.0f);
                for (int t0 = 0; t0 < chunk; t0 += tile) {
                    const int n_tok = std::min(tile, chunk - t0);
                    ScoreOptions m = mods;
                    if (m.first) m.first = &first[size_t(t0)];
                    std::vector<float> scratch(attend_f16_tile_scratch(n_tok, group, hd, n_pos[size_t(t0 + n_tok - 1)]));
                    simd::attend_f16_tile_at(level, &q[size_t(t0) * size_t(width)], size_t(width), &n_pos[size_t(t0)],
                                             n_tok, group, hd, k.ptr.data(), v.ptr.data(), scale,
                                             &got[size_t(t0) * size_t(width)], size_t(width), scratch.data(), &m);
                }
                if (first_result.empty()) {
                    first_result = got;
                    for (int t = 0; t < chunk; ++t)
                        for (int g = 0; g < group; ++g) {
                            double want[hd];
                            textbook_head(&q[size_t(t * width + g * hd)], hd, k.ptr.data(), v.ptr.data(), n_pos[size_t(t)],
                                          first[size_t(t)], c.cap, c.max_bias > 0 ? slopes[g] : 0.0f,
                                          c.sinks ? &sinks[g] : nullptr, scale, want);
                            for (int i = 0; i < hd; ++i)
                                ASSERT_NEAR(got[size_t(t * width + g * hd + i)], want[i], 2e-3)
                                    << what << " token " << t << " head " << g << " i " << i;
                        }
                }
                ASSERT_TRUE(same_bits(got.data(), first_result.data(), got.size()))
                    << what << " " << kernel_level_name(level) << " tile " << tile;
            }

        // One token alone with its rows starting kScoreAlign later (the rows before are
        // outside every window here): the same bits.
        if (c.window > 0 && c.window <= offset - kScoreAlign) {
            const int t = chunk - 1, shift = kScoreAlign;
            const int np = n_pos[size_t(t)] - shift, fs = first[size_t(t)] - shift;
            ScoreOptions m = mods;
            m.first = &fs;
            std::vector<float> out(static_cast<size_t>(width)), scratch(attend_f16_tile_scratch(1, group, hd, np));
            attend_f16_tile(&q[size_t(t) * size_t(width)], size_t(width), &np, 1, group, hd, k.ptr.data() + shift,
                            v.ptr.data() + shift, scale, out.data(), size_t(width), scratch.data(), &m);
            ASSERT_TRUE(same_bits(out.data(), &first_result[size_t(t) * size_t(width)], out.size())) << what;
        }
    }
}

// The soft-cap's tanh against std::tanh: within 2e-7 absolute everywhere, odd, saturating.
TEST(AttentionKernels, TanhIsWithinTwoTenMillionths) {
    std::vector<float> x;
    for (float v = -30.0f; v <= 30.0f; v += 0.00731f) x.push_back(v);
    for (float v : {0.0f, -0.0f, 1e-30f, 1e-7f, -1e-5f, 100.0f, -1e6f, INFINITY, -INFINITY}) x.push_back(v);
    std::vector<float> got = x;
    tanh_in_place(got.data(), int(got.size()));
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(got[i], std::tanh(double(x[i])), 2e-7) << x[i];
}

}  // namespace
}  // namespace pensieve

namespace pensieve {
namespace {

// The vectorized softmax against the scalar one (std::exp, double sum): every weight
// within 2e-6 relative, at every length (the tail goes through padded lanes), -inf
// scores get exactly 0, all -inf gives uniform weights.
TEST(SoftmaxScores, MatchesScalarSoftmax) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-40.0f, 12.0f);
    std::vector<int> lengths;
    for (int n = 1; n <= 40; ++n) lengths.push_back(n);
    for (int n : {100, 777, 4096}) lengths.push_back(n);
    for (int n : lengths) {
        std::vector<float> x(static_cast<size_t>(n));
        for (float& v : x) v = dist(rng);
        if (n > 3) x[1] = -INFINITY;
        std::vector<float> want = x, got = x;
        softmax(want.data(), n);
        softmax_scores(got.data(), n);
        double sum = 0;
        for (int i = 0; i < n; ++i) {
            EXPECT_NEAR(got[size_t(i)], want[size_t(i)], 2e-6 * want[size_t(i)] + 1e-30) << "n " << n << " i " << i;
            sum += got[size_t(i)];
        }
        EXPECT_NEAR(sum, 1.0, 1e-5) << n;
        if (n > 3) EXPECT_EQ(got[1], 0.0f);
    }
    std::vector<float> masked(5, -INFINITY);
    softmax_scores(masked.data(), 5);
    for (float w : masked) EXPECT_EQ(w, 0.2f);
}

// The polynomial exp over its whole range: relative error against std::exp.
TEST(SoftmaxScores, ExpIsWithinTwoUlps) {
    const int n = 2;
    float worst = 0;
    for (float d = 0.0f; d > -87.0f; d -= 0.0137f) {
        float x[n] = {0.0f, d};  // max 0: weights are 1/(1+e^d) and e^d/(1+e^d)
        softmax_scores(x, n);
        const double e = std::exp(double(d));
        worst = std::max(worst, float(std::abs(double(x[1]) - e / (1 + e)) / (e / (1 + e))));
    }
    EXPECT_LT(worst, 5e-7f);
}

}  // namespace
}  // namespace pensieve
