// BERT (general.architecture = "bert"): an encoder for embeddings. Every token sees its
// whole sequence (attention.causal = false, no RoPE), positions are learned, and each
// block is followed by its LayerNorm (post-norm):
//     x = ln_embd(token[t] + token_type[0] + position[p])
//     per layer:  x = ln_attn(x + Wo · attention(x));   x = ln_out(x + W_down · gelu(W_up · x))
// Every linear and norm has a bias; GELU is the erf form. There is no output head:
// forward() gives the last layer's hidden states, per token or pooled per sequence as
// `bert.pooling_type` says (mean, cls, ...), and refuses to produce logits. A
// cross-encoder reranker (pooling rank) adds a classification head (`cls`, `cls.output`)
// whose score says how well the pair of texts in the sequence go together.
#include "model/arch/arch.h"
#include "util/error.h"

namespace pensieve {

namespace {

struct BertLayer {
    Attention attn;
    Norm attn_norm;  // attn_output_norm, after the attention's residual add
    FeedForward ffn;
    Norm ffn_norm;   // layer_output_norm, after the MLP's residual add
};

class Bert final : public Model {
public:
    explicit Bert(std::unique_ptr<GgufFile> file);
    void forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) override;

private:
    Embedding embd_;
    Norm embd_norm_;
    std::vector<BertLayer> layers_;
    ClassifierHead cls_;  // rerankers only (cls.output present)
    Scratch s_;
};

Bert::Bert(std::unique_ptr<GgufFile> file) : Model(std::move(file)) {
    HParams hp(*file_, "bert");
    ModelLoader ld(*file_);
    config_ = read_transformer_config(hp, RopeStyle::Normal);
    ModelConfig& c = config_;
    c.name = file_->get_string("general.name", "");
    c.causal = false;  // an encoder, whatever the file says
    c.embedding_only = true;
    c.norm_eps = hp.real("attention.layer_norm_epsilon", 1e-12f);  // BERT's own default
    const float eps = c.norm_eps;

    embd_.tokens = ld.matrix("token_embd.weight", c.n_embd, -1);
    c.n_vocab = int(embd_.tokens.rows);
    embd_.positions = ld.matrix("position_embd.weight", c.n_embd, -1);
    memory_.max_positions = int(embd_.positions.rows);
    if (ld.has("token_types.weight")) embd_.types = ld.matrix("token_types.weight", c.n_embd, -1);
    c.n_token_types = int(embd_.types.rows);
    embd_norm_ = load_norm(ld, "token_embd_norm", c.n_embd, NormKind::Layer, eps);
    if (ld.has("cls.output.weight")) {
        cls_ = load_classifier_head(ld, c.n_embd);
        c.n_cls_out = int(cls_.n_out());
    } else if (c.pooling == Pooling::Rank) {
        fail(file_->path(), ": bert.pooling_type is rank but the file has no classification head (cls.output.weight)");
    }

    AttentionOptions ao = attention_options(c);
    ao.causal = false;
    for (int i = 0; i < c.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        BertLayer L;
        L.attn = load_attention(ld, p, i, c.n_embd, ao, eps);
        L.attn_norm = load_norm(ld, p + "attn_output_norm", c.n_embd, NormKind::Layer, eps);
        L.ffn = load_feed_forward(ld, p, c.n_embd, c.n_ff, Activation::GELU, false);
        L.ffn_norm = load_norm(ld, p + "layer_output_norm", c.n_embd, NormKind::Layer, eps);
        LayerMemory mem = L.attn.memory();
        mem.f32 = true;  // lives for one pass only; fp32 keys/values spare an fp16 rounding
        memory_.layers.push_back(mem);
        layers_.push_back(std::move(L));
    }
}

void Bert::forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) {
    if (out.logits) fail(file_->path(), ": BERT is an embedding model: it has no output head and produces no logits");
    if (batch.size() == 0) return;
    const ModelConfig& c = config_;
    DecoderPass p(batch, cache, pool, s_, c.n_vocab, c.n_embd);
    const int64_t n = p.n, E = c.n_embd;
    float* x = p.x;
    float* y = p.y;

    embd_.apply(batch, x);
    embd_norm_.apply(x, x, n);
    for (const BertLayer& L : layers_) {
        L.attn.apply(x, y, p);
        add_inplace(x, y, n * E);
        L.attn_norm.apply(x, x, n);
        L.ffn.apply(x, n, y, p);
        add_inplace(x, y, n * E);
        L.ffn_norm.apply(x, x, n);
    }
    p.commit();
    write_hidden_outputs(x, E, batch, out, c.pooling);
    if (out.scores) {
        if (c.n_cls_out == 0) fail(file_->path(), ": this model has no classification head: it gives no scores");
        cls_.apply(x, p, out.scores);
    }
}

}  // namespace

std::unique_ptr<Model> make_bert(std::unique_ptr<GgufFile> file) { return std::make_unique<Bert>(std::move(file)); }

}  // namespace pensieve
