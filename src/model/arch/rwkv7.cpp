// RWKV-7 "Goose" (general.architecture = "rwkv7"): no attention; each layer is a time mix
// (the WKV7 recurrence, the generalized delta rule) and a channel mix without a receptance
// gate (model/rwkv.h), both with LayerNorms and a per-sequence recurrent state. The first
// layer's values feed every later layer's time mix (the value residual).
//
//   x = ln0(embedding)
//   per layer:  x += time_mix(ln1(x), v_first);  x += channel_mix(ln2(x));
//   logits = W_out · ln(x)
#include "model/arch/arch.h"
#include "model/rwkv.h"

namespace pensieve {

namespace {

struct Rwkv7Layer {
    Norm att_norm, ffn_norm;
    Rwkv7TimeMix time_mix;
    RwkvChannelMix channel_mix;
};

class Rwkv7 final : public Model {
public:
    explicit Rwkv7(std::unique_ptr<GgufFile> file);
    void forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) override;

private:
    Embedding embd_;
    Norm embd_norm_;
    std::vector<Rwkv7Layer> layers_;
    OutputHead head_;
    Scratch s_;
};

Rwkv7::Rwkv7(std::unique_ptr<GgufFile> file) : Model(std::move(file)) {
    HParams hp(*file_, "rwkv7");
    ModelLoader ld(*file_);
    const Rwkv7Dims dims = read_rwkv7_dims(hp);
    ModelConfig& c = config_;
    c.arch = hp.arch();
    c.name = file_->get_string("general.name", "");
    c.n_embd = int(dims.n_embd);
    c.n_layer = hp.count("block_count");
    c.n_ff = int(dims.n_ff);
    c.n_ctx_train = hp.count("context_length", 1 << 20);
    c.norm_eps = hp.real("attention.layer_norm_epsilon", 1e-5f);

    embd_.tokens = ld.matrix("token_embd.weight", c.n_embd, -1);
    c.n_vocab = int(embd_.tokens.rows);
    embd_norm_ = load_norm(ld, "token_embd_norm", c.n_embd, NormKind::Layer, c.norm_eps);
    head_ = load_output_head(ld, embd_.tokens, c.n_embd, NormKind::Layer, c.norm_eps);
    for (int i = 0; i < c.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        Rwkv7Layer L;
        L.att_norm = load_norm(ld, p + "attn_norm", c.n_embd, NormKind::Layer, c.norm_eps);
        L.ffn_norm = load_norm(ld, p + "attn_norm_2", c.n_embd, NormKind::Layer, c.norm_eps);
        L.time_mix = load_rwkv7_time_mix(ld, p, 2 * i, i > 0, dims);  // memory: two parts per layer
        L.channel_mix = load_rwkv_channel_mix(ld, p, 2 * i + 1, c.n_embd, c.n_ff, /*gated=*/false);
        memory_.layers.push_back(L.time_mix.memory());
        memory_.layers.push_back(L.channel_mix.memory());
        layers_.push_back(std::move(L));
    }
}

void Rwkv7::forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) {
    if (batch.size() == 0) return;
    const int64_t size = int64_t(batch.size()) * config_.n_embd;
    DecoderPass p(batch, cache, pool, s_, config_.n_vocab, config_.n_embd);
    float* v_first = grow(s_.v_first, size);  // layer 0's values, for the value residual
    embd_.apply(batch, p.x);
    embd_norm_.apply(p.x, p.x, p.n);
    for (const Rwkv7Layer& L : layers_) {
        L.att_norm.apply(p.x, p.h, p.n);
        L.time_mix.apply(p.h, p.y, v_first, p);
        add_inplace(p.x, p.y, size);
        L.ffn_norm.apply(p.x, p.h, p.n);
        L.channel_mix.apply(p.h, p.y, p);
        add_inplace(p.x, p.y, size);
    }
    p.commit();
    head_.apply(p.x, p, out, config_.pooling);
}

}  // namespace

std::unique_ptr<Model> make_rwkv7(std::unique_ptr<GgufFile> file) { return std::make_unique<Rwkv7>(std::move(file)); }

}  // namespace pensieve
