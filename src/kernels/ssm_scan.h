// Mamba-1's selective scan step (model/ssm.h: selective_scan_step is the scalar reference)
// with the exponentials 8 at a time: per channel, the d_state decays exp(dt A[s]) are the
// costliest part of a Mamba layer after its matmuls (a 1.3B model: 48 layers x 4096
// channels x 16 states = 3.1M exps per token, each ~10 ns as std::exp).
//
// The exps are the attention softmax's (kernels/simd_local.h: exp_nonpositive): dt > 0 and
// A < 0, so every exponent is <= 0.
#pragma once

#include <cstdint>

namespace pensieve {

// For channels [0, n_channel): as selective_scan_step (y may alias u).
void selective_scan_avx2(float* h, const float* u, const float* dt, const float* A, const float* B, const float* C,
                         const float* D, float* y, int64_t n_channel, int64_t d_state);

// One token of Mamba-2's SSD scan for heads [h0, h1): as model/ssm.h's ssd_scan_heads
// (the reference; same arguments), the state row of each channel 8 values at a time.
// y may alias x.
void ssd_scan_step_avx2(float* S, const float* x, const float* dt, const float* A, const float* B, const float* C,
                        const float* D, float* y, int64_t n_head, int64_t head_dim, int64_t n_group, int64_t d_state,
                        int64_t h0, int64_t h1);

// Mamba-2's SSD scan over consecutive tokens of ONE sequence, heads [h0, h1), in the
// chunked form of the SSD paper (arXiv:2405.21060, section 6). model/ssm.h's
// ssd_scan_heads (one token at a time) is the reference. Per chunk of up to kSsdChunk
// tokens and per head h of group g, with a_t = dt_t[h] A[h] and cs_t = a_0 + ... + a_t:
//   y_t = D x_t + exp(cs_t) (S C_t) + sum_{k<=t} exp(cs_t - cs_k) dt_k (C_t . B_k) x_k
//   S  <- exp(cs_L) S + sum_k exp(cs_L - cs_k) dt_k x_k (x) B_k         (L: the chunk's last)
// The recurrence's sums in another order: equal up to rounding. The state is read and
// written once per chunk instead of once per token, and every product is a broadcast
// multiply-add across the head's channels (no horizontal sums).
struct SsdTokens {
    const float* x;    // token t at x + t * x_stride: [n_head][head_dim]
    const float* B;    // token t at B + t * x_stride: [n_group][d_state]
    const float* C;    // likewise
    int64_t x_stride;
    const float* dt;   // token t at dt + t * n_head (after softplus)
    float* y;          // token t at y + t * y_stride: [n_head][head_dim]; must not alias x
    int64_t y_stride;
    int64_t n_tokens;
};
struct SsdShape {
    int64_t n_head, head_dim, n_group, d_state;
};
constexpr int64_t kSsdChunk = 32;
// Whether ssd_scan_chunked_avx2 takes this shape (head_dim a multiple of 8, up to 128).
bool ssd_chunked_supported(const SsdShape& shape);
// S: the sequence's state, [n_head][head_dim][d_state]; A, D: per head.
void ssd_scan_chunked_avx2(float* S, const SsdTokens& in, const float* A, const float* D, const SsdShape& shape,
                           int64_t h0, int64_t h1);

// out[i] = exp(x[i]) for x[i] <= 0, by exp_nonpositive (tests compare it with std::exp).
void exp_nonpositive_avx2(const float* x, float* out, int64_t n);

}  // namespace pensieve
