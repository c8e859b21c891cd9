// Norms, linear layers, activations, feed-forward, mixture of experts, embeddings and the
// output head (attention is in attention.cpp).
#include "model/blocks.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/dispatch.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace pensieve {

Pass::Pass(const Batch& b, KvCache& c, ThreadPool& tp, Scratch& sc)
    : batch(b), cache(c), pool(tp), s(sc), n(b.size()) {
    seq_end.resize(size_t(c.n_seq()));
    for (int q = 0; q < c.n_seq(); ++q) seq_end[size_t(q)] = c.length(q);
    for (int64_t t = 0; t < n; ++t) {
        int& end = seq_end[size_t(b.seq_ids[size_t(t)])];
        end = std::max(end, b.positions[size_t(t)] + 1);
    }
}

namespace {

// The batch, once begin_pass has checked it: lets DecoderPass check before Pass reads it.
const Batch& begun(const Batch& batch, KvCache& cache, int n_vocab) {
    begin_pass(batch, cache, n_vocab);
    return batch;
}

}  // namespace

DecoderPass::DecoderPass(const Batch& batch, KvCache& cache, ThreadPool& pool, Scratch& scratch, int n_vocab,
                         int64_t n_embd)
    : Pass(begun(batch, cache, n_vocab), cache, pool, scratch),
      x(grow(scratch.x, n * n_embd)),
      h(grow(scratch.h, n * n_embd)),
      y(grow(scratch.y, n * n_embd)) {}

float* grow(std::vector<float>& v, int64_t n) {
    if (v.size() < size_t(n)) v.resize(size_t(n));
    return v.data();
}

// ---- norms ----

void Norm::apply(const float* x, float* out, int64_t rows) const {
    const int64_t d = dim();
    for (int64_t r = 0; r < rows; ++r) {
        if (kind == NormKind::Layer) {
            layer_norm(x + r * d, weight.data(), bias.empty() ? nullptr : bias.data(), out + r * d, d, eps);
            continue;
        }
        rms_norm(x + r * d, weight.data(), out + r * d, d, eps);
        if (!bias.empty()) add_inplace(out + r * d, bias.data(), d);
    }
}

Norm load_norm(const ModelLoader& ld, const std::string& name, int64_t dim, NormKind kind, float eps, bool plus_one) {
    Norm n;
    n.kind = kind;
    n.eps = eps;
    n.weight = ld.vector(name + ".weight", dim);
    if (plus_one)
        for (float& w : n.weight) w += 1.0f;
    if (ld.has(name + ".bias")) n.bias = ld.vector(name + ".bias", dim);
    return n;
}

// ---- linear ----

void add_bias(float* rows, const std::vector<float>& bias, int64_t n) {
    if (bias.empty()) return;
    const int64_t dim = int64_t(bias.size());
    for (int64_t t = 0; t < n; ++t) add_inplace(rows + t * dim, bias.data(), dim);
}

void Linear::apply(const float* x, int64_t n, float* y, Pass& p) const {
    matmul(w, x, n, y, p.pool, p.s.mm);
    if (scale != 1.0f)
        for (int64_t i = 0; i < n * w.rows; ++i) y[i] *= scale;
    add_bias(y, b, n);
}

Linear load_linear(const ModelLoader& ld, const std::string& name, int64_t in, int64_t out) {
    Linear l;
    l.w = ld.matrix(name + ".weight", in, out);
    if (ld.has(name + ".scale")) l.scale = ld.vector(name + ".scale", 1)[0];
    if (ld.has(name + ".bias")) l.b = ld.vector(name + ".bias", l.w.rows);
    return l;
}

std::vector<Linear> load_fused_linear(const ModelLoader& ld, const std::string& name, int64_t in,
                                      const std::vector<int64_t>& outs) {
    int64_t total = 0;
    for (int64_t o : outs) total += o;
    const Linear fused = load_linear(ld, name, in, total);
    std::vector<Linear> parts;
    int64_t first = 0;
    for (int64_t o : outs) {
        Linear l;
        l.w = fused.w.row_range(first, o);
        if (!fused.b.empty()) l.b.assign(fused.b.begin() + first, fused.b.begin() + first + o);
        parts.push_back(std::move(l));
        first += o;
    }
    return parts;
}

// ---- activations ----

namespace {

float gelu(float x) { return 0.5f * x * (1.0f + std::erf(x * float(M_SQRT1_2))); }
float gelu_tanh(float x) {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}
float silu(float x) { return x / (1.0f + std::exp(-x)); }

// gpt-oss's clamped SwiGLU constants (fixed in the model, not in the file).
constexpr float kClampedSwiGLUAlpha = 1.702f, kClampedSwiGLULimit = 7.0f;

float activation(float x, Activation act) {
    switch (act) {
        case Activation::SwiGLUClamped: return x / (1.0f + std::exp(-kClampedSwiGLUAlpha * x));
        case Activation::SiLU: return silu(x);
        case Activation::GELU: return gelu(x);
        case Activation::GELUTanh: return gelu_tanh(x);
        case Activation::ReLU: return std::max(x, 0.0f);
        case Activation::ReLU2: {
            const float r = std::max(x, 0.0f);
            return r * r;
        }
    }
    return x;
}

}  // namespace

void activate(float* x, int64_t n, Activation act) {
    if (act == Activation::SiLU) return silu(x, n);  // the vectorised kernels (ops.h)
    if (act == Activation::GELUTanh) return gelu_tanh(x, n);
    for (int64_t i = 0; i < n; ++i) x[i] = activation(x[i], act);
}

void gated_activate(float* gate, const float* up, int64_t n, Activation act) {
    if (act == Activation::SiLU) return swiglu(gate, up, n);
    if (act == Activation::GELUTanh) return geglu(gate, up, n);
    if (act == Activation::SwiGLUClamped) {
        for (int64_t i = 0; i < n; ++i) {
            const float g = std::min(gate[i], kClampedSwiGLULimit);
            const float u = std::clamp(up[i], -kClampedSwiGLULimit, kClampedSwiGLULimit);
            gate[i] = activation(g, act) * (u + 1.0f);
        }
        return;
    }
    for (int64_t i = 0; i < n; ++i) gate[i] = activation(gate[i], act) * up[i];
}

// ---- feed-forward ----

namespace {

// Element-wise work on n rows of `width` values, split by rows across the pool once
// there is enough of it (a prompt); a token or two stay on the caller. The activations
// of a 512-token prompt ran on one thread while the other waited.
constexpr int64_t kMinParallelValues = 32768;

template <class F>
void over_rows(int64_t n, int64_t width, Pass& p, F f) {
    const int64_t grain = std::max<int64_t>(1, kMinParallelValues / std::max<int64_t>(1, width));
    p.pool.parallel_for(n, grain, [&](int64_t r0, int64_t r1) { f(r0 * width, (r1 - r0) * width); });
}

}  // namespace

void FeedForward::apply(const float* x, int64_t n, float* out, Pass& p) const {
    const int64_t F = up.out();
    float* u = grow(p.s.up, n * F);
    up.apply(x, n, u, p);
    if (gated()) {
        float* g = grow(p.s.gate, n * F);
        gate.apply(x, n, g, p);
        over_rows(n, F, p, [&](int64_t i, int64_t m) { gated_activate(g + i, u + i, m, act); });
        u = g;
    } else {
        over_rows(n, F, p, [&](int64_t i, int64_t m) { activate(u + i, m, act); });
    }
    if (!inner_norm.empty()) inner_norm.apply(u, u, n);
    down.apply(u, n, out, p);
}

FeedForward load_feed_forward(const ModelLoader& ld, const std::string& prefix, int64_t n_embd, int64_t n_ff,
                              Activation act, bool gated) {
    FeedForward f;
    f.act = act;
    if (gated && !ld.has(prefix + "ffn_gate.weight")) {
        std::vector<Linear> gate_up = load_fused_linear(ld, prefix + "ffn_up", n_embd, {n_ff, n_ff});
        f.gate = std::move(gate_up[0]);
        f.up = std::move(gate_up[1]);
    } else {
        if (gated) f.gate = load_linear(ld, prefix + "ffn_gate", n_embd, n_ff);
        f.up = load_linear(ld, prefix + "ffn_up", n_embd, n_ff);
    }
    f.down = load_linear(ld, prefix + "ffn_down", n_ff, n_embd);
    return f;
}

// ---- mixture of experts ----

void MoE::apply(const float* x, int64_t n, float* out, Pass& p) const {
    const int64_t E = router.in(), F = n_ff;
    const int n_exp = int(router.out()), k = n_used;

    float* router_logits = grow(p.s.router, n * n_exp);
    router.apply(x, n, router_logits, p);

    // expert -> list of (token, weight)
    std::vector<std::vector<std::pair<int64_t, float>>> routed(static_cast<size_t>(n_exp));
    std::vector<int> order(static_cast<size_t>(n_exp));
    for (int64_t t = 0; t < n; ++t) {
        float* pr = &router_logits[size_t(t * n_exp)];
        if (gating == Gating::Softmax) softmax(pr, n_exp);
        else
            for (int e = 0; e < n_exp; ++e) pr[e] = 1.0f / (1.0f + std::exp(-pr[e]));
        auto chooser = [&](int e) { return pr[e] + (select_bias.empty() ? 0.0f : select_bias[size_t(e)]); };
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
            return chooser(a) > chooser(b) || (chooser(a) == chooser(b) && a < b);
        });
        float sum = 0.0f;
        for (int j = 0; j < k; ++j) sum += pr[order[size_t(j)]];
        if (!normalize) sum = 1.0f;
        for (int j = 0; j < k; ++j)
            routed[size_t(order[size_t(j)])].emplace_back(t, pr[order[size_t(j)]] / sum * weights_scale);
    }

    std::fill(out, out + n * E, 0.0f);
    float* g = grow(p.s.gate, n * F);
    float* u = grow(p.s.up, n * F);
    for (int e = 0; e < n_exp; ++e) {
        const auto& toks = routed[size_t(e)];
        if (toks.empty()) continue;
        const int64_t m = int64_t(toks.size());
        float* xin = grow(p.s.moe_in, m * E);
        float* y = grow(p.s.moe_out, m * E);
        for (int64_t i = 0; i < m; ++i) std::copy_n(&x[size_t(toks[size_t(i)].first * E)], E, &xin[size_t(i * E)]);
        matmul(gate[size_t(e)], xin, m, g, p.pool, p.s.mm);
        matmul(up[size_t(e)], xin, m, u, p.pool, p.s.mm);
        if (!gate_bias.empty()) {
            add_bias(g, gate_bias[size_t(e)], m);
            add_bias(u, up_bias[size_t(e)], m);
        }
        over_rows(m, F, p, [&](int64_t i, int64_t k) { gated_activate(g + i, u + i, k, act); });
        matmul(down[size_t(e)], g, m, y, p.pool, p.s.mm);
        if (!down_bias.empty()) add_bias(y, down_bias[size_t(e)], m);
        for (int64_t i = 0; i < m; ++i) {
            const auto [t, wgt] = toks[size_t(i)];
            for (int64_t d = 0; d < E; ++d) out[size_t(t * E + d)] += wgt * y[size_t(i * E + d)];
        }
    }
    if (has_shared()) add_shared_expert(x, n, out, p);
}

void MoE::add_shared_expert(const float* x, int64_t n, float* out, Pass& p) const {
    const int64_t E = router.in();
    float* y = grow(p.s.shared, n * E);
    shared.apply(x, n, y, p);
    for (int64_t t = 0; t < n; ++t) {
        float scale = 1.0f;
        if (!shared_gate.empty()) {
            float dot = 0.0f;
            for (int64_t d = 0; d < E; ++d) dot += shared_gate[size_t(d)] * x[size_t(t * E + d)];
            scale = 1.0f / (1.0f + std::exp(-dot));
        }
        for (int64_t d = 0; d < E; ++d) out[size_t(t * E + d)] += scale * y[size_t(t * E + d)];
    }
}

MoE load_moe(const ModelLoader& ld, const std::string& prefix, int64_t n_embd, int64_t n_ff, int n_expert,
             int n_used) {
    MoE m;
    m.router = load_linear(ld, prefix + "ffn_gate_inp", n_embd, n_expert);
    m.gate = ld.experts(prefix + "ffn_gate_exps.weight", n_embd, n_ff, n_expert);
    m.up = ld.experts(prefix + "ffn_up_exps.weight", n_embd, n_ff, n_expert);
    m.down = ld.experts(prefix + "ffn_down_exps.weight", n_ff, n_embd, n_expert);
    if (ld.has(prefix + "ffn_gate_exps.bias")) {
        m.gate_bias = ld.expert_vectors(prefix + "ffn_gate_exps.bias", n_ff, n_expert);
        m.up_bias = ld.expert_vectors(prefix + "ffn_up_exps.bias", n_ff, n_expert);
        m.down_bias = ld.expert_vectors(prefix + "ffn_down_exps.bias", n_embd, n_expert);
    }
    m.n_used = n_used;
    m.n_ff = n_ff;
    return m;
}

void load_shared_expert(const ModelLoader& ld, const std::string& prefix, int64_t n_embd, MoE& moe) {
    FeedForward& f = moe.shared;
    f.act = moe.act;
    f.gate = load_linear(ld, prefix + "ffn_gate_shexp", n_embd, -1);
    f.up = load_linear(ld, prefix + "ffn_up_shexp", n_embd, f.gate.out());
    f.down = load_linear(ld, prefix + "ffn_down_shexp", f.gate.out(), n_embd);
    if (ld.has(prefix + "ffn_gate_inp_shexp.weight"))
        moe.shared_gate = ld.vector(prefix + "ffn_gate_inp_shexp.weight", n_embd);
}

// ---- embeddings and output ----

void begin_pass(const Batch& batch, KvCache& cache, int n_vocab) {
    const size_t n = batch.tokens.size();
    if (batch.positions.size() != n || batch.seq_ids.size() != n || batch.want_logits.size() != n ||
        (!batch.token_types.empty() && batch.token_types.size() != n) ||
        (!batch.kv_slots.empty() && batch.kv_slots.size() != n))
        fail("malformed batch: field sizes differ");
    for (int32_t tok : batch.tokens)
        if (tok < 0 || tok >= n_vocab) fail("token id ", tok, " is outside the vocabulary (", n_vocab, ")");
    for (size_t t = 0; t < n; ++t)
        if (batch.tree_row(int64_t(t)) && (batch.positions[t] < 0 || batch.positions[t] >= batch.slot(int64_t(t))))
            fail("tree row ", t, ": its position must come before its cache slot");
    cache.reserve_batch(batch.seq_ids, batch.slots());
}

void Embedding::apply(const Batch& batch, float* x) const {
    const int64_t E = tokens.cols;
    std::vector<float> row;
    for (int64_t t = 0; t < batch.size(); ++t) {
        float* xt = x + t * E;
        dequantize_row(tokens, batch.tokens[size_t(t)], xt);
        if (scale != 1.0f)
            for (int64_t i = 0; i < E; ++i) xt[i] *= scale;
        row.resize(size_t(E));
        const int32_t type = batch.token_types.empty() ? 0 : batch.token_types[size_t(t)];
        if (type != 0 && (!types.data || type < 0 || type >= types.rows))
            fail("token type ", type, " is outside the model's ", types.data ? types.rows : 1, " token types");
        if (types.data) {
            dequantize_row(types, type, row.data());
            add_inplace(xt, row.data(), E);
        }
        if (!positions.data) continue;
        const int32_t pos = batch.positions[size_t(t)];
        if (pos >= positions.rows)
            fail("position ", pos, " is past the model's ", positions.rows, " learned positions");
        dequantize_row(positions, pos, row.data());
        add_inplace(xt, row.data(), E);
    }
}

void OutputHead::apply(float* x, Pass& p, const ForwardOutputs& out, Pooling pooling) const {
    const int64_t n = p.n, E = norm.dim();
    const Batch& batch = p.batch;
    // Final norm of the rows anyone reads: the tokens that want output (pooling reads all).
    float* normed = grow(p.s.normed, n * E);
    int64_t n_out = 0;
    for (int64_t t = 0; t < n; ++t) {
        if (!out.pooled && !batch.want_logits[size_t(t)]) continue;
        norm.apply(x + t * E, out.pooled ? x + t * E : normed + n_out * E, 1);
        if (out.pooled && batch.want_logits[size_t(t)]) std::copy_n(x + t * E, E, normed + n_out * E);
        n_out += batch.want_logits[size_t(t)] ? 1 : 0;
    }
    if (out.embeddings) std::copy_n(normed, n_out * E, out.embeddings);
    if (out.logits && n_out > 0) {
        matmul(w, normed, n_out, out.logits, p.pool, p.s.mm);
        const int64_t V = w.rows;
        for (int64_t i = 0; i < n_out * V && (scale != 1.0f || soft_cap > 0.0f); ++i) {
            float& l = out.logits[size_t(i)];
            l *= scale;
            if (soft_cap > 0.0f) l = soft_cap * std::tanh(l / soft_cap);
        }
    }
    if (out.pooled) pool_sequences(x, E, batch, pooling, out.pooled);
}

void ClassifierHead::apply(const float* x, Pass& p, float* scores) const {
    const int64_t E = out.in();
    std::vector<int32_t> seqs;
    for (int32_t s : p.batch.seq_ids)
        if (std::find(seqs.begin(), seqs.end(), s) == seqs.end()) seqs.push_back(s);
    const int64_t n_seq = int64_t(seqs.size());
    std::vector<float> first(size_t(n_seq * E)), hidden(size_t(n_seq * E));
    pool_sequences(x, E, p.batch, Pooling::Cls, first.data());
    const float* h = first.data();
    if (dense.w.data) {
        dense.apply(first.data(), n_seq, hidden.data(), p);
        for (float& v : hidden) v = std::tanh(v);
        h = hidden.data();
    }
    out.apply(h, n_seq, scores, p);
}

ClassifierHead load_classifier_head(const ModelLoader& ld, int64_t n_embd) {
    ClassifierHead c;
    if (ld.has("cls.weight")) c.dense = load_linear(ld, "cls", n_embd, n_embd);
    c.out = load_linear(ld, "cls.output", n_embd, -1);
    return c;
}

OutputHead load_output_head(const ModelLoader& ld, const WeightMatrix& token_embd, int64_t n_embd, NormKind kind,
                            float eps) {
    OutputHead h;
    h.norm = load_norm(ld, "output_norm", n_embd, kind, eps);
    // Tied embeddings: models without output.weight reuse the token embedding matrix.
    h.w = ld.has("output.weight") ? ld.matrix("output.weight", n_embd, token_embd.rows) : token_embd;
    return h;
}

void pool_sequences(const float* x, int64_t dim, const Batch& batch, Pooling pooling, float* pooled) {
    std::vector<int> seqs;
    for (int32_t s : batch.seq_ids)
        if (std::find(seqs.begin(), seqs.end(), s) == seqs.end()) seqs.push_back(s);
    for (size_t i = 0; i < seqs.size(); ++i) {
        float* dst = pooled + int64_t(i) * dim;
        std::fill(dst, dst + dim, 0.0f);
        int count = 0;
        const float* first = nullptr;
        const float* last = nullptr;
        for (int64_t t = 0; t < batch.size(); ++t) {
            if (batch.seq_ids[size_t(t)] != seqs[i]) continue;
            const float* xt = x + t * dim;
            if (!first) first = xt;
            last = xt;
            add_inplace(dst, xt, dim);
            ++count;
        }
        if (pooling == Pooling::Mean)
            for (int64_t d = 0; d < dim; ++d) dst[d] /= float(count);
        else
            std::copy_n(pooling == Pooling::Cls || pooling == Pooling::Rank ? first : last, dim, dst);
    }
}

void write_hidden_outputs(const float* x, int64_t dim, const Batch& batch, const ForwardOutputs& out,
                          Pooling pooling) {
    int64_t n_out = 0;
    for (int64_t t = 0; t < batch.size() && out.embeddings; ++t)
        if (batch.want_logits[size_t(t)]) std::copy_n(x + t * dim, dim, out.embeddings + dim * n_out++);
    if (out.pooled) pool_sequences(x, dim, batch, pooling, out.pooled);
}

// ---- RoPE frequency factors ----

LongRope load_long_rope(const HParams& hp, const ModelLoader& ld, int n_dims) {
    LongRope r;
    if (!ld.has("rope_factors_long.weight") && !ld.has("rope_factors_short.weight")) return r;
    r.long_factors = ld.vector("rope_factors_long.weight", n_dims / 2);
    r.short_factors = ld.vector("rope_factors_short.weight", n_dims / 2);
    for (float f : r.long_factors)
        if (!(f > 0.0f)) fail(ld.file().path(), ": rope_factors_long has a factor ", f, " (must be > 0)");
    for (float f : r.short_factors)
        if (!(f > 0.0f)) fail(ld.file().path(), ": rope_factors_short has a factor ", f, " (must be > 0)");
    r.n_ctx_orig = hp.count("rope.scaling.original_context_length", hp.count("context_length", 2048));
    return r;
}

}  // namespace pensieve
