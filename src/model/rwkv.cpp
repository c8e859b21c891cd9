#include "model/rwkv.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "model/scan_runs.h"
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

void wkv7_step(float* S, const float* r, const float* w, const float* k, const float* v, const float* a,
               const float* b, float* y, int64_t n_head, int64_t head_size) {
    const int64_t N = head_size;
    for (int64_t h = 0; h < n_head; ++h) {
        const int64_t c0 = h * N;
        float* Sh = S + h * N * N;
        const float *rh = r + c0, *wh = w + c0, *kh = k + c0, *ah = a + c0, *bh = b + c0;
        for (int64_t i = 0; i < N; ++i) {
            float* Si = Sh + i * N;
            float sa = 0.0f;
            for (int64_t j = 0; j < N; ++j) sa += ah[j] * Si[j];
            const float vi = v[c0 + i];
            float acc = 0.0f;
            for (int64_t j = 0; j < N; ++j) {
                Si[j] = Si[j] * wh[j] + vi * kh[j] + sa * bh[j];
                acc += Si[j] * rh[j];
            }
            y[c0 + i] = acc;
        }
    }
}

void head_l2_norm(float* x, int64_t dim, int64_t head_size, float eps) {
    for (int64_t c0 = 0; c0 < dim; c0 += head_size) {
        float sum = 0.0f;
        for (int64_t i = 0; i < head_size; ++i) sum += x[c0 + i] * x[c0 + i];
        const float scale = 1.0f / std::max(std::sqrt(sum), eps);
        for (int64_t i = 0; i < head_size; ++i) x[c0 + i] *= scale;
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

    // The recurrence, in batch order per head (a sequence's positions come in order), the
    // heads in parallel (model/scan_runs.h).
    float* y = grow(p.s.att, n * C);
    const int64_t N = dims.head_size;
    scan_in_runs(layer, p, dims.n_head(), 3 * N * N, [&](int64_t t) { keep_shift(layer, t, x, C, p); },
                 [&](int64_t t0, int64_t t1, int64_t h0, int64_t h1) {
                     for (int64_t t = t0; t < t1; ++t) {
                         float* S = p.cache.state(layer, p.batch.seq_ids[size_t(t)]) + C;
                         const int64_t o = t * C + h0 * N;
                         wkv6_step(S + h0 * N * N, r + o, k + o, v + o, w + o, bonus.data() + h0 * N, y + o, h1 - h0, N);
                     }
                 });
    for (int64_t t = 0; t < n; ++t) {
        head_group_norm(y + t * C, ln_w.data(), ln_b.data(), C, dims.head_size, kGroupNormEps);
        for (int64_t c = 0; c < C; ++c) y[t * C + c] *= g[t * C + c];
    }
    output.apply(y, n, result, p);
}

// ---- RWKV-7 time mix ----

Rwkv7Dims read_rwkv7_dims(const HParams& hp) {
    Rwkv7Dims d;
    d.n_embd = hp.count("embedding_length");
    d.head_size = hp.count("wkv.head_size");
    d.decay_rank = hp.count("attention.decay_lora_rank");
    d.iclr_rank = hp.count("attention.iclr_lora_rank");
    d.value_rank = hp.count("attention.value_residual_mix_lora_rank");
    d.gate_rank = hp.count("attention.gate_lora_rank");
    d.n_ff = hp.count("feed_forward_length");
    if (d.n_embd % d.head_size != 0)
        fail(hp.arch(), ": embedding_length ", d.n_embd, " must be a multiple of wkv.head_size ", d.head_size);
    return d;
}

LayerMemory Rwkv7TimeMix::memory() const {
    return LayerMemory::recurrent(int(dims.n_embd + dims.n_head() * dims.head_size * dims.head_size));
}

Rwkv7TimeMix load_rwkv7_time_mix(const ModelLoader& ld, const std::string& prefix, int layer, bool value_residual,
                                 const Rwkv7Dims& d) {
    const int64_t C = d.n_embd;
    const std::string p = prefix + "time_mix_";
    Rwkv7TimeMix m;
    m.layer = layer;
    m.value_residual = value_residual;
    m.dims = d;
    m.lerp = ld.values(p + "lerp_fused.weight", {C, 1, 1, k7MixTargets});
    m.w0 = ld.vector(p + "w0.weight", C);
    m.w1 = load_linear(ld, p + "w1", C, d.decay_rank);
    m.w2 = load_linear(ld, p + "w2", d.decay_rank, C);
    m.a0 = ld.vector(p + "a0.weight", C);
    m.a1 = load_linear(ld, p + "a1", C, d.iclr_rank);
    m.a2 = load_linear(ld, p + "a2", d.iclr_rank, C);
    if (value_residual) {
        m.v0 = ld.vector(p + "v0.weight", C);
        m.v1 = load_linear(ld, p + "v1", C, d.value_rank);
        m.v2 = load_linear(ld, p + "v2", d.value_rank, C);
    }
    m.g1 = load_linear(ld, p + "g1", C, d.gate_rank);
    m.g2 = load_linear(ld, p + "g2", d.gate_rank, C);
    m.k_k = ld.vector(p + "k_k.weight", C);
    m.k_a = ld.vector(p + "k_a.weight", C);
    m.r_k = ld.vector(p + "r_k.weight", C);
    m.receptance = load_linear(ld, p + "receptance", C, C);
    m.key = load_linear(ld, p + "key", C, C);
    m.value = load_linear(ld, p + "value", C, C);
    m.output = load_linear(ld, p + "output", C, C);
    m.ln_w = ld.vector(p + "ln.weight", C);
    m.ln_b = ld.vector(p + "ln.bias", C);
    return m;
}

namespace {

// out = B · f(A · x) for n rows (a LoRA: A to `rank`, then back to B.out()), f applied in
// place to the inner rows; the inner rows live in p.s.lora.
template <typename F>
void lora(const Linear& A, const Linear& B, const float* x, float* out, Pass& p, F f) {
    float* mid = grow(p.s.lora, p.n * A.out());
    A.apply(x, p.n, mid, p);
    for (int64_t i = 0; i < p.n * A.out(); ++i) mid[i] = f(mid[i]);
    B.apply(mid, p.n, out, p);
}

}  // namespace

void Rwkv7TimeMix::apply(const float* x, float* result, float* v_first, Pass& p) const {
    const int64_t n = p.n, C = dims.n_embd, N = dims.head_size, H = dims.n_head();
    const float* sx = shift_difference(layer, x, C, p);

    float* xi = grow(p.s.mix, k7MixTargets * n * C);  // [target][token][channel]
    for (int target = 0; target < k7MixTargets; ++target)
        lerp_rows(x, sx, lerp.data() + target * C, xi + target * n * C, n, C);
    const auto input = [&](Rwkv7Target target) { return xi + target * n * C; };

    float* r = grow(p.s.q, n * C);
    float* k = grow(p.s.k, n * C);
    float* v = grow(p.s.v, n * C);
    receptance.apply(input(k7MixR), n, r, p);
    key.apply(input(k7MixK), n, k, p);
    value.apply(input(k7MixV), n, v, p);

    const auto identity = [](float z) { return z; };
    float* w = grow(p.s.decay, n * C);
    lora(w1, w2, input(k7MixW), w, p, [](float z) { return std::tanh(z); });
    for (int64_t t = 0; t < n; ++t)
        for (int64_t c = 0; c < C; ++c) {
            float& wc = w[t * C + c];
            wc = std::exp(-0.606531f * sigmoid(w0[size_t(c)] + wc));
        }

    if (!value_residual) {
        std::copy_n(v, n * C, v_first);
    } else {
        float* mix = grow(p.s.att, n * C);  // (y is computed after the mix is spent)
        lora(v1, v2, input(k7MixV), mix, p, identity);
        for (int64_t t = 0; t < n; ++t)
            for (int64_t c = 0; c < C; ++c) {
                const int64_t o = t * C + c;
                v[o] += (v_first[o] - v[o]) * sigmoid(v0[size_t(c)] + mix[o]);
            }
    }

    float* g = grow(p.s.gate, n * C);
    lora(g1, g2, input(k7MixG), g, p, [](float z) { return sigmoid(z); });

    float* a = grow(p.s.iclr, n * C);
    lora(a1, a2, input(k7MixA), a, p, identity);
    for (int64_t t = 0; t < n; ++t)
        for (int64_t c = 0; c < C; ++c) a[t * C + c] = sigmoid(a0[size_t(c)] + a[t * C + c]);

    // kk = L2norm(k ⊙ k_k) per head, then k = k + (a - 1) ⊙ k ⊙ k_a; the recurrence
    // takes -kk as its "a" and kk ⊙ iclr as its "b" (two halves of one buffer).
    float* kk = grow(p.s.kk, 2 * n * C);
    float* kb = kk + n * C;
    for (int64_t t = 0; t < n; ++t) {
        const int64_t o = t * C;
        for (int64_t c = 0; c < C; ++c) kk[o + c] = k[o + c] * k_k[size_t(c)];
        head_l2_norm(kk + o, C, N, 1e-12f);
        for (int64_t c = 0; c < C; ++c) {
            const float ka = k[o + c] * k_a[size_t(c)];
            k[o + c] += a[o + c] * ka - ka;
            kb[o + c] = kk[o + c] * a[o + c];
            kk[o + c] = -kk[o + c];
        }
    }

    float* y = grow(p.s.att, n * C);
    scan_in_runs(layer, p, H, 4 * N * N, [&](int64_t t) { keep_shift(layer, t, x, C, p); },
                 [&](int64_t t0, int64_t t1, int64_t h0, int64_t h1) {
                     for (int64_t t = t0; t < t1; ++t) {
                         float* S = p.cache.state(layer, p.batch.seq_ids[size_t(t)]) + C;
                         const int64_t o = t * C + h0 * N;
                         wkv7_step(S + h0 * N * N, r + o, w + o, k + o, v + o, kk + o, kb + o, y + o, h1 - h0, N);
                     }
                 });
    for (int64_t t = 0; t < n; ++t) {
        float* yt = y + t * C;
        const int64_t o = t * C;
        head_group_norm(yt, ln_w.data(), ln_b.data(), C, N, kGroupNormEps);
        for (int64_t h = 0; h < H; ++h) {
            float bonus = 0.0f;  // Σ r ⊙ k ⊙ r_k over the head
            for (int64_t j = h * N; j < (h + 1) * N; ++j) bonus += k[o + j] * r[o + j] * r_k[size_t(j)];
            for (int64_t j = h * N; j < (h + 1) * N; ++j) yt[j] += v[o + j] * bonus;
        }
        for (int64_t c = 0; c < C; ++c) yt[c] *= g[o + c];
    }
    output.apply(y, n, result, p);
}

// ---- channel mix ----

LayerMemory RwkvChannelMix::memory() const { return LayerMemory::recurrent(int(n_embd())); }

RwkvChannelMix load_rwkv_channel_mix(const ModelLoader& ld, const std::string& prefix, int layer, int64_t n_embd,
                                     int64_t n_ff, bool gated) {
    const std::string p = prefix + "channel_mix_";
    RwkvChannelMix m;
    m.layer = layer;
    m.lerp_k = ld.vector(p + "lerp_k.weight", n_embd);
    m.key = load_linear(ld, p + "key", n_embd, n_ff);
    m.value = load_linear(ld, p + "value", n_ff, n_embd);
    if (gated) {
        m.lerp_r = ld.vector(p + "lerp_r.weight", n_embd);
        m.receptance = load_linear(ld, p + "receptance", n_embd, n_embd);
    }
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
    if (!lerp_r.empty()) lerp_rows(x, sx, lerp_r.data(), xr, n, C);
    float* k = grow(p.s.up, n * key.out());
    key.apply(xk, n, k, p);
    activate(k, n * key.out(), Activation::ReLU2);
    value.apply(k, n, result, p);
    if (lerp_r.empty()) return;  // RWKV-7: no receptance gate
    float* r = grow(p.s.gate, n * C);
    receptance.apply(xr, n, r, p);
    for (int64_t i = 0; i < n * C; ++i) result[i] *= sigmoid(r[i]);
}

}  // namespace pensieve
