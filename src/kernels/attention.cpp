#include "kernels/attention.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/attention_simd.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/simd_local.h"

namespace pensieve {

using simd::exp_nonpositive;
using simd::horizontal_sum;
using simd::load8_f16;
using simd::reduce8;
using simd::tanh8;

namespace {

// 8 consecutive int8 quants as 8 floats.
__m256 load8_i8(const int8_t* q) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q))));
}

}  // namespace

void softmax_scores(float* x, int n) {
    if (n <= 0) return;
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    float max_val = kNegInf;
    for (int i = 0; i < n; ++i) max_val = std::max(max_val, x[i]);
    if (max_val == kNegInf) {
        std::fill(x, x + n, 1.0f / float(n));
        return;
    }
    const __m256 vmax = _mm256_set1_ps(max_val);
    __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 e0 = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
        const __m256 e1 = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vmax));
        _mm256_storeu_ps(x + i, e0);
        _mm256_storeu_ps(x + i + 8, e1);
        sum0 = _mm256_add_ps(sum0, e0);
        sum1 = _mm256_add_ps(sum1, e1);
    }
    if (i < n) {  // the tail through the same code: padded with -inf, which gives 0
        float tail[16];
        std::fill(tail, tail + 16, kNegInf);
        std::copy(x + i, x + n, tail);
        for (int j = 0; j < 16; j += 8) {
            const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(tail + j), vmax));
            _mm256_storeu_ps(tail + j, e);
            (j == 0 ? sum0 : sum1) = _mm256_add_ps(j == 0 ? sum0 : sum1, e);
        }
        std::copy(tail, tail + (n - i), x + i);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / horizontal_sum(_mm256_add_ps(sum0, sum1)));
    i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; ++i) x[i] *= _mm256_cvtss_f32(inv);
}

float dot_f32_f16(const float* q, const fp16_t* k, int n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i)));
        const __m256 k1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i + 8)));
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), k0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), k1, acc1);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i)));
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), k0, acc0);
    }
    float sum = horizontal_sum(_mm256_add_ps(acc0, acc1));
    for (; i < n; ++i) sum += q[i] * fp16_to_fp32(k[i]);
    return sum;
}

void axpy_f16(float p, const fp16_t* v, float* acc, int n) {
    const __m256 pv = _mm256_set1_ps(p);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
        _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(pv, v0, _mm256_loadu_ps(acc + i)));
    }
    for (; i < n; ++i) acc[i] += p * fp16_to_fp32(v[i]);
}

namespace {

// acc0 + acc1 of dot_f32_f16(q + g * n, k, n) for NQ queries: each 16-value piece of
// the key row is converted once and multiplied into every query's accumulators.
// n is a multiple of 8 (the scalar tail of dot_f32_f16 is not reproduced here).
template <int NQ>
inline void row_sums(const float* q, const fp16_t* k, int n, __m256* s) {
    __m256 acc0[NQ], acc1[NQ];
    for (int g = 0; g < NQ; ++g) acc0[g] = acc1[g] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 k0 = load8_f16(k + i), k1 = load8_f16(k + i + 8);
        for (int g = 0; g < NQ; ++g) {
            acc0[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * n + i), k0, acc0[g]);
            acc1[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * n + i + 8), k1, acc1[g]);
        }
    }
    if (i + 8 <= n) {
        const __m256 k0 = load8_f16(k + i);
        for (int g = 0; g < NQ; ++g) acc0[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * n + i), k0, acc0[g]);
    }
    for (int g = 0; g < NQ; ++g) s[g] = _mm256_add_ps(acc0[g], acc1[g]);
}

template <int NQ>
void dot_rows(const float* q, const fp16_t* const* k, int n_rows, int n, float scale, float* out, size_t out_stride) {
    const __m256 vscale = _mm256_set1_ps(scale);
    int r = 0;
    for (; r + 8 <= n_rows; r += 8) {
        __m256 s[8][NQ];
        for (int i = 0; i < 8; ++i) row_sums<NQ>(q, k[r + i], n, s[i]);
        for (int g = 0; g < NQ; ++g) {
            __m256 sg[8];
            for (int i = 0; i < 8; ++i) sg[i] = s[i][g];
            _mm256_storeu_ps(out + size_t(g) * out_stride + r, _mm256_mul_ps(reduce8(sg), vscale));
        }
    }
    for (; r < n_rows; ++r) {
        __m256 s[NQ];
        row_sums<NQ>(q, k[r], n, s);
        for (int g = 0; g < NQ; ++g) out[size_t(g) * out_stride + r] = horizontal_sum(s[g]) * scale;
    }
}

// Columns [i, i + 8 * W) of NQ accumulators kept in registers over all rows; the fma
// of each lane runs over rows in increasing order, as repeated axpy_f16 calls do.
template <int NQ, int W>
inline void axpy_cols(const float* p, size_t p_stride, const fp16_t* const* v, int n_rows, int n, int i, float* acc) {
    __m256 a[NQ][W];
    for (int g = 0; g < NQ; ++g)
        for (int w = 0; w < W; ++w) a[g][w] = _mm256_loadu_ps(acc + g * n + i + 8 * w);
    for (int r = 0; r < n_rows; ++r) {
        __m256 vv[W];
        for (int w = 0; w < W; ++w) vv[w] = load8_f16(v[r] + i + 8 * w);
        for (int g = 0; g < NQ; ++g) {
            const __m256 pv = _mm256_set1_ps(p[size_t(g) * p_stride + r]);
            for (int w = 0; w < W; ++w) a[g][w] = _mm256_fmadd_ps(pv, vv[w], a[g][w]);
        }
    }
    for (int g = 0; g < NQ; ++g)
        for (int w = 0; w < W; ++w) _mm256_storeu_ps(acc + g * n + i + 8 * w, a[g][w]);
}

template <int NQ>
void axpy_rows(const float* p, size_t p_stride, const fp16_t* const* v, int n_rows, int n, float* acc) {
    int i = 0;
    for (; i + 16 <= n; i += 16) axpy_cols<NQ, 2>(p, p_stride, v, n_rows, n, i, acc);
    if (i + 8 <= n) axpy_cols<NQ, 1>(p, p_stride, v, n_rows, n, i, acc);
}

}  // namespace

namespace simd {

void avx2_dot_f32_f16_rows(const float* q, int nq, const fp16_t* const* k, int n_rows, int n, float scale,
                           float* out, size_t out_stride) {
    int g = 0;
    for (; g + 4 <= nq; g += 4) dot_rows<4>(q + g * n, k, n_rows, n, scale, out + size_t(g) * out_stride, out_stride);
    for (; g + 2 <= nq; g += 2) dot_rows<2>(q + g * n, k, n_rows, n, scale, out + size_t(g) * out_stride, out_stride);
    for (; g < nq; ++g) dot_rows<1>(q + g * n, k, n_rows, n, scale, out + size_t(g) * out_stride, out_stride);
}

void avx2_axpy_f16_rows(const float* p, size_t p_stride, int nq, const fp16_t* const* v, int n_rows, int n,
                        float* acc) {
    int g = 0;
    for (; g + 4 <= nq; g += 4) axpy_rows<4>(p + size_t(g) * p_stride, p_stride, v, n_rows, n, acc + g * n);
    for (; g + 2 <= nq; g += 2) axpy_rows<2>(p + size_t(g) * p_stride, p_stride, v, n_rows, n, acc + g * n);
    for (; g < nq; ++g) axpy_rows<1>(p + size_t(g) * p_stride, p_stride, v, n_rows, n, acc + g * n);
}

}  // namespace simd

namespace {

// The level's kernels, chosen once (PENSIEVE_KERNELS caps the level, as for matmul).
struct F16RowKernels {
    simd::DotRowsFn dot;
    simd::AxpyRowsFn axpy;
};

const F16RowKernels& f16_row_kernels() {
    static const F16RowKernels k = active_kernel_level() == KernelLevel::Avx512
                                       ? F16RowKernels{simd::avx512_dot_f32_f16_rows, simd::avx512_axpy_f16_rows}
                                       : F16RowKernels{simd::avx2_dot_f32_f16_rows, simd::avx2_axpy_f16_rows};
    return k;
}

}  // namespace

void dot_f32_f16_rows(const float* q, int nq, const fp16_t* const* k, int n_rows, int n, float scale,
                      float* out, size_t out_stride) {
    if (n % 8 != 0) {  // odd sizes (tiny models): the one-query kernel, row by row
        for (int g = 0; g < nq; ++g)
            for (int r = 0; r < n_rows; ++r) out[size_t(g) * out_stride + r] = dot_f32_f16(q + g * n, k[r], n) * scale;
        return;
    }
    f16_row_kernels().dot(q, nq, k, n_rows, n, scale, out, out_stride);
}

void axpy_f16_rows(const float* p, size_t p_stride, int nq, const fp16_t* const* v, int n_rows, int n, float* acc) {
    if (n % 8 != 0) {
        for (int g = 0; g < nq; ++g)
            for (int r = 0; r < n_rows; ++r) axpy_f16(p[size_t(g) * p_stride + r], v[r], acc + g * n, n);
        return;
    }
    f16_row_kernels().axpy(p, p_stride, nq, v, n_rows, n, acc);
}

namespace {

// y[i] = x[i] rounded to fp16 (nearest even) and back, 8 at a time: the same bits as
// fp16_to_fp32(fp32_to_fp16(x[i])), which as a scalar loop over every attention weight
// was a two-instruction latency chain per weight.
void round_to_fp16(const float* x, float* y, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; ++i) y[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

// One query's n scores (row j at distance n - 1 - j from the query) under the options:
// soft-cap, ALiBi, window; the tail of fewer than 8 through the same lanes, padded.
void apply_score_options(float* s, int n, int first, float cap, float slope) {
    if (cap > 0.0f || slope != 0.0f) {
        const __m256 vcap = _mm256_set1_ps(cap), vslope = _mm256_set1_ps(slope);
        const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
        for (int j = 0; j < n; j += 8) {
            float pad[8] = {};
            const int m = std::min(8, n - j);
            std::copy(s + j, s + j + m, pad);
            __m256 v = _mm256_loadu_ps(pad);
            if (cap > 0.0f) v = _mm256_mul_ps(vcap, tanh8(_mm256_div_ps(v, vcap)));
            if (slope != 0.0f) v = _mm256_fnmadd_ps(vslope, _mm256_sub_ps(_mm256_set1_ps(float(n - 1 - j)), lane), v);
            _mm256_storeu_ps(pad, v);
            std::copy(pad, pad + m, s + j);
        }
    }
    std::fill(s, s + std::min(first, n), -std::numeric_limits<float>::infinity());
}

// The middle of the tile: the score options, softmax (with the sink logit as one more
// score, at index n, whose weight is dropped), then the weights rounded to fp16 like the
// values they multiply (as in the reference engine's fp16 KV path).
void softmax_rounded(float* scores, size_t ld, const int* n_pos, int n_tok, int group, const ScoreOptions* mods) {
    for (int t = 0; t < n_tok; ++t)
        for (int g = 0; g < group; ++g) {
            float* sg = scores + (size_t(t) * size_t(group) + size_t(g)) * ld;
            const int n = n_pos[t];
            int with_sink = n;
            if (mods) {
                apply_score_options(sg, n, mods->first ? mods->first[t] : 0, mods->soft_cap,
                                    mods->alibi ? mods->alibi[g] : 0.0f);
                if (mods->sinks) sg[with_sink++] = mods->sinks[g];
            }
            softmax_scores(sg, with_sink);
            round_to_fp16(sg, sg, n);
        }
}

}  // namespace

void tanh_in_place(float* x, int n) {
    simd::map8(x, nullptr, n, [](__m256 v, __m256) { return tanh8(v); });
}

// Each query's score row has max n_pos + 1 floats: room for a sink logit.
size_t attend_f16_tile_scratch(int n_tok, int group, int hd, int max_n_pos) {
    return size_t(n_tok) * size_t(group) * size_t(hd + max_n_pos + 1) + size_t(simd::kRowBlock) * size_t(hd);
}

namespace simd {

void attend_f16_tile_at(KernelLevel level, const float* q, size_t q_stride, const int* n_pos, int n_tok, int group,
                        int hd, const fp16_t* const* k_rows, const fp16_t* const* v_rows, float scale, float* out,
                        size_t out_stride, float* scratch, const ScoreOptions* mods) {
    const int width = group * hd;
    if (level == KernelLevel::Avx512 && n_tok > 1 && hd % 8 == 0) {
        // The query and the attention weights are rounded to fp16 like the cached keys
        // and values: each product then pairs two fp16 operands, as in the reference
        // engine's fp16 KV path, which keeps our logits within 1e-3 of it.
        float* qh = scratch;
        for (int t = 0; t < n_tok; ++t) round_to_fp16(q + size_t(t) * q_stride, qh + size_t(t) * size_t(width), width);
        const size_t ld = size_t(*std::max_element(n_pos, n_pos + n_tok)) + 1;
        float* scores = qh + size_t(n_tok) * size_t(width);
        float* rows_f32 = scores + size_t(n_tok) * size_t(group) * ld;
        avx512_attend_f16_tile(qh, n_pos, n_tok, group, hd, k_rows, v_rows, scale, scores, ld, out, out_stride,
                               rows_f32, softmax_rounded, mods);
        return;
    }
    const bool odd = hd % 8 != 0;
    const DotRowsFn dot = level == KernelLevel::Avx512 ? avx512_dot_f32_f16_rows : avx2_dot_f32_f16_rows;
    const AxpyRowsFn axpy = level == KernelLevel::Avx512 ? avx512_axpy_f16_rows : avx2_axpy_f16_rows;
    float* qh = scratch;               // [group][hd] the queries rounded to fp16
    float* scores = scratch + width;   // [group][n + 1] scores, then weights
    for (int t = 0; t < n_tok; ++t) {
        const int n = n_pos[t];
        const size_t ld = size_t(n) + 1;
        round_to_fp16(q + size_t(t) * q_stride, qh, width);
        if (odd) dot_f32_f16_rows(qh, group, k_rows, n, hd, scale, scores, ld);
        else dot(qh, group, k_rows, n, hd, scale, scores, ld);
        ScoreOptions token_mods;
        if (mods) {
            token_mods = *mods;
            if (mods->first) token_mods.first = mods->first + t;
        }
        softmax_rounded(scores, ld, &n_pos[t], 1, group, mods ? &token_mods : nullptr);
        float* acc = out + size_t(t) * out_stride;
        std::fill(acc, acc + width, 0.0f);
        if (odd) axpy_f16_rows(scores, ld, group, v_rows, n, hd, acc);
        else axpy(scores, ld, group, v_rows, n, hd, acc);
    }
}

}  // namespace simd

void attend_f16_tile(const float* q, size_t q_stride, const int* n_pos, int n_tok, int group, int hd,
                     const fp16_t* const* k_rows, const fp16_t* const* v_rows, float scale,
                     float* out, size_t out_stride, float* scratch, const ScoreOptions* mods) {
    simd::attend_f16_tile_at(active_kernel_level() == KernelLevel::Avx512 ? KernelLevel::Avx512 : KernelLevel::Avx2,
                             q, q_stride, n_pos, n_tok, group, hd, k_rows, v_rows, scale, out, out_stride, scratch,
                             mods);
}

namespace {

// q·k of one block as 8 partial int32 sums, converted to float. |k| (unsigned) times q
// with k's sign moved onto it (signed) is exactly q * k; maddubs multiplies u8 x s8 and
// adds pairs to int16 (no overflow: Q8_0 quants are in [-127, 127], so a pair is at most
// 2 * 127 * 127 = 32258), madd sums pairs to int32.
inline __m256 block_dot(__m256i qq, const BlockQ8_0& k) {
    const __m256i kq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.qs));
    const __m256i prod16 = _mm256_maddubs_epi16(_mm256_sign_epi8(kq, kq), _mm256_sign_epi8(qq, kq));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(prod16, _mm256_set1_epi16(1)));
}

// [sum(a0), sum(a1), ..., sum(a7)]: eight horizontal sums in one vector.
inline __m256 horizontal_sums8(const __m256* a) {
    const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// One row's q·k as 8 partial float sums.
inline __m256 row_dot(const BlockQ8_0* q, const BlockQ8_0* k, int n_blocks) {
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < n_blocks; ++b) {
        const __m256i qq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[b].qs));
        const float d = fp16_to_fp32(q[b].d) * fp16_to_fp32(k[b].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), block_dot(qq, k[b]), acc);
    }
    return acc;
}

}  // namespace

void dot_q8_0_rows(const BlockQ8_0* q, const uint8_t* k, size_t stride, int n_rows, int n_blocks, float* out) {
    int r = 0;
    for (; r + 8 <= n_rows; r += 8) {
        __m256 acc[8];
        for (int i = 0; i < 8; ++i)
            acc[i] = row_dot(q, reinterpret_cast<const BlockQ8_0*>(k + size_t(r + i) * stride), n_blocks);
        _mm256_storeu_ps(out + r, horizontal_sums8(acc));
    }
    for (; r < n_rows; ++r)
        out[r] = horizontal_sum(row_dot(q, reinterpret_cast<const BlockQ8_0*>(k + size_t(r) * stride), n_blocks));
}

void axpy_q8_0_rows(const float* p, const uint8_t* v, size_t stride, int n_rows, int n_blocks, float* acc) {
    for (int b = 0; b < n_blocks; ++b, acc += QK8_0) {
        __m256 a0 = _mm256_loadu_ps(acc), a1 = _mm256_loadu_ps(acc + 8);
        __m256 a2 = _mm256_loadu_ps(acc + 16), a3 = _mm256_loadu_ps(acc + 24);
        for (int r = 0; r < n_rows; ++r) {
            const BlockQ8_0& blk = reinterpret_cast<const BlockQ8_0*>(v + size_t(r) * stride)[b];
            const __m256 pd = _mm256_set1_ps(p[r] * fp16_to_fp32(blk.d));
            a0 = _mm256_fmadd_ps(pd, load8_i8(blk.qs), a0);
            a1 = _mm256_fmadd_ps(pd, load8_i8(blk.qs + 8), a1);
            a2 = _mm256_fmadd_ps(pd, load8_i8(blk.qs + 16), a2);
            a3 = _mm256_fmadd_ps(pd, load8_i8(blk.qs + 24), a3);
        }
        _mm256_storeu_ps(acc, a0);
        _mm256_storeu_ps(acc + 8, a1);
        _mm256_storeu_ps(acc + 16, a2);
        _mm256_storeu_ps(acc + 24, a3);
    }
}

void prefetch_rows(const uint8_t* p, size_t stride, int n_rows, size_t bytes) {
    for (int r = 0; r < n_rows; ++r, p += stride) {
        // first and last line of the slice, and every line between
        const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t(63);
        for (uintptr_t a = first; a < reinterpret_cast<uintptr_t>(p) + bytes; a += 64)
            _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
    }
}

void dequantize_q8_0_range(const BlockQ8_0* row, int first, int n, float* out) {
    for (int i = 0; i < n; ++i) {
        const BlockQ8_0& b = row[(first + i) / QK8_0];
        out[i] = fp16_to_fp32(b.d) * float(b.qs[(first + i) % QK8_0]);
    }
}

}  // namespace pensieve
