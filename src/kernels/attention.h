// Dot products and accumulations against fp16 rows of the KV cache: the inner loops of
// attention. AVX2 + F16C (the build's baseline), with a scalar tail for odd head sizes.
#pragma once

#include <cstdint>

#include "util/fp16.h"

namespace pensieve {

// sum_i q[i] * k[i], with k in fp16.
float dot_f32_f16(const float* q, const fp16_t* k, int n);

// acc[i] += p * v[i], with v in fp16.
void axpy_f16(float p, const fp16_t* v, float* acc, int n);

}  // namespace pensieve
