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

// out[i] = exp(x[i]) for x[i] <= 0, by exp_nonpositive (tests compare it with std::exp).
void exp_nonpositive_avx2(const float* x, float* out, int64_t n);

}  // namespace pensieve
