// AVX-512 (F/BW/VL/DQ + VNNI, and BF16 for the bf16 dot) dot products and activation
// quantizers. Compiled with AVX-512 flags: dispatch.cpp calls into this file only after
// cpuid confirms the CPU has them.
//
// Everything here sits in an anonymous namespace and calls only intrinsics and local
// helpers (simd_local*.h: internal linkage too). An ordinary inline function from a
// shared header (std::min, fp16_to_fp32, ...) would be emitted here with AVX-512
// encodings as a COMDAT copy the linker may pick for the whole program, which would then
// crash on CPUs without AVX-512.
//
// The core integer step is vpdpbusd: u8 x s8, four adjacent products summed straight
// into int32 (no int16 saturation). A signed quantity q becomes unsigned as q + c, and
// sum (q+c) y - c sum y corrects for it with a second vpdpbusd against the constant c.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

// GCC 12 warns that the AVX-512 cast intrinsics (_mm512_castsi256_si512, ...) use an
// uninitialized value: they do, on purpose (the upper half is undefined). Known false alarm.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "kernels/simd_kernels.h"
#include "kernels/simd_local_avx512.h"
#include "quant/blocks.h"

namespace pensieve::simd {

namespace {

// ------------------------------------------------------------------ small helpers

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
inline float hsum(__m512 v) {
    return hsum(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}
inline int hsum(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}
inline int hsum(__m512i v) {
    return hsum(_mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)));
}

// Two 256-bit halves as one register: [lo, hi].
inline __m512 join(__m256 lo, __m256 hi) { return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1); }

// sum (u - c) * y per 4 bytes, u unsigned, c a constant byte: the offset form above.
inline __m512i dot_offset(__m512i u, __m512i y, __m512i c) {
    const __m512i zero = _mm512_setzero_si512();
    return _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, u, y), _mm512_dpbusd_epi32(zero, c, y));
}

// ------------------------------------------------------------------ 32-weight blocks
//
// Two blocks per 512-bit register. Lanes 0..7 of the int32 result belong to the first
// block, 8..15 to the second; each is scaled by its own d_w * d_y in float.

// Nibbles of two blocks (weight j low, j+16 high) as 64 bytes 0..15 in weight order.
inline __m512i unpack_nibbles_x2(const uint8_t* qa, const uint8_t* qb) {
    // Each 16-byte group sits in two 128-bit lanes; the second copy shifts its high
    // nibbles down (64-bit shifts are fine: the mask drops bits crossing bytes).
    const __m512i v = join(_mm256_broadcastsi128_si256(load128(qa)), _mm256_broadcastsi128_si256(load128(qb)));
    const __m512i shifted = _mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
    return _mm512_and_si512(shifted, _mm512_set1_epi8(0x0F));
}

template <typename Pair>
inline float blocks_x2(int64_t nb, const void* w, int w_stride, const void* x, int x_stride, Pair pair) {
    const auto* wb = static_cast<const uint8_t*>(w);
    const auto* xb = static_cast<const uint8_t*>(x);
    auto d = [](const uint8_t* p) -> uint64_t {
        fp16_t h;
        std::memcpy(&h, p, 2);
        return h;
    };
    // Scales of blocks i, j in one go: the four fp16 (w_i, w_j, y_i, y_j) packed into one
    // 64-bit word, one vcvtph2ps, one multiply, one vpermps to spread them over the lanes.
    const __m512i spread = join(_mm256_set1_epi32(0), _mm256_set1_epi32(1));
    auto scales = [&](int64_t i, int64_t j) {
        const uint64_t h = d(wb + i * w_stride) | d(wb + j * w_stride) << 16 | d(xb + i * x_stride) << 32 |
                           d(xb + j * x_stride) << 48;
        const __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128(int64_t(h)));
        return _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_mul_ps(f, _mm_movehl_ps(f, f))));
    };
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();  // two FMA chains
    int64_t i = 0;
    for (; i + 3 < nb; i += 4) {
        acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(pair(i, i + 1)), scales(i, i + 1), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(pair(i + 2, i + 3)), scales(i + 2, i + 3), acc1);
    }
    for (; i + 1 < nb; i += 2) acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(pair(i, i + 1)), scales(i, i + 1), acc0);
    if (i < nb)  // odd last block: paired with itself, only the first copy (lanes 0..7) added
        acc1 = _mm512_mask3_fmadd_ps(_mm512_cvtepi32_ps(pair(i, i)), scales(i, i), acc1, 0x00FF);
    return hsum(_mm512_add_ps(acc0, acc1));
}

inline __m512i y_x2(const BlockQ8_0& a, const BlockQ8_0& b) { return join(load256(a.qs), load256(b.qs)); }

float vec_dot_q4_0_q8_0(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ4_0*>(w);
    const auto* b = static_cast<const BlockQ8_0*>(x);
    const __m512i eight = _mm512_set1_epi8(8);  // q in 0..15 means q-8
    return blocks_x2(
        n / QK4_0, a, sizeof *a, b, sizeof *b,
        [&](int64_t i, int64_t j) { return dot_offset(unpack_nibbles_x2(a[i].qs, a[j].qs), y_x2(b[i], b[j]), eight); });
}

// s8 weights: w ^ 0x80 is w + 128 read as u8, so one offset dot handles every int8 value.
float vec_dot_q8_0_q8_0(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ8_0*>(w);
    const auto* b = static_cast<const BlockQ8_0*>(x);
    const __m512i bias = _mm512_set1_epi8(char(0x80));
    return blocks_x2(
        n / QK8_0, a, sizeof *a, b, sizeof *b,
        [&](int64_t i, int64_t j) { return dot_offset(_mm512_xor_si512(y_x2(a[i], a[j]), bias), y_x2(b[i], b[j]), bias); });
}

// Q5_0: the 32 qh bits of each block are a byte mask as they are (bit k = byte k).
float vec_dot_q5_0_q8_0(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ5_0*>(w);
    const auto* b = static_cast<const BlockQ8_0*>(x);
    const __m512i sixteen = _mm512_set1_epi8(16);  // q in 0..31 means q-16
    return blocks_x2(
        n / QK5_0, a, sizeof *a, b, sizeof *b,
        [&](int64_t i, int64_t j) {
            const __mmask64 hi = _cvtu64_mask64(uint64_t(load_u32(a[i].qh)) | (uint64_t(load_u32(a[j].qh)) << 32));
            const __m512i lo = unpack_nibbles_x2(a[i].qs, a[j].qs);
            const __m512i q = _mm512_or_si512(lo, _mm512_maskz_mov_epi8(hi, sixteen));
            return dot_offset(q, y_x2(b[i], b[j]), sixteen);
        });
}

// IQ4_NL: vpshufb looks the levels up; storing level+128 (as u8) in the table makes them
// unsigned for vpdpbusd, and the offset dot removes the 128 again.
float vec_dot_iq4_nl_q8_0(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockIQ4_NL*>(w);
    const auto* b = static_cast<const BlockQ8_0*>(x);
    const __m512i bias = _mm512_set1_epi8(char(0x80));
    const __m512i table = _mm512_xor_si512(_mm512_broadcast_i32x4(load128(kIq4nlValues)), bias);
    return blocks_x2(
        n / QK4_NL, a, sizeof *a, b, sizeof *b,
        [&](int64_t i, int64_t j) {
            const __m512i q = _mm512_shuffle_epi8(table, unpack_nibbles_x2(a[i].qs, a[j].qs));
            return dot_offset(q, y_x2(b[i], b[j]), bias);
        });
}

// Q4_1 / Q5_1: no AVX-512 version. Their per-block offset term (m * s) made the 512-bit
// driver slower than the AVX2 kernel (measured), so dispatch uses AVX2 for them.

// ------------------------------------------------------------------ K-quants

// sum_j mn[j] * (bsums[2j] + bsums[2j+1]).
inline int k4_min_sum(const uint8_t mn[8], const int16_t* bsums) {
    const __m128i m8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(mn));
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    return hsum(_mm256_madd_epi16(m16, load256(bsums)));
}

// vpermw indices that spread scales over 32 int16 lanes: kSpread2[p] gives lanes 0..15
// scale 2p and lanes 16..31 scale 2p+1 (Q4_K: 32-weight sub-blocks); kSpread4[m] gives
// each group of 8 lanes one of scales 4m..4m+3 (Q6_K: 16-weight sub-blocks).
struct SpreadTable {
    alignas(64) int16_t idx[4][32];
};
constexpr SpreadTable make_spread(int groups) {
    SpreadTable t{};
    for (int r = 0; r < 4; ++r)
        for (int l = 0; l < 32; ++l) t.idx[r][l] = int16_t(groups * r + l / (32 / groups));
    return t;
}
constexpr SpreadTable kSpread2 = make_spread(2);
constexpr SpreadTable kSpread4 = make_spread(4);

inline __m512i spread(const SpreadTable& t, int r) { return _mm512_load_si512(t.idx[r]); }

// Q4_K / Q5_K body: 4 steps of 64 weights = sub-blocks 2p, 2p+1. vpmaddubsw pairs stay
// below 2*31*127; vpdpwssd multiplies each int16 pair sum by its sub-block scale and
// accumulates in int32, so the integer sum matches the reference exactly.
template <typename Quants>
inline __m512i k4_weighted_sum(const uint8_t sc[8], const int8_t* y, Quants q) {
    const __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc))));
    __m512i acc = _mm512_setzero_si512();
    for (int p = 0; p < 4; ++p) {
        const __m512i scale = _mm512_permutexvar_epi16(spread(kSpread2, p), sc16);
        acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(q(p), load512(y + 64 * p)), scale);
    }
    return acc;
}

// 32 bytes x as [x, x]: the two halves then take the low / high nibbles.
inline __m512i dup256(const uint8_t* p) {
    const __m256i v = load256(p);
    return join(v, v);
}

float vec_dot_q4_K_q8_K(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ4_K*>(w);
    const auto* b = static_cast<const BlockQ8_K*>(x);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i nibble_shift = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        uint8_t sc[8], mn[8];
        k4_scales_mins(a[i].scales, sc, mn);
        const uint8_t* qs = a[i].qs;
        const __m512i isum = k4_weighted_sum(sc, b[i].qs, [&](int p) {
            return _mm512_and_si512(_mm512_srlv_epi64(dup256(qs + 32 * p), nibble_shift), low4);
        });
        const __m256i isum8 = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
        const float dy = b[i].d;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum8), _mm256_set1_ps(f16(a[i].d) * dy), acc);
        mins += f16(a[i].dmin) * dy * float(k4_min_sum(mn, b[i].bsums));
    }
    return hsum(acc) - mins;
}

float vec_dot_q5_K_q8_K(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ5_K*>(w);
    const auto* b = static_cast<const BlockQ8_K*>(x);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i sixteen = _mm512_set1_epi8(16);
    const __m512i nibble_shift = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        uint8_t sc[8], mn[8];
        k4_scales_mins(a[i].scales, sc, mn);
        const uint8_t* qs = a[i].qs;
        const __m512i qh = dup256(a[i].qh);
        const __m512i isum = k4_weighted_sum(sc, b[i].qs, [&](int p) {
            const __m512i lo = _mm512_and_si512(_mm512_srlv_epi64(dup256(qs + 32 * p), nibble_shift), low4);
            // fifth bit: bit 2p of qh for the low half, 2p+1 for the high half, as a byte mask
            const __m512i bit = join(_mm256_set1_epi8(char(1 << (2 * p))), _mm256_set1_epi8(char(1 << (2 * p + 1))));
            return _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(qh, bit), lo, sixteen);
        });
        const __m256i isum8 = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
        const float dy = b[i].d;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum8), _mm256_set1_ps(f16(a[i].d) * dy), acc);
        mins += f16(a[i].dmin) * dy * float(k4_min_sum(mn, b[i].bsums));
    }
    return hsum(acc) - mins;
}

// Q6_K: per 128-weight half, ql[64h..64h+63] holds slots 0|1 in its low nibbles and 2|3
// in its high nibbles; qh bits 2s..2s+1 go to bits 4..5. q in 0..63 means q-32, applied
// through bsums: -32 * sum_j sc_j bsum_j. vpmaddubsw pairs stay below 2*63*127.
float vec_dot_q6_K_q8_K(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ6_K*>(w);
    const auto* b = static_cast<const BlockQ8_K*>(x);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i bits45 = _mm512_set1_epi8(0x30);
    const __m512i shift01 = _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2);  // left: bits 0-1 / 2-3 -> 4-5
    const __m512i shift23 = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);  // right: bits 4-5 / 6-7 -> 4-5
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(load128(a[i].scales));
        const __m512i sc = _mm512_castsi256_si512(sc16);
        __m512i isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h) {
            const __m512i ql = load512(a[i].ql + 64 * h);
            const __m512i qh = dup256(a[i].qh + 32 * h);
            const __m512i q01 = _mm512_or_si512(_mm512_and_si512(ql, low4),
                                                _mm512_and_si512(_mm512_sllv_epi64(qh, shift01), bits45));
            const __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi64(ql, 4), low4),
                                                _mm512_and_si512(_mm512_srlv_epi64(qh, shift23), bits45));
            const int8_t* y = b[i].qs + 128 * h;
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q01, load512(y)),
                                       _mm512_permutexvar_epi16(spread(kSpread4, 2 * h), sc));
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q23, load512(y + 64)),
                                       _mm512_permutexvar_epi16(spread(kSpread4, 2 * h + 1), sc));
        }
        const int offset = 32 * hsum(_mm256_madd_epi16(sc16, load256(b[i].bsums)));
        const __m256i isum8 = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
        const __m256i total = _mm256_sub_epi32(isum8, _mm256_setr_epi32(offset, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_set1_ps(f16(a[i].d) * b[i].d), acc);
    }
    return hsum(acc);
}

// TQ2_0: t in 0..2 means t-1: sum t*y by vpdpbusd minus sum y (from bsums).
float vec_dot_tq2_0_q8_K(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockTQ2_0*>(w);
    const auto* b = static_cast<const BlockQ8_K*>(x);
    const __m512i two_bits = _mm512_set1_epi8(3);
    const __m512i shift01 = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);  // trits k=0 | k=1
    const __m512i shift23 = _mm512_setr_epi64(4, 4, 4, 4, 6, 6, 6, 6);  // trits k=2 | k=3
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; ++i) {
        __m512i isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h) {
            const __m512i v = dup256(a[i].qs + 32 * h);
            const int8_t* y = b[i].qs + 128 * h;
            isum = _mm512_dpbusd_epi32(isum, _mm512_and_si512(_mm512_srlv_epi64(v, shift01), two_bits), load512(y));
            isum = _mm512_dpbusd_epi32(isum, _mm512_and_si512(_mm512_srlv_epi64(v, shift23), two_bits), load512(y + 64));
        }
        const __m256i ysum = _mm256_madd_epi16(load256(b[i].bsums), _mm256_set1_epi16(1));
        const __m256i isum8 = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(isum8, ysum)), _mm256_set1_ps(f16(a[i].d) * b[i].d), acc);
    }
    return hsum(acc);
}

// Q2_K: 16 sub-blocks of 16, q in 0..3 with a 4-bit scale (low nibble) and min (high
// nibble) each: sum_j sc_j q_j.y_j - sum_j mn_j bsum_j. Quants unpack as in TQ2_0
// (64 weights per register = sub-blocks 4r..4r+3), vpmaddubsw pairs stay below 2*3*127,
// and vpdpwssd applies each sub-block scale as in Q6_K. The min term stays in 8 int32
// lanes and meets dmin in float, as the reference keeps it separate.
float vec_dot_q2_K_q8_K(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ2_K*>(w);
    const auto* b = static_cast<const BlockQ8_K*>(x);
    const __m512i two_bits = _mm512_set1_epi8(3);
    const __m512i shift01 = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);  // slots 0 | 1
    const __m512i shift23 = _mm512_setr_epi64(4, 4, 4, 4, 6, 6, 6, 6);  // slots 2 | 3
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const __m128i packed = load128(a[i].scales);
        const __m128i low4 = _mm_set1_epi8(0x0F);
        const __m512i sc = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(packed, low4)));
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), low4));
        __m512i isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h) {
            const __m512i v = dup256(a[i].qs + 32 * h);
            const int8_t* y = b[i].qs + 128 * h;
            const __m512i q01 = _mm512_and_si512(_mm512_srlv_epi64(v, shift01), two_bits);
            const __m512i q23 = _mm512_and_si512(_mm512_srlv_epi64(v, shift23), two_bits);
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q01, load512(y)),
                                       _mm512_permutexvar_epi16(spread(kSpread4, 2 * h), sc));
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q23, load512(y + 64)),
                                       _mm512_permutexvar_epi16(spread(kSpread4, 2 * h + 1), sc));
        }
        const __m256i isum8 = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
        const __m256i msum8 = _mm256_madd_epi16(mn16, load256(b[i].bsums));
        const float dy = b[i].d;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum8), _mm256_set1_ps(dy * f16(a[i].d)), acc);
        acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum8), _mm256_set1_ps(dy * f16(a[i].dmin)), acc);
    }
    return hsum(acc);
}

// Q3_K: u = low 2 bits | hmask bit << 2 in 0..7 means u-4, so
// sum_j sc_j (u-4).y = sum_j sc_j u.y - 4 sum_j sc_j bsum_j (scales signed, -32..31).
// vpmaddubsw pairs stay below 2*7*127. Weight 128h + 32s + l takes bit 4h+s of hmask[l].
float vec_dot_q3_K_q8_K(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ3_K*>(w);
    const auto* b = static_cast<const BlockQ8_K*>(x);
    const __m512i two_bits = _mm512_set1_epi8(3);
    const __m512i four = _mm512_set1_epi8(4);
    const __m512i shift[2] = {_mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2), _mm512_setr_epi64(4, 4, 4, 4, 6, 6, 6, 6)};
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(q3k_scales(a[i].scales));
        const __m512i sc = _mm512_castsi256_si512(sc16);
        const __m512i hm = dup256(a[i].hmask);
        __m512i isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h) {
            const __m512i v = dup256(a[i].qs + 32 * h);
            for (int p = 0; p < 2; ++p) {  // slots 2p | 2p+1: weights 128h + 64p .. +63
                const __m512i lo = _mm512_and_si512(_mm512_srlv_epi64(v, shift[p]), two_bits);
                const int bit = 4 * h + 2 * p;
                const __m512i sel = join(_mm256_set1_epi8(char(1 << bit)), _mm256_set1_epi8(char(1 << (bit + 1))));
                const __m512i u = _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(hm, sel), lo, four);
                isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(u, load512(b[i].qs + 128 * h + 64 * p)),
                                           _mm512_permutexvar_epi16(spread(kSpread4, 2 * h + p), sc));
            }
        }
        const __m256i isum8 = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
        const __m256i offset8 = _mm256_slli_epi32(_mm256_madd_epi16(sc16, load256(b[i].bsums)), 2);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(isum8, offset8)),
                              _mm256_set1_ps(f16(a[i].d) * b[i].d), acc);
    }
    return hsum(acc);
}

// TQ1_0 unpacking. Trit k of byte v is (3 * (v * 3^k mod 256)) >> 8 (blocks.h). x86 has
// no byte multiply, so both steps run on 16-bit lanes, whose two bytes share a power:
// the low byte is multiplied by p << 8 (its product mod 256 lands in the high byte, the
// rest falls off the top), the high byte, masked, by p; then vpmulhuw by 3 leaves
// (3x) >> 8 of each in the low byte of its lane, and the high byte's is shifted back up.
struct Pow3Lanes {
    alignas(64) uint16_t lo[4][32];  // p << 8, for the low byte of each 16-bit lane
    alignas(64) uint16_t hi[4][32];  // p, for the high byte
};

// The four TQ1_0 registers of a block (see vec_dot_tq1_0_q8_K) and the power of 3 each
// 16-bit lane l (bytes 2l, 2l+1) takes.
constexpr int tq1_power(int reg, int l) {
    const int lane = l / 8;  // 128-bit lane
    constexpr int p3[5] = {1, 3, 9, 27, 81};
    switch (reg) {
        case 0: return lane < 2 ? 1 : 3;                    // qs[0..31] trits 0 | 1
        case 1: return lane < 2 ? 9 : 27;                   // qs[0..31] trits 2 | 3
        case 2: return lane < 2 ? 81 : lane == 2 ? 1 : 3;   // qs[0..31] trit 4 | qs[32..47] trits 0, 1
        default: return lane < 3 ? p3[2 + lane] : p3[(l % 8) / 2];  // qs[32..47] trits 2,3,4 | qh
    }
}

constexpr Pow3Lanes make_pow3_lanes() {
    Pow3Lanes t{};
    for (int r = 0; r < 4; ++r)
        for (int l = 0; l < 32; ++l) {
            t.lo[r][l] = uint16_t(tq1_power(r, l) << 8);
            t.hi[r][l] = uint16_t(tq1_power(r, l));
        }
    return t;
}
constexpr Pow3Lanes kPow3Lanes = make_pow3_lanes();

inline __m512i tq1_trits(__m512i v, int reg) {
    const __m512i lo = _mm512_mullo_epi16(v, _mm512_load_si512(kPow3Lanes.lo[reg]));
    const __m512i hi = _mm512_mullo_epi16(_mm512_and_si512(v, _mm512_set1_epi16(int16_t(0xFF00))),
                                          _mm512_load_si512(kPow3Lanes.hi[reg]));
    const __m512i three = _mm512_set1_epi16(3);
    return _mm512_or_si512(_mm512_mulhi_epu16(lo, three), _mm512_slli_epi16(_mm512_mulhi_epu16(hi, three), 8));
}

// TQ1_0: four registers of 64 trits, each against 64 consecutive activations:
//   0: qs[0..31] trits 0 | 1                      weights   0..63
//   1: qs[0..31] trits 2 | 3                      weights  64..127
//   2: qs[0..31] trit 4 | qs[32..47] trits 0, 1   weights 128..191
//   3: qs[32..47] trits 2, 3, 4 | qh x4 trits 0..3 weights 192..255
// t in 0..2 means t-1: sum t.y by vpdpbusd minus sum y from bsums.
float vec_dot_tq1_0_q8_K(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockTQ1_0*>(w);
    const auto* b = static_cast<const BlockQ8_K*>(x);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const uint8_t* qs = a[i].qs;
        const __m512i q0 = dup256(qs);
        const __m512i q32 = _mm512_broadcast_i32x4(load128(qs + 32));
        const __m512i v[4] = {q0, q0, _mm512_inserti64x4(q0, _mm512_castsi512_si256(q32), 1),
                              _mm512_inserti32x4(q32, _mm_set1_epi32(int(load_u32(a[i].qh))), 3)};
        __m512i isum = _mm512_setzero_si512();
        for (int r = 0; r < 4; ++r) isum = _mm512_dpbusd_epi32(isum, tq1_trits(v[r], r), load512(b[i].qs + 64 * r));
        const __m256i ysum = _mm256_madd_epi16(load256(b[i].bsums), _mm256_set1_epi16(1));
        const __m256i isum8 = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(isum8, ysum)), _mm256_set1_ps(f16(a[i].d) * b[i].d), acc);
    }
    return hsum(acc);
}

// ------------------------------------------------------------------ float formats

// F32/F16 dots: the same order as the AVX2 file's dot_float (bit-identical results):
// n % 16 == 0: one 16-lane FMA accumulator, halving-tree reduction; otherwise four
// accumulators over steps of 64, combined (0+2)+(1+3), then the leftovers one by one.
inline __m512 load_f32x16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load_f16x16(const fp16_t* p) { return _mm512_cvtph_ps(load256(p)); }
inline float f32(float v) { return v; }

template <typename Elem, __m512 (*Load)(const Elem*), float (*ToF32)(Elem)>
float dot_float(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const Elem*>(w);
    const auto* b = static_cast<const Elem*>(x);
    if (n % 16 == 0) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < n; i += 16) acc = _mm512_fmadd_ps(Load(a + i), Load(b + i), acc);
        return hsum(acc);
    }
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int k = 0; k < 4; ++k) acc[k] = _mm512_fmadd_ps(Load(a + i + 16 * k), Load(b + i + 16 * k), acc[k]);
    float sum = hsum(_mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3])));
    for (; i < n; ++i) sum += ToF32(a[i]) * ToF32(b[i]);
    return sum;
}

// F16 tile: dot_float's n % 16 == 0 path (one 16-lane accumulator per pair of rows,
// halving-tree sum) for up to 4 x 4 (row, token) pairs at once. One accumulator is a
// chain of dependent fmas, so a lone dot waits on fma latency; sixteen chains side by
// side keep the fma units busy and each weight / activation vector is converted once
// for 4 uses. Other sizes (n % 16 != 0) take dot_float pair by pair.
template <int R, int T>
void dot_tile_f16_fixed(int64_t n, const uint8_t* w, size_t wb, const uint8_t* x, size_t xb, float* y,
                        int64_t ldy) {
    __m512 acc[R][T];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __m512 wv[R], xv[T];
        for (int r = 0; r < R; ++r) wv[r] = load_f16x16(reinterpret_cast<const fp16_t*>(w + size_t(r) * wb) + i);
        for (int t = 0; t < T; ++t) xv[t] = load_f16x16(reinterpret_cast<const fp16_t*>(x + size_t(t) * xb) + i);
        for (int r = 0; r < R; ++r)
            for (int t = 0; t < T; ++t) acc[r][t] = _mm512_fmadd_ps(wv[r], xv[t], acc[r][t]);
    }
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum(acc[r][t]);
}

// Runs Tile::fixed<R, T> for a tile of n_rows x n_tok (1..Tile::kRows, 1..Tile::kTokens):
// one table of every shape for every tile kernel.
template <class Tile>
void run_fixed_tile(int64_t n, const uint8_t* w, size_t wb, int n_rows, const uint8_t* x, size_t xb, int n_tok,
                    float* y, int64_t ldy) {
    using Fn = void (*)(int64_t, const uint8_t*, size_t, const uint8_t*, size_t, float*, int64_t);
    constexpr int R = Tile::kRows, T = Tile::kTokens;
    static constexpr auto kFixed = []<int... I>(std::integer_sequence<int, I...>) {
        return std::array<Fn, sizeof...(I)>{Tile::template fixed<I / T + 1, I % T + 1>...};
    }(std::make_integer_sequence<int, R * T>{});
    kFixed[size_t((n_rows - 1) * T + (n_tok - 1))](n, w, wb, x, xb, y, ldy);
}

struct F16Tile {
    static constexpr int kRows = 4, kTokens = 4;
    template <int R, int T>
    static void fixed(int64_t n, const uint8_t* w, size_t wb, const uint8_t* x, size_t xb, float* y, int64_t ldy) {
        dot_tile_f16_fixed<R, T>(n, w, wb, x, xb, y, ldy);
    }
};

void dot_tile_f16(int64_t n, const uint8_t* w, size_t wb, int n_rows, const uint8_t* x, size_t xb, int n_tok,
                  float* y, int64_t ldy) {
    if (n % 16 != 0) {
        for (int r = 0; r < n_rows; ++r)
            for (int t = 0; t < n_tok; ++t)
                y[t * ldy + r] = dot_float<fp16_t, load_f16x16, f16>(n, w + size_t(r) * wb, x + size_t(t) * xb);
        return;
    }
    run_fixed_tile<F16Tile>(n, w, wb, n_rows, x, xb, n_tok, y, ldy);
}

// vdpbf16ps: 32 bf16 pairs per instruction, products summed in float. (It treats
// denormal inputs and results as zero; weights and activations are never that small.)
inline __m512bh as_bf16(__m512i v) { return (__m512bh)v; }

// One accumulator per dot: 32-value steps, a masked tail into the same sum, then the
// 16 lanes summed. A lone dot is a chain of dependent vdpbf16ps, but the matmul runs them
// in tiles of up to 4 x 4 (row, token) pairs, sixteen chains side by side, each weight
// and activation vector loaded once for four uses. The previous arithmetic (four
// accumulators per dot) allowed only 2 x 2 tiles in 32 registers, which loaded as many
// vectors as it multiplied: single-thread kernel loop 137 -> 247 GFLOP/s (2048-value
// rows, 48 x 48 block, /tmp microbenchmark beside a build).
float vec_dot_bf16(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const bf16_t*>(w);
    const auto* b = static_cast<const bf16_t*>(x);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) acc = _mm512_dpbf16_ps(acc, as_bf16(load512(a + i)), as_bf16(load512(b + i)));
    if (i < n) {
        const __mmask32 m = __mmask32((1u << (n - i)) - 1);
        acc = _mm512_dpbf16_ps(acc, as_bf16(_mm512_maskz_loadu_epi16(m, a + i)), as_bf16(_mm512_maskz_loadu_epi16(m, b + i)));
    }
    return hsum(acc);
}

// BF16 tile: vec_dot_bf16's arithmetic for up to 5 x 5 (row, token) pairs at once: 25
// accumulators and 5 weight vectors in the 32 registers, each activation vector loaded
// once per row (a memory operand). Single-core loop on 2048-value rows, 48 tokens:
// 4 x 4 272-370 GFLOP/s, 5 x 5 327-372, 6 x 4 308-396 (noisy host; vdpbf16ps peaks at
// 419 here).
template <int R, int T>
void dot_tile_bf16_fixed(int64_t n, const uint8_t* w, size_t wb, const uint8_t* x, size_t xb, float* y,
                         int64_t ldy) {
    const bf16_t* a[R];
    const bf16_t* b[T];
    for (int r = 0; r < R; ++r) a[r] = reinterpret_cast<const bf16_t*>(w + size_t(r) * wb);
    for (int t = 0; t < T; ++t) b[t] = reinterpret_cast<const bf16_t*>(x + size_t(t) * xb);
    __m512 acc[R][T];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
    auto step = [&](auto load, int64_t i) {
        __m512i wv[R];
        for (int r = 0; r < R; ++r) wv[r] = load(a[r], i);
        for (int t = 0; t < T; ++t) {
            const __m512i xv = load(b[t], i);
            for (int r = 0; r < R; ++r) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], as_bf16(wv[r]), as_bf16(xv));
        }
    };
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) step([](const bf16_t* p, int64_t j) { return load512(p + j); }, i);
    if (i < n) {
        const __mmask32 tail = __mmask32((1u << (n - i)) - 1);
        step([tail](const bf16_t* p, int64_t j) { return _mm512_maskz_loadu_epi16(tail, p + j); }, i);
    }
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum(acc[r][t]);
}

struct Bf16Tile {
    static constexpr int kRows = 5, kTokens = 5;
    template <int R, int T>
    static void fixed(int64_t n, const uint8_t* w, size_t wb, const uint8_t* x, size_t xb, float* y, int64_t ldy) {
        dot_tile_bf16_fixed<R, T>(n, w, wb, x, xb, y, ldy);
    }
};

void dot_tile_bf16(int64_t n, const uint8_t* w, size_t wb, int n_rows, const uint8_t* x, size_t xb, int n_tok,
                   float* y, int64_t ldy) {
    run_fixed_tile<Bf16Tile>(n, w, wb, n_rows, x, xb, n_tok, y, ldy);
}

// ------------------------------------------------------------------ activation quantizers

inline __m512 abs_ps(__m512 v) { return _mm512_abs_ps(v); }

// std::round (half away from zero) exactly: truncate, then step away from zero when the
// dropped fraction (exact in float) is at least one half.
inline __m512 round_half_away(__m512 v) {
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 up = _mm512_cmp_ps_mask(abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512 step = _mm512_or_ps(_mm512_and_ps(v, _mm512_set1_ps(-0.0f)), _mm512_set1_ps(1.0f));  // +-1
    return _mm512_mask_add_ps(t, up, t, step);
}

// Q8_0: d = amax/127 with the reference's scalar arithmetic, q = round(x * id).
void from_float_q8_0(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ8_0*>(dst);
    for (int64_t i = 0; i < n / QK8_0; ++i, src += QK8_0) {
        const __m512 v0 = _mm512_loadu_ps(src), v1 = _mm512_loadu_ps(src + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(abs_ps(v0), abs_ps(v1)));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        const __m512 vid = _mm512_set1_ps(id);
        // vpmovsdb: int32 -> int8 with saturation, in element order
        _mm_storeu_si128(reinterpret_cast<__m128i*>(b[i].qs),
                         _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(round_half_away(_mm512_mul_ps(v0, vid)))));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(b[i].qs + 16),
                         _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(round_half_away(_mm512_mul_ps(v1, vid)))));
    }
}

// Q8_K: scale from the first value of largest magnitude, q = nearest-even(x * -127/max)
// (vcvtps2dq rounds that way) capped at 127 by the saturating narrow; 16 weights per
// register is exactly one bsum.
void from_float_q8_K(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ8_K*>(dst);
    for (int64_t i = 0; i < n / QK_K; ++i, src += QK_K) {
        __m512 m = _mm512_setzero_ps();
        for (int k = 0; k < QK_K; k += 16) m = _mm512_max_ps(m, abs_ps(_mm512_loadu_ps(src + k)));
        const float amax = _mm512_reduce_max_ps(m);
        if (amax == 0) {
            std::memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        int first = 0;
        for (int k = 0; k < QK_K; k += 16) {
            const unsigned hit = _mm512_cmp_ps_mask(abs_ps(_mm512_loadu_ps(src + k)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
            if (hit) {
                first = k + __builtin_ctz(hit);
                break;
            }
        }
        const float iscale = -127.f / src[first];
        const __m512 vs = _mm512_set1_ps(iscale);
        for (int k = 0; k < QK_K; k += 16) {
            const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(src + k), vs));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(b[i].qs + k), _mm512_cvtsepi32_epi8(q));
            b[i].bsums[k / 16] = int16_t(hsum(q));
        }
        b[i].d = 1 / iscale;
    }
}

}  // namespace

DotTile avx512_dot_tile(GgmlType type) {
    switch (type) {
        case GgmlType::F16: return {dot_tile_f16, F16Tile::kRows, F16Tile::kTokens};
        case GgmlType::BF16: return {dot_tile_bf16, Bf16Tile::kRows, Bf16Tile::kTokens};
        default: return {};
    }
}

VecDotFn avx512_vec_dot(GgmlType type) {
    switch (type) {
        case GgmlType::F32: return dot_float<float, load_f32x16, f32>;
        case GgmlType::F16: return dot_float<fp16_t, load_f16x16, f16>;
        case GgmlType::BF16: return vec_dot_bf16;
        case GgmlType::Q4_0: return vec_dot_q4_0_q8_0;
        case GgmlType::Q5_0: return vec_dot_q5_0_q8_0;
        case GgmlType::Q8_0: return vec_dot_q8_0_q8_0;
        case GgmlType::IQ4_NL: return vec_dot_iq4_nl_q8_0;
        case GgmlType::Q4_K: return vec_dot_q4_K_q8_K;
        case GgmlType::Q5_K: return vec_dot_q5_K_q8_K;
        case GgmlType::Q6_K: return vec_dot_q6_K_q8_K;
        case GgmlType::TQ2_0: return vec_dot_tq2_0_q8_K;
        case GgmlType::Q2_K: return vec_dot_q2_K_q8_K;
        case GgmlType::Q3_K: return vec_dot_q3_K_q8_K;
        case GgmlType::TQ1_0: return vec_dot_tq1_0_q8_K;
        default: return nullptr;
    }
}

FromFloatFn avx512_from_float(GgmlType type) {
    switch (type) {
        case GgmlType::Q8_0: return from_float_q8_0;
        case GgmlType::Q8_K: return from_float_q8_K;
        default: return nullptr;
    }
}

}  // namespace pensieve::simd
