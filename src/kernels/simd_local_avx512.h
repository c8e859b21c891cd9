// AVX-512 helpers the *_avx512.cpp kernel files share. Include only from files compiled
// with the AVX-512 flags. Internal linkage for the reason given in simd_local.h.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/simd_local.h"

namespace pensieve::simd {
namespace {

inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
inline __m512i join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

inline void prefetch(const uint8_t* p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + o), _MM_HINT_T0);
}
inline void prefetch_l2(const uint8_t* p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + o), _MM_HINT_T1);
}

// Writes the valid lanes of a 16-token result for row r: token t goes to y[t * ldy + r].
inline void store_tokens(__m512 v, int n, float* y, int64_t ldy) {
    alignas(64) float tmp[16];
    _mm512_store_ps(tmp, v);
    for (int l = 0; l < n; ++l) y[l * ldy] = tmp[l];
}

}  // namespace
}  // namespace pensieve::simd
