// One constructor per architecture (one file each in this folder), listed by the
// registry (model/registry.cpp) under its `general.architecture` name.
#pragma once

#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "model/model.h"

namespace pensieve {

std::unique_ptr<Model> make_llama(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_qwen2(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_qwen3(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_gpt_oss(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_qwen2moe(std::unique_ptr<GgufFile> file);
std::unique_ptr<Model> make_qwen3moe(std::unique_ptr<GgufFile> file);

// The LLaMA layer stack (llama.cpp in this folder) with what its descendants change.
struct LlamaVariant {
    RopeStyle rope_style = RopeStyle::Normal;
    bool qkv_bias = false;  // attn_{q,k,v}.bias required (LLaMA: read when present)
    bool qk_norm = false;   // per-head RMS attn_{q,k}_norm required, applied before RoPE
    bool moe_normalize = true;  // renormalise the top-k expert weights (Qwen2-MoE: no)
};
std::unique_ptr<Model> make_llama_variant(std::unique_ptr<GgufFile> file, const LlamaVariant& variant);

}  // namespace pensieve
