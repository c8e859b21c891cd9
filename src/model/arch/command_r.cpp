// Command-R (general.architecture = "command-r"): attention and a SwiGLU MLP in parallel
// from one LayerNorm without bias, normal-style RoPE (θ 8e6), logits multiplied by
// `logit_scale` (0.0625 in 35B), tied output.
#include "model/arch/arch.h"

namespace pensieve {

std::unique_ptr<Model> make_command_r(std::unique_ptr<GgufFile> file) {
    Gpt2Variant v;
    v.rope = true;
    v.parallel = true;
    v.gated_ffn = true;
    v.act = Activation::SiLU;
    return make_gpt2_variant(std::move(file), v);
}

}  // namespace pensieve
