// Small helpers the SIMD kernel files share (*_avx2.cpp, *_avx512.cpp, attention).
//
// Everything here has internal linkage (an anonymous namespace): each kernel file gets
// its own copy, compiled with that file's ISA flags. A plain inline function would be
// emitted as a COMDAT copy per file, and the linker could keep the AVX-512-encoded one
// for the whole program, which would then crash on CPUs without AVX-512; that is why
// the kernel files used to repeat these. Only baseline (x86-64-v3: AVX2, F16C)
// intrinsics here; AVX-512 helpers are in simd_local_avx512.h.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quant/blocks.h"

namespace pensieve::simd {
namespace {

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline float f16(fp16_t h) { return _cvtsh_ss(h); }
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

inline uint32_t load_u32(const void* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Q4_K/Q5_K: the 8 six-bit scales and 8 mins of a super-block from its 12 packed bytes,
// one per byte, as 32-bit words (scales 0..3, 4..7, mins 0..3, 4..7). Bytes 0..3 keep
// their low 6 bits; sub-blocks 4..7 take a nibble from bytes 8..11 and their top 2 bits
// from bits 6..7 of bytes 0..3 / 4..7 (>> 2 moves 6..7 to 4..5).
struct K4ScaleWords {
    uint32_t sc_lo, sc_hi, mn_lo, mn_hi;
};

inline K4ScaleWords k4_scale_words(const uint8_t* s) {
    const uint32_t a = load_u32(s), b = load_u32(s + 4), c = load_u32(s + 8);
    return {a & 0x3f3f3f3f, (c & 0x0f0f0f0f) | ((a >> 2) & 0x30303030), b & 0x3f3f3f3f,
            ((c >> 4) & 0x0f0f0f0f) | ((b >> 2) & 0x30303030)};
}

// The same as bytes: sc[8] scales, mn[8] mins.
inline void k4_scales_mins(const uint8_t* s, uint8_t sc[8], uint8_t mn[8]) {
    const K4ScaleWords w = k4_scale_words(s);
    std::memcpy(sc, &w.sc_lo, 4);
    std::memcpy(sc + 4, &w.sc_hi, 4);
    std::memcpy(mn, &w.mn_lo, 4);
    std::memcpy(mn + 4, &w.mn_hi, 4);
}

// The 16 six-bit Q3_K scales minus 32, as int8 (layout in blocks.h). Word ops: the low
// nibbles are bytes 0..7 (low, then high nibble); the top 2 bits of scales 4g..4g+3 are
// bits 2g..2g+1 of bytes 8..11, moved to bits 4..5.
inline __m128i q3k_scales(const uint8_t* s) {
    const uint32_t a = load_u32(s), b = load_u32(s + 4), c = load_u32(s + 8);
    const uint32_t w0 = (a & 0x0f0f0f0f) | ((c << 4) & 0x30303030);
    const uint32_t w1 = (b & 0x0f0f0f0f) | ((c << 2) & 0x30303030);
    const uint32_t w2 = ((a >> 4) & 0x0f0f0f0f) | (c & 0x30303030);
    const uint32_t w3 = ((b >> 4) & 0x0f0f0f0f) | ((c >> 2) & 0x30303030);
    return _mm_sub_epi8(_mm_setr_epi32(int(w0), int(w1), int(w2), int(w3)), _mm_set1_epi8(32));
}

}  // namespace
}  // namespace pensieve::simd
