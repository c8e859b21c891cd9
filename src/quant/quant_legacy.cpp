// The 32-weight block formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 and IQ4_NL.
//
// Quantizers follow the reference rounding exactly (same input -> same bytes):
//   symmetric types (Q4_0, Q5_0): d = (signed value of largest magnitude) / -2^(bits-1),
//     so that value maps to the most negative level, which the format has one more of;
//   offset types (Q4_1, Q5_1): d = (max - min) / (2^bits - 1), m = min;
//   Q8_0 / Q8_1: d = amax / 127, q = round half away from zero;
//   IQ4_NL: weighted least-squares search over 15 candidate scales.
// Dot products: per block, an integer sum of products, then one float multiply by the
// two block scales.
#include "quant/strict_fp.h"  // first: affects every function below

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "quant/blocks.h"
#include "quant/quant_ref.h"

namespace pensieve::quant {

namespace {

float largest_magnitude(const float* x, int n) {  // signed value with the largest |x|
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; ++j) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    return max;
}

float abs_max(const float* x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
    return amax;
}

uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

}  // namespace

// ------------------------------------------------------------------------------ Q4_0

void to_float_q4_0(const void* src, float* dst, int64_t n) {
    const BlockQ4_0* b = static_cast<const BlockQ4_0*>(src);
    for (int64_t i = 0; i < n / QK4_0; ++i, dst += QK4_0) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            dst[j] = float((b[i].qs[j] & 0x0F) - 8) * d;
            dst[j + QK4_0 / 2] = float((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void from_float_q4_0(const float* src, void* dst, int64_t n) {
    BlockQ4_0* b = static_cast<BlockQ4_0*>(dst);
    for (int64_t i = 0; i < n / QK4_0; ++i, src += QK4_0) {
        const float d = largest_magnitude(src, QK4_0) / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            // +8.5 then truncation rounds half up into 0..16. The extreme value maps to
            // exactly 0 (x * id = -8); only an opposite-sign value of the same magnitude
            // reaches 16, hence the clamp to 15.
            const int q0 = std::min(15, int(src[j] * id + 8.5f));
            const int q1 = std::min(15, int(src[j + QK4_0 / 2] * id + 8.5f));
            b[i].qs[j] = uint8_t(q0 | (q1 << 4));
        }
    }
}

float vec_dot_q4_0_q8_0(int64_t n, const void* w, const void* x) {
    const BlockQ4_0* a = static_cast<const BlockQ4_0*>(w);
    const BlockQ8_0* y = static_cast<const BlockQ8_0*>(x);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK4_0; ++i) {
        int isum = 0;
        for (int j = 0; j < QK4_0 / 2; ++j) {
            isum += ((a[i].qs[j] & 0x0F) - 8) * y[i].qs[j];
            isum += ((a[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
        }
        sum += float(isum) * fp16_to_fp32(a[i].d) * fp16_to_fp32(y[i].d);
    }
    return sum;
}

// ------------------------------------------------------------------------------ Q4_1

void to_float_q4_1(const void* src, float* dst, int64_t n) {
    const BlockQ4_1* b = static_cast<const BlockQ4_1*>(src);
    for (int64_t i = 0; i < n / QK4_1; ++i, dst += QK4_1) {
        const float d = fp16_to_fp32(b[i].d);
        const float m = fp16_to_fp32(b[i].m);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            dst[j] = float(b[i].qs[j] & 0x0F) * d + m;
            dst[j + QK4_1 / 2] = float(b[i].qs[j] >> 4) * d + m;
        }
    }
}

void from_float_q4_1(const float* src, void* dst, int64_t n) {
    BlockQ4_1* b = static_cast<BlockQ4_1*>(dst);
    for (int64_t i = 0; i < n / QK4_1; ++i, src += QK4_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK4_1; ++j) {
            min = std::min(min, src[j]);
            max = std::max(max, src[j]);
        }
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        b[i].m = fp32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            const int q0 = std::min(15, int((src[j] - min) * id + 0.5f));
            const int q1 = std::min(15, int((src[j + QK4_1 / 2] - min) * id + 0.5f));
            b[i].qs[j] = uint8_t(q0 | (q1 << 4));
        }
    }
}

float vec_dot_q4_1_q8_1(int64_t n, const void* w, const void* x) {
    const BlockQ4_1* a = static_cast<const BlockQ4_1*>(w);
    const BlockQ8_1* y = static_cast<const BlockQ8_1*>(x);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK4_1; ++i) {
        int isum = 0;
        for (int j = 0; j < QK4_1 / 2; ++j) {
            isum += (a[i].qs[j] & 0x0F) * y[i].qs[j];
            isum += (a[i].qs[j] >> 4) * y[i].qs[j + QK4_1 / 2];
        }
        // sum_j (d q_j + m) * dy y_j = d*dy*isum + m * (dy * sum_j y_j) = ... + m * s
        sum += fp16_to_fp32(a[i].d) * fp16_to_fp32(y[i].d) * float(isum) +
               fp16_to_fp32(a[i].m) * fp16_to_fp32(y[i].s);
    }
    return sum;
}

// ------------------------------------------------------------------------------ Q5_0

void to_float_q5_0(const void* src, float* dst, int64_t n) {
    const BlockQ5_0* b = static_cast<const BlockQ5_0*>(src);
    for (int64_t i = 0; i < n / QK5_0; ++i, dst += QK5_0) {
        const float d = fp16_to_fp32(b[i].d);
        const uint32_t qh = load_u32(b[i].qh);
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const int h0 = ((qh >> j) & 1) << 4;
            const int h1 = ((qh >> (j + 16)) & 1) << 4;
            dst[j] = float(((b[i].qs[j] & 0x0F) | h0) - 16) * d;
            dst[j + QK5_0 / 2] = float(((b[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

void from_float_q5_0(const float* src, void* dst, int64_t n) {
    BlockQ5_0* b = static_cast<BlockQ5_0*>(dst);
    for (int64_t i = 0; i < n / QK5_0; ++i, src += QK5_0) {
        const float d = largest_magnitude(src, QK5_0) / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const int q0 = std::min(31, int(src[j] * id + 16.5f));
            const int q1 = std::min(31, int(src[j + QK5_0 / 2] * id + 16.5f));
            b[i].qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= uint32_t(q0 >> 4) << j;
            qh |= uint32_t(q1 >> 4) << (j + QK5_0 / 2);
        }
        std::memcpy(b[i].qh, &qh, 4);
    }
}

float vec_dot_q5_0_q8_0(int64_t n, const void* w, const void* x) {
    const BlockQ5_0* a = static_cast<const BlockQ5_0*>(w);
    const BlockQ8_0* y = static_cast<const BlockQ8_0*>(x);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK5_0; ++i) {
        const uint32_t qh = load_u32(a[i].qh);
        int isum = 0;
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const int q0 = ((a[i].qs[j] & 0x0F) | (((qh >> j) & 1) << 4)) - 16;
            const int q1 = ((a[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
            isum += q0 * y[i].qs[j] + q1 * y[i].qs[j + QK5_0 / 2];
        }
        sum += fp16_to_fp32(a[i].d) * fp16_to_fp32(y[i].d) * float(isum);
    }
    return sum;
}

// ------------------------------------------------------------------------------ Q5_1

void to_float_q5_1(const void* src, float* dst, int64_t n) {
    const BlockQ5_1* b = static_cast<const BlockQ5_1*>(src);
    for (int64_t i = 0; i < n / QK5_1; ++i, dst += QK5_1) {
        const float d = fp16_to_fp32(b[i].d);
        const float m = fp16_to_fp32(b[i].m);
        const uint32_t qh = load_u32(b[i].qh);
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const int h0 = ((qh >> j) & 1) << 4;
            const int h1 = ((qh >> (j + 16)) & 1) << 4;
            dst[j] = float((b[i].qs[j] & 0x0F) | h0) * d + m;
            dst[j + QK5_1 / 2] = float((b[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}

void from_float_q5_1(const float* src, void* dst, int64_t n) {
    BlockQ5_1* b = static_cast<BlockQ5_1*>(dst);
    for (int64_t i = 0; i < n / QK5_1; ++i, src += QK5_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK5_1; ++j) {
            min = std::min(min, src[j]);
            max = std::max(max, src[j]);
        }
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        b[i].m = fp32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; ++j) {
            // (max - min) * id can land a hair above 31; the clamp keeps bit 5 out.
            const int q0 = std::min(31, int((src[j] - min) * id + 0.5f));
            const int q1 = std::min(31, int((src[j + QK5_1 / 2] - min) * id + 0.5f));
            b[i].qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= uint32_t(q0 >> 4) << j;
            qh |= uint32_t(q1 >> 4) << (j + QK5_1 / 2);
        }
        std::memcpy(b[i].qh, &qh, 4);
    }
}

float vec_dot_q5_1_q8_1(int64_t n, const void* w, const void* x) {
    const BlockQ5_1* a = static_cast<const BlockQ5_1*>(w);
    const BlockQ8_1* y = static_cast<const BlockQ8_1*>(x);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK5_1; ++i) {
        const uint32_t qh = load_u32(a[i].qh);
        int isum = 0;
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const int q0 = (a[i].qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
            const int q1 = (a[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
            isum += q0 * y[i].qs[j] + q1 * y[i].qs[j + QK5_1 / 2];
        }
        sum += fp16_to_fp32(a[i].d) * fp16_to_fp32(y[i].d) * float(isum) +
               fp16_to_fp32(a[i].m) * fp16_to_fp32(y[i].s);
    }
    return sum;
}

// ------------------------------------------------------------------------------ Q8_0

void to_float_q8_0(const void* src, float* dst, int64_t n) {
    const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
    for (int64_t i = 0; i < n / QK8_0; ++i, dst += QK8_0) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK8_0; ++j) dst[j] = float(b[i].qs[j]) * d;
    }
}

// Also the activation quantizer of every Q8_0-dot type: on the hot path of each matmul.
void from_float_q8_0(const float* src, void* dst, int64_t n) {
    BlockQ8_0* b = static_cast<BlockQ8_0*>(dst);
    for (int64_t i = 0; i < n / QK8_0; ++i, src += QK8_0) {
        const float d = abs_max(src, QK8_0) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; ++j) b[i].qs[j] = int8_t(std::round(src[j] * id));
    }
}

float vec_dot_q8_0_q8_0(int64_t n, const void* w, const void* x) {
    const BlockQ8_0* a = static_cast<const BlockQ8_0*>(w);
    const BlockQ8_0* y = static_cast<const BlockQ8_0*>(x);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; ++i) {
        int isum = 0;
        for (int j = 0; j < QK8_0; ++j) isum += a[i].qs[j] * y[i].qs[j];
        sum += float(isum) * (fp16_to_fp32(a[i].d) * fp16_to_fp32(y[i].d));
    }
    return sum;
}

// ------------------------------------------------------------------------------ Q8_1

void to_float_q8_1(const void* src, float* dst, int64_t n) {
    const BlockQ8_1* b = static_cast<const BlockQ8_1*>(src);
    for (int64_t i = 0; i < n / QK8_1; ++i, dst += QK8_1) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK8_1; ++j) dst[j] = float(b[i].qs[j]) * d;
    }
}

void from_float_q8_1(const float* src, void* dst, int64_t n) {
    BlockQ8_1* b = static_cast<BlockQ8_1*>(dst);
    for (int64_t i = 0; i < n / QK8_1; ++i, src += QK8_1) {
        const float d = abs_max(src, QK8_1) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        int qsum = 0;
        for (int j = 0; j < QK8_1; ++j) {
            b[i].qs[j] = int8_t(std::round(src[j] * id));
            qsum += b[i].qs[j];
        }
        b[i].s = fp32_to_fp16(float(qsum) * d);  // unrounded d, as the reference does
    }
}

float vec_dot_q8_1_q8_1(int64_t n, const void* w, const void* x) {
    const BlockQ8_1* a = static_cast<const BlockQ8_1*>(w);
    const BlockQ8_1* y = static_cast<const BlockQ8_1*>(x);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; ++i) {
        int isum = 0;
        for (int j = 0; j < QK8_1; ++j) isum += a[i].qs[j] * y[i].qs[j];
        sum += float(isum) * (fp16_to_fp32(a[i].d) * fp16_to_fp32(y[i].d));
    }
    return sum;
}

// ---------------------------------------------------------------------------- IQ4_NL

namespace {

// Index of the IQ4_NL level nearest to v (levels are sorted; ties go to the upper one).
int nearest_iq4nl(float v) {
    const int8_t* lv = kIq4nlValues;
    if (v <= lv[0]) return 0;
    if (v >= lv[15]) return 15;
    int lo = 0, hi = 15;  // invariant: lv[lo] <= v < lv[hi]
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (v < lv[mid]) hi = mid; else lo = mid;
    }
    return v - lv[lo] < lv[hi] - v ? lo : hi;
}

// Weighted fit of one block: returns the scale d and the level indices L that
// minimize sum w (x - d*level)^2 over scales near max/level[0], with w = x^2 (errors on
// large weights matter most). Mirrors the reference: start at d = -max/-127, refine by
// least squares, then try 15 nearby inverse scales and keep the best fit.
float fit_iq4nl_block(const float* x, uint8_t* L) {
    constexpr int kTries = 7;
    float w[QK4_NL];
    for (int j = 0; j < QK4_NL; ++j) w[j] = x[j] * x[j];
    const float max = largest_magnitude(x, QK4_NL);
    const int8_t* lv = kIq4nlValues;
    if (std::fabs(max) < 1e-15f) {  // all (near) zero: d = 0, levels nearest 0 (index 8)
        for (int j = 0; j < QK4_NL; ++j) L[j] = uint8_t(nearest_iq4nl(0.0f));
        return 0.0f;
    }
    float d = -max / lv[0];
    float id = 1.0f / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < QK4_NL; ++j) {
        const int l = nearest_iq4nl(id * x[j]);
        L[j] = uint8_t(l);
        const float q = lv[l];
        sumqx += w[j] * q * x[j];
        sumq2 += w[j] * q * q;
    }
    d = sumqx / sumq2;
    float best = d * sumqx;  // = (sum w q x)^2 / sum w q^2: larger is a better fit
    for (int t = -kTries; t <= kTries; ++t) {
        id = (float(t) + lv[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < QK4_NL; ++j) {
            const float q = lv[nearest_iq4nl(id * x[j])];
            sumqx += w[j] * q * x[j];
            sumq2 += w[j] * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    // Final levels for the chosen scale, as stored (the reference re-picks them).
    id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK4_NL; ++j) L[j] = uint8_t(nearest_iq4nl(id * x[j]));
    return d;
}

}  // namespace

void to_float_iq4_nl(const void* src, float* dst, int64_t n) {
    const BlockIQ4_NL* b = static_cast<const BlockIQ4_NL*>(src);
    for (int64_t i = 0; i < n / QK4_NL; ++i, dst += QK4_NL) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK4_NL / 2; ++j) {
            dst[j] = d * float(kIq4nlValues[b[i].qs[j] & 0x0F]);
            dst[j + QK4_NL / 2] = d * float(kIq4nlValues[b[i].qs[j] >> 4]);
        }
    }
}

void from_float_iq4_nl(const float* src, void* dst, int64_t n) {
    BlockIQ4_NL* b = static_cast<BlockIQ4_NL*>(dst);
    uint8_t L[QK4_NL];
    for (int64_t i = 0; i < n / QK4_NL; ++i, src += QK4_NL) {
        const float d = fit_iq4nl_block(src, L);
        b[i].d = fp32_to_fp16(d);
        for (int j = 0; j < QK4_NL / 2; ++j) b[i].qs[j] = uint8_t(L[j] | (L[j + QK4_NL / 2] << 4));
    }
}

float vec_dot_iq4_nl_q8_0(int64_t n, const void* w, const void* x) {
    const BlockIQ4_NL* a = static_cast<const BlockIQ4_NL*>(w);
    const BlockQ8_0* y = static_cast<const BlockQ8_0*>(x);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK4_NL; ++i) {
        int isum = 0;
        for (int j = 0; j < QK4_NL / 2; ++j) {
            isum += kIq4nlValues[a[i].qs[j] & 0x0F] * y[i].qs[j];
            isum += kIq4nlValues[a[i].qs[j] >> 4] * y[i].qs[j + QK4_NL / 2];
        }
        sum += fp16_to_fp32(a[i].d) * fp16_to_fp32(y[i].d) * float(isum);
    }
    return sum;
}

}  // namespace pensieve::quant
