// Dot products and accumulations against rows of the KV cache: the inner loops of
// attention. AVX2 + F16C (the build's baseline), with scalar tails for odd sizes.
//
// fp16 rows (--cache-type f16): q·k in fp32 against fp16 keys, fp16 values accumulated.
// Q8_0 rows (--cache-type q8_0): the query is quantized to Q8_0 once per head, so q·k
// is an integer dot per 32-value block (scaled by both blocks' d); values are
// dequantized on the fly into the fp32 accumulator.
#pragma once

#include <cstdint>

#include "quant/blocks.h"
#include "util/fp16.h"

namespace pensieve {

// sum_i q[i] * k[i], with k in fp16.
float dot_f32_f16(const float* q, const fp16_t* k, int n);

// acc[i] += p * v[i], with v in fp16.
void axpy_f16(float p, const fp16_t* v, float* acc, int n);

// Over n_rows Q8_0 rows of n_blocks blocks that lie `stride` bytes apart (consecutive
// positions of one KV cache block):
//   dot:  out[r] = sum over blocks of dq * dk * (integer sum_i q[i] * k_r[i])
//   axpy: acc[i] += sum_r p[r] * v_r[i]   (v dequantized on the fly)
// One call per run of positions keeps the accumulators in registers and reduces 8 dot
// products at once.
void dot_q8_0_rows(const BlockQ8_0* q, const uint8_t* k, size_t stride, int n_rows, int n_blocks, float* out);
void axpy_q8_0_rows(const float* p, const uint8_t* v, size_t stride, int n_rows, int n_blocks, float* acc);

// Asks the CPU to start loading `bytes` at each of n_rows rows `stride` apart. The rows
// of one head are short slices far apart (a KV row holds every head), which the hardware
// prefetcher does not follow across pages; without this, decode at a deep context waits
// on memory latency row by row.
void prefetch_rows(const uint8_t* p, size_t stride, int n_rows, size_t bytes);

// Values [first, first + n) of a Q8_0 row, as floats: for heads that do not start on a
// block boundary (head_dim not a multiple of 32, as in tiny models).
void dequantize_q8_0_range(const BlockQ8_0* row, int first, int n, float* out);

}  // namespace pensieve
