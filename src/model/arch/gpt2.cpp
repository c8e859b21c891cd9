// GPT-2 (general.architecture = "gpt2") and the layer stack of its descendants that keep
// LayerNorm and a plain MLP: BLOOM, StarCoder2, Falcon, Command-R (their files set what
// they change, as qwen2.cpp does for LLaMA).
//
// Sequential (GPT-2, BLOOM, StarCoder2):
//     x += Wo · attention(ln1(x));   x += W_down · gelu(W_up · ln2(x))
// Parallel (Falcon, Command-R): one norm feeds both branches, added to x together
// (Falcon 40B style files have a second norm, attn_norm_2, for the MLP):
//     h = ln(x);   x += Wo · attention(h) + mlp(h)
// Positions: none and learned absolute `position_embd` (GPT-2), ALiBi (BLOOM) or RoPE.
// Every linear and norm takes its bias when the file has one. Then
// logits = logit_scale · W_out · ln(x).
#include "model/arch/arch.h"
#include "model/blocks.h"

namespace pensieve {

namespace {

struct Gpt2Layer {
    Norm attn_norm;
    Attention attn;
    Norm ffn_norm;  // sequential, or Falcon 40B's attn_norm_2; parallel: empty
    FeedForward ffn;
};

class Gpt2 final : public Model {
public:
    Gpt2(std::unique_ptr<GgufFile> file, const Gpt2Variant& variant);
    void forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) override;

private:
    Gpt2Variant variant_;
    Embedding embd_;
    Norm embd_norm_;  // BLOOM: a LayerNorm on the embeddings
    std::vector<Gpt2Layer> layers_;
    OutputHead head_;
    std::vector<float> rope_freqs_;
    Scratch s_;
    std::vector<float> h2_, y2_;  // parallel blocks: the MLP's normalised input and output
};

Gpt2::Gpt2(std::unique_ptr<GgufFile> file, const Gpt2Variant& variant) : Model(std::move(file)), variant_(variant) {
    const std::string arch = file_->get_string("general.architecture");
    HParams hp(*file_, arch);
    ModelLoader ld(*file_);
    config_ = read_transformer_config(hp, variant.rope_style);
    ModelConfig& c = config_;
    c.name = file_->get_string("general.name", "");
    if (variant.rope) c.rope = read_rope(hp, ld, variant.rope_style, c.head_dim, rope_freqs_);

    embd_.tokens = ld.matrix("token_embd.weight", c.n_embd, -1);
    c.n_vocab = int(embd_.tokens.rows);
    if (variant.learned_positions) {
        embd_.positions = ld.matrix("position_embd.weight", c.n_embd, -1);
        memory_.max_positions = int(embd_.positions.rows);
    }
    if (variant.embd_norm) embd_norm_ = load_norm(ld, "token_embd_norm", c.n_embd, variant.norm, c.norm_eps);
    head_ = load_output_head(ld, embd_.tokens, c.n_embd, variant.norm, c.norm_eps);
    head_.scale = hp.real("logit_scale", 1.0f);

    AttentionOptions ao = attention_options(c);
    ao.alibi_max_bias = variant.alibi ? hp.real("attention.max_alibi_bias", 8.0f) : 0.0f;
    for (int i = 0; i < c.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        Gpt2Layer L;
        L.attn_norm = load_norm(ld, p + "attn_norm", c.n_embd, variant.norm, c.norm_eps);
        L.attn = load_attention(ld, p, i, c.n_embd, ao, c.norm_eps);
        if (!variant.parallel) L.ffn_norm = load_norm(ld, p + "ffn_norm", c.n_embd, variant.norm, c.norm_eps);
        else if (ld.has(p + "attn_norm_2.weight"))
            L.ffn_norm = load_norm(ld, p + "attn_norm_2", c.n_embd, variant.norm, c.norm_eps);
        L.ffn = load_feed_forward(ld, p, c.n_embd, c.n_ff, variant.act, variant.gated_ffn);
        memory_.layers.push_back(L.attn.memory());
        layers_.push_back(std::move(L));
    }
}

void Gpt2::forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) {
    const ModelConfig& c = config_;
    if (batch.size() == 0) return;
    DecoderPass p(batch, cache, pool, s_, c.n_vocab, c.n_embd);
    const int64_t n = p.n, E = c.n_embd;
    float* x = p.x;
    float* h = p.h;
    float* y = p.y;

    embd_.apply(batch, x);
    if (!embd_norm_.empty()) embd_norm_.apply(x, x, n);
    for (const Gpt2Layer& L : layers_) {
        L.attn_norm.apply(x, h, n);
        L.attn.apply(h, y, p);
        if (variant_.parallel) {
            // Both branches read the layer's input: x is updated only after the MLP.
            const float* ffn_in = h;
            if (!L.ffn_norm.empty()) {
                L.ffn_norm.apply(x, grow(h2_, n * E), n);
                ffn_in = h2_.data();
            }
            float* y2 = grow(y2_, n * E);
            L.ffn.apply(ffn_in, n, y2, p);
            add_inplace(x, y, n * E);
            add_inplace(x, y2, n * E);
            continue;
        }
        add_inplace(x, y, n * E);
        L.ffn_norm.apply(x, h, n);
        L.ffn.apply(h, n, y, p);
        add_inplace(x, y, n * E);
    }
    p.commit();
    head_.apply(x, p, out, c.pooling);
}

}  // namespace

std::unique_ptr<Model> make_gpt2_variant(std::unique_ptr<GgufFile> file, const Gpt2Variant& variant) {
    return std::make_unique<Gpt2>(std::move(file), variant);
}

std::unique_ptr<Model> make_gpt2(std::unique_ptr<GgufFile> file) {
    Gpt2Variant v;
    v.learned_positions = true;
    return make_gpt2_variant(std::move(file), v);
}

}  // namespace pensieve
