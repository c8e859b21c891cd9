// The one interface every architecture implements: forward(batch) -> what the caller asks
// for (logits of chosen tokens, per-token or pooled embeddings). Models are built from a
// GGUF file by the registry (registry.cpp), keyed by `general.architecture`; each
// architecture is one file in model/arch/ composing the blocks of model/blocks.h.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "model/batch.h"
#include "model/kv_cache.h"

namespace pensieve {

class ThreadPool;

// How a sequence's token embeddings become one vector (GGUF `<arch>.pooling_type`).
// Rank: a reranker's relevance score, the classification head (ForwardOutputs::scores)
// on the first token's vector (pool_sequences gives that vector, as Cls).
enum class Pooling { None = 0, Mean = 1, Cls = 2, Last = 3, Rank = 4 };
const char* pooling_name(Pooling p);
// One vector per sequence of the batch (in order of first appearance) from the rows of x
// (one per batch token, dim values each): their mean, the first (Cls) or the last (Last,
// None) row of the sequence. pooled receives n_sequences x dim floats.
void pool_sequences(const float* x, int64_t dim, const Batch& batch, Pooling pooling, float* pooled);

// Hyper-parameters every architecture has (read from `<arch>.*` keys by model_loader.h).
// Per-layer details (window, head sizes) are in the model's memory_layout() and blocks.
struct ModelConfig {
    std::string arch;
    std::string name;
    int n_vocab = 0;
    int n_embd = 0;
    int n_layer = 0;
    int n_head = 0;
    int n_head_kv = 0;
    int head_dim = 0;        // K (and Q) values per head
    int head_dim_v = 0;      // V values per head
    int n_ff = 0;
    int n_ctx_train = 0;
    int n_expert = 0;        // mixture of experts: experts per layer (0: dense)
    int n_expert_used = 0;   // experts each token is routed to
    float norm_eps = 1e-5f;
    bool causal = true;      // false: encoders (every token sees its whole sequence)
    bool embedding_only = false;  // no output head (BERT): forward gives embeddings, never logits
    // An encoder-decoder (T5): the batch that starts a sequence (position 0) is the whole
    // prompt, read by the encoder; its last token's logits are the decoder's first step
    // (after decoder_start_token); later positions are decoder tokens. Only that last
    // prompt token has logits, and a prompt cannot be split across batches.
    bool encoder_decoder = false;
    int decoder_start_token = -1;
    Pooling pooling = Pooling::None;
    int n_cls_out = 0;       // outputs of a classification head (cls.output): a reranker's 1 score
    int n_token_types = 0;   // rows of token_types (BERT: segments 0 and 1 of a text pair)
    RopeParams rope;
};

// What forward() writes; null pointers are not computed.
struct ForwardOutputs {
    // n_vocab floats for each token with want_logits set, in batch order.
    float* logits = nullptr;
    // n_embd floats (the final normalised hidden state) for each token with want_logits
    // set, in batch order.
    float* embeddings = nullptr;
    // n_embd floats per sequence of the batch (in order of first appearance), pooled over
    // that sequence's batch tokens as config().pooling says (None: as Last). An embedding
    // request sends a whole sequence in one batch.
    float* pooled = nullptr;
    // config().n_cls_out floats per sequence (same order): the classification head on the
    // sequence's first-token vector; a reranker's relevance score (pooling Rank).
    float* scores = nullptr;
    // > 0: exit early, after the first n_layers layers, into the final norm and output
    // head: the model's own first layers as a draft model (self-speculation). Only for
    // models whose early_exit() is true; the cache then holds those layers only
    // (make_cache_for_layers).
    int n_layers = 0;
};

class Model {
public:
    virtual ~Model() = default;

    const ModelConfig& config() const { return config_; }
    const GgufFile& file() const { return *file_; }
    const MemoryLayout& memory_layout() const { return memory_; }

    // Runs the batch through the model: writes its memory (keys/values, states) into
    // `cache` and what `out` asks for. Positions must be contiguous per sequence and start
    // at cache.length(seq), which is advanced. Throws Error on a bad batch (token out of
    // range, position past n_ctx, cache full).
    virtual void forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) = 0;
    // The common case: next-token logits of the tokens with want_logits set.
    void forward(const Batch& batch, KvCache& cache, ThreadPool& pool, float* logits) {
        ForwardOutputs out;
        out.logits = logits;
        forward(batch, cache, pool, out);
    }

    // Memory for this model with n_seq sequences of n_ctx positions; n_blocks sizes the
    // shared block pool (0: every sequence can fill its context).
    KvCache make_cache(int n_ctx, int n_seq = 1, int n_blocks = 0, KvType type = KvType::F16) const {
        return KvCache(memory_, n_ctx, n_seq, n_blocks, type);
    }
    // Memory for the first n_layers layers only: the cache of an early-exit forward.
    KvCache make_cache_for_layers(int n_layers, int n_ctx, int n_seq = 1) const;
    // forward() honours ForwardOutputs::n_layers.
    virtual bool early_exit() const { return false; }
    // forward() verifies tree rows (Batch::kv_slots): an attention-only model whose layers
    // all attend through Attention::attend.
    virtual bool tree_rows() const { return false; }
    // What the keys and values forward() writes depend on besides the file: 0 for most
    // models; LongRoPE models pick their RoPE factors by the context per sequence. The
    // disk prefix cache keys entries by it, so a restart with another context size never
    // reuses keys rotated with the other factors.
    virtual uint64_t cache_variant(int n_ctx) const {
        (void)n_ctx;
        return 0;
    }
    // Bytes of memory one position takes with this cache type (for sizing and reports).
    size_t position_bytes(KvType type) const;
    // forward() computes in buffers the model keeps (its scratch), so one forward runs at
    // a time per model: callers that share a model across threads (two schedulers on one
    // model) hold this around forward().
    std::mutex& forward_mutex() const { return forward_mutex_; }

protected:
    explicit Model(std::unique_ptr<GgufFile> file) : file_(std::move(file)) {}
    std::unique_ptr<GgufFile> file_;
    ModelConfig config_;
    MemoryLayout memory_;
    mutable std::mutex forward_mutex_;
};

// Loads a model file (mmap) and builds the architecture it names.
// Throws Error for unknown architectures (naming it and the supported ones).
std::unique_ptr<Model> load_model(const std::string& path);

// Architectures load_model understands.
std::vector<std::string> supported_architectures();

}  // namespace pensieve
