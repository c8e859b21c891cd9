// Mamba (general.architecture = "mamba"): a stack of selective state-space mixers
// (model/ssm.h) with pre-RMS norms, no attention and no feed-forward. Mamba-2 (mamba2.cpp)
// is the same stack over its SSD mixer.
//
// Per layer:  x += mixer(norm(x))        (state per sequence, model/ssm.h)
// then logits = W_out · norm(x).
#include "model/arch/arch.h"
#include "model/ssm.h"
#include "util/error.h"

namespace pensieve {

namespace {

struct MambaLayer {
    Norm norm;
    std::unique_ptr<SsmMixer> mixer;
};

class Mamba final : public Model {
public:
    Mamba(std::unique_ptr<GgufFile> file, const MambaVariant& variant);
    void forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) override;

private:
    Embedding embd_;
    std::vector<MambaLayer> layers_;
    OutputHead head_;
    Scratch s_;
};

Mamba::Mamba(std::unique_ptr<GgufFile> file, const MambaVariant& variant) : Model(std::move(file)) {
    const bool v2 = variant.version == 2;
    HParams hp(*file_, v2 ? "mamba2" : "mamba");
    ModelLoader ld(*file_);
    ModelConfig& c = config_;
    c.arch = hp.arch();
    c.name = file_->get_string("general.name", "");
    c.n_embd = hp.count("embedding_length");
    c.n_layer = hp.count("block_count");
    c.n_ctx_train = hp.count("context_length", 1 << 20);
    c.norm_eps = hp.real("attention.layer_norm_rms_epsilon", 1e-5f);
    if (file_->get_bool(c.arch + ".ssm.dt_b_c_rms", false))
        fail(file_->path(), ": ", c.arch, ".ssm.dt_b_c_rms (Falcon-Mamba's dt/B/C norms) is not supported yet");
    MambaDims dims;
    Mamba2Dims dims2;
    if (v2) dims2 = read_mamba2_dims(hp);
    else dims = read_mamba_dims(hp);

    embd_.tokens = ld.matrix("token_embd.weight", c.n_embd, -1);
    c.n_vocab = int(embd_.tokens.rows);
    head_ = load_output_head(ld, embd_.tokens, c.n_embd, NormKind::RMS, c.norm_eps);
    for (int i = 0; i < c.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        MambaLayer L;
        L.norm = load_norm(ld, p + "attn_norm", c.n_embd, NormKind::RMS, c.norm_eps);
        if (v2) L.mixer = std::make_unique<Mamba2Mixer>(load_mamba2_mixer(ld, p, i, c.n_embd, dims2, c.norm_eps));
        else L.mixer = std::make_unique<MambaMixer>(load_mamba_mixer(ld, p, i, c.n_embd, dims));
        memory_.layers.push_back(L.mixer->memory());
        layers_.push_back(std::move(L));
    }
}

void Mamba::forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) {
    if (batch.size() == 0) return;
    DecoderPass p(batch, cache, pool, s_, config_.n_vocab, config_.n_embd);
    embd_.apply(batch, p.x);
    for (const MambaLayer& L : layers_) {
        L.norm.apply(p.x, p.h, p.n);
        L.mixer->apply(p.h, p.y, p);
        add_inplace(p.x, p.y, p.n * config_.n_embd);
    }
    p.commit();
    head_.apply(p.x, p, out, config_.pooling);
}

}  // namespace

std::unique_ptr<Model> make_mamba_variant(std::unique_ptr<GgufFile> file, const MambaVariant& variant) {
    return std::make_unique<Mamba>(std::move(file), variant);
}

std::unique_ptr<Model> make_mamba(std::unique_ptr<GgufFile> file) { return make_mamba_variant(std::move(file), {}); }

}  // namespace pensieve
