// BLOOM (general.architecture = "bloom"): the GPT-2 block with ALiBi instead of position
// embeddings (slopes from max bias 8, as the reference engine fixes it), a LayerNorm on
// the token embeddings, fused QKV, biases everywhere, tied output.
#include "model/arch/arch.h"

namespace pensieve {

std::unique_ptr<Model> make_bloom(std::unique_ptr<GgufFile> file) {
    Gpt2Variant v;
    v.alibi = true;
    v.embd_norm = true;
    return make_gpt2_variant(std::move(file), v);
}

}  // namespace pensieve
