// Element-wise and row-wise float ops used by every model: norms, activations, softmax,
// rotary position embeddings. Scalar code written so the compiler vectorises it; each op
// is one small function, easy to find and to test.
#pragma once

#include <cstdint>

namespace pensieve {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i]. `out` may alias `x`.
void rms_norm(const float* x, const float* weight, float* out, int64_t n, float eps);

// out[i] = (x[i] - mean) / sqrt(var + eps) * weight[i] + bias[i] (bias may be null).
void layer_norm(const float* x, const float* weight, const float* bias, float* out, int64_t n,
                float eps);

// In place: x = exp(x - max) / sum. Returns nothing; an all -inf row becomes uniform.
void softmax(float* x, int64_t n);

// Activations, 8 lanes at a time (exp by the attention softmax's polynomial, within
// 2 ulp; tanh within 2e-7 absolute). The scalar loops called expf / tanhf per value and
// ran on one thread: 46M values per 512-token prompt of a 1B model.
// gate[i] = silu(gate[i]) * up[i]   (SwiGLU's elementwise step)
void swiglu(float* gate, const float* up, int64_t n);
// x[i] = silu(x[i]) = x[i] * sigmoid(x[i])
void silu(float* x, int64_t n);
// x[i] = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   (GELU, tanh form)
void gelu_tanh(float* x, int64_t n);
// gate[i] = gelu_tanh(gate[i]) * up[i]   (GeGLU)
void geglu(float* gate, const float* up, int64_t n);

// a[i] += b[i]
void add_inplace(float* a, const float* b, int64_t n);

// How rotary embeddings pair the dimensions of a head.
enum class RopeStyle {
    Normal,  // pairs (2i, 2i+1): LLaMA as stored in GGUF
    NeoX,    // pairs (i, i + d/2): GPT-NeoX, Qwen2, Phi-3, Gemma
};

struct RopeParams {
    int n_dims = 0;            // rotated dimensions per head (<= head_dim)
    float freq_base = 10000.f; // theta base
    float freq_scale = 1.f;    // linear scaling: position multiplied by this (1/factor)
    RopeStyle style = RopeStyle::Normal;
    // Llama 3.1+: per-pair divisors of the frequencies (n_dims / 2 values; null: none).
    const float* freq_factors = nullptr;
    // YaRN (ext_factor 1): pairs below yarn_low keep their frequency, pairs above
    // yarn_high are interpolated (freq_scale), the ones between are blended linearly;
    // cos and sin are multiplied by attn_factor * (1 + 0.1 ln(1 / freq_scale)).
    float ext_factor = 0.0f;
    float attn_factor = 1.0f;
    float yarn_low = 0.0f, yarn_high = 0.0f;
};

// Rotates the first n_dims of each of n_heads heads (head_dim floats each) of one token
// at position `pos`, in place.
void rope(float* x, int n_heads, int head_dim, int32_t pos, const RopeParams& p);

}  // namespace pensieve
