// The type table: one row per GGUF tensor type id. Block sizes of the types without
// kernels still matter: the GGUF reader uses them to check tensor sizes, so files that
// contain them stay readable for `pensieve info`.
#include "quant/types.h"

#include <array>
#include <cctype>

#include "quant/blocks.h"
#include "quant/quant_ref.h"
#include "util/error.h"

namespace pensieve {

namespace {

using namespace quant;
using T = GgmlType;

// A type with kernels.
constexpr TypeTraits kernels(T type, const char* name, int64_t block_size, size_t block_bytes, ToFloatFn to_float,
                             FromFloatFn from_float, T vec_dot_type, VecDotFn vec_dot) {
    return {type, name, block_size, block_bytes, true, to_float, from_float, vec_dot_type, vec_dot};
}
// A type GGUF defines that we can describe but not compute with.
constexpr TypeTraits known(T type, const char* name, int64_t block_size, size_t block_bytes) {
    return {type, name, block_size, block_bytes, false, nullptr, nullptr, type, nullptr};
}

constexpr TypeTraits kTable[] = {
    kernels(T::F32, "F32", 1, 4, to_float_f32, from_float_f32, T::F32, vec_dot_f32),
    kernels(T::F16, "F16", 1, 2, to_float_f16, from_float_f16, T::F16, vec_dot_f16),
    kernels(T::BF16, "BF16", 1, 2, to_float_bf16, from_float_bf16, T::BF16, vec_dot_bf16),

    kernels(T::Q4_0, "Q4_0", QK4_0, sizeof(BlockQ4_0), to_float_q4_0, from_float_q4_0, T::Q8_0, vec_dot_q4_0_q8_0),
    kernels(T::Q4_1, "Q4_1", QK4_1, sizeof(BlockQ4_1), to_float_q4_1, from_float_q4_1, T::Q8_1, vec_dot_q4_1_q8_1),
    kernels(T::Q5_0, "Q5_0", QK5_0, sizeof(BlockQ5_0), to_float_q5_0, from_float_q5_0, T::Q8_0, vec_dot_q5_0_q8_0),
    kernels(T::Q5_1, "Q5_1", QK5_1, sizeof(BlockQ5_1), to_float_q5_1, from_float_q5_1, T::Q8_1, vec_dot_q5_1_q8_1),
    kernels(T::Q8_0, "Q8_0", QK8_0, sizeof(BlockQ8_0), to_float_q8_0, from_float_q8_0, T::Q8_0, vec_dot_q8_0_q8_0),
    kernels(T::Q8_1, "Q8_1", QK8_1, sizeof(BlockQ8_1), to_float_q8_1, from_float_q8_1, T::Q8_1, vec_dot_q8_1_q8_1),
    kernels(T::IQ4_NL, "IQ4_NL", QK4_NL, sizeof(BlockIQ4_NL), to_float_iq4_nl, from_float_iq4_nl, T::Q8_0,
            vec_dot_iq4_nl_q8_0),

    kernels(T::Q2_K, "Q2_K", QK_K, sizeof(BlockQ2_K), to_float_q2_K, from_float_q2_K, T::Q8_K, vec_dot_q2_K_q8_K),
    kernels(T::Q3_K, "Q3_K", QK_K, sizeof(BlockQ3_K), to_float_q3_K, from_float_q3_K, T::Q8_K, vec_dot_q3_K_q8_K),
    kernels(T::Q4_K, "Q4_K", QK_K, sizeof(BlockQ4_K), to_float_q4_K, from_float_q4_K, T::Q8_K, vec_dot_q4_K_q8_K),
    kernels(T::Q5_K, "Q5_K", QK_K, sizeof(BlockQ5_K), to_float_q5_K, from_float_q5_K, T::Q8_K, vec_dot_q5_K_q8_K),
    kernels(T::Q6_K, "Q6_K", QK_K, sizeof(BlockQ6_K), to_float_q6_K, from_float_q6_K, T::Q8_K, vec_dot_q6_K_q8_K),
    kernels(T::Q8_K, "Q8_K", QK_K, sizeof(BlockQ8_K), to_float_q8_K, from_float_q8_K, T::Q8_K, vec_dot_q8_K_q8_K),

    kernels(T::TQ1_0, "TQ1_0", QK_K, sizeof(BlockTQ1_0), to_float_tq1_0, from_float_tq1_0, T::Q8_K, vec_dot_tq1_0_q8_K),
    kernels(T::TQ2_0, "TQ2_0", QK_K, sizeof(BlockTQ2_0), to_float_tq2_0, from_float_tq2_0, T::Q8_K, vec_dot_tq2_0_q8_K),

    // No kernels yet. Bytes per block from the GGUF block layouts (fp16 d + payload).
    known(T::IQ2_XXS, "IQ2_XXS", QK_K, 2 + QK_K / 4),                             // 66
    known(T::IQ2_XS, "IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32),                   // 74
    known(T::IQ3_XXS, "IQ3_XXS", QK_K, 2 + 3 * QK_K / 8),                         // 98
    known(T::IQ1_S, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16),                     // 50
    known(T::IQ3_S, "IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64),  // 110
    known(T::IQ2_S, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 32),         // 82
    known(T::IQ4_XS, "IQ4_XS", QK_K, 2 + 2 + QK_K / 64 + QK_K / 2),               // 136
    known(T::IQ1_M, "IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),             // 56
    known(T::MXFP4, "MXFP4", 32, 1 + 16),                                         // e8m0 scale + 32 nibbles
    known(T::I8, "I8", 1, 1),
    known(T::I16, "I16", 1, 2),
    known(T::I32, "I32", 1, 4),
    known(T::I64, "I64", 1, 8),
    known(T::F64, "F64", 1, 8),
};

constexpr uint32_t kMaxId = 40;

// Type id -> row of kTable (-1: not a GGUF type), built at compile time.
constexpr std::array<int8_t, kMaxId> build_index() {
    std::array<int8_t, kMaxId> index{};
    for (auto& v : index) v = -1;
    for (size_t i = 0; i < std::size(kTable); ++i) index[uint32_t(kTable[i].type)] = int8_t(i);
    return index;
}
constexpr std::array<int8_t, kMaxId> kIndex = build_index();

}  // namespace

const TypeTraits* find_type_traits(uint32_t type_id) {
    if (type_id >= kMaxId || kIndex[type_id] < 0) return nullptr;
    return &kTable[kIndex[type_id]];
}

const TypeTraits& type_traits(GgmlType type) {
    const TypeTraits* t = find_type_traits(uint32_t(type));
    if (!t) fail("unknown tensor type id ", uint32_t(type));
    return *t;
}

std::optional<GgmlType> type_from_name(std::string_view name) {
    for (const TypeTraits& t : kTable) {
        const std::string_view tn = t.name;
        if (tn.size() != name.size()) continue;
        bool same = true;
        for (size_t i = 0; i < tn.size() && same; ++i)
            same = std::toupper(static_cast<unsigned char>(name[i])) == tn[i];
        if (same) return t.type;
    }
    return std::nullopt;
}

}  // namespace pensieve
