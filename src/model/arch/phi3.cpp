// Phi-3 / 3.5 (general.architecture = "phi3"): the LLaMA block with NeoX-style RoPE and
// fused projections: `attn_qkv` (Q, K, V rows) and `ffn_up` (gate rows, then up rows),
// which the blocks split into views of the same weights. Long-context files (Phi-3 128k,
// Phi-3.5) carry LongRoPE: `rope_factors_long` / `rope_factors_short` and
// `rope.scaling.attn_factor`. Their `attention.sliding_window` is ignored, as by the
// reference engine (the window is as long as the context).
#include "model/arch/arch.h"

namespace pensieve {

std::unique_ptr<Model> make_phi3(std::unique_ptr<GgufFile> file) {
    LlamaVariant v;
    v.rope_style = RopeStyle::NeoX;
    return make_llama_variant(std::move(file), v);
}

}  // namespace pensieve
