// One constructor per architecture (one file each in this folder), listed by the
// registry (model/registry.cpp) under its `general.architecture` name.
#pragma once

#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "model/blocks.h"
#include "model/model.h"

namespace pensieve {

std::unique_ptr<Model> make_llama(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_bert(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_qwen2(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_qwen3(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_bitnet(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_gpt_oss(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_qwen2moe(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_qwen3moe(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_gpt2(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_bloom(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_starcoder2(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_falcon(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_command_r(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_olmo2(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_phi3(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_gemma2(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_gemma3(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_mamba(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_mamba2(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_deepseek2(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_rwkv6(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_rwkv7(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_t5(std::unique_ptr<GgufFile> file);

// The LLaMA layer stack (llama.cpp in this folder) with what its descendants change.
struct LlamaVariant {
    RopeStyle rope_style = RopeStyle::Normal;
    bool qkv_bias = false;  // attn_{q,k,v}.bias required (LLaMA: read when present)
    bool qk_norm = false;   // per-head RMS attn_{q,k}_norm required, applied before RoPE
    bool moe_normalize = true;  // renormalise the top-k expert weights (Qwen2-MoE: no)
    bool sub_norms = false;     // BitNet: attn_sub_norm before Wo, ffn_sub_norm before ffn_down
};
std::unique_ptr<Model> make_llama_variant(std::unique_ptr<GgufFile> file, const LlamaVariant& variant);

// The Gemma 2 layer stack (gemma2.cpp) with what Gemma 3 changes.
struct GemmaVariant {
    // Layer i has a sliding window unless i % swa_pattern == swa_pattern - 1 (Gemma 2:
    // every even layer; Gemma 3: five local layers, then one global).
    int swa_pattern = 2;
    bool soft_cap = true;          // reads attn_logit_softcapping / final_logit_softcapping
    bool local_rope_base = false;  // local layers: rope.freq_base_swa (default 1e4), no scaling
    // The size (by layer count) whose query scale is 1 / sqrt(n_embd / n_head), not
    // 1 / sqrt(head_dim): query_pre_attn_scalar of the 27B checkpoints, which the file
    // does not carry (the reference engine decides by layer count as well).
    int n_layer_27b = 46;
};
std::unique_ptr<Model> make_gemma_variant(std::unique_ptr<GgufFile> file, const GemmaVariant& variant);

// The GPT-2 layer stack (gpt2.cpp in this folder) with what its descendants change.
struct Gpt2Variant {
    NormKind norm = NormKind::Layer;
    bool rope = false;  // rotary positions (GPT-2, BLOOM: none)
    RopeStyle rope_style = RopeStyle::Normal;
    bool alibi = false;              // ALiBi biases (BLOOM; `attention.max_alibi_bias`, default 8)
    bool learned_positions = false;  // position_embd required (GPT-2)
    bool embd_norm = false;          // token_embd_norm required (BLOOM)
    bool parallel = false;           // attention and MLP from one norm (Falcon, Command-R)
    bool gated_ffn = false;          // act(gate x) * up x (Command-R) instead of act(up x)
    Activation act = Activation::GELUTanh;
};
std::unique_ptr<Model> make_gpt2_variant(std::unique_ptr<GgufFile> file, const Gpt2Variant& variant);

// The Mamba layer stack (mamba.cpp) over either state-space mixer (model/ssm.h).
struct MambaVariant {
    int version = 1;  // 1: selective scan (MambaMixer); 2: SSD (Mamba2Mixer), `mamba2.*` keys
};
std::unique_ptr<Model> make_mamba_variant(std::unique_ptr<GgufFile> file, const MambaVariant& variant);

}  // namespace pensieve
