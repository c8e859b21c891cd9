// Half-precision conversions (IEEE fp16 and bfloat16), bit-exact with GGUF storage.
// Scalar code: the hardware F16C path is used where the compiler can (x86-64-v3 has
// F16C, so _cvtsh_ss is a single instruction); the portable fallback is the oracle.
#pragma once

#include <cstdint>
#include <cstring>
#include <immintrin.h>

namespace pensieve {

using fp16_t = uint16_t;  // raw IEEE-754 binary16 bits
using bf16_t = uint16_t;  // raw bfloat16 bits (upper half of a float32)

inline float fp32_from_bits(uint32_t bits) { float f; std::memcpy(&f, &bits, 4); return f; }
inline uint32_t fp32_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

// Portable reference conversion, used to test the hardware path.
inline float fp16_to_fp32_ref(fp16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) {
        if (mant == 0) return fp32_from_bits(sign);
        // subnormal: normalise
        int shift = 0;
        while (!(mant & 0x400)) { mant <<= 1; ++shift; }
        mant &= 0x3ff;
        return fp32_from_bits(sign | uint32_t(127 - 15 - shift + 1) << 23 | mant << 13);
    }
    if (exp == 31) return fp32_from_bits(sign | 0x7f800000u | mant << 13);
    return fp32_from_bits(sign | (exp + 127 - 15) << 23 | mant << 13);
}

inline float fp16_to_fp32(fp16_t h) { return _cvtsh_ss(h); }
// Round to nearest even, as the quantizers of other GGUF tools do.
inline fp16_t fp32_to_fp16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

inline float bf16_to_fp32(bf16_t h) { return fp32_from_bits(uint32_t(h) << 16); }
// Round to nearest even; NaN stays NaN (quiet bit forced).
inline bf16_t fp32_to_bf16(float f) {
    uint32_t u = fp32_to_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return bf16_t((u >> 16) | 64);
    return bf16_t((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

}  // namespace pensieve
