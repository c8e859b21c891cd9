// Falcon (general.architecture = "falcon"): attention and MLP in parallel from one
// LayerNorm (7B; 40B-style files add attn_norm_2 for the MLP), fused QKV with few KV heads
// (MQA in 7B), NeoX-style RoPE, GELU MLP without biases, untied output.
#include "model/arch/arch.h"

namespace pensieve {

std::unique_ptr<Model> make_falcon(std::unique_ptr<GgufFile> file) {
    Gpt2Variant v;
    v.rope = true;
    v.rope_style = RopeStyle::NeoX;
    v.parallel = true;
    return make_gpt2_variant(std::move(file), v);
}

}  // namespace pensieve
