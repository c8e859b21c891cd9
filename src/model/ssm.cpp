#include "model/ssm.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace pensieve {

MambaDims read_mamba_dims(const HParams& hp) {
    MambaDims d;
    d.d_inner = hp.count("ssm.inner_size");
    d.d_state = hp.count("ssm.state_size");
    d.d_conv = hp.count("ssm.conv_kernel");
    d.dt_rank = hp.count("ssm.time_step_rank");
    return d;
}

LayerMemory MambaMixer::memory() const {
    return LayerMemory::recurrent(int(conv_floats() + dims.d_inner * dims.d_state));
}

MambaMixer load_mamba_mixer(const ModelLoader& ld, const std::string& prefix, int layer, int64_t n_embd,
                            const MambaDims& dims) {
    const int64_t I = dims.d_inner, S = dims.d_state;
    MambaMixer m;
    m.layer = layer;
    m.dims = dims;
    m.in = load_linear(ld, prefix + "ssm_in", n_embd, 2 * I);
    m.conv_w = ld.values(prefix + "ssm_conv1d.weight", {dims.d_conv, I});
    m.conv_b = ld.vector(prefix + "ssm_conv1d.bias", I);
    m.x_proj = load_linear(ld, prefix + "ssm_x", I, dims.dt_rank + 2 * S);
    m.dt_proj = load_linear(ld, prefix + "ssm_dt", dims.dt_rank, I);
    m.A = ld.values(prefix + "ssm_a", {S, I});
    m.D = ld.vector(prefix + "ssm_d", I);
    m.out = load_linear(ld, prefix + "ssm_out", I, n_embd);
    return m;
}

// ---- the steps ----

void causal_conv_step(const float* state, const float* x, const float* w, const float* b, float* out,
                      int64_t channels, int64_t d_conv) {
    for (int64_t c = 0; c < channels; ++c) {
        const float* wc = w + c * d_conv;
        float sum = b[c];
        for (int64_t k = 0; k + 1 < d_conv; ++k) sum += wc[k] * state[k * channels + c];
        out[c] = sum + wc[d_conv - 1] * x[c];
    }
}

void push_conv_state(float* state, const float* x, int64_t channels, int64_t d_conv) {
    if (d_conv < 2) return;
    std::copy(state + channels, state + (d_conv - 1) * channels, state);
    std::copy(x, x + channels, state + (d_conv - 2) * channels);
}

float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

void selective_scan_step(float* h, const float* u, const float* dt, const float* A, const float* B,
                         const float* C, const float* D, float* y, int64_t d_inner, int64_t d_state) {
    for (int64_t c = 0; c < d_inner; ++c) {
        const float uc = u[c], dtc = dt[c];
        float* hc = h + c * d_state;
        const float* Ac = A + c * d_state;
        float sum = 0.0f;
        for (int64_t s = 0; s < d_state; ++s) {
            hc[s] = std::exp(dtc * Ac[s]) * hc[s] + dtc * B[s] * uc;
            sum += C[s] * hc[s];
        }
        y[c] = sum + D[c] * uc;
    }
}

// ---- the mixer ----

namespace {

float silu(float x) { return x / (1.0f + std::exp(-x)); }

// u = silu(conv1d(x)) for every token, in batch order. Each sequence's conv window starts
// from a copy of its state (the live state advances in the scan, position by position, so
// block-end snapshots see it as it was at that position).
void convolve(const MambaMixer& m, const float* xz, float* u, Pass& p) {
    const int64_t I = m.dims.d_inner, cf = m.conv_floats();
    float* states = grow(p.s.conv_states, int64_t(p.cache.n_seq()) * cf);
    std::vector<uint8_t> copied(size_t(p.cache.n_seq()), 0);
    for (int64_t t = 0; t < p.n; ++t) {
        const int seq = p.batch.seq_ids[size_t(t)];
        float* st = states + seq * cf;
        if (!copied[size_t(seq)]) {
            const float* live = p.cache.state(m.layer, seq);
            std::copy(live, live + cf, st);
            copied[size_t(seq)] = 1;
        }
        const float* x = xz + t * 2 * I;
        causal_conv_step(st, x, m.conv_w.data(), m.conv_b.data(), u + t * I, I, m.dims.d_conv);
        push_conv_state(st, x, I, m.dims.d_conv);
    }
    for (int64_t i = 0; i < p.n * I; ++i) u[i] = silu(u[i]);
}

// dt = softplus(W_dt · dt_low + b_dt) for every token; dt_low is the first dt_rank values
// of each row of dbc.
void time_steps(const MambaMixer& m, const float* dbc, float* dt, Pass& p) {
    const int64_t R = m.dims.dt_rank, W = m.x_proj.out();
    float* low = grow(p.s.dt_in, p.n * R);
    for (int64_t t = 0; t < p.n; ++t) std::copy(dbc + t * W, dbc + t * W + R, low + t * R);
    m.dt_proj.apply(low, p.n, dt, p);
    for (int64_t i = 0; i < p.n * m.dims.d_inner; ++i) dt[i] = softplus(dt[i]);
}

}  // namespace

void MambaMixer::apply(const float* x, float* result, Pass& p) const {
    const int64_t n = p.n, I = dims.d_inner, S = dims.d_state, W = x_proj.out();
    float* xz = grow(p.s.xz, n * 2 * I);
    in.apply(x, n, xz, p);
    float* u = grow(p.s.conv, n * I);
    convolve(*this, xz, u, p);
    float* dbc = grow(p.s.dbc, n * W);
    x_proj.apply(u, n, dbc, p);
    float* dt = grow(p.s.dt, n * I);
    time_steps(*this, dbc, dt, p);

    // The scan, token by token in batch order (a sequence's positions come in order):
    // advances the live conv and SSM states; y overwrites u, then is gated by silu(z).
    for (int64_t t = 0; t < n; ++t) {
        const int seq = p.batch.seq_ids[size_t(t)];
        float* conv_state = p.cache.state(layer, seq);
        float* h = conv_state + conv_floats();
        const float* xt = xz + t * 2 * I;
        const float* z = xt + I;
        const float* B = dbc + t * W + dims.dt_rank;
        push_conv_state(conv_state, xt, I, dims.d_conv);
        float* y = u + t * I;
        selective_scan_step(h, y, dt + t * I, A.data(), B, B + S, D.data(), y, I, S);
        for (int64_t c = 0; c < I; ++c) y[c] *= silu(z[c]);
        p.cache.on_position_done(layer, seq, p.batch.positions[size_t(t)]);
    }
    out.apply(u, n, result, p);
}

}  // namespace pensieve
