#include "model/ssm.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "kernels/ssm_scan.h"
#include "model/scan_runs.h"
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

Mamba2Dims read_mamba2_dims(const HParams& hp) {
    Mamba2Dims d;
    d.d_inner = hp.count("ssm.inner_size");
    d.d_state = hp.count("ssm.state_size");
    d.d_conv = hp.count("ssm.conv_kernel");
    d.n_head = hp.count("ssm.time_step_rank");
    d.n_group = hp.count("ssm.group_count");
    if (d.d_inner % d.n_head != 0 || d.n_head % d.n_group != 0)
        fail(hp.arch(), ": ssm.inner_size ", d.d_inner, " must be a multiple of the heads (ssm.time_step_rank ",
             d.n_head, "), and the heads of the groups (ssm.group_count ", d.n_group, ")");
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

LayerMemory Mamba2Mixer::memory() const {
    return LayerMemory::recurrent(int(conv_floats() + dims.d_inner * dims.d_state));
}

Mamba2Mixer load_mamba2_mixer(const ModelLoader& ld, const std::string& prefix, int layer, int64_t n_embd,
                              const Mamba2Dims& dims, float norm_eps) {
    const int64_t I = dims.d_inner, H = dims.n_head, G = dims.n_group, CC = dims.conv_channels();
    Mamba2Mixer m;
    m.layer = layer;
    m.dims = dims;
    m.norm_eps = norm_eps;
    m.in = load_linear(ld, prefix + "ssm_in", n_embd, I + CC + H);
    m.conv_w = ld.values(prefix + "ssm_conv1d.weight", {dims.d_conv, CC});
    m.conv_b = ld.vector(prefix + "ssm_conv1d.bias", CC);
    m.dt_bias = ld.vector(prefix + "ssm_dt.bias", H);
    m.A = ld.values(prefix + "ssm_a", {1, H});
    m.D = ld.values(prefix + "ssm_d", {1, H});
    m.norm_w = ld.values(prefix + "ssm_norm.weight", {I / G, G});
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

namespace {

float silu(float x) { return x / (1.0f + std::exp(-x)); }

}  // namespace

void ssd_scan_step(float* S, const float* x, const float* dt, const float* A, const float* B, const float* C,
                   const float* D, float* y, int64_t n_head, int64_t head_dim, int64_t n_group, int64_t d_state) {
    ssd_scan_heads(S, x, dt, A, B, C, D, y, n_head, head_dim, n_group, d_state, 0, n_head);
}

void ssd_scan_heads(float* S, const float* x, const float* dt, const float* A, const float* B, const float* C,
                    const float* D, float* y, int64_t n_head, int64_t head_dim, int64_t n_group, int64_t d_state,
                    int64_t h0, int64_t h1) {
    const int64_t heads_per_group = n_head / n_group;
    for (int64_t h = h0; h < h1; ++h) {
        const int64_t g = h / heads_per_group;
        const float* Bg = B + g * d_state;
        const float* Cg = C + g * d_state;
        const float decay = std::exp(dt[h] * A[h]);  // one scalar per head: the SSD restriction
        for (int64_t i = 0; i < head_dim; ++i) {
            const int64_t c = h * head_dim + i;
            const float xc = x[c], dt_x = dt[h] * xc;
            float* Sc = S + c * d_state;
            float sum = 0.0f;
            for (int64_t s = 0; s < d_state; ++s) {
                Sc[s] = decay * Sc[s] + dt_x * Bg[s];
                sum += Sc[s] * Cg[s];
            }
            y[c] = sum + D[h] * xc;
        }
    }
}

void gated_group_rms_norm(float* y, const float* z, const float* w, int64_t d_inner, int64_t n_group, float eps) {
    for (int64_t c = 0; c < d_inner; ++c) y[c] *= silu(z[c]);
    const int64_t size = d_inner / n_group;
    for (int64_t g = 0; g < n_group; ++g) rms_norm(y + g * size, w + g * size, y + g * size, size, eps);
}

// ---- the mixers ----

namespace {

// u = silu(conv1d(in)) for every token, in batch order: `channels` values at the start of
// each row of `in` (rows `stride` apart), into rows of `channels` values. Each sequence's
// conv window starts from a copy of its state (the live state advances in the scan,
// position by position, so block-end snapshots see it as it was at that position).
void convolve(int layer, const float* in, int64_t stride, int64_t channels, int64_t d_conv, const float* w,
              const float* b, float* u, Pass& p) {
    const int64_t cf = (d_conv - 1) * channels;
    float* states = grow(p.s.conv_states, int64_t(p.cache.n_seq()) * cf);
    std::vector<uint8_t> copied(size_t(p.cache.n_seq()), 0);
    for (int64_t t = 0; t < p.n; ++t) {
        const int seq = p.batch.seq_ids[size_t(t)];
        float* st = states + seq * cf;
        if (!copied[size_t(seq)]) {
            const float* live = p.cache.state(layer, seq);
            std::copy(live, live + cf, st);
            copied[size_t(seq)] = 1;
        }
        const float* x = in + t * stride;
        causal_conv_step(st, x, w, b, u + t * channels, channels, d_conv);
        push_conv_state(st, x, channels, d_conv);
    }
    for (int64_t i = 0; i < p.n * channels; ++i) u[i] = silu(u[i]);
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
    convolve(layer, xz, 2 * I, I, dims.d_conv, conv_w.data(), conv_b.data(), u, p);
    float* dbc = grow(p.s.dbc, n * W);
    x_proj.apply(u, n, dbc, p);
    float* dt = grow(p.s.dt, n * I);
    time_steps(*this, dbc, dt, p);

    // The scan, in batch order per channel (a sequence's positions come in order), the
    // channels in parallel (model/scan_runs.h): advances the live conv and SSM states; y
    // overwrites u, then is gated by silu(z).
    auto push_conv = [&](int64_t t) {
        push_conv_state(p.cache.state(layer, p.batch.seq_ids[size_t(t)]), xz + t * 2 * I, I, dims.d_conv);
    };
    scan_in_runs(layer, p, I, 4 * S, push_conv, [&](int64_t t0, int64_t t1, int64_t c0, int64_t c1) {
        for (int64_t t = t0; t < t1; ++t) {
            float* h = p.cache.state(layer, p.batch.seq_ids[size_t(t)]) + conv_floats();
            const float* z = xz + t * 2 * I + I;
            const float* B = dbc + t * W + dims.dt_rank;
            float* y = u + t * I;
            selective_scan_avx2(h + c0 * S, y + c0, dt + t * I + c0, A.data() + c0 * S, B, B + S, D.data() + c0,
                                y + c0, c1 - c0, S);
            for (int64_t c = c0; c < c1; ++c) y[c] *= silu(z[c]);
        }
    });
    out.apply(u, n, result, p);
}

void Mamba2Mixer::apply(const float* x, float* result, Pass& p) const {
    const int64_t n = p.n, I = dims.d_inner, H = dims.n_head, G = dims.n_group, N = dims.d_state;
    const int64_t CC = dims.conv_channels(), W = in.out();  // rows of W_in · x: z, xBC, dt
    float* zxbcdt = grow(p.s.xz, n * W);
    in.apply(x, n, zxbcdt, p);
    float* xbc = grow(p.s.conv, n * CC);
    convolve(layer, zxbcdt + I, W, CC, dims.d_conv, conv_w.data(), conv_b.data(), xbc, p);
    float* dt = grow(p.s.dt, n * H);
    for (int64_t t = 0; t < n; ++t)
        for (int64_t h = 0; h < H; ++h) dt[t * H + h] = softplus(zxbcdt[t * W + I + CC + h] + dt_bias[size_t(h)]);

    // The scan, in batch order per head (a sequence's positions come in order), the heads
    // in parallel (model/scan_runs.h): advances the live conv and SSM states.
    float* y = grow(p.s.dbc, n * I);  // (Mamba-1's x_proj rows; free here)
    auto push_conv = [&](int64_t t) {
        push_conv_state(p.cache.state(layer, p.batch.seq_ids[size_t(t)]), zxbcdt + t * W + I, CC, dims.d_conv);
    };
    // A sequence's run of at least kMinChunked tokens (a prompt) takes the chunked scan
    // (kernels/ssm_scan.h); decode steps and short runs the recurrence itself.
    constexpr int64_t kMinChunked = 4;
    const SsdShape shape{H, dims.head_dim(), G, N};
    const bool chunked = ssd_chunked_supported(shape);
    scan_in_runs(layer, p, H, 4 * dims.head_dim() * N, push_conv, [&](int64_t t0, int64_t t1, int64_t h0, int64_t h1) {
        for (int64_t a = t0, b; a < t1; a = b) {
            const int seq = p.batch.seq_ids[size_t(a)];
            for (b = a + 1; b < t1 && p.batch.seq_ids[size_t(b)] == seq; ++b) {}
            float* S = p.cache.state(layer, seq) + conv_floats();
            if (chunked && b - a >= kMinChunked) {
                const float* x0 = xbc + a * CC;
                const SsdTokens tokens{x0, x0 + I, x0 + I + G * N, CC, dt + a * H, y + a * I, I, b - a};
                ssd_scan_chunked_avx2(S, tokens, A.data(), D.data(), shape, h0, h1);
                continue;
            }
            for (int64_t t = a; t < b; ++t) {
                const float* xt = xbc + t * CC;
                const float* B = xt + I;
                ssd_scan_step_avx2(S, xt, dt + t * H, A.data(), B, B + G * N, D.data(), y + t * I, H, dims.head_dim(),
                                   G, N, h0, h1);
            }
        }
    });
    for (int64_t t = 0; t < n; ++t) gated_group_rms_norm(y + t * I, zxbcdt + t * W, norm_w.data(), I, G, norm_eps);
    out.apply(y, n, result, p);
}

}  // namespace pensieve
