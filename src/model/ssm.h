// State-space blocks (Mamba, arXiv:2312.00752; Mamba-2 / SSD, arXiv:2405.21060): a layer
// mixes tokens through a recurrent state instead of attention. Per sequence and layer the
// memory (model/kv_cache.h, LayerMemory::recurrent) holds, in this order:
//   conv state  the last d_conv - 1 inputs of the causal convolution, [d_conv - 1][channels]
//               (Mamba-1: d_inner channels; Mamba-2: x, B and C, d_inner + 2 n_group d_state)
//   SSM state   Mamba-1: h, [d_inner][d_state];  Mamba-2: S, [n_head][head_dim][d_state]
// Both have a fixed size whatever the sequence's length. The steps are written one
// function each, scalar, in the order of the papers' algorithms. Mamba-1 scans token by
// token (prefill too); Mamba-2 reads a prompt in chunks (the SSD paper's chunked form,
// kernels/ssm_scan.h) and decodes token by token. Channels (Mamba-1) or heads (Mamba-2)
// run in parallel (model/scan_runs.h).
#pragma once

#include <string>
#include <vector>

#include "model/blocks.h"

namespace pensieve {

// Mamba-1 hyper-parameters (`<arch>.ssm.*`).
struct MambaDims {
    int64_t d_inner = 0;  // ssm.inner_size: channels of the mixer
    int64_t d_state = 0;  // ssm.state_size: state values per channel
    int64_t d_conv = 0;   // ssm.conv_kernel: width of the causal convolution
    int64_t dt_rank = 0;  // ssm.time_step_rank: width of the low-rank time-step projection
};
MambaDims read_mamba_dims(const HParams& hp);

// What a Mamba layer stack (model/arch/mamba.cpp) needs of its mixer.
struct SsmMixer {
    virtual ~SsmMixer() = default;
    virtual LayerMemory memory() const = 0;
    // out = the mixer of the batch's n rows of x (already normalised); reads and advances
    // each sequence's state, in batch order.
    virtual void apply(const float* x, float* out, Pass& p) const = 0;
};

// One Mamba-1 mixer:
//   x, z = split(W_in · x)
//   u    = silu(conv1d(x))                   causal depthwise over the last d_conv inputs
//   dt, B, C = split(W_x · u);  dt = softplus(W_dt · dt + b_dt)
//   h    = exp(dt · A) ⊙ h + dt · B · u      per channel, per state value
//   y    = C · h + D ⊙ u
//   out  = W_out · (y ⊙ silu(z))
struct MambaMixer final : SsmMixer {
    int layer = 0;  // this layer's index in the memory
    MambaDims dims;
    Linear in, x_proj, dt_proj, out;
    std::vector<float> conv_w;  // [d_inner][d_conv]
    std::vector<float> conv_b;  // [d_inner]
    std::vector<float> A;       // [d_inner][d_state], already -exp(A_log) in the file
    std::vector<float> D;       // [d_inner]
    int64_t conv_floats() const { return (dims.d_conv - 1) * dims.d_inner; }
    LayerMemory memory() const override;
    void apply(const float* x, float* out, Pass& p) const override;
};
// `<prefix>ssm_{in,conv1d,x,dt,a,d,out}`.
MambaMixer load_mamba_mixer(const ModelLoader& ld, const std::string& prefix, int layer, int64_t n_embd,
                            const MambaDims& dims);

// Mamba-2 hyper-parameters (`<arch>.ssm.*`).
struct Mamba2Dims {
    int64_t d_inner = 0;  // ssm.inner_size
    int64_t d_state = 0;  // ssm.state_size: state values per head channel (and per B, C)
    int64_t d_conv = 0;   // ssm.conv_kernel
    int64_t n_head = 0;   // ssm.time_step_rank: one time step and one decay per head
    int64_t n_group = 0;  // ssm.group_count: groups of heads sharing one B and one C
    int64_t head_dim() const { return d_inner / n_head; }
    int64_t conv_channels() const { return d_inner + 2 * n_group * d_state; }  // x, B, C
};
// Checks that heads divide d_inner and groups divide the heads.
Mamba2Dims read_mamba2_dims(const HParams& hp);

// One Mamba-2 mixer:
//   z, xBC, dt = split(W_in · x)              d_inner, d_inner + 2 n_group d_state, n_head
//   x, B, C = split(silu(conv1d(xBC)))        causal depthwise over the last d_conv inputs
//   dt   = softplus(dt + dt_bias)             one per head
//   S_h  = exp(dt_h A_h) S_h + dt_h x_h ⊗ B_g per head h of group g; A_h a scalar
//   y_h  = S_h · C_g + D_h x_h
//   out  = W_out · group_rms_norm(y ⊙ silu(z))   n_group groups, weight ssm_norm
struct Mamba2Mixer final : SsmMixer {
    int layer = 0;
    Mamba2Dims dims;
    float norm_eps = 1e-5f;
    Linear in, out;
    std::vector<float> conv_w;   // [conv_channels][d_conv]
    std::vector<float> conv_b;   // [conv_channels]
    std::vector<float> dt_bias;  // [n_head]
    std::vector<float> A;        // [n_head], already -exp(A_log) in the file
    std::vector<float> D;        // [n_head]
    std::vector<float> norm_w;   // [d_inner]: n_group groups of d_inner / n_group
    int64_t conv_floats() const { return (dims.d_conv - 1) * dims.conv_channels(); }
    LayerMemory memory() const override;
    void apply(const float* x, float* out, Pass& p) const override;
};
// `<prefix>ssm_{in,conv1d,dt.bias,a,d,norm,out}`.
Mamba2Mixer load_mamba2_mixer(const ModelLoader& ld, const std::string& prefix, int layer, int64_t n_embd,
                              const Mamba2Dims& dims, float norm_eps);

// ---- the steps (exposed for tests) ----
// out[c] = b[c] + Σ_k w[c][k] · window_k[c], the window being the d_conv - 1 inputs in
// `state` (oldest first) then x. Does not change the state.
void causal_conv_step(const float* state, const float* x, const float* w, const float* b, float* out,
                      int64_t channels, int64_t d_conv);
// Shifts x into the conv state (drops the oldest input).
void push_conv_state(float* state, const float* x, int64_t channels, int64_t d_conv);
// log(1 + e^x), x past 20 taken as is (as the reference engine does).
float softplus(float x);
// One position of the selective scan for every channel c:
//   h[c][s] = exp(dt[c] A[c][s]) h[c][s] + dt[c] B[s] u[c];  y[c] = Σ_s C[s] h[c][s] + D[c] u[c]
// y may alias u.
void selective_scan_step(float* h, const float* u, const float* dt, const float* A, const float* B,
                         const float* C, const float* D, float* y, int64_t d_inner, int64_t d_state);
// One position of the Mamba-2 (SSD) scan for every head h, of group g = h / (n_head / n_group),
// and channel i of the head:
//   S[h][i][s] = exp(dt[h] A[h]) S[h][i][s] + dt[h] x[h][i] B[g][s]
//   y[h][i]    = Σ_s S[h][i][s] C[g][s] + D[h] x[h][i]
// x and y are [n_head][head_dim], B and C [n_group][d_state]. y may alias x.
void ssd_scan_step(float* S, const float* x, const float* dt, const float* A, const float* B, const float* C,
                   const float* D, float* y, int64_t n_head, int64_t head_dim, int64_t n_group, int64_t d_state);
// The same for heads [h0, h1) only (the others untouched): the unit of parallel scans.
void ssd_scan_heads(float* S, const float* x, const float* dt, const float* A, const float* B, const float* C,
                    const float* D, float* y, int64_t n_head, int64_t head_dim, int64_t n_group, int64_t d_state,
                    int64_t h0, int64_t h1);
// y = rms_norm(y ⊙ silu(z)) · w over each of n_group groups of d_inner / n_group values
// (Mamba-2's gated norm before the output projection).
void gated_group_rms_norm(float* y, const float* z, const float* w, int64_t d_inner, int64_t n_group, float eps);

}  // namespace pensieve
