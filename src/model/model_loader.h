// Helpers shared by the architecture files: reading hyper-parameters and tensors from a
// GGUF file with shape checks, and the batch bookkeeping every forward pass does.
#pragma once

#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/matmul.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace pensieve {

class ModelLoader {
public:
    explicit ModelLoader(const GgufFile& file) : file_(file) {}

    // Reads the `<arch>.*` hyper-parameters common to LLaMA-like decoders.
    ModelConfig read_llama_config(const std::string& arch, RopeStyle rope_style) const;

    bool has(const std::string& name) const { return file_.find_tensor(name) != nullptr; }
    // A 2-D weight with `cols` inputs and `rows` outputs (rows = -1: any). The data stays
    // in the mmap. Throws Error naming the tensor when absent or of the wrong shape.
    WeightMatrix matrix(const std::string& name, int64_t cols, int64_t rows) const;
    // A 3-D stack of expert matrices {cols, rows, n_expert}, one WeightMatrix per expert.
    std::vector<WeightMatrix> experts(const std::string& name, int64_t cols, int64_t rows,
                                      int64_t n_expert) const;
    // A 1-D tensor (norm weights, biases) of n elements, converted to float (small; copied).
    std::vector<float> vector(const std::string& name, int64_t n) const;

private:
    const GgufTensor& checked(const std::string& name, const std::vector<int64_t>& dims) const;
    const GgufFile& file_;
};

// Throws Error if a batch is malformed for this cache: token ids outside the vocabulary,
// unknown sequence ids, or positions that are not the next contiguous positions of their
// sequence (or past the cache's context). Reserves the blocks the batch will write.
void validate_batch(const Batch& batch, KvCache& cache, int n_vocab);
// After a forward pass: each sequence's length becomes one past its last batch position.
void commit_batch_positions(const Batch& batch, KvCache& cache);

// Architecture constructors (one per file), used by the registry.
std::unique_ptr<Model> make_llama(std::unique_ptr<GgufFile> file);

}  // namespace pensieve
