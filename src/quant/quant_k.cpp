// K-quants: 256-weight super-blocks split into sub-blocks of 16 or 32 weights, each
// with its own scale (and min), those scales quantized to 4-8 bits against one fp16
// super-block scale. Q8_K is the activation format their dot products use.
//
// The quantizers are the reference ("no importance matrix") algorithms:
//   Q2_K, Q4_K, Q5_K (with a min): per sub-block a weighted least-squares search for
//     (scale, min) over a few candidate scales (fit_scale_min), then scales and mins
//     quantized against the largest of each, then every weight re-rounded with the
//     scale/min actually stored.
//   Q3_K, Q6_K (symmetric): per sub-block a fitted scale (fit_q3 / fit_symmetric),
//     scales quantized against the one of largest magnitude, weights re-rounded.
// Dequantization and dot products unpack a block's integer quants into an int8 array
// (element order) first: the layouts are intricate, and this keeps the math readable.
#include "quant/strict_fp.h"  // first: affects every function below

#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/blocks.h"
#include "quant/quant_ref.h"

namespace pensieve::quant {

namespace {

constexpr float kGroupMaxEps = 1e-15f;  // below this a group counts as all zero

// ------------------------------------------------------------------ fitting helpers

// Asymmetric fit x ~ scale * L - min, L in 0..nmax, minimizing the weighted error
// (absolute error if use_mad, squared otherwise). Starts from the min/max grid, then
// tries inverse scales (nmax + rmin + rdelta*k) / (max - min) for k = 0..nstep, solving
// for the best (scale, min) by least squares for each rounding. The min is never
// positive (an offset that only ever lowers values). Returns scale; *neg_min = -min.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min,
                    uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        min = std::min(min, x[i]);
        max = std::max(max, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        std::memset(L, 0, size_t(n));
        *neg_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = uint8_t(std::clamp(l, 0, nmax));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        best_error += w[i] * diff;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = uint8_t(l);
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue;  // degenerate (all levels equal): no unique fit
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {  // a positive offset is not representable: refit with min 0
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float error = 0;
        for (int i = 0; i < n; ++i) {
            float diff = this_scale * Laux[i] + this_min - x[i];
            diff = use_mad ? std::fabs(diff) : diff * diff;
            error += w[i] * diff;
        }
        if (error < best_error) {
            std::memcpy(L, Laux, size_t(n));
            best_error = error;
            scale = this_scale;
            min = this_min;
        }
    }
    *neg_min = -min;
    return scale;
}

// Symmetric fit x ~ scale * (L - nmax), L - nmax in -nmax..nmax-1, weights w = x^2.
// The largest-magnitude value sets the starting scale (mapped to -nmax, the level the
// format has one more of); 18 nearby scales are tried and the weighted least-squares
// best kept. Returns the scale; L gets the levels offset by nmax.
float fit_symmetric(int n, int nmax, const float* x, int8_t* L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        std::memset(L, 0, size_t(n));
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = int8_t(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i)
                L[i] = int8_t(nmax + std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Symmetric 3-bit fit used by Q3_K: start as fit_symmetric, then coordinate descent —
// for each weight try the level the current fit suggests and keep it if the weighted
// fit improves — for up to 5 passes. Returns the scale; L gets levels offset by nmax.
float fit_q3(int n, int nmax, const float* x, int8_t* L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        std::memset(L, 0, size_t(n));
        return 0.0f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = int8_t(l);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int pass = 0; pass < 5; ++pass) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];  // the sums without weight i
            if (slx <= 0) continue;
            float sl2 = suml2 - w * L[i] * L[i];
            const int l = std::clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (l == L[i]) continue;
            slx += w * x[i] * l;
            sl2 += w * l * l;
            // fit quality is sumlx^2 / suml2; compare without dividing
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = int8_t(l);
                sumlx = slx;
                suml2 = sl2;
                ++changed;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
    return suml2 > 0 ? sumlx / suml2 : 0.0f;
}

// Pack 256 2-bit values: value 128*h + 32*s + l goes to bits 2s of qs[32*h + l].
// (Q2_K quants, and the low bits of Q3_K.)
template <typename T>
void pack_2bit(const T* L, uint8_t* qs) {
    for (int h = 0; h < 2; ++h)
        for (int l = 0; l < 32; ++l) {
            const T* v = L + 128 * h + l;
            qs[32 * h + l] = uint8_t(v[0] | (v[32] << 2) | (v[64] << 4) | (v[96] << 6));
        }
}

// ------------------------------------------------------------------ unpacking

void unpack_q2_K(const BlockQ2_K& b, int8_t* q) {
    for (int h = 0; h < 2; ++h)
        for (int s = 0; s < 4; ++s)
            for (int l = 0; l < 32; ++l) q[128 * h + 32 * s + l] = int8_t((b.qs[32 * h + l] >> (2 * s)) & 3);
}

// Levels -4..3: low 2 bits minus 4 unless the hmask bit is set.
void unpack_q3_K(const BlockQ3_K& b, int8_t* q) {
    for (int h = 0; h < 2; ++h)
        for (int s = 0; s < 4; ++s)
            for (int l = 0; l < 32; ++l) {
                const int lo = (b.qs[32 * h + l] >> (2 * s)) & 3;
                const int hi = (b.hmask[l] >> (4 * h + s)) & 1;
                q[128 * h + 32 * s + l] = int8_t(lo - (hi ? 0 : 4));
            }
}

void unpack_q4_K(const BlockQ4_K& b, int8_t* q) {
    for (int p = 0; p < 4; ++p)
        for (int l = 0; l < 32; ++l) {
            q[64 * p + l] = int8_t(b.qs[32 * p + l] & 0x0F);
            q[64 * p + 32 + l] = int8_t(b.qs[32 * p + l] >> 4);
        }
}

void unpack_q5_K(const BlockQ5_K& b, int8_t* q) {
    for (int p = 0; p < 4; ++p)
        for (int l = 0; l < 32; ++l) {
            q[64 * p + l] = int8_t((b.qs[32 * p + l] & 0x0F) | (((b.qh[l] >> (2 * p)) & 1) << 4));
            q[64 * p + 32 + l] = int8_t((b.qs[32 * p + l] >> 4) | (((b.qh[l] >> (2 * p + 1)) & 1) << 4));
        }
}

// Levels -32..31.
void unpack_q6_K(const BlockQ6_K& b, int8_t* q) {
    for (int h = 0; h < 2; ++h)
        for (int s = 0; s < 4; ++s)
            for (int l = 0; l < 32; ++l) {
                const uint8_t lo_byte = b.ql[64 * h + 32 * (s & 1) + l];
                const int lo = s < 2 ? (lo_byte & 0x0F) : (lo_byte >> 4);
                const int hi = (b.qh[32 * h + l] >> (2 * s)) & 3;
                q[128 * h + 32 * s + l] = int8_t((lo | (hi << 4)) - 32);
            }
}

// Sum of q[i] * y[i] over one sub-block.
int dot_i8(const int8_t* q, const int8_t* y, int n) {
    int s = 0;
    for (int i = 0; i < n; ++i) s += q[i] * y[i];
    return s;
}

}  // namespace

// ------------------------------------------------------------------------------ Q2_K

void to_float_q2_K(const void* src, float* dst, int64_t n) {
    const BlockQ2_K* b = static_cast<const BlockQ2_K*>(src);
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i, dst += QK_K) {
        unpack_q2_K(b[i], q);
        const float d = fp16_to_fp32(b[i].d);
        const float dmin = fp16_to_fp32(b[i].dmin);
        for (int j = 0; j < QK_K / 16; ++j) {
            const float dl = d * float(b[i].scales[j] & 0x0F);
            const float ml = dmin * float(b[i].scales[j] >> 4);
            for (int l = 0; l < 16; ++l) dst[16 * j + l] = dl * float(q[16 * j + l]) - ml;
        }
    }
}

void from_float_q2_K(const float* src, void* dst, int64_t n) {
    BlockQ2_K* b = static_cast<BlockQ2_K*>(dst);
    uint8_t L[QK_K], Laux[16];
    float w[16], scales[QK_K / 16], mins[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; ++i, src += QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < QK_K / 16; ++j) {
            for (int l = 0; l < 16; ++l) w[l] = std::fabs(src[16 * j + l]);
            scales[j] = fit_scale_min(16, 3, src + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
            max_scale = std::max(max_scale, scales[j]);
            max_min = std::max(max_min, mins[j]);
        }
        // 4-bit scales and mins against their largest value.
        if (max_scale > 0) {
            const float iscale = 15.f / max_scale;
            for (int j = 0; j < QK_K / 16; ++j) b[i].scales[j] = uint8_t(nearest_int(iscale * scales[j]));
            b[i].d = fp32_to_fp16(max_scale / 15.f);
        } else {
            std::memset(b[i].scales, 0, sizeof b[i].scales);
            b[i].d = fp32_to_fp16(0.0f);
        }
        if (max_min > 0) {
            const float iscale = 15.f / max_min;
            for (int j = 0; j < QK_K / 16; ++j) b[i].scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
            b[i].dmin = fp32_to_fp16(max_min / 15.f);
        } else {
            b[i].dmin = fp32_to_fp16(0.0f);
        }
        // Re-round every weight against the scale and min as stored.
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = fp16_to_fp32(b[i].d) * float(b[i].scales[j] & 0x0F);
            if (d == 0) continue;
            const float dm = fp16_to_fp32(b[i].dmin) * float(b[i].scales[j] >> 4);
            for (int l = 0; l < 16; ++l)
                L[16 * j + l] = uint8_t(std::clamp(nearest_int((src[16 * j + l] + dm) / d), 0, 3));
        }
        pack_2bit(L, b[i].qs);
    }
}

float vec_dot_q2_K_q8_K(int64_t n, const void* w, const void* x) {
    const BlockQ2_K* a = static_cast<const BlockQ2_K*>(w);
    const BlockQ8_K* y = static_cast<const BlockQ8_K*>(x);
    int8_t q[QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        unpack_q2_K(a[i], q);
        int isum = 0, msum = 0;
        for (int j = 0; j < QK_K / 16; ++j) {
            isum += (a[i].scales[j] & 0x0F) * dot_i8(q + 16 * j, y[i].qs + 16 * j, 16);
            msum += (a[i].scales[j] >> 4) * y[i].bsums[j];
        }
        const float dall = y[i].d * fp16_to_fp32(a[i].d);
        const float dmin = y[i].d * fp16_to_fp32(a[i].dmin);
        sum += dall * float(isum) - dmin * float(msum);
    }
    return sum;
}

// ------------------------------------------------------------------------------ Q3_K

void to_float_q3_K(const void* src, float* dst, int64_t n) {
    const BlockQ3_K* b = static_cast<const BlockQ3_K*>(src);
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i, dst += QK_K) {
        unpack_q3_K(b[i], q);
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK_K / 16; ++j) {
            const float dl = d * float(q3k_scale(j, b[i].scales) - 32);
            for (int l = 0; l < 16; ++l) dst[16 * j + l] = dl * float(q[16 * j + l]);
        }
    }
}

void from_float_q3_K(const float* src, void* dst, int64_t n) {
    BlockQ3_K* b = static_cast<BlockQ3_K*>(dst);
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; ++i, src += QK_K) {
        float max_scale = 0, amax = 0;  // the scale of largest magnitude, with its sign
        for (int j = 0; j < QK_K / 16; ++j) {
            scales[j] = fit_q3(16, 4, src + 16 * j, L + 16 * j);
            if (std::fabs(scales[j]) > amax) {
                amax = std::fabs(scales[j]);
                max_scale = scales[j];
            }
        }
        std::memset(b[i].scales, 0, sizeof b[i].scales);
        if (max_scale != 0) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < QK_K / 16; ++j) {
                const int l = std::clamp(nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8) b[i].scales[j] = uint8_t(l & 0x0F);
                else b[i].scales[j - 8] |= uint8_t((l & 0x0F) << 4);
                b[i].scales[8 + j % 4] |= uint8_t((l >> 4) << (2 * (j / 4)));
            }
            b[i].d = fp32_to_fp16(1 / iscale);
        } else {
            b[i].d = fp32_to_fp16(0.0f);
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = fp16_to_fp32(b[i].d) * float(q3k_scale(j, b[i].scales) - 32);
            if (d == 0) continue;
            for (int l = 0; l < 16; ++l)
                L[16 * j + l] = int8_t(std::clamp(nearest_int(src[16 * j + l] / d), -4, 3) + 4);
        }
        // Bit 2 of level i goes to hmask[i % 32] bit i / 32; the rest as 2-bit values.
        std::memset(b[i].hmask, 0, sizeof b[i].hmask);
        for (int j = 0; j < QK_K; ++j) {
            if (L[j] > 3) {
                b[i].hmask[j % 32] |= uint8_t(1 << (j / 32));
                L[j] = int8_t(L[j] - 4);
            }
        }
        pack_2bit(L, b[i].qs);
    }
}

float vec_dot_q3_K_q8_K(int64_t n, const void* w, const void* x) {
    const BlockQ3_K* a = static_cast<const BlockQ3_K*>(w);
    const BlockQ8_K* y = static_cast<const BlockQ8_K*>(x);
    int8_t q[QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        unpack_q3_K(a[i], q);
        int isum = 0;
        for (int j = 0; j < QK_K / 16; ++j)
            isum += (q3k_scale(j, a[i].scales) - 32) * dot_i8(q + 16 * j, y[i].qs + 16 * j, 16);
        sum += fp16_to_fp32(a[i].d) * y[i].d * float(isum);
    }
    return sum;
}

// ------------------------------------------------------------------------ Q4_K, Q5_K

namespace {

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): fit 8 sub-blocks of 32, store the 6-bit
// scales/mins and d/dmin into the block fields given, and leave the final levels in L.
void quantize_k4_superblock(const float* x, int nmax, float rmin, int nstep, fp16_t& d_out,
                            fp16_t& dmin_out, uint8_t* packed_scales, uint8_t* L) {
    uint8_t Laux[32];
    float w[32], scales[QK_K / 32], mins[QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
        // Weights: |x| plus the sub-block's RMS, so small values still count.
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(x[32 * j + l]);
        scales[j] = fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
        max_scale = std::max(max_scale, scales[j]);
        max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.0f;
    for (int j = 0; j < QK_K / 32; ++j) {
        // uint8_t conversion first (as the reference), then the 6-bit clamp
        const uint8_t ls = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
        const uint8_t lm = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
        if (j < 4) {
            packed_scales[j] = ls;
            packed_scales[j + 4] = lm;
        } else {
            packed_scales[j + 4] = uint8_t((ls & 0x0F) | ((lm & 0x0F) << 4));
            packed_scales[j - 4] |= uint8_t((ls >> 4) << 6);
            packed_scales[j] |= uint8_t((lm >> 4) << 6);
        }
    }
    d_out = fp32_to_fp16(max_scale / 63.f);
    dmin_out = fp32_to_fp16(max_min / 63.f);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t sc, mn;
        k4_scale_min(j, packed_scales, sc, mn);
        const float d = fp16_to_fp32(d_out) * sc;
        if (d == 0) continue;
        const float dm = fp16_to_fp32(dmin_out) * mn;
        for (int l = 0; l < 32; ++l)
            L[32 * j + l] = uint8_t(std::clamp(nearest_int((x[32 * j + l] + dm) / d), 0, nmax));
    }
}

}  // namespace

void to_float_q4_K(const void* src, float* dst, int64_t n) {
    const BlockQ4_K* b = static_cast<const BlockQ4_K*>(src);
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i, dst += QK_K) {
        unpack_q4_K(b[i], q);
        const float d = fp16_to_fp32(b[i].d);
        const float dmin = fp16_to_fp32(b[i].dmin);
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, mn;
            k4_scale_min(j, b[i].scales, sc, mn);
            const float dl = d * sc, ml = dmin * mn;
            for (int l = 0; l < 32; ++l) dst[32 * j + l] = dl * float(q[32 * j + l]) - ml;
        }
    }
}

void from_float_q4_K(const float* src, void* dst, int64_t n) {
    BlockQ4_K* b = static_cast<BlockQ4_K*>(dst);
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i, src += QK_K) {
        quantize_k4_superblock(src, 15, -1.0f, 20, b[i].d, b[i].dmin, b[i].scales, L);
        for (int p = 0; p < 4; ++p)
            for (int l = 0; l < 32; ++l) b[i].qs[32 * p + l] = uint8_t(L[64 * p + l] | (L[64 * p + 32 + l] << 4));
    }
}

// sum_j (d*sc_j*q - dmin*mn_j) * dy*y = d*dy * sum_j sc_j (q.y)_j - dmin*dy * sum_j mn_j * bsum_j
float vec_dot_q4_K_q8_K(int64_t n, const void* w, const void* x) {
    const BlockQ4_K* a = static_cast<const BlockQ4_K*>(w);
    const BlockQ8_K* y = static_cast<const BlockQ8_K*>(x);
    int8_t q[QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        unpack_q4_K(a[i], q);
        int isum = 0, msum = 0;
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, mn;
            k4_scale_min(j, a[i].scales, sc, mn);
            isum += sc * dot_i8(q + 32 * j, y[i].qs + 32 * j, 32);
            msum += mn * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        sum += fp16_to_fp32(a[i].d) * y[i].d * float(isum) - fp16_to_fp32(a[i].dmin) * y[i].d * float(msum);
    }
    return sum;
}

void to_float_q5_K(const void* src, float* dst, int64_t n) {
    const BlockQ5_K* b = static_cast<const BlockQ5_K*>(src);
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i, dst += QK_K) {
        unpack_q5_K(b[i], q);
        const float d = fp16_to_fp32(b[i].d);
        const float dmin = fp16_to_fp32(b[i].dmin);
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, mn;
            k4_scale_min(j, b[i].scales, sc, mn);
            const float dl = d * sc, ml = dmin * mn;
            for (int l = 0; l < 32; ++l) dst[32 * j + l] = dl * float(q[32 * j + l]) - ml;
        }
    }
}

void from_float_q5_K(const float* src, void* dst, int64_t n) {
    BlockQ5_K* b = static_cast<BlockQ5_K*>(dst);
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i, src += QK_K) {
        quantize_k4_superblock(src, 31, -0.5f, 15, b[i].d, b[i].dmin, b[i].scales, L);
        std::memset(b[i].qh, 0, sizeof b[i].qh);
        for (int p = 0; p < 4; ++p)
            for (int l = 0; l < 32; ++l) {
                const int lo = L[64 * p + l], hi = L[64 * p + 32 + l];
                b[i].qs[32 * p + l] = uint8_t((lo & 0x0F) | ((hi & 0x0F) << 4));
                b[i].qh[l] |= uint8_t(((lo >> 4) << (2 * p)) | ((hi >> 4) << (2 * p + 1)));
            }
    }
}

float vec_dot_q5_K_q8_K(int64_t n, const void* w, const void* x) {
    const BlockQ5_K* a = static_cast<const BlockQ5_K*>(w);
    const BlockQ8_K* y = static_cast<const BlockQ8_K*>(x);
    int8_t q[QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        unpack_q5_K(a[i], q);
        int isum = 0, msum = 0;
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, mn;
            k4_scale_min(j, a[i].scales, sc, mn);
            isum += sc * dot_i8(q + 32 * j, y[i].qs + 32 * j, 32);
            msum += mn * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        sum += fp16_to_fp32(a[i].d) * y[i].d * float(isum) - fp16_to_fp32(a[i].dmin) * y[i].d * float(msum);
    }
    return sum;
}

// ------------------------------------------------------------------------------ Q6_K

void to_float_q6_K(const void* src, float* dst, int64_t n) {
    const BlockQ6_K* b = static_cast<const BlockQ6_K*>(src);
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; ++i, dst += QK_K) {
        unpack_q6_K(b[i], q);
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK_K / 16; ++j) {
            const float dl = d * float(b[i].scales[j]);
            for (int l = 0; l < 16; ++l) dst[16 * j + l] = dl * float(q[16 * j + l]);
        }
    }
}

void from_float_q6_K(const float* src, void* dst, int64_t n) {
    BlockQ6_K* b = static_cast<BlockQ6_K*>(dst);
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; ++i, src += QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int j = 0; j < QK_K / 16; ++j) {
            scales[j] = fit_symmetric(16, 32, src + 16 * j, L + 16 * j);
            if (std::fabs(scales[j]) > max_abs_scale) {
                max_abs_scale = std::fabs(scales[j]);
                max_scale = scales[j];
            }
        }
        if (max_abs_scale < kGroupMaxEps) {
            std::memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        // 8-bit signed scales; the largest maps to -128 (int8 has one more negative).
        const float iscale = -128.f / max_scale;
        b[i].d = fp32_to_fp16(1 / iscale);
        for (int j = 0; j < QK_K / 16; ++j) b[i].scales[j] = int8_t(std::min(127, nearest_int(iscale * scales[j])));
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = fp16_to_fp32(b[i].d) * float(b[i].scales[j]);
            if (d == 0) continue;
            for (int l = 0; l < 16; ++l)
                L[16 * j + l] = int8_t(std::clamp(nearest_int(src[16 * j + l] / d), -32, 31) + 32);
        }
        for (int h = 0; h < 2; ++h)
            for (int l = 0; l < 32; ++l) {
                const int8_t* v = L + 128 * h + l;  // v[32*s] is slot s of this column
                b[i].ql[64 * h + l] = uint8_t((v[0] & 0x0F) | ((v[64] & 0x0F) << 4));
                b[i].ql[64 * h + 32 + l] = uint8_t((v[32] & 0x0F) | ((v[96] & 0x0F) << 4));
                b[i].qh[32 * h + l] = uint8_t((v[0] >> 4) | ((v[32] >> 4) << 2) | ((v[64] >> 4) << 4) | ((v[96] >> 4) << 6));
            }
    }
}

float vec_dot_q6_K_q8_K(int64_t n, const void* w, const void* x) {
    const BlockQ6_K* a = static_cast<const BlockQ6_K*>(w);
    const BlockQ8_K* y = static_cast<const BlockQ8_K*>(x);
    int8_t q[QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        unpack_q6_K(a[i], q);
        int isum = 0;
        for (int j = 0; j < QK_K / 16; ++j) isum += a[i].scales[j] * dot_i8(q + 16 * j, y[i].qs + 16 * j, 16);
        sum += fp16_to_fp32(a[i].d) * y[i].d * float(isum);
    }
    return sum;
}

// ------------------------------------------------------------------------------ Q8_K

void to_float_q8_K(const void* src, float* dst, int64_t n) {
    const BlockQ8_K* b = static_cast<const BlockQ8_K*>(src);
    for (int64_t i = 0; i < n / QK_K; ++i, dst += QK_K)
        for (int j = 0; j < QK_K; ++j) dst[j] = b[i].d * float(b[i].qs[j]);
}

// The activation quantizer of every K-quant matmul. The scale is -max/127 with max the
// signed value of largest magnitude, so that value maps to exactly -127 (127 levels
// each side; the SIMD kernels rely on -128 never occurring).
void from_float_q8_K(const float* src, void* dst, int64_t n) {
    BlockQ8_K* b = static_cast<BlockQ8_K*>(dst);
    for (int64_t i = 0; i < n / QK_K; ++i, src += QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; ++j) {
            if (std::fabs(src[j]) > amax) {
                amax = std::fabs(src[j]);
                max = src[j];
            }
        }
        if (amax == 0) {
            std::memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; ++j) b[i].qs[j] = int8_t(std::min(127, nearest_int(iscale * src[j])));
        for (int j = 0; j < QK_K / 16; ++j) {
            int s = 0;
            for (int l = 0; l < 16; ++l) s += b[i].qs[16 * j + l];
            b[i].bsums[j] = int16_t(s);
        }
        b[i].d = 1 / iscale;
    }
}

float vec_dot_q8_K_q8_K(int64_t n, const void* w, const void* x) {
    const BlockQ8_K* a = static_cast<const BlockQ8_K*>(w);
    const BlockQ8_K* y = static_cast<const BlockQ8_K*>(x);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; ++i) sum += a[i].d * y[i].d * float(dot_i8(a[i].qs, y[i].qs, QK_K));
    return sum;
}

}  // namespace pensieve::quant
