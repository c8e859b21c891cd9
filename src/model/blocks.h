// The building blocks architecture files compose (model/arch/*.cpp): norms, linear
// layers, activations, feed-forward and mixture-of-experts blocks, attention with its
// options, token/position embeddings and the output head. Each block is a small struct
// of weights and options with a load_*() that reads it from the GGUF file (checking
// shapes) and an apply() for a batch of n tokens (row-major, one row per token).
//
// Blocks own every byte of the model's memory (model/kv_cache.h): attention converts its
// keys/values to the cache's element type and reads them back; architecture files only
// say which block runs when.
#pragma once

#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model/model_loader.h"

namespace pensieve {

// Buffers shared by the blocks of one model, grown to the largest batch seen.
struct Scratch {
    MatmulScratch mm;
    std::vector<float> q, k, v, att, gate, up, router, moe_in, moe_out, shared, normed;
    std::vector<float> x, h, y;  // a decoder's residual stream, normalised input, block output
    std::vector<float> xz, conv, dbc, dt_in, dt, conv_states;  // state-space mixers (model/ssm.h)
    std::vector<float> lora, heads;  // latent attention: the q LoRA rank, the per-head projections
    std::vector<float> shift, mix, decay;  // RWKV (model/rwkv.h): x_prev - x, the lerped inputs, the decay
    std::vector<float> iclr, kk, v_first;  // RWKV-7: a, the normalised keys, layer 0's values
};

// One forward pass: the batch, its memory and where blocks compute.
struct Pass {
    Pass(const Batch& batch, KvCache& cache, ThreadPool& pool, Scratch& scratch);
    const Batch& batch;
    KvCache& cache;
    ThreadPool& pool;
    Scratch& s;
    int64_t n;                 // tokens in the batch
    std::vector<int> seq_end;  // per sequence: one past its last position after this batch
    // The sequences now hold the batch's positions (after the last layer).
    void commit() { cache.commit_batch(batch.seq_ids, batch.slots()); }
};

// Grows v to at least n floats and returns its data.
float* grow(std::vector<float>& v, int64_t n);

// The start of every decoder's forward(): checks the batch and reserves its memory
// (begin_pass), then holds the residual stream x, the normalised input h and the block
// output y, n x n_embd floats each, in the model's scratch.
struct DecoderPass : Pass {
    DecoderPass(const Batch& batch, KvCache& cache, ThreadPool& pool, Scratch& scratch, int n_vocab,
                int64_t n_embd);
    float* x;
    float* h;
    float* y;
};

// ---- norms ----
enum class NormKind { RMS, Layer };

// out = norm(x) * weight (+ bias), over rows of dim() values: a token's hidden state, or
// one head (per-head q/k norms use the same block with rows = tokens x heads).
struct Norm {
    NormKind kind = NormKind::RMS;
    std::vector<float> weight, bias;  // bias empty: none
    float eps = 1e-5f;
    int64_t dim() const { return int64_t(weight.size()); }
    bool empty() const { return weight.empty(); }
    void apply(const float* x, float* out, int64_t rows) const;  // out may alias x
};
// Reads `<name>.weight` and, if present, `<name>.bias`. plus_one: the file stores w - 1
// (the weight used is 1 + w, as Gemma's checkpoints do).
Norm load_norm(const ModelLoader& ld, const std::string& name, int64_t dim, NormKind kind, float eps,
               bool plus_one = false);

// ---- linear ----
// y = W x (· scale) (+ b) for n rows of in() values.
struct Linear {
    WeightMatrix w;
    std::vector<float> b;  // empty: no bias
    float scale = 1.0f;    // BitNet: ternary weights times a per-tensor scale
    int64_t in() const { return w.cols; }
    int64_t out() const { return w.rows; }
    void apply(const float* x, int64_t n, float* y, Pass& p) const;
};
// Reads `<name>.weight` ({in, out}) and, if present, `<name>.scale` (one value) and `<name>.bias`.
Linear load_linear(const ModelLoader& ld, const std::string& name, int64_t in, int64_t out);
// A fused projection `<name>` ({in, sum of outs}: attn_qkv, Phi-3's gate+up ffn_up) split
// into one Linear per part, in order: views of the file's rows (row_range), the bias (if
// present) cut likewise.
std::vector<Linear> load_fused_linear(const ModelLoader& ld, const std::string& name, int64_t in,
                                      const std::vector<int64_t>& outs);
// rows[t] += bias for n rows (no-op for an empty bias).
void add_bias(float* rows, const std::vector<float>& bias, int64_t n);

// ---- activations ----
// SwiGLUClamped (gpt-oss) exists only gated: g = min(gate, 7), u = clamp(up, -7, 7),
// out = g · sigmoid(1.702 g) · (u + 1).
enum class Activation { SiLU, GELU, GELUTanh, ReLU, ReLU2, SwiGLUClamped };
void activate(float* x, int64_t n, Activation act);
// gate[i] = act(gate[i]) * up[i]: SwiGLU (SiLU), GeGLU (GELU / GELUTanh).
void gated_activate(float* gate, const float* up, int64_t n, Activation act);

// ---- feed-forward ----
// Gated: down(act(gate x) * up x); plain (no gate): down(act(up x)). With an inner norm,
// down reads norm(act(...)) (BitNet's ffn_sub_norm).
struct FeedForward {
    Linear gate, up, down;
    Norm inner_norm;  // empty: none
    Activation act = Activation::SiLU;
    bool gated() const { return gate.w.data != nullptr; }
    void apply(const float* x, int64_t n, float* out, Pass& p) const;
};
// `<prefix>ffn_{gate,up,down}`; gated: whether ffn_gate is read. A gated block without
// ffn_gate reads a fused ffn_up of 2 x n_ff outputs, gate rows first (Phi-3).
FeedForward load_feed_forward(const ModelLoader& ld, const std::string& prefix, int64_t n_embd, int64_t n_ff,
                              Activation act, bool gated = true);

// ---- mixture of experts ----
// Each token goes to its top-k experts by router probability (softmax over all experts,
// or each expert's own sigmoid: DeepSeek-V3); `select_bias` (DeepSeek-V3's exp_probs_b)
// is added to the probabilities for choosing the k only, not to their weights;
// `normalize`: the chosen k are renormalised to sum to one (Mixtral, Qwen3-MoE) or keep
// their probabilities (Qwen2-MoE); then the weights are multiplied by `weights_scale`. Tokens routed to the same expert are gathered so each
// expert runs one matrix-matrix product. An optional shared expert sees every token, its
// output scaled by sigmoid(shared_gate · x) when the file has that gate (Qwen2-MoE).
struct MoE {
    Linear router;
    std::vector<WeightMatrix> gate, up, down;  // one per expert
    std::vector<std::vector<float>> gate_bias, up_bias, down_bias;  // per expert; empty: none (gpt-oss has them)
    int n_used = 0;
    int64_t n_ff = 0;
    Activation act = Activation::SiLU;
    bool normalize = true;
    enum class Gating { Softmax, Sigmoid } gating = Gating::Softmax;
    std::vector<float> select_bias;  // empty: none
    float weights_scale = 1.0f;
    FeedForward shared;              // up.w.data == nullptr: no shared expert
    std::vector<float> shared_gate;  // empty: the shared expert is added unscaled
    bool has_shared() const { return shared.up.w.data != nullptr; }
    void apply(const float* x, int64_t n, float* out, Pass& p) const;

private:
    void add_shared_expert(const float* x, int64_t n, float* out, Pass& p) const;
};
// `<prefix>ffn_gate_inp` (+ bias) and `<prefix>ffn_{gate,up,down}_exps` (+ biases when present).
MoE load_moe(const ModelLoader& ld, const std::string& prefix, int64_t n_embd, int64_t n_ff, int n_expert,
             int n_used);
// `<prefix>ffn_{gate,up,down}_shexp` (width from the tensors) and, if present,
// `<prefix>ffn_gate_inp_shexp` (one weight per input value: the shared expert's gate).
void load_shared_expert(const ModelLoader& ld, const std::string& prefix, int64_t n_embd, MoE& moe);

// ---- attention ----
struct AttentionOptions {
    int n_head = 0, n_head_kv = 0;
    int head_dim = 0;          // Q and K values per head
    int head_dim_v = 0;        // V values per head (0: head_dim)
    RopeParams rope;           // rope.n_dims == 0: no rotary embedding
    float scale = 0.0f;        // score scale (0: 1 / sqrt(head_dim))
    float soft_cap = 0.0f;     // > 0: score = cap * tanh(score / cap), after scaling
    int window = 0;            // > 0: sliding window, a token sees its last `window` positions
    bool causal = true;        // false: every token sees its whole sequence (encoders)
    float alibi_max_bias = 0;  // > 0: ALiBi, score -= slope(head) * |query pos - key pos|
    // Not null: T5's learned bias, score += bias(head, key pos - query pos). The table
    // belongs to the model and outlives these options.
    const struct RelativePositionBias* relative_bias = nullptr;
};

// T5's relative position bias: the distance key pos - query pos falls into one of
// n_buckets buckets (exact for short distances, logarithmic up to max_distance, one bucket
// beyond), each with a learned value per head. Bidirectional (encoders): half the buckets
// for keys after the query; causal (decoders): all for keys before it.
struct RelativePositionBias {
    std::vector<float> table;  // [bucket][head]
    int n_buckets = 0, n_head = 0;
    int max_distance = 128;
    bool bidirectional = true;
    int bucket(int relative) const;
    float operator()(int head, int relative) const { return table[size_t(bucket(relative) * n_head + head)]; }
};
// `<name>` {n_head, n_buckets}.
RelativePositionBias load_relative_position_bias(const ModelLoader& ld, const std::string& name, int n_head,
                                                 int n_buckets, bool bidirectional);

// The cached positions [begin, end) of its sequence one batch token attends to, when the
// caller decides (T5's decoder: its own positions after the encoder's; cross-attention:
// the encoder's).
struct KeySpan {
    int begin = 0, end = 0;
    int own_slot = -1;  // >= 0: the key of position end - 1 is read from this slot (a tree row)
};

// Heads, head sizes and RoPE from the model's hyper-parameters (options left at none).
AttentionOptions attention_options(const ModelConfig& c);

// Multi-head attention with GQA/MQA (n_head_kv <= n_head): q, k, v projections (optional
// biases), optional per-head RMS q/k norms (before RoPE), optional per-head attention
// sinks (an extra softmax logit with no value), the cache, and the output projection.
struct Attention {
    int layer = 0;  // this layer's index in the memory
    AttentionOptions opt;
    Linear q, k, v, o;
    Norm q_norm, k_norm;     // empty: none; dim() head_dim: per head, else the whole q / k
    Norm out_norm;           // empty: none; BitNet's attn_sub_norm on the heads' output before Wo
    std::vector<float> sinks;  // empty: none
    // out = Wo · attention(x) for the batch's n rows of x (already normalised).
    void apply(const float* x, float* out, Pass& p) const;
    LayerMemory memory() const;

    // The steps of apply(), for architectures that need to act between them.
    void project(const float* x, Pass& p) const;  // s.q, s.k, s.v (with norms and RoPE)
    void attend(Pass& p) const;                   // cache write, then s.att
};
// The batch's keys and values (s.k, s.v) into their rows of `layer`, in the memory's type.
void store_kv(int layer, const Pass& p);
// s.att = attention of the batch's queries (s.q) over the rows spans[t] of each token's
// sequence in `layer` (any options; causal and window are the spans' business).
void attend_spans(int layer, const AttentionOptions& o, const std::vector<KeySpan>& spans, Pass& p);
// `<prefix>attn_{q,k,v,output}` (+ biases if present; q, k, v split from the fused
// `<prefix>attn_qkv` when the file has that instead), `<prefix>attn_{q,k}_norm` if
// present (RMS with eps, per head or over the whole projection as the tensor's size
// says), `<prefix>attn_sinks` if present.
Attention load_attention(const ModelLoader& ld, const std::string& prefix, int layer, int64_t n_embd,
                         const AttentionOptions& opt, float norm_eps);

// ---- multi-head latent attention (DeepSeek-V2/V3) ----
// y[t, h] = W_h · x[t, h] for one matrix per head: head h's input starts at
// x + t * x_stride + h * x_head (W_h.cols floats), its output at y + t * y_stride + h * y_head.
void apply_per_head(const std::vector<WeightMatrix>& w, const float* x, int64_t x_stride, int64_t x_head, int64_t n,
                    float* y, int64_t y_stride, int64_t y_head, Pass& p);

// Keys and values are compressed into one latent vector per token (kv_lora values, RMS
// normalised) plus one RoPE key shared by all heads (rope_dims values). The memory stores
// exactly that: key row = [latent, rotated shared key], value row = latent, as one KV
// "head" that every query head attends to (MQA). The per-head up-projections are absorbed
// into the query and the output instead of decompressing the cache:
//   q_h = [W_kb,h · q_nope,h, rope(q_pe,h)]  so  q_h · key = q_nope,h · (W_kb,h^T latent) + q_pe,h · k_pe
//   out_h = W_vb,h · Σ_j p_j latent_j        (= Σ_j p_j W_vb,h latent_j)
// then Wo. The score scale is that of the uncompressed head size (nope + rope dims).
struct LatentAttention {
    Attention attn;                     // opt: n_head query heads over 1 KV head of kv_lora + rope_dims
                                        // (V: kv_lora); uses only attn.o of the projections
    Linear q_a, q_b;                    // q_a empty (no q LoRA): q_b is the plain attn_q
    Norm q_a_norm;
    Linear kv_a;                        // n_embd -> kv_lora + rope_dims
    Norm kv_a_norm;                     // over the latent
    std::vector<WeightMatrix> k_b, v_b;  // per head: nope -> kv_lora, kv_lora -> v_dim
    int nope = 0, rope_dims = 0, kv_lora = 0, v_dim = 0;
    void apply(const float* x, float* out, Pass& p) const;
    LayerMemory memory() const;  // the attention's, with fp32 rows (LayerMemory::f32)
};
struct LatentAttentionShape {
    int n_head = 0, q_lora = 0, kv_lora = 0, nope = 0, rope_dims = 0, v_dim = 0;
};
// `<prefix>attn_q_a`, `attn_q_a_norm`, `attn_q_b` (q_lora > 0) or `attn_q`;
// `attn_kv_a_mqa`, `attn_kv_a_norm`, `attn_k_b` {nope, kv_lora, n_head}, `attn_v_b`
// {kv_lora, v_dim, n_head}, `attn_output`. opt.rope / opt.scale are used as given.
LatentAttention load_latent_attention(const ModelLoader& ld, const std::string& prefix, int layer, int64_t n_embd,
                                      const LatentAttentionShape& shape, const AttentionOptions& opt,
                                      float norm_eps);

// ---- embeddings and output ----
// x[t] = tokens[token t] (* scale) (+ positions[pos t]: learned absolute positions)
// (+ types[0]: BERT's token-type rows; every token here is of type 0, a single segment).
struct Embedding {
    WeightMatrix tokens;
    WeightMatrix positions;  // data == nullptr: none
    WeightMatrix types;      // data == nullptr: none
    float scale = 1.0f;
    void apply(const Batch& batch, float* x) const;
};
// Throws Error for a malformed batch: field sizes that differ, token ids outside the
// vocabulary, unknown sequences, positions that do not continue their sequence; then
// reserves the memory the batch writes. The first step of every forward().
void begin_pass(const Batch& batch, KvCache& cache, int n_vocab);

// Final norm, then what the caller asked for: logits = W x (* scale, soft-capped),
// per-token or pooled embeddings (the normalised hidden state).
struct OutputHead {
    Norm norm;
    WeightMatrix w;
    float scale = 1.0f;     // logit scale (Command-R)
    float soft_cap = 0.0f;  // > 0: final logit soft-cap (Gemma 2)
    void apply(float* x, Pass& p, const ForwardOutputs& out, Pooling pooling) const;
};
// `output_norm` and `output` (tied to token_embd when absent).
OutputHead load_output_head(const ModelLoader& ld, const WeightMatrix& token_embd, int64_t n_embd,
                            NormKind kind, float eps);

// The outputs of a model without an output head (encoders: BERT): out.embeddings gets the
// rows of x (the last layer's hidden states) of the tokens with want_logits set,
// out.pooled their pooling per sequence (out.logits is not written: there are none).
void write_hidden_outputs(const float* x, int64_t dim, const Batch& batch, const ForwardOutputs& out,
                          Pooling pooling);

// A sequence classifier (cross-encoder rerankers: GGUF pooling_type rank) on each
// sequence's first-token vector h: s = out · tanh(dense · h) (the dense layer is optional:
// `cls` {E, E}; `cls.output` {E, n_out}, both with biases), n_out scores per sequence.
struct ClassifierHead {
    Linear dense;  // w.data == nullptr: none (the pooled vector goes to `out` as it is)
    Linear out;
    int64_t n_out() const { return out.out(); }
    // x: the batch's rows (p.n x E); scores: n_out per sequence, in order of first appearance.
    void apply(const float* x, Pass& p, float* scores) const;
};
// `cls.output` (required) and `cls` (optional).
ClassifierHead load_classifier_head(const ModelLoader& ld, int64_t n_embd);

// ---- RoPE frequency factors ----
// LongRoPE (Phi-3 128k, Phi-3.5): per-pair frequency divisors for a long context
// (`rope_factors_long`) and a short one (`rope_factors_short`). As in the reference
// engine the long ones apply when the memory's context per sequence exceeds
// `rope.scaling.original_context_length`; the choice is fixed per memory, so every key
// in it is rotated alike. The attention factor on cos and sin is read by read_rope.
struct LongRope {
    std::vector<float> long_factors, short_factors;  // empty: none in the file
    int n_ctx_orig = 0;
    bool empty() const { return long_factors.empty(); }
    const std::vector<float>& for_context(int n_ctx) const {
        return n_ctx > n_ctx_orig ? long_factors : short_factors;
    }
};
// Both tensors (n_dims / 2 values each) or neither; n_ctx_orig from
// rope.scaling.original_context_length (default: context_length).
LongRope load_long_rope(const HParams& hp, const ModelLoader& ld, int n_dims);

}  // namespace pensieve
