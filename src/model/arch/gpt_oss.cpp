// gpt-oss (general.architecture = "gpt-oss"): OpenAI's open-weight mixture of experts.
//
// Per layer:  x += Wo · attention(norm(x)) + bo     Q/K/V/O biases, NeoX RoPE with YaRN,
//                                                  a learned sink logit per head, and a
//                                                  sliding window on even layers
//             x += Σ_top-k p_e · expert_e(norm(x))  router with bias; softmax over the
//                                                  chosen k; experts with biases and the
//                                                  clamped SwiGLU
// then logits = W_out · norm(x). The norm before the experts is `post_attention_norm` in
// the file (the converter's name for the checkpoint's post_attention_layernorm).
#include "model/arch/arch.h"
#include "model/blocks.h"
#include "util/error.h"

namespace pensieve {

namespace {

struct GptOssLayer {
    Norm attn_norm;
    Attention attn;
    Norm ffn_norm;
    MoE moe;
};

class GptOss final : public Model {
public:
    explicit GptOss(std::unique_ptr<GgufFile> file);
    void forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) override;

private:
    Embedding embd_;
    std::vector<GptOssLayer> layers_;
    OutputHead head_;
    std::vector<float> rope_freqs_;
    Scratch s_;
};

GptOss::GptOss(std::unique_ptr<GgufFile> file) : Model(std::move(file)) {
    HParams hp(*file_, "gpt-oss");
    ModelLoader ld(*file_);
    config_ = read_transformer_config(hp, RopeStyle::NeoX);
    ModelConfig& c = config_;
    c.name = file_->get_string("general.name", "");
    c.rope = read_rope(hp, ld, RopeStyle::NeoX, c.head_dim, rope_freqs_);
    if (c.n_expert == 0) fail(file_->path(), ": gpt-oss needs gpt-oss.expert_count");
    const int window = hp.count("attention.sliding_window");
    const int64_t n_ff = hp.count("expert_feed_forward_length", c.n_ff);

    embd_.tokens = ld.matrix("token_embd.weight", c.n_embd, -1);
    c.n_vocab = int(embd_.tokens.rows);
    head_ = load_output_head(ld, embd_.tokens, c.n_embd, NormKind::RMS, c.norm_eps);

    AttentionOptions ao = attention_options(c);
    for (int i = 0; i < c.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        ao.window = i % 2 == 0 ? window : 0;
        ld.vector(p + "attn_sinks.weight", c.n_head);  // required: named in the error when missing
        GptOssLayer L;
        L.attn_norm = load_norm(ld, p + "attn_norm", c.n_embd, NormKind::RMS, c.norm_eps);
        L.attn = load_attention(ld, p, i, c.n_embd, ao, c.norm_eps);
        L.ffn_norm = load_norm(ld, p + "post_attention_norm", c.n_embd, NormKind::RMS, c.norm_eps);
        L.moe = load_moe(ld, p, c.n_embd, n_ff, c.n_expert, c.n_expert_used);
        L.moe.act = Activation::SwiGLUClamped;
        memory_.layers.push_back(L.attn.memory());
        layers_.push_back(std::move(L));
    }
}

void GptOss::forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) {
    const ModelConfig& c = config_;
    if (batch.size() == 0) return;
    DecoderPass p(batch, cache, pool, s_, c.n_vocab, c.n_embd);
    const int64_t n = p.n, E = c.n_embd;
    float* x = p.x;
    float* h = p.h;
    float* y = p.y;

    embd_.apply(batch, x);
    for (const GptOssLayer& L : layers_) {
        L.attn_norm.apply(x, h, n);
        L.attn.apply(h, y, p);
        add_inplace(x, y, n * E);

        L.ffn_norm.apply(x, h, n);
        L.moe.apply(h, n, y, p);
        add_inplace(x, y, n * E);
    }
    p.commit();
    head_.apply(x, p, out, c.pooling);
}

}  // namespace

std::unique_ptr<Model> make_gpt_oss(std::unique_ptr<GgufFile> file) { return std::make_unique<GptOss>(std::move(file)); }

}  // namespace pensieve
