// Run-time choice of the dot-product and activation-quantizer kernels.
//
// Every type has a scalar reference in quant/ (type_traits()); kernels/ adds AVX2 and
// AVX-512 (VNNI, BF16) versions for the types that matter. On first use we read cpuid,
// pick the best level the CPU has (AVX-512 > AVX2 > scalar) and, per type, the best
// implementation at or below that level. matmul goes through kernels_for(); the scalar
// reference stays reachable through type_traits() and kernel_at(..., Scalar).
//
// PENSIEVE_KERNELS=scalar|avx2|avx512 caps the level (testing, benchmarking); a level
// the CPU lacks falls back to the best one it has.
#pragma once

#include <string>

#include "quant/types.h"

namespace pensieve {

struct GemmKernels;  // kernels/gemm.h

enum class KernelLevel { Scalar = 0, Avx2 = 1, Avx512 = 2 };

const char* kernel_level_name(KernelLevel level);  // "scalar", "avx2", "avx512"

// The kernels matmul uses for one type (as weight: vec_dot; as activation: from_float).
struct TypeKernels {
    VecDotFn vec_dot = nullptr;        // w in this type, x in its vec_dot_type
    FromFloatFn from_float = nullptr;  // quantizer of this type (activations)
    KernelLevel vec_dot_level = KernelLevel::Scalar;
    KernelLevel from_float_level = KernelLevel::Scalar;
    // Multi-token kernels (gemm.h), or nullptr: then matmul tiles vec_dot. When set,
    // matmul uses them for every call of this type (even one token), so results never
    // depend on which path a token took.
    const GemmKernels* gemm = nullptr;
    // vec_dot over small tiles of rows x tokens with vec_dot's bits (quant/types.h), or
    // fn nullptr; used by matmul's tiling when there is no gemm.
    DotTile dot_tile;
};

// The chosen kernels of a type (decided once, thread-safe). Types without kernels get
// nullptrs, as in type_traits().
const TypeKernels& kernels_for(GgmlType type);

// The level in force: min(best the CPU has, PENSIEVE_KERNELS).
KernelLevel active_kernel_level();

// True when this CPU can run kernels of `level`.
bool cpu_supports(KernelLevel level);

// The implementation of exactly `level` (no fallback), or nullptr if there is none or the
// CPU cannot run it. Scalar always returns the reference. For tests and benchmarks.
VecDotFn vec_dot_at(GgmlType type, KernelLevel level);
FromFloatFn from_float_at(GgmlType type, KernelLevel level);
const GemmKernels* gemm_at(GgmlType type, KernelLevel level);

// One line per supported type: "Q4_0  vec_dot avx512  from_float scalar", for
// `pensieve info --cpu`.
std::string describe_kernels();

}  // namespace pensieve
