// OLMo 2 (general.architecture = "olmo2"): no pre-norms; the attention and MLP outputs are
// RMS-normed before they join the residual stream, and q and k are RMS-normed over their
// whole width (all heads at once, not per head) before NeoX-style RoPE. SwiGLU MLP,
// untied output.
//
// Per layer:  x += post_attn_norm(Wo · attention(norm_q(Wq x), norm_k(Wk x), Wv x))
//             x += post_ffw_norm(W_down · (silu(W_gate x) * W_up x))
#include "model/arch/arch.h"
#include "model/blocks.h"

namespace pensieve {

namespace {

struct Olmo2Layer {
    Attention attn;
    Norm post_attn_norm;
    FeedForward ffn;
    Norm post_ffn_norm;
};

class Olmo2 final : public Model {
public:
    explicit Olmo2(std::unique_ptr<GgufFile> file);
    void forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) override;

private:
    Embedding embd_;
    std::vector<Olmo2Layer> layers_;
    OutputHead head_;
    std::vector<float> rope_freqs_;
    Scratch s_;
};

Olmo2::Olmo2(std::unique_ptr<GgufFile> file) : Model(std::move(file)) {
    HParams hp(*file_, "olmo2");
    ModelLoader ld(*file_);
    config_ = read_transformer_config(hp, RopeStyle::NeoX);
    ModelConfig& c = config_;
    c.name = file_->get_string("general.name", "");
    c.rope = read_rope(hp, ld, RopeStyle::NeoX, c.head_dim, rope_freqs_);

    embd_.tokens = ld.matrix("token_embd.weight", c.n_embd, -1);
    c.n_vocab = int(embd_.tokens.rows);
    head_ = load_output_head(ld, embd_.tokens, c.n_embd, NormKind::RMS, c.norm_eps);

    const AttentionOptions ao = attention_options(c);
    for (int i = 0; i < c.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        // The q/k norms span the whole projection (named in the error when missing).
        ld.vector(p + "attn_q_norm.weight", int64_t(c.n_head) * c.head_dim);
        ld.vector(p + "attn_k_norm.weight", int64_t(c.n_head_kv) * c.head_dim);
        Olmo2Layer L;
        L.attn = load_attention(ld, p, i, c.n_embd, ao, c.norm_eps);
        L.post_attn_norm = load_norm(ld, p + "post_attention_norm", c.n_embd, NormKind::RMS, c.norm_eps);
        L.ffn = load_feed_forward(ld, p, c.n_embd, c.n_ff, Activation::SiLU);
        L.post_ffn_norm = load_norm(ld, p + "post_ffw_norm", c.n_embd, NormKind::RMS, c.norm_eps);
        memory_.layers.push_back(L.attn.memory());
        layers_.push_back(std::move(L));
    }
}

void Olmo2::forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) {
    const ModelConfig& c = config_;
    if (batch.size() == 0) return;
    DecoderPass p(batch, cache, pool, s_, c.n_vocab, c.n_embd);
    const int64_t n = p.n, E = c.n_embd;
    float* x = p.x;
    float* y = p.y;

    embd_.apply(batch, x);
    for (const Olmo2Layer& L : layers_) {
        L.attn.apply(x, y, p);
        L.post_attn_norm.apply(y, y, n);
        add_inplace(x, y, n * E);

        L.ffn.apply(x, n, y, p);
        L.post_ffn_norm.apply(y, y, n);
        add_inplace(x, y, n * E);
    }
    p.commit();
    head_.apply(x, p, out, c.pooling);
}

}  // namespace

std::unique_ptr<Model> make_olmo2(std::unique_ptr<GgufFile> file) { return std::make_unique<Olmo2>(std::move(file)); }

}  // namespace pensieve
