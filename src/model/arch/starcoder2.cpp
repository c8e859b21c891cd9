// StarCoder2 (general.architecture = "starcoder2"): the GPT-2 block (LayerNorm with bias,
// biases on every linear, GELU-tanh MLP) with GQA and NeoX-style RoPE (θ 1e5 in the
// released models); separate Q/K/V; tied output.
#include "model/arch/arch.h"

namespace pensieve {

std::unique_ptr<Model> make_starcoder2(std::unique_ptr<GgufFile> file) {
    Gpt2Variant v;
    v.rope = true;
    v.rope_style = RopeStyle::NeoX;
    return make_gpt2_variant(std::move(file), v);
}

}  // namespace pensieve
