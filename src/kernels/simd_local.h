// Small helpers the SIMD kernel files share (*_avx2.cpp, *_avx512.cpp, attention).
//
// Everything here has internal linkage (an anonymous namespace): each kernel file gets
// its own copy, compiled with that file's ISA flags. A plain inline function would be
// emitted as a COMDAT copy per file, and the linker could keep the AVX-512-encoded one
// for the whole program, which would then crash on CPUs without AVX-512; that is why
// the kernel files used to repeat these. Only baseline (x86-64-v3: AVX2, F16C)
// intrinsics here; AVX-512 helpers are in simd_local_avx512.h.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quant/blocks.h"
#include "util/fp16.h"

namespace pensieve::simd {
namespace {

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline float f16(fp16_t h) { return _cvtsh_ss(h); }
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Sum of the 8 lanes: (s_i + s_{i+4}), then pairs two apart, then the last two. The
// attention dot products are defined by this order (reduce8 below repeats it).
inline float horizontal_sum(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

inline __m256 load8_f16(const fp16_t* p) { return _mm256_cvtph_ps(load128(p)); }

// [horizontal_sum(s[0]), ..., horizontal_sum(s[7])] with the very same additions:
// horizontal_sum adds a_i = s_i + s_{i+4}, then b_i = a_i + a_{i+2}, then b_0 + b_1.
// Here each step is done for eight vectors at once by shuffling the operands of each
// addition side by side (float addition is commutative, so which side an operand
// lands on does not matter; the pairing does, and it is kept).
inline __m256 reduce8(const __m256* s) {
    __m256 a[4];  // a[k] = [a(s[2k]) | a(s[2k+1])]
    for (int k = 0; k < 4; ++k)
        a[k] = _mm256_add_ps(_mm256_permute2f128_ps(s[2 * k], s[2 * k + 1], 0x20),
                             _mm256_permute2f128_ps(s[2 * k], s[2 * k + 1], 0x31));
    // b01 = [b0(s0) b1(s0) b0(s2) b1(s2) | b0(s1) b1(s1) b0(s3) b1(s3)], b45 likewise for s4..s7
    const __m256 b01 = _mm256_add_ps(_mm256_shuffle_ps(a[0], a[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm256_shuffle_ps(a[0], a[1], _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256 b45 = _mm256_add_ps(_mm256_shuffle_ps(a[2], a[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm256_shuffle_ps(a[2], a[3], _MM_SHUFFLE(3, 2, 3, 2)));
    // r = [r0 r2 r4 r6 | r1 r3 r5 r7]
    const __m256 r = _mm256_add_ps(_mm256_shuffle_ps(b01, b45, _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm256_shuffle_ps(b01, b45, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline uint32_t load_u32(const void* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Q4_K/Q5_K: the 8 six-bit scales and 8 mins of a super-block from its 12 packed bytes,
// one per byte, as 32-bit words (scales 0..3, 4..7, mins 0..3, 4..7). Bytes 0..3 keep
// their low 6 bits; sub-blocks 4..7 take a nibble from bytes 8..11 and their top 2 bits
// from bits 6..7 of bytes 0..3 / 4..7 (>> 2 moves 6..7 to 4..5).
struct K4ScaleWords {
    uint32_t sc_lo, sc_hi, mn_lo, mn_hi;
};

inline K4ScaleWords k4_scale_words(const uint8_t* s) {
    const uint32_t a = load_u32(s), b = load_u32(s + 4), c = load_u32(s + 8);
    return {a & 0x3f3f3f3f, (c & 0x0f0f0f0f) | ((a >> 2) & 0x30303030), b & 0x3f3f3f3f,
            ((c >> 4) & 0x0f0f0f0f) | ((b >> 2) & 0x30303030)};
}

// The same as bytes: sc[8] scales, mn[8] mins.
inline void k4_scales_mins(const uint8_t* s, uint8_t sc[8], uint8_t mn[8]) {
    const K4ScaleWords w = k4_scale_words(s);
    std::memcpy(sc, &w.sc_lo, 4);
    std::memcpy(sc + 4, &w.sc_hi, 4);
    std::memcpy(mn, &w.mn_lo, 4);
    std::memcpy(mn + 4, &w.mn_hi, 4);
}

// The 16 six-bit Q3_K scales minus 32, as int8 (layout in blocks.h). Word ops: the low
// nibbles are bytes 0..7 (low, then high nibble); the top 2 bits of scales 4g..4g+3 are
// bits 2g..2g+1 of bytes 8..11, moved to bits 4..5.
inline __m128i q3k_scales(const uint8_t* s) {
    const uint32_t a = load_u32(s), b = load_u32(s + 4), c = load_u32(s + 8);
    const uint32_t w0 = (a & 0x0f0f0f0f) | ((c << 4) & 0x30303030);
    const uint32_t w1 = (b & 0x0f0f0f0f) | ((c << 2) & 0x30303030);
    const uint32_t w2 = ((a >> 4) & 0x0f0f0f0f) | (c & 0x30303030);
    const uint32_t w3 = ((b >> 4) & 0x0f0f0f0f) | ((c >> 2) & 0x30303030);
    return _mm_sub_epi8(_mm_setr_epi32(int(w0), int(w1), int(w2), int(w3)), _mm_set1_epi8(32));
}

// exp(x) for x <= 0 (attention scores minus their max, Mamba's decays), 8 lanes: x = n ln2
// + r with |r| <= ln2/2, exp(r) by Cephes' minimax polynomial, 2^n through the exponent
// bits. Below -87.3 the result would be subnormal: 0 (a weight that small is 0 after fp16
// rounding anyway; a decay that small zeroes the state either way).
inline __m256 exp_nonpositive(__m256 x) {
    const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln2 in two parts
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

// tanh(x) = sign(x) (1 - e) / (1 + e) with e = exp(-2|x|) <= 1: no overflow at any x;
// within 2e-7 of std::tanh (tested with the soft-cap). tanh(+-inf) = +-1.
inline __m256 tanh8(__m256 x) {
    const __m256 sign_bit = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    const __m256 e = exp_nonpositive(_mm256_mul_ps(_mm256_andnot_ps(sign_bit, x), _mm256_set1_ps(-2.0f)));
    const __m256 t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
    return _mm256_or_ps(t, _mm256_and_ps(x, sign_bit));
}

// x[i] = f(x[i], b[i]) over 8-lane blocks, the tail through a padded block (the same
// lanes, so a value does not depend on where its row ends). b may be null (f gets 0s).
template <class F>
void map8(float* x, const float* b, int64_t n, F f) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, f(_mm256_loadu_ps(x + i), b ? _mm256_loadu_ps(b + i) : _mm256_setzero_ps()));
    if (i == n) return;
    float xt[8] = {}, bt[8] = {};
    std::memcpy(xt, x + i, size_t(n - i) * sizeof(float));
    if (b) std::memcpy(bt, b + i, size_t(n - i) * sizeof(float));
    _mm256_storeu_ps(xt, f(_mm256_loadu_ps(xt), _mm256_loadu_ps(bt)));
    std::memcpy(x + i, xt, size_t(n - i) * sizeof(float));
}

}  // namespace
}  // namespace pensieve::simd
