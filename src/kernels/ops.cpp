#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/simd_local.h"

namespace pensieve {

void rms_norm(const float* x, const float* weight, float* out, int64_t n, float eps) {
    // Accumulate in double: the sum of squares of thousands of values loses bits in float,
    // and this is once per row, not per weight.
    double sum_sq = 0.0;
    for (int64_t i = 0; i < n; ++i) sum_sq += double(x[i]) * x[i];
    const float scale = float(1.0 / std::sqrt(sum_sq / double(n) + eps));
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

void layer_norm(const float* x, const float* weight, const float* bias, float* out, int64_t n,
                float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += x[i];
    const double mean = sum / double(n);
    double var = 0.0;
    for (int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
    const float scale = float(1.0 / std::sqrt(var / double(n) + eps));
    for (int64_t i = 0; i < n; ++i) {
        float v = float(x[i] - mean) * scale * weight[i];
        out[i] = bias ? v + bias[i] : v;
    }
}

void softmax(float* x, int64_t n) {
    float max_val = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i) max_val = std::max(max_val, x[i]);
    if (max_val == -std::numeric_limits<float>::infinity()) {
        for (int64_t i = 0; i < n; ++i) x[i] = 1.0f / float(n);
        return;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - max_val);
        sum += x[i];
    }
    const float inv = float(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

namespace {

using simd::map8;

// x / (1 + exp(-x)) with one division, as the formula reads: for x < 0 from e = exp(x)
// as x e / (1 + e), so the exponent never overflows.
__m256 silu8(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 e = simd::exp_nonpositive(_mm256_or_ps(x, _mm256_set1_ps(-0.0f)));
    const __m256 num = _mm256_blendv_ps(x, _mm256_mul_ps(x, e), x);
    return _mm256_div_ps(num, _mm256_add_ps(one, e));
}

__m256 gelu_tanh8(__m256 x) {
    const __m256 inner = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                       _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), x), _mm256_mul_ps(x, x), x));
    const __m256 half_x = _mm256_mul_ps(_mm256_set1_ps(0.5f), x);
    return _mm256_fmadd_ps(half_x, simd::tanh8(inner), half_x);
}

}  // namespace

void swiglu(float* gate, const float* up, int64_t n) {
    map8(gate, up, n, [](__m256 g, __m256 u) { return _mm256_mul_ps(silu8(g), u); });
}

void silu(float* x, int64_t n) {
    map8(x, nullptr, n, [](__m256 v, __m256) { return silu8(v); });
}

void gelu_tanh(float* x, int64_t n) {
    map8(x, nullptr, n, [](__m256 v, __m256) { return gelu_tanh8(v); });
}

void geglu(float* gate, const float* up, int64_t n) {
    map8(gate, up, n, [](__m256 g, __m256 u) { return _mm256_mul_ps(gelu_tanh8(g), u); });
}

void add_inplace(float* a, const float* b, int64_t n) {
    for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

void rope(float* x, int n_heads, int head_dim, int32_t pos, const RopeParams& p) {
    const int half = p.n_dims / 2;
    const float position = float(pos) * p.freq_scale;
    const float mscale = p.ext_factor != 0.0f ? p.attn_factor * (1.0f + 0.1f * std::log(1.0f / p.freq_scale))
                                              : p.attn_factor;
    for (int i = 0; i < half; ++i) {
        // theta_i = pos * base^(-2i/n_dims)
        const float freq = std::pow(p.freq_base, -2.0f * float(i) / float(p.n_dims));
        float theta = position * freq;
        if (p.freq_factors) theta /= p.freq_factors[i];
        if (p.ext_factor != 0.0f) {
            // YaRN: ramp 1 (keep the original frequency) below yarn_low, 0 above yarn_high.
            const float extrap = float(pos) * freq / (p.freq_factors ? p.freq_factors[i] : 1.0f);
            const float y = (float(i) - p.yarn_low) / std::max(0.001f, p.yarn_high - p.yarn_low);
            const float ramp = (1.0f - std::min(1.0f, std::max(0.0f, y))) * p.ext_factor;
            theta = extrap * p.freq_scale * (1.0f - ramp) + extrap * ramp;
        }
        const float c = std::cos(theta) * mscale, s = std::sin(theta) * mscale;
        for (int h = 0; h < n_heads; ++h) {
            float* head = x + int64_t(h) * head_dim;
            const int a = p.style == RopeStyle::Normal ? 2 * i : i;
            const int b = p.style == RopeStyle::Normal ? 2 * i + 1 : i + half;
            const float x0 = head[a], x1 = head[b];
            head[a] = x0 * c - x1 * s;
            head[b] = x0 * s + x1 * c;
        }
    }
}

}  // namespace pensieve
