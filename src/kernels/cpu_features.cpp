#include "kernels/cpu_features.h"

#include <cpuid.h>

namespace pensieve {

namespace {

// The OS must save the wide registers on context switches, or using them corrupts state.
bool os_saves(unsigned mask) {
    unsigned eax, edx;
    __asm__("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (eax & mask) == mask;
}

CpuFeatures detect() {
    CpuFeatures f;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = c & (1u << 27);
    const bool ymm = osxsave && os_saves(0x6);
    const bool zmm = osxsave && os_saves(0xe6);
    f.fma = ymm && (c & (1u << 12));
    f.f16c = ymm && (c & (1u << 29));
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f.avx2 = ymm && (b & (1u << 5));
        f.avx512f = zmm && (b & (1u << 16));
        f.avx512dq = zmm && (b & (1u << 17));
        f.avx512bw = zmm && (b & (1u << 30));
        f.avx512vl = zmm && (b & (1u << 31));
        f.avx512_vnni = zmm && (c & (1u << 11));
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        f.avx_vnni = ymm && (a & (1u << 4));
        f.avx512_bf16 = zmm && (a & (1u << 5));
    }
    return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
    static const CpuFeatures features = detect();
    return features;
}

std::string describe_cpu_features() {
    const CpuFeatures& f = cpu_features();
    std::string s;
    auto add = [&](bool on, const char* name) {
        if (!on) return;
        if (!s.empty()) s += ' ';
        s += name;
    };
    add(f.avx2, "AVX2");
    add(f.fma, "FMA");
    add(f.f16c, "F16C");
    add(f.avx512f, "AVX512F");
    add(f.avx512bw, "AVX512BW");
    add(f.avx512vl, "AVX512VL");
    add(f.avx512dq, "AVX512DQ");
    add(f.avx512_vnni, "AVX512_VNNI");
    add(f.avx512_bf16, "AVX512_BF16");
    add(f.avx_vnni, "AVX_VNNI");
    return s.empty() ? "(none)" : s;
}

}  // namespace pensieve
