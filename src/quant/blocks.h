// The quantized block formats, byte for byte as GGUF stores them. A tensor row of n
// weights is n / QK consecutive blocks; nothing else (no headers, no padding) sits
// between them. All multi-byte fields are little-endian, as is the host.
//
// Naming: d = scale (the value of one quantization step), m / dmin = offset that is
// added / subtracted, qs = low bits of the quants, qh = high bits, "super-block" = the
// 256-weight blocks of the K-quants whose per-sub-block scales are themselves quantized.
#pragma once

#include <cstddef>
#include <cstdint>

#include "util/fp16.h"

namespace pensieve {

constexpr int QK4_0 = 32;
constexpr int QK4_1 = 32;
constexpr int QK5_0 = 32;
constexpr int QK5_1 = 32;
constexpr int QK8_0 = 32;
constexpr int QK8_1 = 32;
constexpr int QK4_NL = 32;
constexpr int QK_K = 256;        // super-block size of K-quants, TQ1_0, TQ2_0
constexpr int K_SCALE_SIZE = 12; // bytes of packed 6-bit scales+mins in Q4_K / Q5_K

// ---------------------------------------------------------------- 32-weight blocks

// w[i] = d * (q[i] - 8). Weight j is in the low nibble of qs[j], weight j+16 in the
// high nibble of qs[j].
struct BlockQ4_0 {
    fp16_t d;
    uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// w[i] = d * q[i] + m, q in 0..15; same nibble order as Q4_0.
struct BlockQ4_1 {
    fp16_t d;
    fp16_t m;
    uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// w[i] = d * (q[i] - 16), q 5 bits: low 4 bits as in Q4_0, bit 4 of weight i is bit i
// of the little-endian u32 in qh.
struct BlockQ5_0 {
    fp16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// w[i] = d * q[i] + m, q 5 bits packed as in Q5_0.
struct BlockQ5_1 {
    fp16_t d;
    fp16_t m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// w[i] = d * qs[i].
struct BlockQ8_0 {
    fp16_t d;
    int8_t qs[QK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Activation format for Q4_1/Q5_1: like Q8_0 plus s = d * sum(qs), which folds the
// weights' offset m into one multiply per block.
struct BlockQ8_1 {
    fp16_t d;
    fp16_t s;
    int8_t qs[QK8_1];
};
static_assert(sizeof(BlockQ8_1) == 36);

// Non-linear 4-bit: w[i] = d * kIq4nlValues[q[i]]; nibble order as in Q4_0.
struct BlockIQ4_NL {
    fp16_t d;
    uint8_t qs[QK4_NL / 2];
};
static_assert(sizeof(BlockIQ4_NL) == 18);

// The 16 levels of IQ4_NL (fixed by the format).
inline constexpr int8_t kIq4nlValues[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

// ---------------------------------------------------------------- 256-weight K-quants

// 16 sub-blocks of 16. scales[j]: low nibble = scale, high nibble = min of sub-block j.
// w = d * sc * q - dmin * mn, q 2 bits. Weight 128*h + 32*s + l (h half, s shift slot,
// l 0..31) is bits 2s..2s+1 of qs[32*h + l].
struct BlockQ2_K {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    fp16_t d;
    fp16_t dmin;
};
static_assert(sizeof(BlockQ2_K) == 84);

// 16 sub-blocks of 16, symmetric: w = d * (sc - 32) * (q - 4), q 3 bits.
// Low 2 bits of q packed as in Q2_K; bit 2 of weight i is bit (i / 32) of hmask[i % 32].
// Scales are 6 bits: low nibble of scale j in scales[j % 8] (low nibble for j < 8, high
// for j >= 8), top 2 bits in scales[8 + j % 4] at bit 2*(j / 4).
struct BlockQ3_K {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    fp16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

// 8 sub-blocks of 32: w = d * sc * q - dmin * mn, q 4 bits, sc/mn 6 bits packed in
// `scales` (see k4_scale_min). Weight 64*p + l is the low nibble of qs[32*p + l],
// weight 64*p + 32 + l the high nibble.
struct BlockQ4_K {
    fp16_t d;
    fp16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// As Q4_K with a fifth bit: bit 4 of weight 64*p + l is bit 2p of qh[l], of weight
// 64*p + 32 + l bit 2p+1 of qh[l].
struct BlockQ5_K {
    fp16_t d;
    fp16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// 16 sub-blocks of 16, symmetric: w = d * scales[j] * (q - 32), q 6 bits.
// Per 128-weight half h, weight 128h + 32s + l (s 0..3, l 0..31): low 4 bits in
// ql[64h + l + 32*(s & 1)] (low nibble for s < 2, high for s >= 2), top 2 bits at
// bit 2s of qh[32h + l].
struct BlockQ6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    fp16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// Activation format for the K-quants: float scale, and bsums[j] = sum of qs[16j..16j+15]
// so the weight formats with a min can subtract it per sub-block without touching qs.
struct BlockQ8_K {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

// ---------------------------------------------------------------- ternary (BitNet b1.58)

// w = d * (t - 1), t in {0,1,2}. 5 trits per byte in qs (base 3, first trit most
// significant, stored as ceil(v * 256 / 243) so trit k is recovered as
// ((uint8_t)(byte * 3^k) * 3) >> 8). qs[0..31] hold weights 0..159 (trit k of byte m
// is weight 32k + m), qs[32..47] weights 160..239 (16k + m), qh[0..3] 4 trits each for
// weights 240..255 (trit k of qh[m] is weight 240 + 4k + m; the fifth trit is 0).
struct BlockTQ1_0 {
    uint8_t qs[(QK_K - 4 * QK_K / 64) / 5];
    uint8_t qh[QK_K / 64];
    fp16_t d;
};
static_assert(sizeof(BlockTQ1_0) == 54);

// w = d * (t - 1), t 2 bits: weight 128*h + 32*k + m is bits 2k..2k+1 of qs[32h + m].
struct BlockTQ2_0 {
    uint8_t qs[QK_K / 4];
    fp16_t d;
};
static_assert(sizeof(BlockTQ2_0) == 66);

// ---------------------------------------------------------------- shared helpers

// Unpack scale and min of sub-block j (0..7) of Q4_K/Q5_K. Bytes 0..3 hold scales 0..3
// in their low 6 bits, bytes 4..7 mins 0..3; sub-blocks 4..7 keep their low nibbles in
// bytes 8..11 (scale low, min high) and their top 2 bits in the spare top bits of
// bytes 0..3 (scale) and 4..7 (min).
inline void k4_scale_min(int j, const uint8_t* s, uint8_t& sc, uint8_t& mn) {
    if (j < 4) {
        sc = s[j] & 63;
        mn = s[j + 4] & 63;
    } else {
        sc = uint8_t((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        mn = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

// 6-bit scale of sub-block j (0..15) of Q3_K, still offset by 32 (0..63).
inline int q3k_scale(int j, const uint8_t* s) {
    const int lo = j < 8 ? (s[j] & 0x0F) : (s[j - 8] >> 4);
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return lo | (hi << 4);
}

}  // namespace pensieve
