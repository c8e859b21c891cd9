// BitNet b1.58 (general.architecture = "bitnet"): the LLaMA block (NeoX-style RoPE, SwiGLU)
// with ternary projections
// (-1 / 0 / +1, in whatever type the file stores them: TQ1_0, TQ2_0, F16...) each times a
// per-tensor `<name>.scale`, and two extra RMS norms: `attn_sub_norm` on the heads' output
// before Wo and `ffn_sub_norm` on the gated activation before ffn_down. Logits come from
// token_embd (tied).
#include "model/arch/arch.h"

namespace pensieve {

std::unique_ptr<Model> make_bitnet(std::unique_ptr<GgufFile> file) {
    LlamaVariant v;
    v.sub_norms = true;
    v.rope_style = RopeStyle::NeoX;
    return make_llama_variant(std::move(file), v);
}

}  // namespace pensieve
