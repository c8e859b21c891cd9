// The LLaMA family (general.architecture = "llama"): LLaMA 1-3 (with Llama 3.1+
// `rope_freqs`), Mistral, Mixtral-style mixture of experts, TinyLlama and the llama2.c
// "stories" models; qwen2.cpp, qwen3.cpp and phi3.cpp reuse it with their differences
// (fused projections are split by the blocks; LongRoPE factors are chosen per pass).
//
// Per layer:  x += Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
//             x += W_down · (silu(W_gate·norm(x)) * W_up·norm(x))        (dense FFN)
//          or x += Σ_top-k  p_e · expert_e(norm(x))                       (MoE FFN)
//                  (+ σ(g·norm(x)) · shared_expert(norm(x)), Qwen2-MoE)
// then logits = W_out · norm(x), for the tokens that asked for them (or after the first
// layers only: an early exit, the model's own draft for self-speculation).
#include <algorithm>

#include "model/arch/arch.h"
#include "model/blocks.h"
#include "util/error.h"

namespace pensieve {

namespace {

struct LlamaLayer {
    Norm attn_norm;
    Attention attn;
    Norm ffn_norm;
    FeedForward ffn;  // dense layers
    MoE moe;          // mixture-of-experts layers
};

// Routed experts (width `expert_feed_forward_length` when the file gives it) and, when the
// file has one, the shared expert.
MoE load_moe_layer(const ModelLoader& ld, const HParams& hp, const std::string& prefix, const ModelConfig& c,
                   const LlamaVariant& variant) {
    MoE moe = load_moe(ld, prefix, c.n_embd, hp.count("expert_feed_forward_length", c.n_ff), c.n_expert,
                       c.n_expert_used);
    moe.normalize = variant.moe_normalize;
    if (ld.has(prefix + "ffn_up_shexp.weight")) load_shared_expert(ld, prefix, c.n_embd, moe);
    return moe;
}

class Llama final : public Model {
public:
    Llama(std::unique_ptr<GgufFile> file, const LlamaVariant& variant);
    void forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) override;
    bool early_exit() const override { return true; }
    bool tree_rows() const override { return true; }
    uint64_t cache_variant(int n_ctx) const override {
        if (long_rope_.empty()) return 0;
        return &long_rope_.for_context(n_ctx) == &long_rope_.long_factors ? 2 : 1;
    }

private:
    Embedding embd_;
    std::vector<LlamaLayer> layers_;
    OutputHead head_;
    std::vector<float> rope_freqs_;  // frequency divisors in use (RopeParams points here)
    LongRope long_rope_;             // LongRoPE: rope_freqs_ takes its long or short factors
    Scratch s_;
};

Llama::Llama(std::unique_ptr<GgufFile> file, const LlamaVariant& variant) : Model(std::move(file)) {
    const std::string arch = file_->get_string("general.architecture");
    HParams hp(*file_, arch);
    ModelLoader ld(*file_);
    config_ = read_transformer_config(hp, variant.rope_style);
    ModelConfig& c = config_;
    c.name = file_->get_string("general.name", "");
    c.rope = read_rope(hp, ld, variant.rope_style, c.head_dim, rope_freqs_);
    if (!c.rope.freq_factors) long_rope_ = load_long_rope(hp, ld, c.rope.n_dims);  // rope_freqs wins
    if (!long_rope_.empty()) {
        rope_freqs_ = long_rope_.short_factors;  // replaced per pass; the pointer stays
        c.rope.freq_factors = rope_freqs_.data();
    }

    embd_.tokens = ld.matrix("token_embd.weight", c.n_embd, -1);
    c.n_vocab = int(embd_.tokens.rows);
    head_ = load_output_head(ld, embd_.tokens, c.n_embd, NormKind::RMS, c.norm_eps);

    const AttentionOptions ao = attention_options(c);
    for (int i = 0; i < c.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        // Required variant tensors are named in the error when missing.
        if (variant.qkv_bias) ld.vector(p + "attn_q.bias", int64_t(c.n_head) * c.head_dim);
        if (variant.qk_norm) ld.vector(p + "attn_q_norm.weight", c.head_dim);
        LlamaLayer L;
        L.attn_norm = load_norm(ld, p + "attn_norm", c.n_embd, NormKind::RMS, c.norm_eps);
        L.attn = load_attention(ld, p, i, c.n_embd, ao, c.norm_eps);
        L.ffn_norm = load_norm(ld, p + "ffn_norm", c.n_embd, NormKind::RMS, c.norm_eps);
        if (c.n_expert > 0) L.moe = load_moe_layer(ld, hp, p, c, variant);
        else L.ffn = load_feed_forward(ld, p, c.n_embd, c.n_ff, Activation::SiLU);
        if (variant.sub_norms) {
            L.attn.out_norm = load_norm(ld, p + "attn_sub_norm", int64_t(c.n_head) * c.head_dim_v, NormKind::RMS, c.norm_eps);
            L.ffn.inner_norm = load_norm(ld, p + "ffn_sub_norm", c.n_ff, NormKind::RMS, c.norm_eps);
        }
        memory_.layers.push_back(L.attn.memory());
        layers_.push_back(std::move(L));
    }
}

void Llama::forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) {
    const ModelConfig& c = config_;
    if (batch.size() == 0) return;
    DecoderPass p(batch, cache, pool, s_, c.n_vocab, c.n_embd);
    const int64_t n = p.n, E = c.n_embd;
    float* x = p.x;
    float* h = p.h;
    float* y = p.y;
    if (!long_rope_.empty()) {
        const std::vector<float>& f = long_rope_.for_context(cache.n_ctx());
        std::copy(f.begin(), f.end(), rope_freqs_.begin());
    }

    embd_.apply(batch, x);
    const size_t n_layers = out.n_layers > 0 ? std::min(layers_.size(), size_t(out.n_layers)) : layers_.size();
    for (size_t i = 0; i < n_layers; ++i) {
        const LlamaLayer& L = layers_[i];
        L.attn_norm.apply(x, h, n);
        L.attn.apply(h, y, p);
        add_inplace(x, y, n * E);

        L.ffn_norm.apply(x, h, n);
        if (c.n_expert > 0) L.moe.apply(h, n, y, p);
        else L.ffn.apply(h, n, y, p);
        add_inplace(x, y, n * E);
    }
    p.commit();
    head_.apply(x, p, out, c.pooling);
}

}  // namespace

std::unique_ptr<Model> make_llama_variant(std::unique_ptr<GgufFile> file, const LlamaVariant& variant) {
    return std::make_unique<Llama>(std::move(file), variant);
}

std::unique_ptr<Model> make_llama(std::unique_ptr<GgufFile> file) {
    return make_llama_variant(std::move(file), LlamaVariant{});
}

}  // namespace pensieve
