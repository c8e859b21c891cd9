// Plain float formats: F32, F16 (IEEE binary16) and BF16 (top half of a float32).
// Conversions round to nearest even (util/fp16.h); dot products accumulate in float.
#include "quant/strict_fp.h"  // first: affects every function below

#include <cstring>

#include "quant/quant_ref.h"
#include "util/fp16.h"

namespace pensieve::quant {

void to_float_f32(const void* src, float* dst, int64_t n) {
    std::memcpy(dst, src, size_t(n) * sizeof(float));
}

void from_float_f32(const float* src, void* dst, int64_t n) {
    std::memcpy(dst, src, size_t(n) * sizeof(float));
}

float vec_dot_f32(int64_t n, const void* w, const void* x) {
    const float* a = static_cast<const float*>(w);
    const float* b = static_cast<const float*>(x);
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
    return sum;
}

void to_float_f16(const void* src, float* dst, int64_t n) {
    const fp16_t* h = static_cast<const fp16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
}

void from_float_f16(const float* src, void* dst, int64_t n) {
    fp16_t* h = static_cast<fp16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
}

float vec_dot_f16(int64_t n, const void* w, const void* x) {
    const fp16_t* a = static_cast<const fp16_t*>(w);
    const fp16_t* b = static_cast<const fp16_t*>(x);
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) sum += fp16_to_fp32(a[i]) * fp16_to_fp32(b[i]);
    return sum;
}

void to_float_bf16(const void* src, float* dst, int64_t n) {
    const bf16_t* h = static_cast<const bf16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
}

void from_float_bf16(const float* src, void* dst, int64_t n) {
    bf16_t* h = static_cast<bf16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
}

float vec_dot_bf16(int64_t n, const void* w, const void* x) {
    const bf16_t* a = static_cast<const bf16_t*>(w);
    const bf16_t* b = static_cast<const bf16_t*>(x);
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) sum += bf16_to_fp32(a[i]) * bf16_to_fp32(b[i]);
    return sum;
}

}  // namespace pensieve::quant
