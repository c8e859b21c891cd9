// Kernel micro-benchmarks: one matrix-vector product (4096 x 4096 weights, one activation
// row) per iteration, for every weight type and every kernel level this CPU can run.
//
//   vec_dot/<type>/<level>   single thread, loop over rows calling the level's vec_dot
//   matmul/<type>/threads:2  the real matmul (dispatch-chosen kernels, 2-thread pool)
//   from_float/<type>/<level> activation quantizer on one 4096-float row
//   lut/TQ2_0/avx512         the lookup-table kernel (kernels/lut.h), single thread
//
// Reported: bytes_per_second = weight bytes streamed (the matrix is larger than L2, so
// this is the memory-bound figure for Q4_0/Q8_0), and GFLOPs = 2 * rows * cols / time.
// Run: pensieve_bench_kernels [--benchmark_filter=Q4_0] [--benchmark_min_time=0.5]
#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/lut.h"
#include "kernels/matmul.h"
#include "quant/types.h"
#include "util/thread_pool.h"

namespace pensieve {
namespace {

constexpr int64_t kRows = 4096;
constexpr int64_t kCols = 4096;
constexpr int64_t kDistinctRows = 32;  // rows quantized for real, then tiled (quantizing 16M is slow)

const GgmlType kTypes[] = {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_1, GgmlType::Q5_1,
                           GgmlType::IQ4_NL, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q3_K,
                           GgmlType::Q2_K, GgmlType::TQ2_0, GgmlType::TQ1_0, GgmlType::F16, GgmlType::BF16,
                           GgmlType::F32};

std::vector<float> gaussian(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = g(rng);
    return v;
}

// A kRows x kCols weight matrix in type t, built from kDistinctRows quantized rows.
struct Weights {
    GgmlType type;
    size_t row_bytes;
    std::vector<uint8_t> data;
};

const Weights& weights(GgmlType t) {
    static std::unique_ptr<Weights> cache[64];
    auto& slot = cache[uint32_t(t)];
    if (!slot) {
        slot = std::make_unique<Weights>();
        slot->type = t;
        slot->row_bytes = row_bytes(t, kCols);
        slot->data.resize(slot->row_bytes * kRows);
        const std::vector<float> src = gaussian(kDistinctRows * kCols, 1);
        type_traits(t).from_float(src.data(), slot->data.data(), kDistinctRows * kCols);
        for (int64_t r = kDistinctRows; r < kRows; ++r)
            std::memcpy(&slot->data[size_t(r) * slot->row_bytes], &slot->data[size_t(r % kDistinctRows) * slot->row_bytes],
                        slot->row_bytes);
    }
    return *slot;
}

void report(benchmark::State& state, size_t weight_bytes) {
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(weight_bytes));
    state.counters["GFLOPs"] = benchmark::Counter(2.0 * kRows * kCols * double(state.iterations()) / 1e9,
                                                  benchmark::Counter::kIsRate);
}

void bm_vec_dot(benchmark::State& state, GgmlType t, VecDotFn dot) {
    const Weights& w = weights(t);
    const GgmlType xt = type_traits(t).vec_dot_type;
    std::vector<uint8_t> x(row_bytes(xt, kCols));
    const std::vector<float> xf = gaussian(kCols, 2);
    type_traits(xt).from_float(xf.data(), x.data(), kCols);
    std::vector<float> y(kRows);
    for (auto _ : state) {
        for (int64_t r = 0; r < kRows; ++r) y[size_t(r)] = dot(kCols, &w.data[size_t(r) * w.row_bytes], x.data());
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    report(state, w.data.size());
}

// The TQ2_0 lookup-table kernel (kernels/lut.h), single thread: building the token's
// tables is part of every iteration, as in a decode step (build_only: just that part).
void bm_lut_tq2_0(benchmark::State& state, bool build_only) {
    const Weights& w = weights(GgmlType::TQ2_0);
    std::vector<uint8_t> x(row_bytes(GgmlType::Q8_K, kCols));
    const std::vector<float> xf = gaussian(kCols, 2);
    type_traits(GgmlType::Q8_K).from_float(xf.data(), x.data(), kCols);
    const size_t lut_bytes = simd::tq2_lut_bytes(kCols);
    std::vector<uint8_t> buffer(lut_bytes + 64);
    uint8_t* lut = buffer.data() + (64 - reinterpret_cast<uintptr_t>(buffer.data()) % 64) % 64;
    std::vector<float> y(kRows);
    for (auto _ : state) {
        simd::tq2_lut_build(x.data(), kCols, lut);
        if (!build_only) simd::tq2_lut_gemv(w.data.data(), w.row_bytes, kCols, 0, kRows, lut, x.data(), y.data());
        benchmark::DoNotOptimize(y.data());
        benchmark::ClobberMemory();
    }
    report(state, w.data.size());
}

void bm_matmul(benchmark::State& state, GgmlType t) {
    const Weights& w = weights(t);
    ThreadPool pool(int(state.range(0)));
    MatmulScratch scratch;
    const WeightMatrix m{w.data.data(), t, kRows, kCols};
    const std::vector<float> x = gaussian(kCols, 3);
    std::vector<float> y(kRows);
    for (auto _ : state) {
        matmul(m, x.data(), 1, y.data(), pool, scratch);
        benchmark::DoNotOptimize(y.data());
    }
    report(state, w.data.size());
}

// matmul of n tokens (Arg 0) on t threads (Arg 1); rows = Arg 2 (4096: from memory,
// 256: 0.6 MiB of Q4_0 that stays in L2, so the figure is the compute cost alone).
// Reported per token: weight reads are shared by the batch, so a memory-bound kernel
// shows tokens/s rising with n.
void bm_matmul_tokens(benchmark::State& state, GgmlType t) {
    const Weights& w = weights(t);
    const int64_t n = state.range(0);
    const int64_t rows = state.range(2);
    ThreadPool pool(int(state.range(1)));
    MatmulScratch scratch;
    const WeightMatrix m{w.data.data(), t, rows, kCols};
    const std::vector<float> x = gaussian(n * kCols, 3);
    std::vector<float> y(size_t(n * rows));
    for (auto _ : state) {
        matmul(m, x.data(), n, y.data(), pool, scratch);
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["tokens/s"] = benchmark::Counter(double(n) * double(state.iterations()), benchmark::Counter::kIsRate);
    state.counters["GFLOPs"] = benchmark::Counter(2.0 * double(rows) * kCols * double(n) * double(state.iterations()) / 1e9,
                                                  benchmark::Counter::kIsRate);
}

void bm_from_float(benchmark::State& state, GgmlType t, FromFloatFn quantize) {
    const std::vector<float> x = gaussian(kCols, 4);
    std::vector<uint8_t> out(row_bytes(t, kCols));
    for (auto _ : state) {
        quantize(x.data(), out.data(), kCols);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(int64_t(state.iterations()) * kCols * int64_t(sizeof(float)));
}

void register_all() {
    const KernelLevel levels[] = {KernelLevel::Scalar, KernelLevel::Avx2, KernelLevel::Avx512};
    for (GgmlType t : kTypes) {
        for (KernelLevel l : levels) {
            const VecDotFn f = vec_dot_at(t, l);
            if (!f || (l != KernelLevel::Scalar && f == vec_dot_at(t, KernelLevel::Scalar))) continue;
            const std::string name = std::string("vec_dot/") + type_name(t) + "/" + kernel_level_name(l);
            benchmark::RegisterBenchmark(name.c_str(), bm_vec_dot, t, f)->Unit(benchmark::kMillisecond);
        }
        const std::string name = std::string("matmul/") + type_name(t);
        benchmark::RegisterBenchmark(name.c_str(), bm_matmul, t)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(
            benchmark::kMillisecond);
    }
    // Narrow batches (decode steps of several requests, speculative verification).
    for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::IQ4_NL, GgmlType::Q4_K}) {
        const std::string name = std::string("matmul_tokens/") + type_name(t);
        auto* b = benchmark::RegisterBenchmark(name.c_str(), bm_matmul_tokens, t);
        b->ArgNames({"tokens", "threads", "rows"})->UseRealTime()->Unit(benchmark::kMicrosecond);
        for (int64_t rows : {int64_t(256), kRows})
            for (int64_t n : {1, 2, 3, 4, 6, 8, 12, 15, 16, 20, 32, 48, 64, 80}) b->Args({n, 1, rows});
    }
    if (cpu_supports(KernelLevel::Avx512))
    {
        benchmark::RegisterBenchmark("lut/TQ2_0/avx512", bm_lut_tq2_0, false)->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark("lut_build/TQ2_0/avx512", bm_lut_tq2_0, true)->Unit(benchmark::kMicrosecond);
    }
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q8_K})
        for (KernelLevel l : levels)
            if (const FromFloatFn f = from_float_at(t, l)) {
                const std::string name = std::string("from_float/") + type_name(t) + "/" + kernel_level_name(l);
                benchmark::RegisterBenchmark(name.c_str(), bm_from_float, t, f)->Unit(benchmark::kMicrosecond);
            }
}

}  // namespace
}  // namespace pensieve

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    pensieve::register_all();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
