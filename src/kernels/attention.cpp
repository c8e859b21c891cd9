#include "kernels/attention.h"

#include <immintrin.h>

namespace pensieve {

namespace {

float horizontal_sum(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

// 8 consecutive int8 quants as 8 floats.
__m256 load8_i8(const int8_t* q) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q))));
}

}  // namespace

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
