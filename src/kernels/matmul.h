// Matrix products against weights stored in any GGUF type: the one interface through
// which models multiply by weights, so faster kernels drop in without touching models.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "quant/types.h"
#include "util/work_shares.h"

namespace pensieve {

class ThreadPool;

// Matmuls (and attention calls) with fewer multiply-adds than this run on the calling
// thread alone: they take a few microseconds, less than handing work to another thread costs (and far less
// than waiting for one the OS has descheduled on a busy machine). Results do not depend
// on the thread count, so this changes speed only. Tiny models (stories260K: dim 64)
// fall entirely below it; a 1B model's smallest matrix (2048 x 256 per KV head group)
// is far above.
constexpr int64_t kMinParallelMacs = int64_t(1) << 16;

// A 2-D weight: `rows` rows of `cols` elements, row-major, in `type` (rows are whole blocks).
struct WeightMatrix {
    const void* data = nullptr;
    GgmlType type = GgmlType::F32;
    int64_t rows = 0;
    int64_t cols = 0;

    size_t row_bytes() const { return pensieve::row_bytes(type, cols); }
    const uint8_t* row(int64_t r) const {
        return static_cast<const uint8_t*>(data) + size_t(r) * row_bytes();
    }
    // Rows [first, first + count): a view of the same bytes, no copy (how fused
    // projections such as attn_qkv are split). The caller keeps the range inside.
    WeightMatrix row_range(int64_t first, int64_t count) const { return {row(first), type, count, cols}; }
};

// Per-thread-group scratch space reused across calls (no allocation in the hot loop once
// it has grown to the largest shape).
struct MatmulScratch {
    std::vector<uint8_t> activations;  // x converted to the weight type's vec_dot_type
    std::vector<uint8_t> panels;       // activations packed for the gemm kernels (gemm.h)
    std::vector<uint8_t> per_thread;   // gemm kernels' per-thread scratch
    std::vector<WorkShares> phases;    // how each phase's rows are shared out (work_shares.h)
};

// y[t * w.rows + r] = dot(w.row(r), x[t * w.cols ...]) for t in [0, n_tokens).
// Activations are converted once per token row to the weight's vec_dot_type (Q8 blocks
// for quantized weights), then every output row is an integer/float dot product.
// Work is split across the pool by output rows; results do not depend on thread count.
void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            MatmulScratch& scratch);

// Dequantizes row r of w into out (w.cols floats), e.g. a token embedding.
void dequantize_row(const WeightMatrix& w, int64_t r, float* out);

}  // namespace pensieve
