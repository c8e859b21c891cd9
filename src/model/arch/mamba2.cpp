// Mamba-2 (general.architecture = "mamba2"): the Mamba layer stack (mamba.cpp) over the
// SSD mixer (model/ssm.h): one in-projection gives z, the convolved x/B/C and a time step
// per head; the decay is one scalar per head, B and C are shared by each group of heads,
// and a gated RMS norm per group precedes the out-projection.
#include "model/arch/arch.h"

namespace pensieve {

std::unique_ptr<Model> make_mamba2(std::unique_ptr<GgufFile> file) {
    MambaVariant v;
    v.version = 2;
    return make_mamba_variant(std::move(file), v);
}

}  // namespace pensieve
