// `pensieve quantize`: convert a whole GGUF model to another weight format.
//
// A "mix" (Q4_K_M, Q8_0, TQ2_0, ...) names a default tensor type plus the rules of the
// reference GGUF quantizer for which tensors deviate from it: 1-D tensors, norms and
// MoE routers keep their type; output.weight usually gets Q6_K; attn_v / ffn_down get
// more bits in some layers of the _M mixes; a tensor whose rows do not fit the block
// size falls back to a 32-block type. With the same rules and byte-exact quantizers, a
// file made here has the same tensor types and bytes as the reference tool's.
//
// Two steps: plan_quantization() decides every tensor's type (and finds every problem
// before anything is written), write_quantized() converts and writes the file.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "quant/types.h"

namespace pensieve {

class ThreadPool;

// The GGUF `general.file_type` values (llama_ftype) of the mixes we can make.
enum class FileType : uint32_t {
    ALL_F32 = 0, MOSTLY_F16 = 1, MOSTLY_Q4_0 = 2, MOSTLY_Q4_1 = 3, MOSTLY_Q8_0 = 7,
    MOSTLY_Q5_0 = 8, MOSTLY_Q5_1 = 9, MOSTLY_Q2_K = 10, MOSTLY_Q3_K_S = 11, MOSTLY_Q3_K_M = 12,
    MOSTLY_Q3_K_L = 13, MOSTLY_Q4_K_S = 14, MOSTLY_Q4_K_M = 15, MOSTLY_Q5_K_S = 16,
    MOSTLY_Q5_K_M = 17, MOSTLY_Q6_K = 18, MOSTLY_Q2_K_S = 21, MOSTLY_IQ4_NL = 25,
    MOSTLY_BF16 = 32, MOSTLY_TQ1_0 = 36, MOSTLY_TQ2_0 = 37,
};

struct QuantMix {
    const char* name;        // canonical name: "Q4_K_M"
    FileType ftype;          // written to general.file_type
    GgmlType default_type;   // type of the tensors no rule singles out
};

// Looks a mix up by name, case-insensitively ("q4_k_m"; "Q4_K" is an alias of Q4_K_M as
// in the reference tool). std::nullopt when unknown.
std::optional<QuantMix> quant_mix_from_name(std::string_view name);
// The mix a file's `general.file_type` names (for listings: "Q4_K_M"); nullopt when the
// value is not one of the mixes above.
std::optional<QuantMix> quant_mix_of_file_type(uint32_t file_type);
// "F32, F16, BF16, Q4_0, ..." for error messages and --help.
std::string quant_mix_names();

struct TensorPlan {
    const GgufTensor* tensor;  // in the input file
    GgmlType type;             // type in the output file
    bool convert;              // false: the bytes are copied unchanged
    bool requantize;           // converting from an already quantized type (quality drops)
    bool fallback;             // rows did not fit the mix's type; a 32-block type is used
};

struct QuantizePlan {
    QuantMix mix;
    std::vector<TensorPlan> tensors;  // in input file order (the output keeps it)
    int n_convert = 0;
    int n_requantize = 0;
    int n_fallback = 0;
    uint64_t out_data_bytes = 0;      // tensor data in the output, without padding
};

// Decides the output type of every tensor. Throws Error when a tensor would need a
// conversion we cannot do (its type has no dequantizer here), before any work is done.
QuantizePlan plan_quantization(const GgufFile& in, const QuantMix& mix);

// Called after each tensor is written: (tensors done, total, the tensor just done).
using QuantizeProgress = std::function<void(size_t, size_t, const TensorPlan&)>;

// Writes the quantized model to `out_path` (atomically: temporary file + rename; on any
// error no output file is left). Metadata is copied with general.file_type and
// general.quantization_version set; alignment as in the input. Only one tensor is held
// in memory at a time. Conversion runs on `pool`, split by rows.
void write_quantized(const GgufFile& in, const QuantizePlan& plan, const std::string& out_path,
                     ThreadPool& pool, const QuantizeProgress& progress = {});

}  // namespace pensieve
