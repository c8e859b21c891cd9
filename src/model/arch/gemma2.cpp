// Gemma 2 (general.architecture = "gemma2"); gemma3.cpp reuses it with its differences.
//
//   x = token_embd[t] · sqrt(n_embd)
// Per layer (sandwich norms: each block's output is normalised before the residual add):
//   x += post_attention_norm(Wo · attention(norm(x)))   NeoX RoPE; scores scaled by
//                                                       1/sqrt(query_pre_attn_scalar) and
//                                                       soft-capped; sliding window on the
//                                                       local layers
//   x += post_ffw_norm(W_down · (gelu_tanh(W_gate·norm(x)) * W_up·norm(x)))
// then logits = soft_cap(W_embd · norm(x)) (tied). The converter stores Gemma's norm
// weights as 1 + w already, so the norms are plain RMS norms here.
#include <cmath>

#include "model/arch/arch.h"
#include "model/blocks.h"
#include "util/error.h"

namespace pensieve {

namespace {

struct GemmaLayer {
    Norm attn_norm, post_attn_norm;
    Attention attn;
    Norm ffn_norm, post_ffn_norm;
    FeedForward ffn;
};

class Gemma final : public Model {
public:
    Gemma(std::unique_ptr<GgufFile> file, const GemmaVariant& variant);
    void forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) override;

private:
    Embedding embd_;
    std::vector<GemmaLayer> layers_;
    OutputHead head_;
    std::vector<float> rope_freqs_;
    Scratch s_;
};

// The local layers' attention options: the window and (Gemma 3) their own RoPE base,
// without the global layers' frequency scaling.
AttentionOptions local_options(const HParams& hp, AttentionOptions ao, const GemmaVariant& variant, int window) {
    ao.window = window;
    if (variant.local_rope_base) {
        ao.rope.freq_base = hp.real("rope.freq_base_swa", 10000.0f);
        if (!(ao.rope.freq_base > 0.0f)) fail(hp.file().path(), ": bad ", hp.arch(), ".rope.freq_base_swa");
        ao.rope.freq_scale = 1.0f;
        ao.rope.ext_factor = 0.0f;
    }
    return ao;
}

Gemma::Gemma(std::unique_ptr<GgufFile> file, const GemmaVariant& variant) : Model(std::move(file)) {
    const std::string arch = file_->get_string("general.architecture");
    HParams hp(*file_, arch);
    ModelLoader ld(*file_);
    config_ = read_transformer_config(hp, RopeStyle::NeoX);
    ModelConfig& c = config_;
    c.name = file_->get_string("general.name", "");
    c.rope = read_rope(hp, ld, RopeStyle::NeoX, c.head_dim, rope_freqs_);
    const int window = hp.integer("attention.sliding_window", 0);
    if (window < 0) fail(file_->path(), ": bad ", arch, ".attention.sliding_window ", window);

    embd_.tokens = ld.matrix("token_embd.weight", c.n_embd, -1);
    embd_.scale = std::sqrt(float(c.n_embd));
    c.n_vocab = int(embd_.tokens.rows);
    head_ = load_output_head(ld, embd_.tokens, c.n_embd, NormKind::RMS, c.norm_eps);

    AttentionOptions global = attention_options(c);
    const int query_pre_attn_scalar = c.n_layer == variant.n_layer_27b ? c.n_embd / c.n_head : c.head_dim;
    global.scale = 1.0f / std::sqrt(float(query_pre_attn_scalar));
    if (variant.soft_cap) {
        global.soft_cap = hp.real("attn_logit_softcapping", 0.0f);
        head_.soft_cap = hp.real("final_logit_softcapping", 0.0f);
        if (global.soft_cap < 0.0f || head_.soft_cap < 0.0f) fail(file_->path(), ": negative soft-capping");
    }
    const AttentionOptions local = local_options(hp, global, variant, window);

    for (int i = 0; i < c.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        const bool is_local = i % variant.swa_pattern < variant.swa_pattern - 1;
        GemmaLayer L;
        L.attn_norm = load_norm(ld, p + "attn_norm", c.n_embd, NormKind::RMS, c.norm_eps);
        L.attn = load_attention(ld, p, i, c.n_embd, is_local ? local : global, c.norm_eps);
        L.post_attn_norm = load_norm(ld, p + "post_attention_norm", c.n_embd, NormKind::RMS, c.norm_eps);
        L.ffn_norm = load_norm(ld, p + "ffn_norm", c.n_embd, NormKind::RMS, c.norm_eps);
        L.ffn = load_feed_forward(ld, p, c.n_embd, c.n_ff, Activation::GELUTanh);
        L.post_ffn_norm = load_norm(ld, p + "post_ffw_norm", c.n_embd, NormKind::RMS, c.norm_eps);
        memory_.layers.push_back(L.attn.memory());
        layers_.push_back(std::move(L));
    }
}

void Gemma::forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) {
    const ModelConfig& c = config_;
    if (batch.size() == 0) return;
    DecoderPass p(batch, cache, pool, s_, c.n_vocab, c.n_embd);
    const int64_t n = p.n, E = c.n_embd;
    float* x = p.x;
    float* h = p.h;
    float* y = p.y;

    embd_.apply(batch, x);
    for (const GemmaLayer& L : layers_) {
        L.attn_norm.apply(x, h, n);
        L.attn.apply(h, y, p);
        L.post_attn_norm.apply(y, y, n);
        add_inplace(x, y, n * E);

        L.ffn_norm.apply(x, h, n);
        L.ffn.apply(h, n, y, p);
        L.post_ffn_norm.apply(y, y, n);
        add_inplace(x, y, n * E);
    }
    p.commit();
    head_.apply(x, p, out, c.pooling);
}

}  // namespace

std::unique_ptr<Model> make_gemma_variant(std::unique_ptr<GgufFile> file, const GemmaVariant& variant) {
    return std::make_unique<Gemma>(std::move(file), variant);
}

std::unique_ptr<Model> make_gemma2(std::unique_ptr<GgufFile> file) {
    return make_gemma_variant(std::move(file), GemmaVariant{});
}

}  // namespace pensieve
