// DeepSeek-V2 / V3 (general.architecture = "deepseek2"): multi-head latent attention and
// fine-grained mixture of experts with shared experts.
//
// Per layer:  x += Wo · MLA(norm(x))          queries through an optional LoRA (q_a, norm,
//                                             q_b); keys and values from one compressed
//                                             latent (kv_a, norm) and one shared RoPE key;
//                                             the memory caches the latent (LatentAttention)
//             x += FFN(norm(x))               the first leading_dense_block_count layers
//          or x += Σ_top-k w_e · expert_e(norm(x)) + shared_experts(norm(x))
//                                             softmax (V2) or sigmoid (V3, with the
//                                             exp_probs_b selection bias) routing, weights
//                                             optionally renormalised, times
//                                             expert_weights_scale
// then logits = W_out · norm(x).
//
// The file must carry the split per-head attn_k_b / attn_v_b (what current converters
// write, with key_length_mla / value_length_mla); older files with the fused attn_kv_b
// are refused with a message saying so.
#include <cmath>

#include "model/arch/arch.h"
#include "model/blocks.h"
#include "util/error.h"

namespace pensieve {

namespace {

struct DeepSeek2Layer {
    Norm attn_norm;
    LatentAttention attn;
    Norm ffn_norm;
    FeedForward ffn;  // the leading dense layers
    MoE moe;          // the others
    bool dense = true;
};

class DeepSeek2 final : public Model {
public:
    explicit DeepSeek2(std::unique_ptr<GgufFile> file);
    void forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) override;

private:
    Embedding embd_;
    std::vector<DeepSeek2Layer> layers_;
    OutputHead head_;
    std::vector<float> rope_freqs_;
    Scratch s_;
};

// The latent attention's sizes. key_length / value_length describe the cached latent
// "head" (kv_lora + rope, kv_lora); the *_mla keys the per-head query/key and value.
LatentAttentionShape latent_shape(const HParams& hp, const ModelConfig& c) {
    const std::string& path = hp.file().path();
    if (!hp.has("attention.key_length_mla"))
        fail(path, ": deepseek2 without ", hp.arch(), ".attention.key_length_mla (a file converted before the split ",
             "attn_k_b / attn_v_b tensors) is not supported: re-convert it with a current converter");
    LatentAttentionShape s;
    s.n_head = c.n_head;
    s.q_lora = hp.integer("attention.q_lora_rank", 0);
    s.kv_lora = hp.count("attention.kv_lora_rank");
    s.rope_dims = hp.count("rope.dimension_count");
    const int qk = hp.count("attention.key_length_mla");
    s.v_dim = hp.count("attention.value_length_mla");
    s.nope = qk - s.rope_dims;
    if (s.nope <= 0 || s.q_lora < 0 || s.rope_dims % 2 != 0 || c.head_dim != s.kv_lora + s.rope_dims ||
        c.head_dim_v != s.kv_lora || c.n_head_kv != 1)
        fail(path, ": inconsistent deepseek2 attention sizes (key_length ", c.head_dim, ", value_length ",
             c.head_dim_v, ", kv_lora_rank ", s.kv_lora, ", key_length_mla ", qk, ", rope dims ", s.rope_dims,
             ", head_count_kv ", c.n_head_kv, ")");
    return s;
}

DeepSeek2::DeepSeek2(std::unique_ptr<GgufFile> file) : Model(std::move(file)) {
    HParams hp(*file_, "deepseek2");
    ModelLoader ld(*file_);
    config_ = read_transformer_config(hp, RopeStyle::Normal);
    ModelConfig& c = config_;
    c.name = file_->get_string("general.name", "");
    const LatentAttentionShape shape = latent_shape(hp, c);
    if (ld.has("blk.0.attn_kv_b.weight") && !ld.has("blk.0.attn_k_b.weight"))
        fail(file_->path(), ": deepseek2 with the fused attn_kv_b is not supported (needs attn_k_b / attn_v_b)");

    // RoPE rotates the shared rope_dims part only. With YaRN, the reference folds the
    // magnitude correction into the score scale instead of cos and sin:
    // mscale = attn_factor * (1 + yarn_log_multiplier * ln(factor)), scale = mscale^2 / sqrt(qk).
    c.rope = read_rope(hp, ld, RopeStyle::Normal, shape.rope_dims, rope_freqs_);
    float mscale = 1.0f;
    if (c.rope.ext_factor != 0.0f) {
        const float ln_factor = std::log(1.0f / c.rope.freq_scale);
        mscale = c.rope.attn_factor * (1.0f + hp.real("rope.scaling.yarn_log_multiplier", 0.0f) * ln_factor);
        c.rope.attn_factor = 1.0f / (1.0f + 0.1f * ln_factor);  // cancels rope()'s own YaRN magnitude
    }
    AttentionOptions ao = attention_options(c);
    ao.scale = mscale * mscale / std::sqrt(float(shape.nope + shape.rope_dims));

    const int n_dense = hp.integer("leading_dense_block_count", 0);
    const int gating = hp.integer("expert_gating_func", 1);  // 1 softmax, 2 sigmoid
    if (gating != 1 && gating != 2) fail(file_->path(), ": deepseek2.expert_gating_func = ", gating, " is not supported");
    if (c.n_expert == 0 && n_dense < c.n_layer) fail(file_->path(), ": deepseek2 needs deepseek2.expert_count");
    const int64_t n_ff_exp = hp.count("expert_feed_forward_length", c.n_ff);

    embd_.tokens = ld.matrix("token_embd.weight", c.n_embd, -1);
    c.n_vocab = int(embd_.tokens.rows);
    head_ = load_output_head(ld, embd_.tokens, c.n_embd, NormKind::RMS, c.norm_eps);

    for (int i = 0; i < c.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        DeepSeek2Layer L;
        L.attn_norm = load_norm(ld, p + "attn_norm", c.n_embd, NormKind::RMS, c.norm_eps);
        L.attn = load_latent_attention(ld, p, i, c.n_embd, shape, ao, c.norm_eps);
        L.ffn_norm = load_norm(ld, p + "ffn_norm", c.n_embd, NormKind::RMS, c.norm_eps);
        L.dense = i < n_dense;
        if (L.dense) {
            L.ffn = load_feed_forward(ld, p, c.n_embd, c.n_ff, Activation::SiLU);
        } else {
            L.moe = load_moe(ld, p, c.n_embd, n_ff_exp, c.n_expert, c.n_expert_used);
            L.moe.gating = gating == 2 ? MoE::Gating::Sigmoid : MoE::Gating::Softmax;
            L.moe.normalize = file_->get_bool("deepseek2.expert_weights_norm", false);
            L.moe.weights_scale = hp.real("expert_weights_scale", 1.0f);
            if (ld.has(p + "exp_probs_b.bias")) L.moe.select_bias = ld.vector(p + "exp_probs_b.bias", c.n_expert);
            if (hp.integer("expert_shared_count", 0) > 0) load_shared_expert(ld, p, c.n_embd, L.moe);
        }
        memory_.layers.push_back(L.attn.memory());
        layers_.push_back(std::move(L));
    }
}

void DeepSeek2::forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) {
    const ModelConfig& c = config_;
    if (batch.size() == 0) return;
    DecoderPass p(batch, cache, pool, s_, c.n_vocab, c.n_embd);
    const int64_t n = p.n, E = c.n_embd;
    float* x = p.x;
    float* h = p.h;
    float* y = p.y;

    embd_.apply(batch, x);
    for (const DeepSeek2Layer& L : layers_) {
        L.attn_norm.apply(x, h, n);
        L.attn.apply(h, y, p);
        add_inplace(x, y, n * E);

        L.ffn_norm.apply(x, h, n);
        if (L.dense) L.ffn.apply(h, n, y, p);
        else L.moe.apply(h, n, y, p);
        add_inplace(x, y, n * E);
    }
    p.commit();
    head_.apply(x, p, out, c.pooling);
}

}  // namespace

std::unique_ptr<Model> make_deepseek2(std::unique_ptr<GgufFile> file) {
    return std::make_unique<DeepSeek2>(std::move(file));
}

}  // namespace pensieve
