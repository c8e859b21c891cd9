// Facts and limits about the GGUF layout shared by the reader and the writer
// (internal to src/gguf; other code uses gguf.h).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#include "gguf/gguf.h"

namespace pensieve::gguf_format {

// The file is little-endian and read by memcpy into host integers.
static_assert(std::endian::native == std::endian::little, "pensieve assumes a little-endian host");

inline constexpr uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};
inline constexpr size_t kDefaultAlignment = 32;
inline constexpr const char* kAlignmentKey = "general.alignment";

// Limits that make hostile files cheap to reject. Real files are far below them:
// keys are < 100 bytes, names < 64, arrays nest at most 2 deep, the largest
// vocabularies have a few hundred thousand tokens and merges.
inline constexpr size_t kMaxKeyBytes = 64 * 1024;        // also tensor names
inline constexpr int kMaxArrayDepth = 8;                 // levels of arrays in one value
inline constexpr uint64_t kMaxArrayElements = 1ull << 24;  // total over all metadata
inline constexpr uint32_t kMaxDims = 4;

inline bool is_known_value_type(uint32_t t) { return t <= uint32_t(GgufType::FLOAT64); }

// Bytes one element of this type takes at least in the file: lets the reader refuse an
// array count that the remaining bytes cannot possibly hold, before allocating anything.
inline size_t min_encoded_bytes(GgufType t) {
    switch (t) {
        case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
        case GgufType::UINT16: case GgufType::INT16: return 2;
        case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
        case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
        case GgufType::STRING: return 8;    // u64 length
        case GgufType::ARRAY: return 12;    // u32 element type + u64 count
    }
    return 1;
}

inline bool is_power_of_two(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

}  // namespace pensieve::gguf_format
