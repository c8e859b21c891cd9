// What the CPU we run on can do, read once with cpuid. Kernels pick their fastest path
// from this at start-up; `pensieve info --cpu` prints it.
#pragma once

#include <string>

namespace pensieve {

struct CpuFeatures {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
    bool avx512_vnni = false, avx512_bf16 = false, avx_vnni = false;

    bool has_x86_64_v3() const { return avx2 && fma && f16c; }
    bool has_avx512_core() const { return avx512f && avx512bw && avx512vl && avx512dq; }
};

const CpuFeatures& cpu_features();
std::string describe_cpu_features();

}  // namespace pensieve
