// Qwen mixture-of-experts models: the LLaMA layer stack with NeoX-style RoPE and routed
// experts of their own width (`expert_feed_forward_length`).
// - Qwen1.5-MoE / Qwen2-MoE ("qwen2moe"): Q/K/V biases; the top-k softmax weights are used
//   as they are (not renormalised); a shared expert every token passes through, scaled by
//   sigmoid(ffn_gate_inp_shexp · x).
// - Qwen3-MoE ("qwen3moe"): Qwen3 attention (per-head q/k RMS norms, wide heads); top-k
//   weights renormalised to sum to one; no shared expert.
#include "model/arch/arch.h"

namespace pensieve {

std::unique_ptr<Model> make_qwen2moe(std::unique_ptr<GgufFile> file) {
    LlamaVariant v;
    v.rope_style = RopeStyle::NeoX;
    v.qkv_bias = true;
    v.moe_normalize = false;
    return make_llama_variant(std::move(file), v);
}

std::unique_ptr<Model> make_qwen3moe(std::unique_ptr<GgufFile> file) {
    LlamaVariant v;
    v.rope_style = RopeStyle::NeoX;
    v.qk_norm = true;
    return make_llama_variant(std::move(file), v);
}

}  // namespace pensieve
