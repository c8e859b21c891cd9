#include "kernels/ssm_scan.h"

#include <immintrin.h>

#include <cmath>

namespace pensieve {

namespace {

inline __m256 exp_ps8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365447504f);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    // x = n ln2 + r, |r| <= ln2 / 2; ln2 in two parts so n ln2 is exact enough.
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    // 2^n: n + 127 in the exponent field (n >= -126 after the clamp).
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

}  // namespace

void exp_avx2(const float* x, float* out, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, exp_ps8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float in[8] = {0}, res[8];
        for (int64_t j = i; j < n; ++j) in[j - i] = x[j];
        _mm256_storeu_ps(res, exp_ps8(_mm256_loadu_ps(in)));
        for (int64_t j = i; j < n; ++j) out[j] = res[j - i];
    }
}

void selective_scan_avx2(float* h, const float* u, const float* dt, const float* A, const float* B, const float* C,
                         const float* D, float* y, int64_t n_channel, int64_t d_state) {
    const int64_t S8 = d_state / 8 * 8;
    for (int64_t c = 0; c < n_channel; ++c) {
        const float uc = u[c], dtc = dt[c];
        float* hc = h + c * d_state;
        const float* Ac = A + c * d_state;
        const __m256 vdt = _mm256_set1_ps(dtc), vdtu = _mm256_set1_ps(dtc * uc);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t s = 0; s < S8; s += 8) {
            const __m256 decay = exp_ps8(_mm256_mul_ps(vdt, _mm256_loadu_ps(Ac + s)));
            // h = decay h + (dt u) B: as the reference's dt B u up to rounding.
            const __m256 hs = _mm256_fmadd_ps(decay, _mm256_loadu_ps(hc + s),
                                              _mm256_mul_ps(vdtu, _mm256_loadu_ps(B + s)));
            _mm256_storeu_ps(hc + s, hs);
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(C + s), hs, acc);
        }
        float sum = hsum(acc);
        for (int64_t s = S8; s < d_state; ++s) {
            hc[s] = std::exp(dtc * Ac[s]) * hc[s] + dtc * B[s] * uc;
            sum += C[s] * hc[s];
        }
        y[c] = sum + D[c] * uc;
    }
}

}  // namespace pensieve
