// Gemma 3 text (general.architecture = "gemma3"): the Gemma 2 stack (gemma2.cpp) with
// per-head RMS q/k norms (before RoPE), no soft-capping, and five sliding-window layers
// to each global one; the local layers rotate with their own base
// (`rope.freq_base_swa`, 1e4 by default) and no frequency scaling, the global ones with
// `rope.freq_base` (1e6) and the file's scaling.
#include "model/arch/arch.h"

namespace pensieve {

std::unique_ptr<Model> make_gemma3(std::unique_ptr<GgufFile> file) {
    GemmaVariant v;
    v.swa_pattern = 6;
    v.soft_cap = false;
    v.local_rope_base = true;
    v.n_layer_27b = 62;
    return make_gemma_variant(std::move(file), v);
}

}  // namespace pensieve
