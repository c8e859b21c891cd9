// Dot products and accumulations against rows of the KV cache: the inner loops of
// attention. AVX2 + F16C (the build's baseline), with scalar tails for odd sizes; the
// fp16 row kernels and the tile also have AVX-512 versions with the same bits
// (attention_avx512.cpp), used when the kernel level is avx512.
//
// fp16 rows (--cache-type f16): q·k in fp32 against fp16 keys, fp16 values accumulated.
// Q8_0 rows (--cache-type q8_0): the query is quantized to Q8_0 once per head, so q·k
// is an integer dot per 32-value block (scaled by both blocks' d); values are
// dequantized on the fly into the fp32 accumulator.
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/blocks.h"
#include "util/fp16.h"

namespace pensieve {

// Softmax of one head's attention scores, in place: exp(x - max) / sum, eight lanes at a
// time (exp by range reduction to [-ln2/2, ln2/2] and a degree-7 polynomial, within 2 ulp
// of std::exp; the sum in fp32 lanes). Every attention path calls this one function, so
// decode and prefill stay bit-identical. It replaced the scalar softmax (std::exp and a
// double-precision sum, a serial chain): at depth 3072 that was 26% of a 1B model's
// prefill time (perf: softmax 17.5%, expf 8.8%). -inf scores get weight 0; all -inf:
// uniform weights.
void softmax_scores(float* x, int n);

// sum_i q[i] * k[i], with k in fp16.
float dot_f32_f16(const float* q, const fp16_t* k, int n);

// acc[i] += p * v[i], with v in fp16.
void axpy_f16(float p, const fp16_t* v, float* acc, int n);

// The same arithmetic for several queries at once, so each fp16 row is loaded and
// converted once for all of them (the query heads of one GQA group). Every result is
// bit-identical to the one-query functions above: each query sees the same operations
// on the same lanes in the same order; only the loops around them are exchanged.
//   dot:  out[g * out_stride + r] = dot_f32_f16(q + g * n, k[r], n) * scale
//   axpy: for r = 0, 1, ...: axpy_f16(p[g * p_stride + r], v[r], acc + g * n, n)
// for g in [0, nq), r in [0, n_rows).
void dot_f32_f16_rows(const float* q, int nq, const fp16_t* const* k, int n_rows, int n, float scale,
                      float* out, size_t out_stride);
void axpy_f16_rows(const float* p, size_t p_stride, int nq, const fp16_t* const* v, int n_rows, int n, float* acc);

// Causal attention over an fp16 cache for the `group` query heads that share one KV
// head, for n_tok tokens of one sequence (a tile). Token t has its group's queries at
// q + t * q_stride (group * hd floats, heads consecutive) and sees cache positions
// [0, n_pos[t]); k_rows[j] / v_rows[j] point at this KV head's slice of position j.
// Its outputs go to out + t * out_stride. Per query this is exactly the one-head loop:
// query rounded to fp16, scores = dot * scale, softmax, weights rounded to fp16, then
// axpy over positions in increasing order; so any tiling gives the same bits. On
// AVX-512 the rows all the tile's tokens see are converted to fp32 once per tile, not
// once per token (the per-lane arithmetic is unchanged).
// scratch: at least attend_f16_tile_scratch(n_tok, group, hd, max n_pos) floats.
//
// `mods` (optional) adds what a layer may have beyond plain causal attention, applied to
// each query's scores (after the scale) before its softmax, element by element in
// 8-lane blocks, so a score's value does not depend on where its row starts:
//   soft_cap > 0:  s = cap * tanh(s / cap)                       (Gemma 2)
//   alibi:         s -= alibi[g] * (n_pos[t] - 1 - j)            (BLOOM; slope per query head g)
//   first:         rows j < first[t] get weight 0                (sliding window)
//   sinks:         sinks[g] joins the softmax as a logit with no value (gpt-oss)
// Bits stay independent of tiling (a token alone or in any tile gives the same output)
// as long as every call for a token passes rows starting at the same position modulo
// kScoreAlign: the softmax sums lanes by index modulo 16, and a masked row adds exact
// zeros.
struct ScoreOptions {
    const int* first = nullptr;    // [n_tok] first visible row per token, or nullptr: all
    float soft_cap = 0.0f;
    const float* alibi = nullptr;  // [group] slopes, or nullptr
    const float* sinks = nullptr;  // [group] sink logits, or nullptr
};
inline constexpr int kScoreAlign = 16;

size_t attend_f16_tile_scratch(int n_tok, int group, int hd, int max_n_pos);
void attend_f16_tile(const float* q, size_t q_stride, const int* n_pos, int n_tok, int group, int hd,
                     const fp16_t* const* k_rows, const fp16_t* const* v_rows, float scale,
                     float* out, size_t out_stride, float* scratch, const ScoreOptions* mods = nullptr);

// tanh for the soft-cap, 8 lanes at a time with `exp_nonpositive`: within 2e-7 of
// std::tanh everywhere (tested); n values in place.
void tanh_in_place(float* x, int n);

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
