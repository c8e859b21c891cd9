// Internal to kernels/: what each SIMD translation unit offers. dispatch.cpp is the only
// caller. The AVX-512 lookups live in a file compiled with AVX-512 flags, so they are
// only called after cpuid says the CPU has AVX-512 (dispatch.cpp checks).
#pragma once

#include "quant/types.h"

namespace pensieve::simd {

// nullptr when that level has no kernel for the type.
VecDotFn avx2_vec_dot(GgmlType type);
FromFloatFn avx2_from_float(GgmlType type);

// Need AVX512F/BW/VL/DQ + VNNI; the BF16 dot also needs AVX512_BF16 (dispatch checks).
VecDotFn avx512_vec_dot(GgmlType type);
FromFloatFn avx512_from_float(GgmlType type);
// Tiles of avx512_vec_dot(type) with its bits (quant/types.h DotTile), or fn nullptr.
DotTile avx512_dot_tile(GgmlType type);

}  // namespace pensieve::simd
