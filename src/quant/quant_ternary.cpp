// Ternary formats for BitNet b1.58-style models: every weight is d * {-1, 0, +1}.
// TQ2_0 spends 2 bits per trit (fast to unpack); TQ1_0 packs 5 trits per byte (1.6 bits).
// Both quantize with d = max|x| over the 256-weight block and t = round(x / d) + 1.
//
// TQ1_0 byte encoding: 5 trits t0..t4 form v = t0*81 + t1*27 + t2*9 + t3*3 + t4
// (0..242), stored as ceil(v * 256 / 243). Multiplying the byte by 3^k (mod 256) shifts
// trit k to the top; then (byte * 3) >> 8 reads it. This lets SIMD code unpack with
// 8-bit multiplies only.
#include "quant/strict_fp.h"  // first: affects every function below

#include <algorithm>
#include <cmath>

#include "quant/blocks.h"
#include "quant/quant_ref.h"

namespace pensieve::quant {

namespace {

constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};

// Trit k (0 = most significant) of a TQ1_0 byte, as -1, 0 or +1.
inline int tq1_trit(uint8_t byte, int k) {
    const uint8_t shifted = uint8_t(byte * kPow3[k]);  // wraps mod 256 on purpose
    return ((uint16_t(shifted) * 3) >> 8) - 1;
}

// Byte holding trits t[0] (most significant) .. t[count-1], padded with zero trits to 5.
inline uint8_t tq1_pack(const int* t, int count) {
    int v = 0;
    for (int k = 0; k < 5; ++k) v = v * 3 + (k < count ? t[k] : 0);
    return uint8_t((v * 256 + 242) / 243);  // ceiling division
}

// t = round(x / d) + 1 in 0..2 (round half away from zero, as the reference).
inline int ternary_level(float x, float id) { return int(std::lround(x * id)) + 1; }

float abs_max(const float* x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
    return amax;
}

// Trits of one TQ1_0 block in element order (-1..1).
void unpack_tq1_0(const BlockTQ1_0& b, int8_t* t) {
    for (int k = 0; k < 5; ++k)  // qs[0..31]: weight 32k + m
        for (int m = 0; m < 32; ++m) t[32 * k + m] = int8_t(tq1_trit(b.qs[m], k));
    for (int k = 0; k < 5; ++k)  // qs[32..47]: weight 160 + 16k + m
        for (int m = 0; m < 16; ++m) t[160 + 16 * k + m] = int8_t(tq1_trit(b.qs[32 + m], k));
    for (int k = 0; k < 4; ++k)  // qh[0..3]: weight 240 + 4k + m
        for (int m = 0; m < 4; ++m) t[240 + 4 * k + m] = int8_t(tq1_trit(b.qh[m], k));
}

void unpack_tq2_0(const BlockTQ2_0& b, int8_t* t) {
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k < 4; ++k)
            for (int m = 0; m < 32; ++m) t[128 * h + 32 * k + m] = int8_t(((b.qs[32 * h + m] >> (2 * k)) & 3) - 1);
}

}  // namespace

// ------------------------------------------------------------------------------ TQ1_0

void to_float_tq1_0(const void* src, float* dst, int64_t n) {
    const BlockTQ1_0* b = static_cast<const BlockTQ1_0*>(src);
    int8_t t[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i, dst += QK_K) {
        unpack_tq1_0(b[i], t);
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK_K; ++j) dst[j] = float(t[j]) * d;
    }
}

void from_float_tq1_0(const float* src, void* dst, int64_t n) {
    BlockTQ1_0* b = static_cast<BlockTQ1_0*>(dst);
    for (int64_t i = 0; i < n / QK_K; ++i, src += QK_K) {
        const float d = abs_max(src, QK_K);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        int t[5];
        for (int m = 0; m < 32; ++m) {
            for (int k = 0; k < 5; ++k) t[k] = ternary_level(src[32 * k + m], id);
            b[i].qs[m] = tq1_pack(t, 5);
        }
        for (int m = 0; m < 16; ++m) {
            for (int k = 0; k < 5; ++k) t[k] = ternary_level(src[160 + 16 * k + m], id);
            b[i].qs[32 + m] = tq1_pack(t, 5);
        }
        for (int m = 0; m < 4; ++m) {
            for (int k = 0; k < 4; ++k) t[k] = ternary_level(src[240 + 4 * k + m], id);
            b[i].qh[m] = tq1_pack(t, 4);
        }
    }
}

float vec_dot_tq1_0_q8_K(int64_t n, const void* w, const void* x) {
    const BlockTQ1_0* a = static_cast<const BlockTQ1_0*>(w);
    const BlockQ8_K* y = static_cast<const BlockQ8_K*>(x);
    int8_t t[QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        unpack_tq1_0(a[i], t);
        int isum = 0;
        for (int j = 0; j < QK_K; ++j) isum += t[j] * y[i].qs[j];
        sum += float(isum) * (fp16_to_fp32(a[i].d) * y[i].d);
    }
    return sum;
}

// ------------------------------------------------------------------------------ TQ2_0

void to_float_tq2_0(const void* src, float* dst, int64_t n) {
    const BlockTQ2_0* b = static_cast<const BlockTQ2_0*>(src);
    int8_t t[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i, dst += QK_K) {
        unpack_tq2_0(b[i], t);
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK_K; ++j) dst[j] = float(t[j]) * d;
    }
}

void from_float_tq2_0(const float* src, void* dst, int64_t n) {
    BlockTQ2_0* b = static_cast<BlockTQ2_0*>(dst);
    for (int64_t i = 0; i < n / QK_K; ++i, src += QK_K) {
        const float d = abs_max(src, QK_K);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        for (int h = 0; h < 2; ++h)
            for (int m = 0; m < 32; ++m) {
                int byte = 0;
                for (int k = 0; k < 4; ++k) byte |= (ternary_level(src[128 * h + 32 * k + m], id) & 3) << (2 * k);
                b[i].qs[32 * h + m] = uint8_t(byte);
            }
    }
}

float vec_dot_tq2_0_q8_K(int64_t n, const void* w, const void* x) {
    const BlockTQ2_0* a = static_cast<const BlockTQ2_0*>(w);
    const BlockQ8_K* y = static_cast<const BlockQ8_K*>(x);
    int8_t t[QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        unpack_tq2_0(a[i], t);
        int isum = 0;
        for (int j = 0; j < QK_K; ++j) isum += t[j] * y[i].qs[j];
        sum += float(isum) * (y[i].d * fp16_to_fp32(a[i].d));
    }
    return sum;
}

}  // namespace pensieve::quant
