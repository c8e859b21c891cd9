// State-space blocks (Mamba, arXiv:2312.00752): a layer mixes tokens through a recurrent
// state instead of attention. Per sequence and layer the memory (model/kv_cache.h,
// LayerMemory::recurrent) holds, in this order:
//   conv state  the last d_conv - 1 inputs of the causal convolution, [d_conv - 1][d_inner]
//   SSM state   h, [d_inner][d_state]
// Both have a fixed size whatever the sequence's length. The steps are written one
// function each, scalar, in the order of the paper's Algorithm 2.
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

// One Mamba-1 mixer:
//   x, z = split(W_in · x)
//   u    = silu(conv1d(x))                   causal depthwise over the last d_conv inputs
//   dt, B, C = split(W_x · u);  dt = softplus(W_dt · dt + b_dt)
//   h    = exp(dt · A) ⊙ h + dt · B · u      per channel, per state value
//   y    = C · h + D ⊙ u
//   out  = W_out · (y ⊙ silu(z))
struct MambaMixer {
    int layer = 0;  // this layer's index in the memory
    MambaDims dims;
    Linear in, x_proj, dt_proj, out;
    std::vector<float> conv_w;  // [d_inner][d_conv]
    std::vector<float> conv_b;  // [d_inner]
    std::vector<float> A;       // [d_inner][d_state], already -exp(A_log) in the file
    std::vector<float> D;       // [d_inner]
    int64_t conv_floats() const { return (dims.d_conv - 1) * dims.d_inner; }
    LayerMemory memory() const;
    // out = the mixer of the batch's n rows of x (already normalised); reads and advances
    // each sequence's state, in batch order.
    void apply(const float* x, float* out, Pass& p) const;
};
// `<prefix>ssm_{in,conv1d,x,dt,a,d,out}`.
MambaMixer load_mamba_mixer(const ModelLoader& ld, const std::string& prefix, int layer, int64_t n_embd,
                            const MambaDims& dims);

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

}  // namespace pensieve
