// Mamba-1's selective scan step (model/ssm.h: selective_scan_step is the scalar reference)
// with the exponentials 8 at a time: per channel, the d_state decays exp(dt A[s]) are the
// costliest part of a Mamba layer after its matmuls (a 1.3B model: 48 layers x 4096
// channels x 16 states = 3.1M exps per token, each ~10 ns as std::exp).
//
// exp_ps8 is Cephes' expf (range reduction by ln 2, a degree-6 polynomial, 2^n by the
// exponent bits): within 2 ulp of std::exp for x in [-87, 88]; below -87 it gives ~1e-38
// instead of a denormal or 0 (a decay that small zeroes the state either way).
#pragma once

#include <cstdint>

namespace pensieve {

// For channels [0, n_channel): as selective_scan_step (y may alias u).
void selective_scan_avx2(float* h, const float* u, const float* dt, const float* A, const float* B, const float* C,
                         const float* D, float* y, int64_t n_channel, int64_t d_state);

// out[i] = exp(x[i]) by exp_ps8 (tests compare it with std::exp).
void exp_avx2(const float* x, float* out, int64_t n);

}  // namespace pensieve
