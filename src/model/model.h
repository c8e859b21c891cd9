// The one interface every architecture implements: forward(batch) -> logits.
// Models are built from a GGUF file by the registry (registry.cpp), keyed by
// `general.architecture`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "model/batch.h"
#include "model/kv_cache.h"

namespace pensieve {

class ThreadPool;

// Hyper-parameters read from GGUF metadata (`<arch>.*` keys).
struct ModelConfig {
    std::string arch;
    std::string name;
    int n_vocab = 0;
    int n_embd = 0;
    int n_layer = 0;
    int n_head = 0;
    int n_head_kv = 0;
    int head_dim = 0;
    int n_ff = 0;
    int n_ctx_train = 0;
    int n_expert = 0;        // mixture of experts: experts per layer (0: dense)
    int n_expert_used = 0;   // experts each token is routed to
    float norm_eps = 1e-5f;
    RopeParams rope;

    int kv_dim() const { return n_head_kv * head_dim; }
};

class Model {
public:
    virtual ~Model() = default;

    const ModelConfig& config() const { return config_; }
    const GgufFile& file() const { return *file_; }

    // Runs the batch through the model: writes its keys/values into `cache` and, for each
    // token with want_logits set (in batch order), n_vocab logits into `logits`.
    // Positions must be contiguous per sequence and start at cache.length(seq), which is
    // advanced. Throws Error on a bad batch (token out of range, position past n_ctx).
    virtual void forward(const Batch& batch, KvCache& cache, ThreadPool& pool,
                         float* logits) = 0;

    // A KV cache for this model with n_seq sequences of n_ctx positions; n_blocks sizes
    // the shared block pool (0: every sequence can fill its context).
    KvCache make_cache(int n_ctx, int n_seq = 1, int n_blocks = 0, KvType type = KvType::F16) const {
        return KvCache(config_.n_layer, n_ctx, config_.kv_dim(), n_seq, n_blocks, type);
    }

protected:
    explicit Model(std::unique_ptr<GgufFile> file) : file_(std::move(file)) {}
    std::unique_ptr<GgufFile> file_;
    ModelConfig config_;
};

// Loads a model file (mmap) and builds the architecture it names.
// Throws Error for unknown architectures (naming it and the supported ones).
std::unique_ptr<Model> load_model(const std::string& path);

// Architectures load_model understands.
std::vector<std::string> supported_architectures();

}  // namespace pensieve
