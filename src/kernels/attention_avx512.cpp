// AVX-512 versions of the fp16-cache attention kernels (attention_simd.h). Same bits as
// the AVX2 ones in attention.cpp: AVX2 keeps two 8-lane sums per query, acc0 over values
// [i, i + 8) and acc1 over [i + 8, i + 16) of each 16-value step; here one 16-lane sum
// holds [acc0 | acc1], so each lane sees the same fmas in the same order, and the halves
// are added and reduced exactly as there. The axpys keep one fma per lane per row, in
// row order, whatever the register width.
#include <immintrin.h>

#include <algorithm>

// GCC 12 flags the deliberately undefined pass-through operand inside _mm512_cvtph_ps
// (-Wmaybe-uninitialized on avx512fintrin.h); a false alarm, not a bug here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/attention_simd.h"
#include "kernels/simd_local_avx512.h"

namespace pensieve::simd {
namespace {

inline __m512 load16_f16(const fp16_t* p) { return _mm512_cvtph_ps(load256(p)); }

// Where the kernels read row r's values [i, i + 16) (or + 8): fp16 cache rows, converted
// on load, or a block of rows already converted to fp32 (contiguous, ld apart). The
// arithmetic after the load is the same, and fp16 -> fp32 is exact, so both give the
// same bits.
struct F16Rows {
    const fp16_t* const* p;
    __m512 load16(int r, int i) const { return load16_f16(p[r] + i); }
    __m256 load8(int r, int i) const { return load8_f16(p[r] + i); }
};

struct F32Rows {
    const float* p;
    int ld;
    __m512 load16(int r, int i) const { return _mm512_loadu_ps(p + size_t(r) * size_t(ld) + i); }
    __m256 load8(int r, int i) const { return _mm256_loadu_ps(p + size_t(r) * size_t(ld) + i); }
};

// acc0 + acc1 of dot_f32_f16(q + g * n, k, n) for NQ queries (n a multiple of 8): each
// 16 values of the key row are converted once and used by every query.
template <int NQ, class Rows>
inline void row_sums(const float* q, const Rows& k, int r, int n, __m256* s) {
    __m512 acc[NQ];
    for (int g = 0; g < NQ; ++g) acc[g] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 kk = k.load16(r, i);
        for (int g = 0; g < NQ; ++g) acc[g] = _mm512_fmadd_ps(_mm512_loadu_ps(q + g * n + i), kk, acc[g]);
    }
    __m256 lo[NQ];
    for (int g = 0; g < NQ; ++g) lo[g] = _mm512_castps512_ps256(acc[g]);
    if (i + 8 <= n) {  // AVX2's last 8 values go into acc0 only
        const __m256 k0 = k.load8(r, i);
        for (int g = 0; g < NQ; ++g) lo[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * n + i), k0, lo[g]);
    }
    for (int g = 0; g < NQ; ++g) s[g] = _mm256_add_ps(lo[g], _mm512_extractf32x8_ps(acc[g], 1));
}

template <int NQ, class Rows>
void dot_rows(const float* q, const Rows& k, int n_rows, int n, float scale, float* out, size_t out_stride) {
    const __m256 vscale = _mm256_set1_ps(scale);
    int r = 0;
    for (; r + 8 <= n_rows; r += 8) {
        __m256 s[8][NQ];
        for (int i = 0; i < 8; ++i) row_sums<NQ>(q, k, r + i, n, s[i]);
        for (int g = 0; g < NQ; ++g) {
            __m256 sg[8];
            for (int i = 0; i < 8; ++i) sg[i] = s[i][g];
            _mm256_storeu_ps(out + size_t(g) * out_stride + r, _mm256_mul_ps(reduce8(sg), vscale));
        }
    }
    for (; r < n_rows; ++r) {
        __m256 s[NQ];
        row_sums<NQ>(q, k, r, n, s);
        for (int g = 0; g < NQ; ++g) out[size_t(g) * out_stride + r] = horizontal_sum(s[g]) * scale;
    }
}

// Columns [i, i + 16 * W) of NQ accumulators, in registers over all rows (NQ = 4, W = 4:
// 16 sums + 4 value vectors of the 32 zmm registers; a whole 64-wide head at once).
template <int NQ, int W, class Rows>
inline void axpy_cols(const float* p, size_t p_stride, const Rows& v, int n_rows, int n, int i, float* acc) {
    __m512 a[NQ][W];
    for (int g = 0; g < NQ; ++g)
        for (int w = 0; w < W; ++w) a[g][w] = _mm512_loadu_ps(acc + g * n + i + 16 * w);
    for (int r = 0; r < n_rows; ++r) {
        __m512 vv[W];
        for (int w = 0; w < W; ++w) vv[w] = v.load16(r, i + 16 * w);
        for (int g = 0; g < NQ; ++g) {
            const __m512 pv = _mm512_set1_ps(p[size_t(g) * p_stride + r]);
            for (int w = 0; w < W; ++w) a[g][w] = _mm512_fmadd_ps(pv, vv[w], a[g][w]);
        }
    }
    for (int g = 0; g < NQ; ++g)
        for (int w = 0; w < W; ++w) _mm512_storeu_ps(acc + g * n + i + 16 * w, a[g][w]);
}

// The last 8 columns when n % 16 == 8.
template <int NQ, class Rows>
inline void axpy_cols8(const float* p, size_t p_stride, const Rows& v, int n_rows, int n, int i, float* acc) {
    __m256 a[NQ];
    for (int g = 0; g < NQ; ++g) a[g] = _mm256_loadu_ps(acc + g * n + i);
    for (int r = 0; r < n_rows; ++r) {
        const __m256 vv = v.load8(r, i);
        for (int g = 0; g < NQ; ++g) a[g] = _mm256_fmadd_ps(_mm256_set1_ps(p[size_t(g) * p_stride + r]), vv, a[g]);
    }
    for (int g = 0; g < NQ; ++g) _mm256_storeu_ps(acc + g * n + i, a[g]);
}

template <int NQ, class Rows>
void axpy_rows(const float* p, size_t p_stride, const Rows& v, int n_rows, int n, float* acc) {
    constexpr int W = NQ >= 4 ? 4 : 8 / NQ;  // keep sums + values within the 32 registers
    int i = 0;
    for (; i + 16 * W <= n; i += 16 * W) axpy_cols<NQ, W, Rows>(p, p_stride, v, n_rows, n, i, acc);
    for (; i + 16 <= n; i += 16) axpy_cols<NQ, 1, Rows>(p, p_stride, v, n_rows, n, i, acc);
    if (i + 8 <= n) axpy_cols8<NQ, Rows>(p, p_stride, v, n_rows, n, i, acc);
}

// Every query (nq of them, n apart) against rows [0, n_rows), 4 queries per pass.
template <class Rows>
void dot_queries(const float* q, int nq, const Rows& k, int n_rows, int n, float scale, float* out, size_t out_stride) {
    int g = 0;
    for (; g + 4 <= nq; g += 4) dot_rows<4>(q + g * n, k, n_rows, n, scale, out + size_t(g) * out_stride, out_stride);
    for (; g + 2 <= nq; g += 2) dot_rows<2>(q + g * n, k, n_rows, n, scale, out + size_t(g) * out_stride, out_stride);
    for (; g < nq; ++g) dot_rows<1>(q + g * n, k, n_rows, n, scale, out + size_t(g) * out_stride, out_stride);
}

template <class Rows>
void axpy_queries(const float* p, size_t p_stride, int nq, const Rows& v, int n_rows, int n, float* acc) {
    int g = 0;
    for (; g + 4 <= nq; g += 4) axpy_rows<4>(p + size_t(g) * p_stride, p_stride, v, n_rows, n, acc + g * n);
    for (; g + 2 <= nq; g += 2) axpy_rows<2>(p + size_t(g) * p_stride, p_stride, v, n_rows, n, acc + g * n);
    for (; g < nq; ++g) axpy_rows<1>(p + size_t(g) * p_stride, p_stride, v, n_rows, n, acc + g * n);
}

// Rows [r0, r0 + n_rows) of an fp16 head slice as fp32, hd apart (hd % 8 == 0).
void convert_rows(const fp16_t* const* rows, int r0, int n_rows, int hd, float* out) {
    for (int r = 0; r < n_rows; ++r, out += hd) {
        const fp16_t* src = rows[r0 + r];
        int i = 0;
        for (; i + 16 <= hd; i += 16) _mm512_storeu_ps(out + i, load16_f16(src + i));
        if (i + 8 <= hd) _mm256_storeu_ps(out + i, load8_f16(src + i));
    }
}

}  // namespace

void avx512_dot_f32_f16_rows(const float* q, int nq, const fp16_t* const* k, int n_rows, int n, float scale,
                             float* out, size_t out_stride) {
    dot_queries(q, nq, F16Rows{k}, n_rows, n, scale, out, out_stride);
}

void avx512_axpy_f16_rows(const float* p, size_t p_stride, int nq, const fp16_t* const* v, int n_rows, int n,
                          float* acc) {
    axpy_queries(p, p_stride, nq, F16Rows{v}, n_rows, n, acc);
}

// The tile in three passes. Rows [0, shared) are seen by every token: they are taken
// kRowBlock at a time, converted to fp32 once, and used by all n_tok * group queries
// while they sit in L1. Rows past `shared` (the causal edge inside the tile, fewer than
// n_tok) stay per token on the fp16 kernels. Each query's scores and each accumulator
// lane still see the same operations in the same order as the one-head loop (rows in
// increasing order; a sum stored between blocks is stored exactly), so the bits match.
void avx512_attend_f16_tile(const float* qh, const int* n_pos, int n_tok, int group, int hd,
                            const fp16_t* const* k_rows, const fp16_t* const* v_rows, float scale, float* scores,
                            size_t ld, float* out, size_t out_stride, float* rows_f32, AttendMiddle middle,
                            const ScoreOptions* mods) {
    const int nq = n_tok * group;  // query (t, g) is number t * group + g
    int shared = n_pos[0];
    for (int t = 1; t < n_tok; ++t) shared = std::min(shared, n_pos[t]);
    for (int r0 = 0; r0 < shared; r0 += kRowBlock) {
        const int nr = std::min(kRowBlock, shared - r0);
        convert_rows(k_rows, r0, nr, hd, rows_f32);
        dot_queries(qh, nq, F32Rows{rows_f32, hd}, nr, hd, scale, scores + r0, ld);
    }
    for (int t = 0; t < n_tok; ++t)
        dot_queries(qh + size_t(t) * size_t(group) * size_t(hd), group, F16Rows{k_rows + shared}, n_pos[t] - shared,
                    hd, scale, scores + size_t(t) * size_t(group) * ld + shared, ld);
    middle(scores, ld, n_pos, n_tok, group, mods);
    const int width = group * hd;
    for (int t = 0; t < n_tok; ++t) std::fill(out + size_t(t) * out_stride, out + size_t(t) * out_stride + width, 0.0f);
    for (int r0 = 0; r0 < shared; r0 += kRowBlock) {
        const int nr = std::min(kRowBlock, shared - r0);
        convert_rows(v_rows, r0, nr, hd, rows_f32);
        for (int t = 0; t < n_tok; ++t)
            axpy_queries(scores + size_t(t) * size_t(group) * ld + r0, ld, group, F32Rows{rows_f32, hd}, nr, hd,
                         out + size_t(t) * out_stride);
    }
    for (int t = 0; t < n_tok; ++t)
        axpy_queries(scores + size_t(t) * size_t(group) * ld + shared, ld, group, F16Rows{v_rows + shared},
                     n_pos[t] - shared, hd, out + size_t(t) * out_stride);
}

}  // namespace pensieve::simd
