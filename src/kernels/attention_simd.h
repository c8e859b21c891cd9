// Internal to kernels/: the fp16-cache attention kernels of each SIMD level, behind
// dot_f32_f16_rows / axpy_f16_rows / attend_f16_tile (attention.h), which pick one at
// run time. Declared here so tests and bench_kernels can run a given level. All need
// n % 8 == 0 (the public functions take odd sizes elsewhere); the AVX-512 ones need
// cpu_supports(KernelLevel::Avx512).
//
// Both levels give the same bits: a 16-lane AVX-512 accumulator holds exactly the two
// 8-lane AVX2 accumulators side by side, every lane sees the same fmas in the same
// order, and the two halves are added and reduced as AVX2 does.
#pragma once

#include <cstddef>

#include "kernels/attention.h"
#include "kernels/dispatch.h"
#include "util/fp16.h"

namespace pensieve::simd {

// out[g * out_stride + r] = (q_g · k[r]) * scale, g < nq, r < n_rows.
using DotRowsFn = void (*)(const float* q, int nq, const fp16_t* const* k, int n_rows, int n, float scale,
                           float* out, size_t out_stride);
// acc[g * n + i] += p[g * p_stride + r] * v[r][i], over r in increasing order.
using AxpyRowsFn = void (*)(const float* p, size_t p_stride, int nq, const fp16_t* const* v, int n_rows, int n,
                            float* acc);

void avx2_dot_f32_f16_rows(const float* q, int nq, const fp16_t* const* k, int n_rows, int n, float scale,
                           float* out, size_t out_stride);
void avx2_axpy_f16_rows(const float* p, size_t p_stride, int nq, const fp16_t* const* v, int n_rows, int n,
                        float* acc);
void avx512_dot_f32_f16_rows(const float* q, int nq, const fp16_t* const* k, int n_rows, int n, float scale,
                             float* out, size_t out_stride);
void avx512_axpy_f16_rows(const float* p, size_t p_stride, int nq, const fp16_t* const* v, int n_rows, int n,
                          float* acc);

// attend_f16_tile (attention.h) at a given level (Avx2 or Avx512), for tests.
void attend_f16_tile_at(KernelLevel level, const float* q, size_t q_stride, const int* n_pos, int n_tok, int group,
                        int hd, const fp16_t* const* k_rows, const fp16_t* const* v_rows, float scale, float* out,
                        size_t out_stride, float* scratch, const ScoreOptions* mods = nullptr);

// Rows the AVX-512 tile converts to fp32 at a time: 64 rows of a 64-wide head are 16 KiB,
// which stay in L1 while every query of the tile uses them.
constexpr int kRowBlock = 64;

// The score options, softmax of each query's scores and their rounding to fp16 (query
// t * group + g has n_pos[t] scores at scores + (t * group + g) * ld; ld > max n_pos,
// room for a sink logit).
using AttendMiddle = void (*)(float* scores, size_t ld, const int* n_pos, int n_tok, int group,
                              const ScoreOptions* mods);

// The AVX-512 tile: qh holds the n_tok * group queries already rounded to fp16, hd
// apart; scores has n_tok * group rows of ld >= max n_pos floats; rows_f32 has
// kRowBlock * hd floats. hd % 8 == 0.
void avx512_attend_f16_tile(const float* qh, const int* n_pos, int n_tok, int group, int hd,
                            const fp16_t* const* k_rows, const fp16_t* const* v_rows, float scale, float* scores,
                            size_t ld, float* out, size_t out_stride, float* rows_f32, AttendMiddle middle,
                            const ScoreOptions* mods);

}  // namespace pensieve::simd
