// Reading an architecture from a GGUF file: hyper-parameters (`<arch>.<key>`, required
// ones failing with the key's name, optional ones with the architecture's default) and
// tensors (with shape checks).
#pragma once

#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/matmul.h"
#include "model/model.h"

namespace pensieve {

// `<arch>.<key>` hyper-parameters.
class HParams {
public:
    HParams(const GgufFile& file, std::string arch) : file_(file), arch_(std::move(arch)) {}
    const std::string& arch() const { return arch_; }
    const GgufFile& file() const { return file_; }
    bool has(const std::string& key) const { return file_.has(arch_ + "." + key); }
    // A required count in [1, 2^24]; fails naming `<arch>.<key>` when absent or out of range.
    int count(const std::string& key) const;
    // An optional count (def when absent) in [1, 2^24] (or def).
    int count(const std::string& key, int def) const;
    int integer(const std::string& key, int def) const;  // any int, def when absent
    float real(const std::string& key, float def) const; // finite, def when absent
    std::string str(const std::string& key, const std::string& def) const;

private:
    const GgufFile& file_;
    std::string arch_;
};

class ModelLoader {
public:
    explicit ModelLoader(const GgufFile& file) : file_(file) {}
    const GgufFile& file() const { return file_; }

    bool has(const std::string& name) const { return file_.find_tensor(name) != nullptr; }
    // A 2-D weight with `cols` inputs and `rows` outputs (rows = -1: any). The data stays
    // in the mmap. Throws Error naming the tensor when absent or of the wrong shape.
    WeightMatrix matrix(const std::string& name, int64_t cols, int64_t rows) const;
    // A 3-D stack of expert matrices {cols, rows, n_expert}, one WeightMatrix per expert.
    std::vector<WeightMatrix> experts(const std::string& name, int64_t cols, int64_t rows,
                                      int64_t n_expert) const;
    // A 1-D tensor (norm weights, biases) of n elements, converted to float (small; copied).
    std::vector<float> vector(const std::string& name, int64_t n) const;
    // Any small tensor of the given dims (GGUF order, -1: any), converted to float, row-major
    // (Mamba's conv weights {d_conv, channels} and A {d_state, d_inner}).
    std::vector<float> values(const std::string& name, const std::vector<int64_t>& dims) const;
    // A 2-D tensor {n, n_expert} of per-expert biases: one vector of n floats per expert.
    std::vector<std::vector<float>> expert_vectors(const std::string& name, int64_t n, int64_t n_expert) const;

private:
    const GgufTensor& checked(const std::string& name, const std::vector<int64_t>& dims) const;
    const GgufFile& file_;
};

// The hyper-parameters of a transformer decoder (embedding_length, block_count,
// attention.head_count[_kv], attention.key_length / value_length, feed_forward_length,
// context_length, the norm epsilon, expert counts, pooling_type) and its RoPE.
ModelConfig read_transformer_config(const HParams& hp, RopeStyle rope_style);

// RoPE from `rope.dimension_count`, `rope.freq_base` and the scaling keys: linear,
// YaRN (`rope.scaling.{factor,original_context_length}`; beta_fast 32, beta_slow 1 and
// attention factor 1, the reference's defaults: an architecture whose reference reads
// `rope.scaling.yarn_*` sets them after this call), and Llama 3.1+ per-pair divisors
// `rope_freqs.weight` (kept in `freq_factors`, which must outlive the model);
// `rope.scaling.attn_factor` multiplies cos and sin (LongRoPE files).
RopeParams read_rope(const HParams& hp, const ModelLoader& ld, RopeStyle style, int head_dim,
                     std::vector<float>& freq_factors);

}  // namespace pensieve
