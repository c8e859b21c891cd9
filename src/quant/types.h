// Tensor element types, numbered exactly as in GGUF files, and the table of what each
// type is: block size, bytes per block, reference conversions and the dot product used
// by matmul. Data layout first: the block structs themselves are in blocks.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pensieve {

enum class GgmlType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3,
    Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21,
    IQ2_S = 22, IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28,
    IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35,
    MXFP4 = 39,  // known (gpt-oss files) but not implemented: readable for `info` only
};

// Dequantize n values (n a multiple of block_size) from `src` into floats.
using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
// Quantize n floats (n a multiple of block_size) into blocks at `dst` (reference rounding).
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);
// Dot product of n values: `w` in this type, `x` in the type's vec_dot_type.
using VecDotFn = float (*)(int64_t n, const void* w, const void* x);
// vec_dot for a tile: y[t * ldy + r] = vec_dot(n, w row r, x row t) for r < n_rows,
// t < n_tok (each at most the kernel's DotTile::rows / tokens), with exactly vec_dot's
// arithmetic per pair: the same bits, several independent sums in flight instead of one.
using DotTileFn = void (*)(int64_t n, const uint8_t* w, size_t w_row_bytes, int n_rows, const uint8_t* x,
                           size_t x_row_bytes, int n_tok, float* y, int64_t ldy);
// A tile kernel and the largest tile it takes.
struct DotTile {
    DotTileFn fn = nullptr;
    int rows = 0, tokens = 0;
};

struct TypeTraits {
    GgmlType type;
    const char* name;           // as GGUF tools print it: "F16", "Q4_0", "Q4_K", "TQ2_0"
    int64_t block_size;         // elements per block (1 for plain float/int types)
    size_t block_bytes;         // bytes per block
    bool supported;             // false: known to GGUF but no kernels here yet
    ToFloatFn to_float;         // nullptr when !supported
    FromFloatFn from_float;     // nullptr when no quantizer exists
    GgmlType vec_dot_type;      // the format activations are converted to for vec_dot
    VecDotFn vec_dot;           // nullptr when !supported
};

// Traits for a type id read from a file; nullptr for ids GGUF does not define.
const TypeTraits* find_type_traits(uint32_t type_id);
// Traits of a known type (never null for a GgmlType value listed above).
const TypeTraits& type_traits(GgmlType type);

inline const char* type_name(GgmlType t) { return type_traits(t).name; }
// Parse a type name ("q4_0", "Q4_K", "f16"); std::nullopt when unknown.
std::optional<GgmlType> type_from_name(std::string_view name);

// Bytes needed for a row of n elements. n must be a multiple of the block size.
inline size_t row_bytes(GgmlType t, int64_t n) {
    const TypeTraits& tt = type_traits(t);
    return size_t(n / tt.block_size) * tt.block_bytes;
}

}  // namespace pensieve
