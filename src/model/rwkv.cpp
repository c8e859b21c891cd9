#include "model/rwkv.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "util/error.h"

namespace pensieve {

namespace {

// The group norm's epsilon: the RWKV-6 reference's GroupNorm eps, 1e-5 times the square
// of its head_size_divisor 8 (the reference engine uses the same constant).
constexpr float kGroupNormEps = 64e-5f;

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// out[t] = x[t] + sx[t] ⊙ mu for n rows of dim values (a token-shift lerp).
void lerp_rows(const float* x, const float* sx, const float* mu, float* out, int64_t n, int64_t dim) {
    for (int64_t t = 0; t < n; ++t)
        for (int64_t c = 0; c < dim; ++c) out[t * dim + c] = x[t * dim + c] + sx[t * dim + c] * mu[c];
}

// sx = x_prev - x for the batch (token_shift, then the difference every lerp scales).
float* shift_difference(int layer, const float* x, int64_t dim, Pass& p) {
    float* sx = grow(p.s.shift, p.n * dim);
    token_shift(layer, x, sx, dim, p);
    for (int64_t i = 0; i < p.n * dim; ++i) sx[i] -= x[i];
    return sx;
}

// The row x[t] becomes its sequence's shift state: after the part consumed the position,
// so that a block-end snapshot holds it.
void keep_shift(int layer, int64_t t, const float* x, int64_t dim, Pass& p) {
    std::copy_n(x + t * dim, dim, p.cache.state(layer, p.batch.seq_ids[size_t(t)]));
}

}  // namespace

Rwkv6Dims read_rwkv6_dims(const HParams& hp) {
    Rwkv6Dims d;
    d.n_embd = hp.count("embedding_length");
    d.head_size = hp.count("wkv.head_size");
    d.mix_rank = hp.count("time_mix_extra_dim");
    d.decay_rank = hp.count("time_decay_extra_dim");
    d.n_ff = hp.count("feed_forward_length");
    if (d.n_embd % d.head_size != 0)
        fail(hp.arch(), ": embedding_length ", d.n_embd, " must be a multiple of wkv.head_size ", d.head_size);
    return d;
}

// ---- the steps ----

void token_shift(int layer, const float* x, float* prev, int64_t dim, Pass& p) {
    std::vector<int64_t> last(size_t(p.cache.n_seq()), -1);  // each sequence's latest batch row
    for (int64_t t = 0; t < p.n; ++t) {
        const int seq = p.batch.seq_ids[size_t(t)];
        const int64_t before = last[size_t(seq)];
        const float* src = before < 0 ? p.cache.state(layer, seq) : x + before * dim;
        std::copy_n(src, dim, prev + t * dim);
        last[size_t(seq)] = t;
    }
}

void wkv6_step(float* S, const float* r, const float* k, const float* v, const float* w, const float* u, float* y,
               int64_t n_head, int64_t head_size) {
    const int64_t N = head_size;
    for (int64_t h = 0; h < n_head; ++h) {
        const int64_t c0 = h * N;
        float* Sh = S + h * N * N;
        float* yh = y + c0;
        std::fill_n(yh, N, 0.0f);
        for (int64_t i = 0; i < N; ++i) {
            const float ki = k[c0 + i], ri = r[c0 + i], ui = u[c0 + i], wi = w[c0 + i];
            float* Si = Sh + i * N;
            for (int64_t j = 0; j < N; ++j) {
                const float kv = ki * v[c0 + j];
                yh[j] += ri * (ui * kv + Si[j]);  // the current token enters through the bonus u only
                Si[j] = wi * Si[j] + kv;
            }
        }
    }
}

void head_group_norm(float* y, const float* w, const float* b, int64_t dim, int64_t head_size, float eps) {
    for (int64_t c0 = 0; c0 < dim; c0 += head_size) layer_norm(y + c0, w + c0, b + c0, y + c0, head_size, eps);
}

// ---- RWKV-6 time mix ----

LayerMemory Rwkv6TimeMix::memory() const {
    return LayerMemory::recurrent(int(dims.n_embd + dims.n_head() * dims.head_size * dims.head_size));
}

Rwkv6TimeMix load_rwkv6_time_mix(const ModelLoader& ld, const std::string& prefix, int layer, const Rwkv6Dims& d) {
    const int64_t C = d.n_embd;
    const std::string p = prefix + "time_mix_";
    Rwkv6TimeMix m;
    m.layer = layer;
    m.dims = d;
    m.lerp_x = ld.vector(p + "lerp_x.weight", C);
    m.mix_a = load_linear(ld, p + "w1", C, kMixTargets * d.mix_rank);
    m.mix_b = ld.experts(p + "w2.weight", d.mix_rank, C, kMixTargets);
    m.lerp = ld.values(p + "lerp_fused.weight", {C, 1, 1, kMixTargets});
    m.decay = ld.vector(p + "decay.weight", C);
    m.decay_a = load_linear(ld, p + "decay_w1", C, d.decay_rank);
    m.decay_b = load_linear(ld, p + "decay_w2", d.decay_rank, C);
    m.bonus = ld.values(p + "first.weight", {d.head_size, d.n_head()});
    m.receptance = load_linear(ld, p + "receptance", C, C);
    m.key = load_linear(ld, p + "key", C, C);
    m.value = load_linear(ld, p + "value", C, C);
    m.gate = load_linear(ld, p + "gate", C, C);
    m.output = load_linear(ld, p + "output", C, C);
    m.ln_w = ld.vector(p + "ln.weight", C);
    m.ln_b = ld.vector(p + "ln.bias", C);
    return m;
}

void Rwkv6TimeMix::apply(const float* x, float* result, Pass& p) const {
    const int64_t n = p.n, C = dims.n_embd, R = dims.mix_rank;
    const float* sx = shift_difference(layer, x, C, p);

    // ddlerp: the five lerped inputs x_i, target-major ([target][token][channel]).
    float* xi = grow(p.s.mix, kMixTargets * n * C);
    lerp_rows(x, sx, lerp_x.data(), xi, n, C);  // x + sx ⊙ μ_x, the LoRA's input
    float* lora = grow(p.s.lora, n * kMixTargets * R);
    mix_a.apply(xi, n, lora, p);
    for (int64_t i = 0; i < n * kMixTargets * R; ++i) lora[i] = std::tanh(lora[i]);
    apply_per_head(mix_b, lora, kMixTargets * R, R, n, xi, C, n * C, p);  // m_i
    for (int target = 0; target < kMixTargets; ++target) {
        float* rows = xi + target * n * C;
        const float* lambda = lerp.data() + target * C;
        for (int64_t t = 0; t < n; ++t)
            for (int64_t c = 0; c < C; ++c) {
                const int64_t o = t * C + c;
                rows[o] = x[o] + sx[o] * (lambda[c] + rows[o]);
            }
    }

    float* r = grow(p.s.q, n * C);
    float* k = grow(p.s.k, n * C);
    float* v = grow(p.s.v, n * C);
    float* g = grow(p.s.gate, n * C);
    receptance.apply(xi + kMixR * n * C, n, r, p);
    key.apply(xi + kMixK * n * C, n, k, p);
    value.apply(xi + kMixV * n * C, n, v, p);
    gate.apply(xi + kMixG * n * C, n, g, p);
    activate(g, n * C, Activation::SiLU);

    // The decay w = exp(-exp(d + Wd2 · tanh(Wd1 · x_w))).
    float* dl = grow(p.s.lora, n * dims.decay_rank);  // (the mix LoRA is spent)
    decay_a.apply(xi + kMixW * n * C, n, dl, p);
    for (int64_t i = 0; i < n * dims.decay_rank; ++i) dl[i] = std::tanh(dl[i]);
    float* w = grow(p.s.decay, n * C);
    decay_b.apply(dl, n, w, p);
    for (int64_t t = 0; t < n; ++t)
        for (int64_t c = 0; c < C; ++c) w[t * C + c] = std::exp(-std::exp(decay[size_t(c)] + w[t * C + c]));

    // The recurrence, token by token in batch order (a sequence's positions come in order).
    float* y = grow(p.s.att, n * C);
    for (int64_t t = 0; t < n; ++t) {
        const int seq = p.batch.seq_ids[size_t(t)];
        float* S = p.cache.state(layer, seq) + C;
        const int64_t o = t * C;
        wkv6_step(S, r + o, k + o, v + o, w + o, bonus.data(), y + o, dims.n_head(), dims.head_size);
        keep_shift(layer, t, x, C, p);
        p.cache.on_position_done(layer, seq, p.batch.positions[size_t(t)]);
    }
    for (int64_t t = 0; t < n; ++t) {
        head_group_norm(y + t * C, ln_w.data(), ln_b.data(), C, dims.head_size, kGroupNormEps);
        for (int64_t c = 0; c < C; ++c) y[t * C + c] *= g[t * C + c];
    }
    output.apply(y, n, result, p);
}

// ---- channel mix ----

LayerMemory RwkvChannelMix::memory() const { return LayerMemory::recurrent(int(n_embd())); }

RwkvChannelMix load_rwkv_channel_mix(const ModelLoader& ld, const std::string& prefix, int layer, int64_t n_embd,
                                     int64_t n_ff) {
    const std::string p = prefix + "channel_mix_";
    RwkvChannelMix m;
    m.layer = layer;
    m.lerp_k = ld.vector(p + "lerp_k.weight", n_embd);
    m.lerp_r = ld.vector(p + "lerp_r.weight", n_embd);
    m.key = load_linear(ld, p + "key", n_embd, n_ff);
    m.value = load_linear(ld, p + "value", n_ff, n_embd);
    m.receptance = load_linear(ld, p + "receptance", n_embd, n_embd);
    return m;
}

void RwkvChannelMix::apply(const float* x, float* result, Pass& p) const {
    const int64_t n = p.n, C = n_embd();
    const float* sx = shift_difference(layer, x, C, p);
    for (int64_t t = 0; t < n; ++t) {  // the shift state needs nothing else of this part
        keep_shift(layer, t, x, C, p);
        p.cache.on_position_done(layer, p.batch.seq_ids[size_t(t)], p.batch.positions[size_t(t)]);
    }
    float* xk = grow(p.s.mix, 2 * n * C);
    float* xr = xk + n * C;
    lerp_rows(x, sx, lerp_k.data(), xk, n, C);
    lerp_rows(x, sx, lerp_r.data(), xr, n, C);
    float* k = grow(p.s.up, n * key.out());
    key.apply(xk, n, k, p);
    activate(k, n * key.out(), Activation::ReLU2);
    value.apply(k, n, result, p);
    float* r = grow(p.s.gate, n * C);
    receptance.apply(xr, n, r, p);
    for (int64_t i = 0; i < n * C; ++i) result[i] *= sigmoid(r[i]);
}

}  // namespace pensieve
