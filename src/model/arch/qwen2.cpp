// Qwen2 / Qwen2.5 (general.architecture = "qwen2"): the LLaMA block with biases on the
// Q, K and V projections and NeoX-style RoPE (θ 1e6 in the released models; YaRN
// scaling when the file says so). Untied output in the larger models.
#include "model/arch/arch.h"

namespace pensieve {

std::unique_ptr<Model> make_qwen2(std::unique_ptr<GgufFile> file) {
    LlamaVariant v;
    v.rope_style = RopeStyle::NeoX;
    v.qkv_bias = true;
    return make_llama_variant(std::move(file), v);
}

}  // namespace pensieve
