// T5 (general.architecture = "t5"; T5 v1.0, v1.1, Flan-T5): an encoder-decoder. The
// encoder reads the whole prompt (bidirectional attention), the decoder generates from
// `decoder_start_token_id`, attending causally to its own tokens and, in every layer, to
// the encoder's output (cross-attention):
//     encoder, per layer:  x += Wo · attention(norm(x))          (sees the whole prompt)
//                          x += ffn(norm(x));          then  e = enc_norm(x)
//     decoder, per layer:  x += Wo · attention(norm(x))          (causal)
//                          x += Wo' · attention(Wq' norm(x), Wk' e, Wv' e)
//                          x += ffn(norm(x));          then  logits = W_out · dec_norm(x)
// Norms are RMS without bias; no RoPE: a learned bias per head and relative-distance
// bucket (bidirectional in the encoder, causal in the decoder; layer 0's table unless a
// layer has its own) is added to q·k, which is not scaled by 1/sqrt(d). FFN: gated GELU
// (v1.1, with ffn_gate) or ReLU (v1.0).
//
// How it sits on the engine's one position line per sequence: the batch that starts a
// sequence (position 0) holds the whole prompt, positions [0, N). It runs the encoder,
// keeps each decoder layer's cross-attention keys and values of the encoder output at
// those positions, and runs the decoder on the start token at position N - 1; that is
// the logits row of the prompt's last token. Decoder token d then lives at position
// N - 1 + d (relative distances are the same), so the engine's next positions N, N + 1,
// ... are the generated tokens, as for a decoder-only model. Memory layers: encoder
// self-attention, decoder self-attention, cross-attention, and one fp32 value per
// position holding N (read at position 0 by later batches).
#include <algorithm>
#include <cmath>

#include "model/arch/arch.h"
#include "util/error.h"

namespace pensieve {

namespace {

struct T5EncoderLayer {
    Norm attn_norm;
    Attention attn;
    Norm ffn_norm;
    FeedForward ffn;
};

struct T5DecoderLayer {
    Norm attn_norm;
    Attention attn;
    Norm cross_norm;
    Attention cross;  // q from the decoder, k and v from the encoder output
    Norm ffn_norm;
    FeedForward ffn;
};

class T5 final : public Model {
public:
    explicit T5(std::unique_ptr<GgufFile> file);
    void forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) override;

private:
    Attention load_t5_attention(const ModelLoader& ld, const std::string& prefix, int layer,
                                const RelativePositionBias* bias) const;
    void encode(Pass& p);           // the prompts of p's batch -> cross-attention keys/values
    void decode(Pass& p, const std::vector<int>& n_enc, const ForwardOutputs& out);
    int encoded_length(const KvCache& cache, int seq) const;

    Embedding embd_;
    std::vector<RelativePositionBias> enc_bias_, dec_bias_;  // per layer (a copy of layer 0's by default)
    std::vector<T5EncoderLayer> enc_;
    Norm enc_norm_;
    std::vector<T5DecoderLayer> dec_;
    OutputHead head_;
    int meta_layer_ = 0;  // the memory layer holding the encoder's length N
    Scratch s_;
};

Attention T5::load_t5_attention(const ModelLoader& ld, const std::string& prefix, int layer,
                                const RelativePositionBias* bias) const {
    const ModelConfig& c = config_;
    const int64_t inner = int64_t(c.n_head) * c.head_dim;
    Attention a;
    a.layer = layer;
    a.opt = attention_options(c);
    a.opt.scale = 1.0f;  // T5 folds 1/sqrt(d) into its weights
    a.opt.causal = false;
    a.opt.relative_bias = bias;
    a.q = load_linear(ld, prefix + "_q", c.n_embd, inner);
    a.k = load_linear(ld, prefix + "_k", c.n_embd, inner);
    a.v = load_linear(ld, prefix + "_v", c.n_embd, inner);
    a.o = load_linear(ld, prefix + "_o", inner, c.n_embd);
    return a;
}

T5::T5(std::unique_ptr<GgufFile> file) : Model(std::move(file)) {
    HParams hp(*file_, "t5");
    ModelLoader ld(*file_);
    config_ = read_transformer_config(hp, RopeStyle::Normal);
    ModelConfig& c = config_;
    c.name = file_->get_string("general.name", "");
    c.encoder_decoder = true;
    c.rope.n_dims = 0;
    if (c.n_head_kv != c.n_head || c.head_dim_v != c.head_dim)
        fail(file_->path(), ": T5 with grouped KV heads or a value size unlike the key size is not supported");
    const int n_dec = hp.count("decoder_block_count", c.n_layer);
    const int n_buckets = hp.count("attention.relative_buckets_count", 32);
    const float eps = c.norm_eps;

    embd_.tokens = ld.matrix("token_embd.weight", c.n_embd, -1);
    c.n_vocab = int(embd_.tokens.rows);
    // The reference falls back to BOS when the file names no start token.
    c.decoder_start_token = int(file_->get_int("t5.decoder_start_token_id",
                                               file_->get_int("tokenizer.ggml.bos_token_id", 0)));
    if (c.decoder_start_token < 0 || c.decoder_start_token >= c.n_vocab)
        fail(file_->path(), ": decoder start token ", c.decoder_start_token, " is outside the vocabulary");

    for (auto [side, n, bidirectional, biases] : {std::tuple{"enc", c.n_layer, true, &enc_bias_},
                                                  std::tuple{"dec", n_dec, false, &dec_bias_}}) {
        for (int i = 0; i < n; ++i) {
            const std::string name = std::string(side) + ".blk." + std::to_string(i) + ".attn_rel_b.weight";
            if (i == 0 || ld.has(name))
                biases->push_back(load_relative_position_bias(ld, name, c.n_head, n_buckets, bidirectional));
            else
                biases->push_back(biases->front());
        }
    }

    auto ffn = [&](const std::string& p) {
        const bool gated = ld.has(p + "ffn_gate.weight");
        return load_feed_forward(ld, p, c.n_embd, c.n_ff, gated ? Activation::GELUTanh : Activation::ReLU, gated);
    };
    const int64_t inner = int64_t(c.n_head) * c.head_dim;
    for (int i = 0; i < c.n_layer; ++i) {
        const std::string p = "enc.blk." + std::to_string(i) + ".";
        T5EncoderLayer L;
        L.attn_norm = load_norm(ld, p + "attn_norm", c.n_embd, NormKind::RMS, eps);
        L.attn = load_t5_attention(ld, p + "attn", i, &enc_bias_[size_t(i)]);
        L.ffn_norm = load_norm(ld, p + "ffn_norm", c.n_embd, NormKind::RMS, eps);
        L.ffn = ffn(p);
        enc_.push_back(std::move(L));
        memory_.layers.push_back(LayerMemory::attention(int(inner), int(inner)));
    }
    enc_norm_ = load_norm(ld, "enc.output_norm", c.n_embd, NormKind::RMS, eps);
    for (int i = 0; i < n_dec; ++i) {
        const std::string p = "dec.blk." + std::to_string(i) + ".";
        T5DecoderLayer L;
        L.attn_norm = load_norm(ld, p + "attn_norm", c.n_embd, NormKind::RMS, eps);
        L.attn = load_t5_attention(ld, p + "attn", c.n_layer + i, &dec_bias_[size_t(i)]);
        L.cross_norm = load_norm(ld, p + "cross_attn_norm", c.n_embd, NormKind::RMS, eps);
        L.cross = load_t5_attention(ld, p + "cross_attn", c.n_layer + n_dec + i, nullptr);
        L.ffn_norm = load_norm(ld, p + "ffn_norm", c.n_embd, NormKind::RMS, eps);
        L.ffn = ffn(p);
        dec_.push_back(std::move(L));
    }
    for (int i = 0; i < 2 * n_dec; ++i) memory_.layers.push_back(LayerMemory::attention(int(inner), int(inner)));
    meta_layer_ = int(memory_.layers.size());
    LayerMemory meta = LayerMemory::attention(1, 1);
    meta.f32 = true;
    memory_.layers.push_back(meta);
    memory_.prefix_shareable = false;

    head_.norm = load_norm(ld, "dec.output_norm", c.n_embd, NormKind::RMS, eps);
    if (ld.has("output.weight")) {
        head_.w = ld.matrix("output.weight", c.n_embd, c.n_vocab);
    } else {
        // Tied: T5 scales the decoder output by d_model^-0.5 before the shared matrix.
        head_.w = embd_.tokens;
        head_.scale = 1.0f / std::sqrt(float(c.n_embd));
    }
}

int T5::encoded_length(const KvCache& cache, int seq) const {
    return int(*reinterpret_cast<const float*>(cache.k_row(meta_layer_, seq, 0)));
}

void T5::encode(Pass& p) {
    const ModelConfig& c = config_;
    const int64_t n = p.n, E = c.n_embd;
    float* x = grow(s_.x, n * E);
    float* h = grow(s_.h, n * E);
    float* y = grow(s_.y, n * E);
    embd_.apply(p.batch, x);
    for (const T5EncoderLayer& L : enc_) {
        L.attn_norm.apply(x, h, n);
        L.attn.apply(h, y, p);
        add_inplace(x, y, n * E);
        L.ffn_norm.apply(x, h, n);
        L.ffn.apply(h, n, y, p);
        add_inplace(x, y, n * E);
    }
    enc_norm_.apply(x, x, n);
    for (const T5DecoderLayer& L : dec_) {
        L.cross.k.apply(x, n, grow(s_.k, n * L.cross.k.out()), p);
        L.cross.v.apply(x, n, grow(s_.v, n * L.cross.v.out()), p);
        store_kv(L.cross.layer, p);
    }
}

void T5::decode(Pass& p, const std::vector<int>& n_enc, const ForwardOutputs& out) {
    const ModelConfig& c = config_;
    const int64_t n = p.n, E = c.n_embd;
    float* x = grow(s_.x, n * E);
    float* h = grow(s_.h, n * E);
    float* y = grow(s_.y, n * E);
    std::vector<KeySpan> self(static_cast<size_t>(n)), cross(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) {
        const int N = n_enc[size_t(p.batch.seq_ids[size_t(t)])];
        self[size_t(t)] = {N - 1, p.batch.positions[size_t(t)] + 1};
        cross[size_t(t)] = {0, N};
    }
    embd_.apply(p.batch, x);
    for (const T5DecoderLayer& L : dec_) {
        L.attn_norm.apply(x, h, n);
        L.attn.project(h, p);
        store_kv(L.attn.layer, p);
        attend_spans(L.attn.layer, L.attn.opt, self, p);
        L.attn.o.apply(s_.att.data(), n, y, p);
        add_inplace(x, y, n * E);

        L.cross_norm.apply(x, h, n);
        L.cross.q.apply(h, n, grow(s_.q, n * L.cross.q.out()), p);
        attend_spans(L.cross.layer, L.cross.opt, cross, p);
        L.cross.o.apply(s_.att.data(), n, y, p);
        add_inplace(x, y, n * E);

        L.ffn_norm.apply(x, h, n);
        L.ffn.apply(h, n, y, p);
        add_inplace(x, y, n * E);
    }
    head_.apply(x, p, out, Pooling::None);
}

void T5::forward(const Batch& batch, KvCache& cache, ThreadPool& pool, const ForwardOutputs& out) {
    const ModelConfig& c = config_;
    if (out.pooled || out.n_layers > 0)
        fail(file_->path(), ": T5 gives decoder logits (or their hidden states) only: no pooling, no early exit");
    if (batch.size() == 0) return;
    begin_pass(batch, cache, c.n_vocab);

    // Sequences that start here are prompts for the encoder; the others are decoding.
    std::vector<int> n_enc(size_t(cache.n_seq()), 0);
    std::vector<uint8_t> starts(size_t(cache.n_seq()), 0);
    for (int64_t t = 0; t < batch.size(); ++t) {
        const int seq = batch.seq_ids[size_t(t)];
        if (cache.length(seq) == 0) starts[size_t(seq)] = 1, n_enc[size_t(seq)] = std::max(n_enc[size_t(seq)], batch.positions[size_t(t)] + 1);
    }
    Batch enc, dec;
    for (int64_t t = 0; t < batch.size(); ++t) {
        const int seq = batch.seq_ids[size_t(t)], pos = batch.positions[size_t(t)];
        const bool want = batch.want_logits[size_t(t)] != 0;
        if (!starts[size_t(seq)]) {
            if (n_enc[size_t(seq)] == 0) n_enc[size_t(seq)] = encoded_length(cache, seq);
            if (n_enc[size_t(seq)] < 1 || n_enc[size_t(seq)] > pos)
                fail("sequence ", seq, ": no encoded prompt before position ", pos);
            dec.add(batch.tokens[size_t(t)], pos, seq, want);
            continue;
        }
        enc.add(batch.tokens[size_t(t)], pos, seq, false);
        const bool last = pos + 1 == n_enc[size_t(seq)];
        if (want && !last)
            fail("T5 reads a prompt with its encoder: only the prompt's last token has logits (the decoder's first step)");
        if (last) dec.add(c.decoder_start_token, pos, seq, want);
    }

    // Every position records its sequence's encoder length (fp32 rows of one value).
    {
        Pass all(batch, cache, pool, s_);
        float* k = grow(s_.k, batch.size());
        for (int64_t t = 0; t < batch.size(); ++t) k[t] = float(n_enc[size_t(batch.seq_ids[size_t(t)])]);
        std::copy_n(k, batch.size(), grow(s_.v, batch.size()));
        store_kv(meta_layer_, all);
    }
    if (enc.size() > 0) {
        Pass pe(enc, cache, pool, s_);
        encode(pe);
    }
    Pass pd(dec, cache, pool, s_);
    decode(pd, n_enc, out);
    cache.commit_batch(batch.seq_ids, batch.positions);
}

}  // namespace

std::unique_ptr<Model> make_t5(std::unique_ptr<GgufFile> file) { return std::make_unique<T5>(std::move(file)); }

}  // namespace pensieve
