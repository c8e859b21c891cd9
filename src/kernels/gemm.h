// Multi-token ("GEMM") kernels for weights whose activations are Q8_0 blocks (Q4_0,
// Q5_0, Q8_0, IQ4_NL). matmul.cpp is the only caller; dispatch.cpp installs them.
//
// Why a separate path: the single-row vec_dot keeps eight int32 partial sums per block
// and converts each to float, which costs more float work than the integer dot itself.
// Here every 32-weight block is summed to one exact int32 per (row, token) before it
// meets float, and one float step per block follows:
//
//     acc = 0;  for each block b:  acc = fma(float(isum_b), d_w[b] * d_x[b], acc)
//
// All three kernels below perform exactly that sequence for every (row, token), so a
// token's result is bit-identical whichever kernel it goes through, at any position in a
// panel, with any thread split (batch invariance):
//
//  - gemm: lanes are 16 tokens of a packed "panel" (activations re-laid out so that one
//    512-bit load holds the same 4 weights' activations of 16 tokens); each weight
//    4-byte group is broadcast and multiplied into all 16 tokens with one vpdpbusd.
//  - gemv: lanes are 16 weight rows; per-row partial sums are transposed and reduced to
//    one int32 per (row, block), then the same float step runs with rows in lanes.
//  - narrow (up to 16 tokens of one panel: a decode step of several requests, a
//    speculative verify): lanes are 16 weight rows again, but each block of 16 rows is
//    transposed once (lane = row, one register per 4-weight group) and then multiplied
//    into every token with one vpdpbusd per group, the token's 4 activations
//    broadcast; no reduction follows. The weights are read and decoded once per call,
//    not once per token, so a few tokens cost little more than one.
//
// Weights are read straight from the GGUF mapping (no repacking at load).
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/types.h"

namespace pensieve {

struct GemmKernels {
    // Tokens per packed activation panel (the lane count of the gemm kernel).
    int panel_tokens = 0;
    // Bytes of one panel for rows of `cols` activations (a multiple of 64).
    size_t (*panel_bytes)(int64_t cols) = nullptr;
    // Packs n (1..panel_tokens) activation rows in the vec_dot_type (Q8_0), x_row_bytes
    // apart, into one 64-byte-aligned panel; lanes n.. are zero (their results unused).
    void (*pack)(const uint8_t* xq, size_t x_row_bytes, int n, int64_t cols, uint8_t* panel) = nullptr;
    // Per-thread scratch the gemm kernel needs (unpacked weight rows), in bytes.
    size_t (*scratch_bytes)(int64_t cols) = nullptr;
    // y[t * ldy + r] for r in [r0, r1) and the tokens of n_panels consecutive panels
    // (t = 16 * panel + lane; the last panel holds last_n tokens). w points at row 0.
    void (*gemm)(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1,
                 const uint8_t* panels, int64_t n_panels, int last_n, float* y, int64_t ldy,
                 uint8_t* scratch) = nullptr;
    // One token: y[r] for r in [r0, r1); xq is that token's Q8_0 row.
    void (*gemv)(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1,
                 const uint8_t* xq, float* y) = nullptr;
    // The first n (1..panel_tokens) tokens of one packed panel: y[t * ldy + r] for r in
    // [r0, r1), which must hold at least 16 rows. nullptr: matmul pads the tokens to a
    // whole panel (gemm) or runs them one by one (gemv) instead.
    void (*narrow)(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1,
                   const uint8_t* panel, int n, float* y, int64_t ldy) = nullptr;
    // Most tokens narrow beats gemm at; a panel with more goes through gemm.
    int narrow_max = 16;
    // Fewest rows worth one gemv or narrow call (a multiple of panel_tokens): matmul hands
    // rows to threads in pieces of this size. The lookup-table kernel builds its table
    // once per call, so it asks for more.
    int64_t call_rows = 16;
};

namespace simd {
// nullptr when the type has no AVX-512 gemm. Needs AVX512F/BW/VL/DQ + VNNI.
const GemmKernels* avx512_gemm(GgmlType type);
// The same for the K-quants Q4_K, Q5_K, Q6_K (Q8_K activations; gemm_kquant_avx512.cpp
// states their float order).
const GemmKernels* avx512_gemm_kquant(GgmlType type);
// F32 weights and activations, bit-identical to the scalar vec_dot_f32 (one multiply,
// then one add per column, in column order; gemm_f32_avx512.cpp). Needs AVX512F.
const GemmKernels* avx512_gemm_f32(GgmlType type);
}  // namespace simd

}  // namespace pensieve
