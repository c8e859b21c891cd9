// Include FIRST in every quant/*.cpp. Turns off the compiler's fusing of a*b+c into
// one FMA instruction for the rest of the translation unit.
//
// Why: the reference quantizers round values like x*id + 8.5 to integers; with the
// multiply-add fused, the rounding of the product is skipped and a value that lands
// within one ulp of a .5 boundary goes the other way. With contraction off, our
// quantizers reproduce the bytes of files written by the reference tools exactly
// (tests/unit/test_quant.cpp re-quantizes the synth-tiny models and checks); with it
// on (GCC's default for C++ on x86-64-v3), ~0.1% of Q4_0 blocks and ~5% of Q4_K blocks
// differ. Explicit intrinsics (_mm256_fmadd_ps) in SIMD kernels are unaffected.
#pragma once

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
