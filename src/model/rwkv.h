// RWKV blocks (RWKV-6 "Finch", arXiv:2404.05892): a layer mixes tokens through a
// recurrent state instead of attention, in two parts with a residual add after each:
//   time mix     token shift, data-dependent lerps, the WKV recurrence per head (a
//                head_size x head_size matrix state with a per-channel decay), group norm
//   channel mix  token shift, lerps, squared-ReLU MLP gated by sigmoid(receptance)
// "Token shift" feeds each part the previous token's (normalised) input beside the
// current one, so the memory keeps that row per sequence. Each part owns one recurrent
// LayerMemory (model/kv_cache.h), so a block-end snapshot is taken when that part has
// consumed the position, whatever the other part has done yet:
//   time mix     [shift: n_embd][WKV state: n_head][head_size (key i)][head_size (value j)]
//   channel mix  [shift: n_embd]
// The recurrence is scalar, token by token (prefill too): no chunked WKV yet.
#pragma once

#include <string>
#include <vector>

#include "model/blocks.h"

namespace pensieve {

// RWKV-6 hyper-parameters (`rwkv6.*`).
struct Rwkv6Dims {
    int64_t n_embd = 0;
    int64_t head_size = 0;   // wkv.head_size
    int64_t mix_rank = 0;    // time_mix_extra_dim: the token-shift LoRA's inner width (per target)
    int64_t decay_rank = 0;  // time_decay_extra_dim: the decay LoRA's inner width
    int64_t n_ff = 0;        // feed_forward_length: the channel mix's hidden width
    int64_t n_head() const { return n_embd / head_size; }
};
// Checks that heads divide the embedding.
Rwkv6Dims read_rwkv6_dims(const HParams& hp);

// The five targets of RWKV-6's data-dependent lerp, in the file's order (time_mix_w2 and
// time_mix_lerp_fused stack them so).
enum Rwkv6Target { kMixW, kMixK, kMixV, kMixR, kMixG, kMixTargets };

// RWKV-6 time mix, for each token x (normalised) and x_prev (the one before it):
//   sx   = x_prev - x
//   m    = tanh(W1 · (x + sx ⊙ μ_x)) split into 5 slices of mix_rank; m_i = W2_i · slice_i
//   x_i  = x + sx ⊙ (λ_i + m_i)                       i in w, k, v, r, g  ("ddlerp")
//   r, k, v = W_r x_r, W_k x_k, W_v x_v;  g = silu(W_g x_g)
//   w    = exp(-exp(d + Wd2 · tanh(Wd1 · x_w)))       a decay in (0, 1) per channel
//   y    = WKV6(r, k, v, w, u) per head (wkv6_step), u the bonus time_mix_first
//   out  = W_o · (group_norm(y) ⊙ g)                  one LayerNorm per head, eps 64e-5
struct Rwkv6TimeMix {
    int layer = 0;  // this part's index in the memory
    Rwkv6Dims dims;
    std::vector<float> lerp_x;      // μ_x [n_embd]
    Linear mix_a;                   // W1: n_embd -> 5 mix_rank
    std::vector<WeightMatrix> mix_b;  // W2_i: mix_rank -> n_embd, one per target
    std::vector<float> lerp;        // λ_i [5][n_embd]
    std::vector<float> decay;       // d [n_embd]
    Linear decay_a, decay_b;        // Wd1: n_embd -> decay_rank, Wd2: decay_rank -> n_embd
    std::vector<float> bonus;       // u [n_embd]
    Linear receptance, key, value, gate, output;
    std::vector<float> ln_w, ln_b;  // the group norm's weight and bias [n_embd]
    LayerMemory memory() const;
    // out = the time mix of the batch's n rows of x; reads and advances each sequence's state.
    void apply(const float* x, float* out, Pass& p) const;
};
// `<prefix>time_mix_*`.
Rwkv6TimeMix load_rwkv6_time_mix(const ModelLoader& ld, const std::string& prefix, int layer, const Rwkv6Dims& dims);

// Channel mix: sx = x_prev - x;  k = relu(W_k (x + sx ⊙ μ_k))²;
//   RWKV-6: out = sigmoid(W_r (x + sx ⊙ μ_r)) ⊙ (W_v k)
struct RwkvChannelMix {
    int layer = 0;
    std::vector<float> lerp_k, lerp_r;  // μ_k, μ_r [n_embd]
    Linear key, value, receptance;
    int64_t n_embd() const { return int64_t(lerp_k.size()); }
    LayerMemory memory() const;
    void apply(const float* x, float* out, Pass& p) const;
};
// `<prefix>channel_mix_{lerp_k,lerp_r,key,value,receptance}`.
RwkvChannelMix load_rwkv_channel_mix(const ModelLoader& ld, const std::string& prefix, int layer, int64_t n_embd,
                                     int64_t n_ff);

// ---- the steps (exposed for tests) ----
// prev[t] = the input row before x[t] in its sequence: the batch row of that sequence's
// previous token, or (its first token in the batch) the n_embd floats at the start of its
// state in memory layer `layer` (zeros for a new sequence). Does not change the state.
void token_shift(int layer, const float* x, float* prev, int64_t dim, Pass& p);
// One position of the WKV6 recurrence for every head h, key channel i, value channel j
// (channels h * head_size + i, h * head_size + j; S[h][i][j]):
//   y[j]       = Σ_i r[i] (u[i] k[i] v[j] + S[h][i][j])
//   S[h][i][j] = w[i] S[h][i][j] + k[i] v[j]
void wkv6_step(float* S, const float* r, const float* k, const float* v, const float* w, const float* u, float* y,
               int64_t n_head, int64_t head_size);
// In place: each head's head_size values layer-normalised alone (eps), then ⊙ w + b over
// all dim values.
void head_group_norm(float* y, const float* w, const float* b, int64_t dim, int64_t head_size, float eps);

}  // namespace pensieve
