// Lookup-table ("T-MAC style") matrix-vector kernel for TQ2_0 weights, AVX-512 only.
//
// Instead of unpacking every weight and multiplying it with its activation, the
// activations of one token are turned into small tables once (for every 4-bit weight
// pattern, the partial sum it selects), and each weight row then only looks up and adds.
// lut_avx512.cpp explains the layout. Results are bit-identical to the scalar reference
// vec_dot (same integer block sums, same float steps in the same order).
//
// Not installed by default: it is slower than the AVX-512 VNNI vec_dot, which already
// multiplies 64 weights per instruction; the lookups cost ~15 instructions per 64 weight
// bytes (and the transpose 4 more) against ~4 for VNNI. Measured (Zen-class AVX-512 CPU,
// single thread, 4096x4096, busy machine): VNNI 29.6 GB/s, LUT 23.9 GB/s (table build
// 1.2 us of it); synth-1b-TQ2_0 tg64 at 1 thread 45-50 vs 36-37 tok/s. PENSIEVE_LUT=1
// makes dispatch use it for TQ2_0 (as the type's GemmKernels), for experiments; tests
// and pensieve_bench_kernels (lut/TQ2_0) reach it here.
//
// All functions need AVX512F/BW/VL/DQ: call only when cpu_supports(KernelLevel::Avx512).
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/types.h"

namespace pensieve {

struct GemmKernels;  // kernels/gemm.h

namespace simd {

// Bytes of the tables for one activation row of `cols` values (a multiple of 4096).
size_t tq2_lut_bytes(int64_t cols);

// Builds the tables of one Q8_K activation row into lut (64-byte aligned).
void tq2_lut_build(const uint8_t* xq, int64_t cols, uint8_t* lut);

// y[r - r0] = dot(TQ2_0 row r, x) for r in [r0, r1); rows are w_row_bytes apart from w.
// lut was built from xq (the same Q8_K row, read for its scales and block sums).
void tq2_lut_gemv(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const uint8_t* lut,
                  const uint8_t* xq, float* y);

// The kernel as the GemmKernels of TQ2_0 (nullptr for other types); dispatch.cpp installs
// it when PENSIEVE_LUT=1.
const GemmKernels* avx512_lut_gemm(GgmlType type);

}  // namespace simd
}  // namespace pensieve
