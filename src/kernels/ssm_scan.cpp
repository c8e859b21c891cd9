#include "kernels/ssm_scan.h"

#include <immintrin.h>

#include <cmath>

#include "kernels/simd_local.h"

namespace pensieve {

using simd::exp_nonpositive;
using simd::horizontal_sum;

void exp_nonpositive_avx2(const float* x, float* out, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, exp_nonpositive(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float in[8] = {0}, res[8];
        for (int64_t j = i; j < n; ++j) in[j - i] = x[j];
        _mm256_storeu_ps(res, exp_nonpositive(_mm256_loadu_ps(in)));
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
            const __m256 decay = exp_nonpositive(_mm256_mul_ps(vdt, _mm256_loadu_ps(Ac + s)));
            // h = decay h + (dt u) B: as the reference's dt B u up to rounding.
            const __m256 hs = _mm256_fmadd_ps(decay, _mm256_loadu_ps(hc + s),
                                              _mm256_mul_ps(vdtu, _mm256_loadu_ps(B + s)));
            _mm256_storeu_ps(hc + s, hs);
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(C + s), hs, acc);
        }
        float sum = horizontal_sum(acc);
        for (int64_t s = S8; s < d_state; ++s) {
            hc[s] = std::exp(dtc * Ac[s]) * hc[s] + dtc * B[s] * uc;
            sum += C[s] * hc[s];
        }
        y[c] = sum + D[c] * uc;
    }
}

}  // namespace pensieve
