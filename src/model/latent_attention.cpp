// Multi-head latent attention (DeepSeek-V2/V3): the memory holds the compressed latent and
// the shared RoPE key per token; the per-head key and value up-projections are absorbed
// into the query and the output (see LatentAttention in blocks.h). Attention itself is the
// general path of attention.cpp over that one KV head.
#include <algorithm>

#include "model/blocks.h"
#include "util/error.h"

namespace pensieve {

void apply_per_head(const std::vector<WeightMatrix>& w, const float* x, int64_t x_stride, int64_t x_head, int64_t n,
                    float* y, int64_t y_stride, int64_t y_head, Pass& p) {
    for (size_t h = 0; h < w.size(); ++h) {
        const int64_t in = w[h].cols, out = w[h].rows;
        // Gather the head's inputs into rows, one matrix-matrix product, scatter the outputs.
        float* xin = grow(p.s.moe_in, n * in);
        float* yout = grow(p.s.moe_out, n * out);
        for (int64_t t = 0; t < n; ++t) std::copy_n(x + t * x_stride + int64_t(h) * x_head, in, xin + t * in);
        matmul(w[h], xin, n, yout, p.pool, p.s.mm);
        for (int64_t t = 0; t < n; ++t) std::copy_n(yout + t * out, out, y + t * y_stride + int64_t(h) * y_head);
    }
}

void LatentAttention::apply(const float* x, float* out, Pass& p) const {
    const int64_t n = p.n, H = attn.opt.n_head;
    const int64_t qk = nope + rope_dims;     // a query head as projected
    const int64_t kd = kv_lora + rope_dims;  // a query head as attended, and the key row

    // Queries: [q_nope, q_pe] per head, through the q LoRA when the file has one.
    float* q_full = grow(p.s.heads, n * H * std::max(qk, int64_t(v_dim)));
    if (q_a.w.data) {
        float* c = grow(p.s.lora, n * q_a.out());
        q_a.apply(x, n, c, p);
        q_a_norm.apply(c, c, n);
        q_b.apply(c, n, q_full, p);
    } else {
        q_b.apply(x, n, q_full, p);
    }
    // Absorbed queries [W_kb q_nope, q_pe] per head.
    float* q = grow(p.s.q, n * H * kd);
    apply_per_head(k_b, q_full, H * qk, qk, n, q, H * kd, kd, p);
    for (int64_t t = 0; t < n; ++t)
        for (int64_t h = 0; h < H; ++h)
            std::copy_n(q_full + (t * H + h) * qk + nope, rope_dims, q + (t * H + h) * kd + kv_lora);

    // Key row [norm(latent), k_pe] and value row norm(latent).
    float* k = grow(p.s.k, n * kd);
    float* v = grow(p.s.v, n * kv_lora);
    kv_a.apply(x, n, k, p);
    for (int64_t t = 0; t < n; ++t) {
        kv_a_norm.apply(k + t * kd, k + t * kd, 1);
        std::copy_n(k + t * kd, kv_lora, v + t * kv_lora);
    }
    // RoPE on the last rope_dims of every head (rope() rotates a head's first n_dims).
    for (int64_t t = 0; t < n; ++t) {
        const int32_t pos = p.batch.positions[size_t(t)];
        rope(q + t * H * kd + kv_lora, int(H), int(kd), pos, attn.opt.rope);
        rope(k + t * kd + kv_lora, 1, int(kd), pos, attn.opt.rope);
    }

    attn.attend(p);  // s.att: per head, the attention-weighted latent
    float* heads = grow(p.s.heads, n * H * v_dim);
    apply_per_head(v_b, p.s.att.data(), H * kv_lora, kv_lora, n, heads, H * v_dim, v_dim, p);
    attn.o.apply(heads, n, out, p);
}

LayerMemory LatentAttention::memory() const {
    LayerMemory m = attn.memory();
    m.f32 = true;
    return m;
}

LatentAttention load_latent_attention(const ModelLoader& ld, const std::string& prefix, int layer, int64_t n_embd,
                                      const LatentAttentionShape& s, const AttentionOptions& opt, float norm_eps) {
    LatentAttention a;
    a.nope = s.nope;
    a.rope_dims = s.rope_dims;
    a.kv_lora = s.kv_lora;
    a.v_dim = s.v_dim;
    a.attn.layer = layer;
    a.attn.opt = opt;
    a.attn.opt.n_head = s.n_head;
    a.attn.opt.n_head_kv = 1;
    a.attn.opt.head_dim = s.kv_lora + s.rope_dims;
    a.attn.opt.head_dim_v = s.kv_lora;
    const int64_t q_dim = int64_t(s.n_head) * (s.nope + s.rope_dims);
    if (s.q_lora > 0) {
        a.q_a = load_linear(ld, prefix + "attn_q_a", n_embd, s.q_lora);
        a.q_a_norm = load_norm(ld, prefix + "attn_q_a_norm", s.q_lora, NormKind::RMS, norm_eps);
        a.q_b = load_linear(ld, prefix + "attn_q_b", s.q_lora, q_dim);
    } else {
        a.q_b = load_linear(ld, prefix + "attn_q", n_embd, q_dim);
    }
    a.kv_a = load_linear(ld, prefix + "attn_kv_a_mqa", n_embd, s.kv_lora + s.rope_dims);
    a.kv_a_norm = load_norm(ld, prefix + "attn_kv_a_norm", s.kv_lora, NormKind::RMS, norm_eps);
    a.k_b = ld.experts(prefix + "attn_k_b.weight", s.nope, s.kv_lora, s.n_head);
    a.v_b = ld.experts(prefix + "attn_v_b.weight", s.kv_lora, s.v_dim, s.n_head);
    a.attn.o = load_linear(ld, prefix + "attn_output", int64_t(s.n_head) * s.v_dim, n_embd);
    return a;
}

}  // namespace pensieve
