// AVX2 (x86-64-v3 baseline) dot products and activation quantizers. Each function
// computes the same integer block sums as its scalar reference in quant/ and scales them
// in float; only the order of the float additions differs.
//
// The core integer step is vpmaddubsw: u8 x s8 products, adjacent pairs summed to int16
// (saturating), then vpmaddwd by 1 (or by a scale) to widen pairs to int32. Every use
// below notes why the int16 pair sum cannot saturate.
#include <immintrin.h>

#include <cstring>

#include "kernels/simd_kernels.h"
#include "kernels/simd_local.h"
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

inline int hsum(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

inline float hmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

// A 16-lane float register as two 8-lane halves, to add in the same order as AVX-512.
struct V16 {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
};
inline V16 add(V16 a, V16 b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
inline float hsum(V16 v) { return hsum(_mm256_add_ps(v.lo, v.hi)); }  // = the 512-bit tree

inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// u8 x s8 over 32 bytes as 8 int32 lanes (caller guarantees no int16 pair saturation).
inline __m256i dot_u8s8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// s8 x s8: maddubs needs one unsigned operand, so move w's sign onto y: |w| * (y * sign w).
// |-128| reads back as u8 128, fine; y must not be -128 (activation quantizers never emit it).
inline __m256i dot_s8s8(__m256i w, __m256i y) {
    return dot_u8s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(y, w));
}

// 16 packed nibbles (weight j low, j+16 high) as 32 bytes 0..15 in weight order.
inline __m256i unpack_nibbles16(const uint8_t* qs) {
    const __m128i x = load128(qs);
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(x, 4), x);  // high nibbles -> upper lane
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// The 32 bits of `bits` as 32 bytes: 0xFF where the bit is set.
inline __m256i bits_to_bytes(uint32_t bits) {
    // Byte k gets byte k/8 of the word (in-lane shuffle), then tests its own bit k%8.
    const __m256i pick = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)), pick);
    const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

// ------------------------------------------------------------------ 32-weight blocks

// d_w * d_y of blocks i and i+1 (both d an fp16 at the start of its block): the four
// fp16 packed into one 64-bit word, so one vcvtph2ps and one multiply do all four.
template <typename BW, typename BX>
inline __m128 scales2(const BW* a, const BX* b, int64_t i) {
    const uint64_t h = uint64_t(a[i].d) | uint64_t(a[i + 1].d) << 16 | uint64_t(b[i].d) << 32 |
                       uint64_t(b[i + 1].d) << 48;
    const __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128(int64_t(h)));
    return _mm_mul_ps(f, _mm_movehl_ps(f, f));  // [s_i, s_i+1, ...]
}

// Driver of the 32-weight formats: block(a, b) gives one block's int32 sums in 8 lanes
// (lane k: bytes 4k..4k+3). It adds in exactly the order of the AVX-512 driver — blocks
// i, i+1 as the two halves of a 16-lane accumulator (V16), pairs alternating between two
// accumulators, the odd last block into the low half of the second — so both levels give the same
// bits and results do not depend on the machine's SIMD level.
template <typename BW, typename BX, typename Block>
inline float blocks_x1(int64_t nb, const BW* a, const BX* b, Block block) {
    auto pair = [&](V16& acc, int64_t i) {
        const __m128 s = scales2(a, b, i);
        acc.lo = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block(a[i], b[i])), _mm256_broadcastss_ps(s), acc.lo);
        acc.hi = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block(a[i + 1], b[i + 1])), _mm256_broadcastss_ps(_mm_movehdup_ps(s)),
                                 acc.hi);
    };
    V16 acc0, acc1;
    int64_t i = 0;
    for (; i + 3 < nb; i += 4) {
        pair(acc0, i);
        pair(acc1, i + 2);
    }
    for (; i + 1 < nb; i += 2) pair(acc0, i);
    if (i < nb)
        acc1.lo = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block(a[i], b[i])), _mm256_set1_ps(f16(a[i].d) * f16(b[i].d)), acc1.lo);
    return hsum(add(acc0, acc1));
}

// Q4_0: q in 0..15 means q-8. sum (q-8)y = maddubs(q,y) - maddubs(8,y); int16 pairs stay
// within 2*15*127 and 2*8*127, so neither saturates.
inline __m256i q4_0_block(const BlockQ4_0& a, const BlockQ8_0& b) {
    const __m256i q = unpack_nibbles16(a.qs);
    const __m256i y = load256(b.qs);
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y), _mm256_maddubs_epi16(_mm256_set1_epi8(8), y));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

float vec_dot_q4_0_q8_0(int64_t n, const void* w, const void* x) {
    return blocks_x1(n / QK4_0, static_cast<const BlockQ4_0*>(w), static_cast<const BlockQ8_0*>(x),
                     [](const BlockQ4_0& a, const BlockQ8_0& b) { return q4_0_block(a, b); });  // a lambda, not a function pointer: it inlines
}

inline __m256i q8_0_block(const BlockQ8_0& a, const BlockQ8_0& b) { return dot_s8s8(load256(a.qs), load256(b.qs)); }

float vec_dot_q8_0_q8_0(int64_t n, const void* w, const void* x) {
    return blocks_x1(n / QK8_0, static_cast<const BlockQ8_0*>(w), static_cast<const BlockQ8_0*>(x),
                     [](const BlockQ8_0& a, const BlockQ8_0& b) { return q8_0_block(a, b); });  // a lambda, not a function pointer: it inlines
}

// Q5_0: q = nibble | (qh bit << 4) in 0..31 means q-16; pairs within 2*31*127: no saturation.
inline __m256i q5_0_block(const BlockQ5_0& a, const BlockQ8_0& b) {
    const __m256i hi = _mm256_and_si256(bits_to_bytes(load_u32(a.qh)), _mm256_set1_epi8(0x10));
    const __m256i q = _mm256_or_si256(unpack_nibbles16(a.qs), hi);
    const __m256i y = load256(b.qs);
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y), _mm256_maddubs_epi16(_mm256_set1_epi8(16), y));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

float vec_dot_q5_0_q8_0(int64_t n, const void* w, const void* x) {
    return blocks_x1(n / QK5_0, static_cast<const BlockQ5_0*>(w), static_cast<const BlockQ8_0*>(x),
                     [](const BlockQ5_0& a, const BlockQ8_0& b) { return q5_0_block(a, b); });  // a lambda, not a function pointer: it inlines
}

// Q4_1 / Q5_1 against Q8_1: unsigned q times y, plus the offset m times the block sum s.
float vec_dot_q4_1_q8_1(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ4_1*>(w);
    const auto* b = static_cast<const BlockQ8_1*>(x);
    __m256 acc = _mm256_setzero_ps();
    float offsets = 0.0f;
    for (int64_t i = 0; i < n / QK4_1; ++i) {
        const __m256i isum = dot_u8s8(unpack_nibbles16(a[i].qs), load256(b[i].qs));  // pairs <= 2*15*127
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(a[i].d) * f16(b[i].d)), acc);
        offsets += f16(a[i].m) * f16(b[i].s);
    }
    return hsum(acc) + offsets;
}

float vec_dot_q5_1_q8_1(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ5_1*>(w);
    const auto* b = static_cast<const BlockQ8_1*>(x);
    __m256 acc = _mm256_setzero_ps();
    float offsets = 0.0f;
    for (int64_t i = 0; i < n / QK5_1; ++i) {
        const __m256i hi = _mm256_and_si256(bits_to_bytes(load_u32(a[i].qh)), _mm256_set1_epi8(0x10));
        const __m256i q = _mm256_or_si256(unpack_nibbles16(a[i].qs), hi);
        const __m256i isum = dot_u8s8(q, load256(b[i].qs));  // pairs <= 2*31*127
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(a[i].d) * f16(b[i].d)), acc);
        offsets += f16(a[i].m) * f16(b[i].s);
    }
    return hsum(acc) + offsets;
}

// IQ4_NL: the 16 levels fit one register, so vpshufb is the table lookup; the levels
// are signed, hence the sign trick (|level| <= 127).
float vec_dot_iq4_nl_q8_0(int64_t n, const void* w, const void* x) {
    const __m256i levels = _mm256_broadcastsi128_si256(load128(kIq4nlValues));
    return blocks_x1(n / QK4_NL, static_cast<const BlockIQ4_NL*>(w), static_cast<const BlockQ8_0*>(x),
                     [&](const BlockIQ4_NL& a, const BlockQ8_0& b) {
                         return dot_s8s8(_mm256_shuffle_epi8(levels, unpack_nibbles16(a.qs)), load256(b.qs));
                     });
}

// ------------------------------------------------------------------ K-quants

// sum_j mn[j] * (bsums[2j] + bsums[2j+1]): each min repeated twice lines up with bsums.
inline int k4_min_sum(const uint8_t mn[8], const int16_t* bsums) {
    const __m128i m8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(mn));
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    return hsum(_mm256_madd_epi16(m16, load256(bsums)));
}

// Broadcast int16 element k (0..7) of each 128-bit lane of v to the whole lane.
inline __m256i splat_i16(__m256i v, int k) {
    const __m256i ctrl = _mm256_set1_epi16(int16_t((2 * k) | ((2 * k + 1) << 8)));
    return _mm256_shuffle_epi8(v, ctrl);
}

// Q4_K / Q5_K main loop body: 4 pairs of 32-weight sub-blocks; q(p, half) gives the 32
// unsigned quants of sub-block 2p+half. maddubs pairs stay below 2*31*127; vpmaddwd by
// the 6-bit scale widens to int32 and applies it in one step.
// Low lane: int16 element k of v's low lane everywhere; high lane: element k+1 of v's high
// lane (v has the same 8 values in both lanes, so this pairs sub-blocks k and k+1).
inline __m256i splat_pair_i16(__m256i v, int k) {
    const __m256i ctrl = _mm256_setr_m128i(_mm_set1_epi16(int16_t((2 * k) | ((2 * k + 1) << 8))),
                                           _mm_set1_epi16(int16_t((2 * k + 2) | ((2 * k + 3) << 8))));
    return _mm256_shuffle_epi8(v, ctrl);
}

template <typename Quants>
inline __m256i k4_weighted_sum(const uint8_t sc[8], const int8_t* y, Quants q) {
    const __m128i sc8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc));
    const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sc8));
    __m256i acc = _mm256_setzero_si256();
    for (int p = 0; p < 4; ++p) {
        const __m256i p0 = _mm256_maddubs_epi16(q(p, 0), load256(y + 64 * p));
        const __m256i p1 = _mm256_maddubs_epi16(q(p, 1), load256(y + 64 * p + 32));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p0, splat_i16(sc16, 2 * p)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p1, splat_i16(sc16, 2 * p + 1)));
    }
    return acc;
}

float vec_dot_q4_K_q8_K(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ4_K*>(w);
    const auto* b = static_cast<const BlockQ8_K*>(x);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        uint8_t sc[8], mn[8];
        k4_scales_mins(a[i].scales, sc, mn);
        const uint8_t* qs = a[i].qs;
        const __m256i isum = k4_weighted_sum(sc, b[i].qs, [&](int p, int half) {
            const __m256i v = load256(qs + 32 * p);  // low nibbles: sub-block 2p, high: 2p+1
            return _mm256_and_si256(half ? _mm256_srli_epi16(v, 4) : v, low4);
        });
        const float dy = b[i].d;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(a[i].d) * dy), acc);
        mins += f16(a[i].dmin) * dy * float(k4_min_sum(mn, b[i].bsums));
    }
    return hsum(acc) - mins;
}

float vec_dot_q5_K_q8_K(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ5_K*>(w);
    const auto* b = static_cast<const BlockQ8_K*>(x);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        uint8_t sc[8], mn[8];
        k4_scales_mins(a[i].scales, sc, mn);
        const uint8_t* qs = a[i].qs;
        const __m256i qh = load256(a[i].qh);
        const __m256i isum = k4_weighted_sum(sc, b[i].qs, [&](int p, int half) {
            const __m256i v = load256(qs + 32 * p);
            const __m256i lo = _mm256_and_si256(half ? _mm256_srli_epi16(v, 4) : v, low4);
            // fifth bit of sub-block 2p+half is bit 2p+half of qh; shift it to bit 4
            const int bit = 2 * p + half;
            const __m256i h = bit <= 4 ? _mm256_slli_epi16(qh, 4 - bit) : _mm256_srli_epi16(qh, bit - 4);
            return _mm256_or_si256(lo, _mm256_and_si256(h, bit4));
        });
        const float dy = b[i].d;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(a[i].d) * dy), acc);
        mins += f16(a[i].dmin) * dy * float(k4_min_sum(mn, b[i].bsums));
    }
    return hsum(acc) - mins;
}

// Q6_K: q = low nibble | 2 high bits << 4, in 0..63 meaning q-32. The -32 is applied with
// bsums: sum_j sc_j (q-32).y = sum_j sc_j q.y - 32 sum_j sc_j bsum_j. Pairs <= 2*63*127.
float vec_dot_q6_K_q8_K(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ6_K*>(w);
    const auto* b = static_cast<const BlockQ8_K*>(x);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i bits45 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(load128(a[i].scales));  // 16 scales as int16
        // sub-block scales 0..7 in both lanes, and 8..15 in both lanes, for splat_pair below
        const __m256i sc_lo = _mm256_permute2x128_si256(sc16, sc16, 0x00);
        const __m256i sc_hi = _mm256_permute2x128_si256(sc16, sc16, 0x11);
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i ql0 = load256(a[i].ql + 64 * h), ql1 = load256(a[i].ql + 64 * h + 32);
            const __m256i qh = load256(a[i].qh + 32 * h);
            // slot s takes qh bits 2s..2s+1 to bits 4..5
            const __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45)),
                _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, bits45)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45)),
            };
            const __m256i& scv = h ? sc_hi : sc_lo;
            for (int s = 0; s < 4; ++s) {
                // 32 weights = sub-blocks 8h+2s (low lane) and 8h+2s+1 (high lane)
                const __m256i scale = splat_pair_i16(scv, 2 * s);
                const __m256i p = _mm256_maddubs_epi16(q[s], load256(b[i].qs + 128 * h + 32 * s));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, scale));
            }
        }
        const int offset = 32 * hsum(_mm256_madd_epi16(sc16, load256(b[i].bsums)));
        const __m256i total = _mm256_sub_epi32(isum, _mm256_setr_epi32(offset, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_set1_ps(f16(a[i].d) * b[i].d), acc);
    }
    return hsum(acc);
}

// TQ2_0: t in 0..2 means t-1; sum (t-1)y = t.y - sum(y), sum(y) from bsums.
float vec_dot_tq2_0_q8_K(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockTQ2_0*>(w);
    const auto* b = static_cast<const BlockQ8_K*>(x);
    const __m256i two_bits = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; ++i) {
        __m256i p16 = _mm256_setzero_si256();  // 8 maddubs of pairs <= 2*2*127: int16 safe
        for (int h = 0; h < 2; ++h) {
            const __m256i v = load256(a[i].qs + 32 * h);
            for (int k = 0; k < 4; ++k) {
                const __m256i t = _mm256_and_si256(_mm256_srli_epi16(v, 2 * k), two_bits);
                p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(t, load256(b[i].qs + 128 * h + 32 * k)));
            }
        }
        const __m256i ones = _mm256_set1_epi16(1);
        const __m256i isum = _mm256_sub_epi32(_mm256_madd_epi16(p16, ones), _mm256_madd_epi16(load256(b[i].bsums), ones));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(a[i].d) * b[i].d), acc);
    }
    return hsum(acc);
}

// Q2_K: 16 sub-blocks of 16, q in 0..3, 4-bit scale (low nibble) and min (high nibble):
// sum_j sc_j q_j.y_j - sum_j mn_j bsum_j. Each shift slot s of half h is 32 weights =
// sub-blocks 8h+2s (low lane) and 8h+2s+1 (high lane), so the scales pair up as in Q6_K.
// vpmaddubsw pairs stay below 2*3*127. The min term meets dmin in float, as in the reference.
float vec_dot_q2_K_q8_K(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ2_K*>(w);
    const auto* b = static_cast<const BlockQ8_K*>(x);
    const __m256i two_bits = _mm256_set1_epi8(3);
    const __m128i low4 = _mm_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const __m128i packed = load128(a[i].scales);
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, low4));
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), low4));
        const __m256i sc_half[2] = {_mm256_permute2x128_si256(sc16, sc16, 0x00), _mm256_permute2x128_si256(sc16, sc16, 0x11)};
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i v = load256(a[i].qs + 32 * h);
            for (int s = 0; s < 4; ++s) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(v, 2 * s), two_bits);
                const __m256i p = _mm256_maddubs_epi16(q, load256(b[i].qs + 128 * h + 32 * s));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, splat_pair_i16(sc_half[h], 2 * s)));
            }
        }
        const __m256i msum = _mm256_madd_epi16(mn16, load256(b[i].bsums));
        const float dy = b[i].d;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(dy * f16(a[i].d)), acc);
        acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(dy * f16(a[i].dmin)), acc);
    }
    return hsum(acc);
}

// Q3_K: u = low 2 bits | hmask bit << 2 in 0..7 means u-4, so
// sum_j sc_j (u-4).y = sum_j sc_j u.y - 4 sum_j sc_j bsum_j (scales signed, -32..31).
// vpmaddubsw pairs stay below 2*7*127. Weight 128h + 32s + l takes bit 4h+s of hmask[l].
float vec_dot_q3_K_q8_K(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockQ3_K*>(w);
    const auto* b = static_cast<const BlockQ8_K*>(x);
    const __m256i two_bits = _mm256_set1_epi8(3);
    const __m256i bit2 = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(q3k_scales(a[i].scales));
        const __m256i sc_half[2] = {_mm256_permute2x128_si256(sc16, sc16, 0x00), _mm256_permute2x128_si256(sc16, sc16, 0x11)};
        const __m256i hm = load256(a[i].hmask);
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i v = load256(a[i].qs + 32 * h);
            for (int s = 0; s < 4; ++s) {
                const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(v, 2 * s), two_bits);
                // hmask bit 4h+s to bit 2 (16-bit shifts: the mask drops bits from the neighbour byte)
                const int bit = 4 * h + s;
                const __m256i hb = bit >= 2 ? _mm256_srli_epi16(hm, bit - 2) : _mm256_slli_epi16(hm, 2 - bit);
                const __m256i u = _mm256_or_si256(lo, _mm256_and_si256(hb, bit2));
                const __m256i p = _mm256_maddubs_epi16(u, load256(b[i].qs + 128 * h + 32 * s));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, splat_pair_i16(sc_half[h], 2 * s)));
            }
        }
        const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, load256(b[i].bsums)), 2);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(isum, offset)), _mm256_set1_ps(f16(a[i].d) * b[i].d),
                              acc);
    }
    return hsum(acc);
}

// TQ1_0 trits: trit k of byte v is (3 * (v * 3^k mod 256)) >> 8 (blocks.h). x86 has no
// byte multiply, so both steps run on 16-bit lanes whose two bytes share the power p:
// the low byte times p << 8 leaves its product mod 256 in the high byte (the rest falls
// off the top), the masked high byte times p likewise; vpmulhuw by 3 then gives (3x) >> 8
// in the low byte of the lane, and the high byte's result is shifted back up.
inline __m256i tq1_trits(__m256i v, __m256i pow_lo, __m256i pow_hi) {
    const __m256i lo = _mm256_mullo_epi16(v, pow_lo);
    const __m256i hi = _mm256_mullo_epi16(_mm256_and_si256(v, _mm256_set1_epi16(int16_t(0xFF00))), pow_hi);
    const __m256i three = _mm256_set1_epi16(3);
    return _mm256_or_si256(_mm256_mulhi_epu16(lo, three), _mm256_slli_epi16(_mm256_mulhi_epu16(hi, three), 8));
}

// Powers for tq1_trits, given per 128-bit lane or per 32-bit element.
inline __m256i pow3_lanes(int lo_lane, int hi_lane, int shift) {
    return _mm256_setr_m128i(_mm_set1_epi16(int16_t(lo_lane << shift)), _mm_set1_epi16(int16_t(hi_lane << shift)));
}

// TQ1_0: eight registers of 32 trits, each against 32 consecutive activations:
// qs[0..31] trit k (k = 0..4) is weights 32k..32k+31; qs[32..47] in both lanes, trits
// 0 | 1, then 2 | 3, are weights 160..223; trit 4 | qh (repeated 4 times, trit k in
// dword k) is 224..255. t in 0..2 means t-1: sum t.y minus sum y from bsums.
float vec_dot_tq1_0_q8_K(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const BlockTQ1_0*>(w);
    const auto* b = static_cast<const BlockQ8_K*>(x);
    const __m256i pow_lo[3] = {pow3_lanes(1, 3, 8), pow3_lanes(9, 27, 8),
                               _mm256_setr_epi16(81 << 8, 81 << 8, 81 << 8, 81 << 8, 81 << 8, 81 << 8, 81 << 8, 81 << 8,
                                                 1 << 8, 1 << 8, 3 << 8, 3 << 8, 9 << 8, 9 << 8, 27 << 8, 27 << 8)};
    const __m256i pow_hi[3] = {pow3_lanes(1, 3, 0), pow3_lanes(9, 27, 0),
                               _mm256_setr_epi16(81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 3, 3, 9, 9, 27, 27)};
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const __m256i q0 = load256(a[i].qs);
        const __m256i q32 = _mm256_broadcastsi128_si256(load128(a[i].qs + 32));
        const __m256i tail = _mm256_inserti128_si256(q32, _mm_set1_epi32(int(load_u32(a[i].qh))), 1);
        const int8_t* y = b[i].qs;
        __m256i p16 = _mm256_setzero_si256();  // 8 vpmaddubsw of pairs <= 2*2*127: int16 safe
        for (int k = 0; k < 5; ++k) {
            const int p = (k == 0 ? 1 : k == 1 ? 3 : k == 2 ? 9 : k == 3 ? 27 : 81);
            const __m256i t = tq1_trits(q0, _mm256_set1_epi16(int16_t(p << 8)), _mm256_set1_epi16(int16_t(p)));
            p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(t, load256(y + 32 * k)));
        }
        p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(tq1_trits(q32, pow_lo[0], pow_hi[0]), load256(y + 160)));
        p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(tq1_trits(q32, pow_lo[1], pow_hi[1]), load256(y + 192)));
        p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(tq1_trits(tail, pow_lo[2], pow_hi[2]), load256(y + 224)));
        const __m256i isum = _mm256_sub_epi32(_mm256_madd_epi16(p16, ones), _mm256_madd_epi16(load256(b[i].bsums), ones));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(a[i].d) * b[i].d), acc);
    }
    return hsum(acc);
}

// ------------------------------------------------------------------ float formats

inline __m256 load_f32x8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load_f16x8(const fp16_t* p) { return _mm256_cvtph_ps(load128(p)); }
// bf16 is the top half of a float32: widen to 32 bits and shift into place.
inline __m256 load_bf16x8(const bf16_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(p)), 16));
}
inline float f32(float v) { return v; }
inline float bf16_scalar(bf16_t h) { return fp32_from_bits(uint32_t(h) << 16); }

// F32/F16 dots add as a 16-lane machine would, so AVX2 and AVX-512 give the same bits:
// for n % 16 == 0 one 16-lane FMA accumulator (a tiled GEMM's natural order), reduced as
// a halving tree; otherwise four 16-lane accumulators over steps of 64 (so the FMA
// chains overlap), combined (0+2)+(1+3), then the leftover elements one by one.

template <typename Elem, __m256 (*Load)(const Elem*), float (*ToF32)(Elem)>
float dot_float(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const Elem*>(w);
    const auto* b = static_cast<const Elem*>(x);
    auto fma16 = [&](V16& acc, int64_t i) {
        acc.lo = _mm256_fmadd_ps(Load(a + i), Load(b + i), acc.lo);
        acc.hi = _mm256_fmadd_ps(Load(a + i + 8), Load(b + i + 8), acc.hi);
    };
    if (n % 16 == 0) {
        V16 acc;
        for (int64_t i = 0; i < n; i += 16) fma16(acc, i);
        return hsum(acc);
    }
    V16 acc[4];
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int k = 0; k < 4; ++k) fma16(acc[k], i + 16 * k);
    float sum = hsum(add(add(acc[0], acc[2]), add(acc[1], acc[3])));
    for (; i < n; ++i) sum += ToF32(a[i]) * ToF32(b[i]);
    return sum;
}

// BF16 has no golden test to match: four independent accumulators, so the FMA chains
// do not wait on each other's latency.
float vec_dot_bf16(int64_t n, const void* w, const void* x) {
    const auto* a = static_cast<const bf16_t*>(w);
    const auto* b = static_cast<const bf16_t*>(x);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; ++k)
            acc[k] = _mm256_fmadd_ps(load_bf16x8(a + i + 8 * k), load_bf16x8(b + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load_bf16x8(a + i), load_bf16x8(b + i), acc[0]);
    float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; ++i) sum += bf16_scalar(a[i]) * bf16_scalar(b[i]);
    return sum;
}

// ------------------------------------------------------------------ activation quantizers

// 32 int32 lanes (4 registers, in order) to 32 int8 in order. The packs work per 128-bit
// lane, which interleaves groups of 4; the final permute restores element order.
inline __m256i pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    const __m256i abcd = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// std::round (half away from zero) exactly: truncate, then step away from zero when the
// dropped fraction (exact in float) is at least one half.
inline __m256 round_half_away(__m256 v) {
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = abs_ps(_mm256_sub_ps(v, t));
    const __m256 step = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));  // +-1
    return _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), step));
}

// Q8_0: d = amax/127, q = round(x / d) as std::round; same scalar d/id arithmetic as the
// reference so the bytes match.
void from_float_q8_0(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ8_0*>(dst);
    for (int64_t i = 0; i < n / QK8_0; ++i, src += QK8_0) {
        __m256 v[4];
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < 4; ++k) {
            v[k] = _mm256_loadu_ps(src + 8 * k);
            m = _mm256_max_ps(m, abs_ps(v[k]));
        }
        const float d = hmax(m) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        __m256i q[4];
        for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(round_half_away(_mm256_mul_ps(v[k], _mm256_set1_ps(id))));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[i].qs), pack_i32_to_i8(q[0], q[1], q[2], q[3]));
    }
}

// Q8_K: scale from the signed value of largest magnitude (the first one, as the
// reference's strict > scan), q = nearest-even(x * -127/max) capped at 127 (the saturating
// pack caps), bsums per 16.
void from_float_q8_K(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ8_K*>(dst);
    for (int64_t i = 0; i < n / QK_K; ++i, src += QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < QK_K; k += 8) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(src + k)));
        const float amax = hmax(m);
        if (amax == 0) {
            std::memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        int first = 0;
        for (int k = 0; k < QK_K; k += 8) {
            const int hit = _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(src + k)), _mm256_set1_ps(amax), _CMP_EQ_OQ));
            if (hit) {
                first = k + __builtin_ctz(unsigned(hit));
                break;
            }
        }
        const float iscale = -127.f / src[first];
        const __m256 vs = _mm256_set1_ps(iscale);
        for (int k = 0; k < QK_K; k += 32) {
            __m256i q[4];
            for (int r = 0; r < 4; ++r)  // cvtps rounds to nearest even, like nearest_int
                q[r] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + k + 8 * r), vs));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[i].qs + k), pack_i32_to_i8(q[0], q[1], q[2], q[3]));
            // bsums of weights k..k+15 (q0+q1) and k+16..k+31 (q2+q3): two rounds of hadd
            __m256i h = _mm256_hadd_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            h = _mm256_hadd_epi32(h, h);
            const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            b[i].bsums[k / 16] = int16_t(_mm_cvtsi128_si32(s));
            b[i].bsums[k / 16 + 1] = int16_t(_mm_extract_epi32(s, 1));
        }
        b[i].d = 1 / iscale;
    }
}

}  // namespace

VecDotFn avx2_vec_dot(GgmlType type) {
    switch (type) {
        case GgmlType::F32: return dot_float<float, load_f32x8, f32>;
        case GgmlType::F16: return dot_float<fp16_t, load_f16x8, f16>;
        case GgmlType::BF16: return vec_dot_bf16;
        case GgmlType::Q4_0: return vec_dot_q4_0_q8_0;
        case GgmlType::Q4_1: return vec_dot_q4_1_q8_1;
        case GgmlType::Q5_0: return vec_dot_q5_0_q8_0;
        case GgmlType::Q5_1: return vec_dot_q5_1_q8_1;
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

FromFloatFn avx2_from_float(GgmlType type) {
    switch (type) {
        case GgmlType::Q8_0: return from_float_q8_0;
        case GgmlType::Q8_K: return from_float_q8_K;
        default: return nullptr;
    }
}

}  // namespace pensieve::simd
