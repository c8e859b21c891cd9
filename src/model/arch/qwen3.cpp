// Qwen3 dense (general.architecture = "qwen3"): the LLaMA block with NeoX-style RoPE, no
// biases, and an RMS norm over each query and key head before RoPE. Heads are usually
// wider than n_embd / n_head (`attention.key_length`, e.g. 128 with dim 1024 and 16 heads).
#include "model/arch/arch.h"

namespace pensieve {

std::unique_ptr<Model> make_qwen3(std::unique_ptr<GgufFile> file) {
    LlamaVariant v;
    v.rope_style = RopeStyle::NeoX;
    v.qk_norm = true;
    return make_llama_variant(std::move(file), v);
}

}  // namespace pensieve
