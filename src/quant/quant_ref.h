// Scalar reference kernels of every supported type: dequantize (to_float), reference
// quantize (from_float) and the dot product against the type's activation format.
// These are the test oracle for the SIMD kernels in kernels/; normal code reaches them
// through type_traits(). All sizes n are element counts, multiples of the block size.
//
// Semantics follow the GGUF reference implementation (ggml): the same block layouts,
// the same rounding in the quantizers (so the same input gives the same bytes), and dot
// products that sum integer products per block and scale them in float.
#pragma once

#include <cstdint>

namespace pensieve::quant {

// --- float formats (quant_float.cpp) ---
void to_float_f32(const void* src, float* dst, int64_t n);
void from_float_f32(const float* src, void* dst, int64_t n);
float vec_dot_f32(int64_t n, const void* w, const void* x);
void to_float_f16(const void* src, float* dst, int64_t n);
void from_float_f16(const float* src, void* dst, int64_t n);
float vec_dot_f16(int64_t n, const void* w, const void* x);
void to_float_bf16(const void* src, float* dst, int64_t n);
void from_float_bf16(const float* src, void* dst, int64_t n);
float vec_dot_bf16(int64_t n, const void* w, const void* x);

// --- 32-weight blocks (quant_legacy.cpp) ---
void to_float_q4_0(const void* src, float* dst, int64_t n);
void from_float_q4_0(const float* src, void* dst, int64_t n);
float vec_dot_q4_0_q8_0(int64_t n, const void* w, const void* x);
void to_float_q4_1(const void* src, float* dst, int64_t n);
void from_float_q4_1(const float* src, void* dst, int64_t n);
float vec_dot_q4_1_q8_1(int64_t n, const void* w, const void* x);
void to_float_q5_0(const void* src, float* dst, int64_t n);
void from_float_q5_0(const float* src, void* dst, int64_t n);
float vec_dot_q5_0_q8_0(int64_t n, const void* w, const void* x);
void to_float_q5_1(const void* src, float* dst, int64_t n);
void from_float_q5_1(const float* src, void* dst, int64_t n);
float vec_dot_q5_1_q8_1(int64_t n, const void* w, const void* x);
void to_float_q8_0(const void* src, float* dst, int64_t n);
void from_float_q8_0(const float* src, void* dst, int64_t n);
float vec_dot_q8_0_q8_0(int64_t n, const void* w, const void* x);
void to_float_q8_1(const void* src, float* dst, int64_t n);
void from_float_q8_1(const float* src, void* dst, int64_t n);
float vec_dot_q8_1_q8_1(int64_t n, const void* w, const void* x);
void to_float_iq4_nl(const void* src, float* dst, int64_t n);
void from_float_iq4_nl(const float* src, void* dst, int64_t n);
float vec_dot_iq4_nl_q8_0(int64_t n, const void* w, const void* x);

// --- K-quants (quant_k.cpp) ---
void to_float_q2_K(const void* src, float* dst, int64_t n);
void from_float_q2_K(const float* src, void* dst, int64_t n);
float vec_dot_q2_K_q8_K(int64_t n, const void* w, const void* x);
void to_float_q3_K(const void* src, float* dst, int64_t n);
void from_float_q3_K(const float* src, void* dst, int64_t n);
float vec_dot_q3_K_q8_K(int64_t n, const void* w, const void* x);
void to_float_q4_K(const void* src, float* dst, int64_t n);
void from_float_q4_K(const float* src, void* dst, int64_t n);
float vec_dot_q4_K_q8_K(int64_t n, const void* w, const void* x);
void to_float_q5_K(const void* src, float* dst, int64_t n);
void from_float_q5_K(const float* src, void* dst, int64_t n);
float vec_dot_q5_K_q8_K(int64_t n, const void* w, const void* x);
void to_float_q6_K(const void* src, float* dst, int64_t n);
void from_float_q6_K(const float* src, void* dst, int64_t n);
float vec_dot_q6_K_q8_K(int64_t n, const void* w, const void* x);
void to_float_q8_K(const void* src, float* dst, int64_t n);
void from_float_q8_K(const float* src, void* dst, int64_t n);
float vec_dot_q8_K_q8_K(int64_t n, const void* w, const void* x);

// --- ternary (quant_ternary.cpp) ---
void to_float_tq1_0(const void* src, float* dst, int64_t n);
void from_float_tq1_0(const float* src, void* dst, int64_t n);
float vec_dot_tq1_0_q8_K(int64_t n, const void* w, const void* x);
void to_float_tq2_0(const void* src, float* dst, int64_t n);
void from_float_tq2_0(const float* src, void* dst, int64_t n);
float vec_dot_tq2_0_q8_K(int64_t n, const void* w, const void* x);

// Round to nearest, ties to even, as the reference quantizers do (valid for |v| < 2^22;
// callers only pass values a few hundred at most).
inline int nearest_int(float v) {
    // Adding 1.5 * 2^23 pushes the fraction bits out of the mantissa, so the FPU's
    // round-to-nearest-even does the rounding; the low mantissa bits are then the integer.
    float t = v + 12582912.f;
    uint32_t bits;
    __builtin_memcpy(&bits, &t, 4);
    return int(bits & 0x007fffff) - 0x00400000;
}

}  // namespace pensieve::quant
