#include "kernels/matmul.h"

#include <algorithm>

#include "kernels/dispatch.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace pensieve {

namespace {

// Rows of W handled together per task: enough to amortise the call, small enough to
// balance two to thirty-two threads.
constexpr int64_t kRowGrain = 16;
// Tokens per tile: the W rows of a tile are reused for this many activation rows while
// they are still in cache.
constexpr int64_t kTokenTile = 8;

}  // namespace

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            MatmulScratch& scratch) {
    const TypeTraits& wt = type_traits(w.type);
    if (!wt.supported || !wt.vec_dot) fail("no kernel for weight type ", wt.name);
    const TypeTraits& xt = type_traits(wt.vec_dot_type);
    const FromFloatFn quantize = kernels_for(wt.vec_dot_type).from_float;  // fastest path (dispatch.h)
    if (w.cols % xt.block_size != 0)
        fail("matmul: ", w.cols, " columns is not a multiple of ", xt.name, " blocks");

    // 1. Convert every activation row once to the format the dot product wants.
    const size_t x_row_bytes = row_bytes(wt.vec_dot_type, w.cols);
    const uint8_t* xq;
    if (wt.vec_dot_type == GgmlType::F32) {
        xq = reinterpret_cast<const uint8_t*>(x);
    } else {
        scratch.activations.resize(x_row_bytes * size_t(n_tokens));
        uint8_t* dst = scratch.activations.data();
        pool.parallel_for(n_tokens, 1, [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t)
                quantize(x + t * w.cols, dst + size_t(t) * x_row_bytes, w.cols);
        });
        xq = dst;
    }

    // 2. Each thread owns a range of output rows; tokens are tiled so a W row is read
    //    from memory once per tile rather than once per token.
    const VecDotFn dot = kernels_for(w.type).vec_dot;
    const size_t w_row_bytes = w.row_bytes();
    const auto* wdata = static_cast<const uint8_t*>(w.data);
    pool.parallel_for(w.rows, kRowGrain, [&](int64_t r0, int64_t r1) {
        for (int64_t t0 = 0; t0 < n_tokens; t0 += kTokenTile) {
            const int64_t t1 = std::min(n_tokens, t0 + kTokenTile);
            for (int64_t r = r0; r < r1; ++r) {
                const uint8_t* wrow = wdata + size_t(r) * w_row_bytes;
                for (int64_t t = t0; t < t1; ++t)
                    y[t * w.rows + r] = dot(w.cols, wrow, xq + size_t(t) * x_row_bytes);
            }
        }
    });
}

void dequantize_row(const WeightMatrix& w, int64_t r, float* out) {
    const TypeTraits& wt = type_traits(w.type);
    if (!wt.supported || !wt.to_float) fail("cannot dequantize weight type ", wt.name);
    wt.to_float(w.row(r), out, w.cols);
}

}  // namespace pensieve
