// RWKV blocks (RWKV-6 "Finch", arXiv:2404.05892; RWKV-7 "Goose", arXiv:2503.14456): a
// layer mixes tokens through a recurrent state instead of attention, in two parts with a
// residual add after each:
//   time mix     token shift, data-dependent lerps, the WKV recurrence per head (a
//                head_size x head_size matrix state with a per-channel decay), group norm
//                (RWKV-7: the generalized delta rule, a value residual from layer 0)
//   channel mix  token shift, lerps, squared-ReLU MLP gated by sigmoid(receptance)
//                (RWKV-7: no receptance gate)
// "Token shift" feeds each part the previous token's (normalised) input beside the
// current one, so the memory keeps that row per sequence. Each part owns one recurrent
// LayerMemory (model/kv_cache.h), so a block-end snapshot is taken when that part has
// consumed the position, whatever the other part has done yet:
//   time mix     [shift: n_embd][WKV state: n_head][head_size][head_size]
//                (RWKV-6: [key i][value j]; RWKV-7: [value i][key j], as its reference lays it)
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

// RWKV-7 hyper-parameters (`rwkv7.*`): the four LoRAs' inner widths.
struct Rwkv7Dims {
    int64_t n_embd = 0;
    int64_t head_size = 0;   // wkv.head_size
    int64_t decay_rank = 0;  // attention.decay_lora_rank (w1, w2)
    int64_t iclr_rank = 0;   // attention.iclr_lora_rank (a1, a2)
    int64_t value_rank = 0;  // attention.value_residual_mix_lora_rank (v1, v2)
    int64_t gate_rank = 0;   // attention.gate_lora_rank (g1, g2)
    int64_t n_ff = 0;        // feed_forward_length
    int64_t n_head() const { return n_embd / head_size; }
};
Rwkv7Dims read_rwkv7_dims(const HParams& hp);

// The six lerp targets of RWKV-7, in time_mix_lerp_fused's order.
enum Rwkv7Target { k7MixR, k7MixW, k7MixK, k7MixV, k7MixA, k7MixG, k7MixTargets };

// RWKV-7 time mix, for each token x (normalised) and x_prev:
//   x_i  = x + (x_prev - x) ⊙ μ_i                     i in r, w, k, v, a, g (static lerps)
//   r, k, v = W_r x_r, W_k x_k, W_v x_v
//   w    = exp(-0.606531 sigmoid(w0 + W2 tanh(W1 x_w)))   decay in (e^-0.61, 1)
//   a    = sigmoid(a0 + A2 A1 x_a)                        in-context learning rate
//   v    = v + (v_first - v) ⊙ sigmoid(v0 + V2 V1 x_v)   layers > 0; layer 0's v is v_first
//   g    = G2 sigmoid(G1 x_g)
//   kk   = L2-normalise(k ⊙ k_k) per head;  k = k + (a - 1) ⊙ k ⊙ k_a
//   y    = WKV7(r, w, k, v, -kk, kk ⊙ a) per head (wkv7_step)
//   y    = group_norm(y) + v ⊙ Σ_head(r ⊙ k ⊙ r_k)        the bonus, one scalar per head
//   out  = W_o (y ⊙ g)
struct Rwkv7TimeMix {
    int layer = 0;                  // this part's index in the memory
    bool value_residual = false;    // false: the first layer, whose v becomes v_first
    Rwkv7Dims dims;
    std::vector<float> lerp;        // μ_i [6][n_embd]
    std::vector<float> w0, a0, v0;  // [n_embd]
    Linear w1, w2, a1, a2, v1, v2, g1, g2;
    std::vector<float> k_k, k_a, r_k;  // [n_embd]
    Linear receptance, key, value, output;
    std::vector<float> ln_w, ln_b;  // the group norm's weight and bias [n_embd]
    LayerMemory memory() const;
    // out = the time mix of the batch's n rows of x; reads and advances each sequence's
    // state. v_first (n rows of n_embd): written by the first layer, read by the others.
    void apply(const float* x, float* out, float* v_first, Pass& p) const;
};
// `<prefix>time_mix_*`; `value_residual` false for the first layer (its v0/v1/v2 unused).
Rwkv7TimeMix load_rwkv7_time_mix(const ModelLoader& ld, const std::string& prefix, int layer, bool value_residual,
                                 const Rwkv7Dims& dims);

// Channel mix: sx = x_prev - x;  k = relu(W_k (x + sx ⊙ μ_k))²;
//   RWKV-6: out = sigmoid(W_r (x + sx ⊙ μ_r)) ⊙ (W_v k)
//   RWKV-7: out = W_v k  (no receptance: lerp_r empty)
struct RwkvChannelMix {
    int layer = 0;
    std::vector<float> lerp_k, lerp_r;  // μ_k, μ_r [n_embd]
    Linear key, value, receptance;
    int64_t n_embd() const { return int64_t(lerp_k.size()); }
    LayerMemory memory() const;
    void apply(const float* x, float* out, Pass& p) const;
};
// `<prefix>channel_mix_{lerp_k,lerp_r,key,value,receptance}` (gated: RWKV-6), or
// `<prefix>channel_mix_{lerp_k,key,value}` (not gated: RWKV-7).
RwkvChannelMix load_rwkv_channel_mix(const ModelLoader& ld, const std::string& prefix, int layer, int64_t n_embd,
                                     int64_t n_ff, bool gated = true);

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
// One position of the WKV7 recurrence (the generalized delta rule) for every head h,
// value channel i, key channel j (S[h][i][j]; a and b are -kk and kk ⊙ iclr in the model):
//   sa[i]      = Σ_j a[j] S[h][i][j]                     (from the state before the step)
//   S[h][i][j] = S[h][i][j] w[j] + v[i] k[j] + sa[i] b[j]
//   y[i]       = Σ_j S[h][i][j] r[j]                     (from the state after the step)
void wkv7_step(float* S, const float* r, const float* w, const float* k, const float* v, const float* a,
               const float* b, float* y, int64_t n_head, int64_t head_size);
// In place: each head's head_size values divided by their L2 norm (at least eps).
void head_l2_norm(float* x, int64_t dim, int64_t head_size, float eps);
// In place: each head's head_size values layer-normalised alone (eps), then ⊙ w + b over
// all dim values.
void head_group_norm(float* y, const float* w, const float* b, int64_t dim, int64_t head_size, float eps);

}  // namespace pensieve
