#include "kernels/matmul.h"

#include <algorithm>
#include <cstdint>

#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace pensieve {

namespace {

// Rows of W handled together per task: enough to amortise the call, small enough to
// balance two to thirty-two threads.
constexpr int64_t kRowGrain = 16;
// Activation rows quantized per thread: a few rows take about a microsecond, less than
// waking the other threads and waiting for them (small batches stay on the caller).
constexpr int64_t kQuantizeGrain = 8;
// Tokens per tile: the W rows of a tile are reused for this many activation rows while
// they are still in cache.
constexpr int64_t kTokenTile = 8;
// Activation bytes per block on the dot-tile path: the block stays in L2 (1 MiB per core
// here) while the thread's rows pass over it, each tile of 4 or 5 rows (16-20 KiB at 2048
// bf16 values) staying in L1 for the whole block. Blocks of kTokenTile's 8 tokens read
// every row from L3 again each 8 tokens: synth-1b-BF16 pp512 91-103 -> 126-133 tok/s
// with 64-token blocks (3 alternating pairs, host loaded); 128 tokens (512 KiB) measured
// no worse and 32 no better.
constexpr size_t kDotBlockBytes = 512u << 10;

// gemm path (gemm.h): which kernel takes which tokens.
//  - Up to kNarrowOnlyTokens tokens, all go through narrow, one call per 16-token panel:
//    each call reads the weights once, and for a few panels that beats gemm, which
//    unpacks every row to scratch first. Beyond that, whole panels go through gemm and
//    only the rest (< 16 tokens) through narrow.
//    A kernel whose narrow pays only for fewer tokens says so (narrow_max: the K-quants'
//    transposes each 16-row block per call, which gemm's 16-token panels amortize
//    better from ~10 tokens on): larger panels go through gemm.
//  - A rest of one token goes through gemv, which needs no packed panel.
//  - Without a narrow kernel (nullptr), a rest of at least kMinPanelTokens is padded to a
//    panel for gemm, and fewer tokens go through gemv.
// All kernels give bit-identical results per token.
constexpr int64_t kNarrowOnlyTokens = 64;
constexpr int kMinNarrowTokens = 2;
constexpr int kMinPanelTokens = 4;
constexpr int64_t kNarrowRows = 16;  // narrow needs a range of at least this many rows
// Activation bytes per gemm pass: one pass's panels stay in L2 while each row group of
// a thread runs over all of them, so weights are streamed once per pass.
constexpr size_t kPassBytes = 768 * 1024;
constexpr size_t kAlign = 64;  // panels are read with aligned 512-bit loads
// Rows per piece a thread claims in a gemm pass: gemm prefetches the next rows within a
// call, so pieces are a few of its row groups long.
constexpr int64_t kGemmPieceRows = 64;

uint8_t* aligned_buffer(std::vector<uint8_t>& v, size_t bytes) {
    v.resize(bytes + kAlign);
    const auto p = reinterpret_cast<uintptr_t>(v.data());
    return v.data() + ((kAlign - p % kAlign) % kAlign);
}

size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

// How the tokens of a gemm-path matmul are split between the kernels: panels [0, gemm)
// through gemm, panels [gemm, gemm + narrow) through narrow, tokens [gemv_from, n) alone.
struct GemmPlan {
    int64_t gemm_panels = 0;
    int gemm_last_n = 0;  // tokens in the last gemm panel
    int64_t narrow_panels = 0;
    int narrow_last_n = 0;  // tokens in the last narrow panel
    int64_t gemv_from = 0;
};

GemmPlan plan_gemm(const GemmKernels& g, int64_t n_tokens) {
    const int64_t lanes = g.panel_tokens;
    const int64_t full = n_tokens / lanes;
    const int rest = int(n_tokens % lanes);
    GemmPlan p;
    p.gemm_last_n = p.narrow_last_n = int(lanes);
    if (g.narrow) {
        p.gemm_panels = n_tokens <= kNarrowOnlyTokens && g.narrow_max >= lanes ? 0 : full;
        p.narrow_panels = full - p.gemm_panels;
        if (rest >= kMinNarrowTokens && rest <= g.narrow_max) {
            ++p.narrow_panels;
            p.narrow_last_n = rest;
        } else if (rest > g.narrow_max) {  // (then every full panel went through gemm too)
            ++p.gemm_panels;
            p.gemm_last_n = rest;
        }
    } else {
        p.gemm_panels = full;
        if (rest >= kMinPanelTokens) {
            ++p.gemm_panels;
            p.gemm_last_n = rest;
        }
    }
    p.gemv_from = std::min(n_tokens, (p.gemm_panels + p.narrow_panels) * lanes);
    return p;
}

// Weights with multi-token kernels (gemm.h), split as plan_gemm says.
void matmul_gemm(const GemmKernels& g, const WeightMatrix& w, const uint8_t* xq, size_t x_row_bytes,
                 int64_t n_tokens, float* y, ThreadPool& pool, MatmulScratch& scratch) {
    const int64_t lanes = g.panel_tokens;
    const GemmPlan plan = plan_gemm(g, n_tokens);
    const int64_t n_panels = plan.gemm_panels + plan.narrow_panels;

    // 1. Pack the gemm and narrow tokens into panels.
    const size_t pbytes = g.panel_bytes(w.cols);
    uint8_t* panels = n_panels > 0 ? aligned_buffer(scratch.panels, pbytes * size_t(n_panels)) : nullptr;
    if (n_panels > 0) {
        pool.parallel_for(n_panels, 1, [&](int64_t p0, int64_t p1) {
            for (int64_t p = p0; p < p1; ++p) {
                const int n = int(std::min(lanes, plan.gemv_from - p * lanes));
                g.pack(xq + size_t(p * lanes) * x_row_bytes, x_row_bytes, n, w.cols, panels + size_t(p) * pbytes);
            }
        });
    }

    // 2. Rows go out in pieces through WorkShares (util/work_shares.h): each thread starts
    //    on its own contiguous share and takes over the rest of a thread the machine slowed,
    //    instead of all waiting for it at the barrier. Phases, in order: each gemm pass
    //    (its panels stay in L2 while the rows stream past), then the narrow panels and the
    //    tokens left for gemv. A piece of under 16 rows (the end of a matrix that is not a
    //    multiple of 16) takes its narrow tokens through gemv instead: the same bits.
    const size_t tbytes = round_up(g.scratch_bytes(w.cols), kAlign);
    uint8_t* thread_scratch = aligned_buffer(scratch.per_thread, tbytes * size_t(pool.size()));
    const int64_t pass_panels = std::max<int64_t>(2, int64_t(kPassBytes / pbytes) & ~int64_t(1));
    const int64_t n_passes = (plan.gemm_panels + pass_panels - 1) / pass_panels;
    const bool few_phase = plan.narrow_panels > 0 || plan.gemv_from < n_tokens;
    const int64_t n_phases = n_passes + (few_phase ? 1 : 0);
    const int64_t few_piece = std::max<int64_t>(lanes, g.call_rows);
    const auto* wdata = static_cast<const uint8_t*>(w.data);
    const size_t w_row_bytes = w.row_bytes();
    const bool small = w.rows * w.cols * n_tokens < kMinParallelMacs;
    const int threads = small ? 1 : int(std::min<int64_t>(pool.size(), (w.rows + lanes - 1) / lanes));
    if (scratch.phases.size() < size_t(n_phases)) scratch.phases.resize(size_t(n_phases));
    for (int64_t ph = 0; ph < n_phases; ++ph) {
        const int64_t piece = ph < n_passes ? kGemmPieceRows : few_piece;
        scratch.phases[size_t(ph)].reset((w.rows + piece - 1) / piece, threads);
    }
    auto gemm_pass = [&](int64_t pass, int64_t r0, int64_t r1, uint8_t* ts) {
        const int64_t p0 = pass * pass_panels, np = std::min(pass_panels, plan.gemm_panels - p0);
        const int n_last = p0 + np == plan.gemm_panels ? plan.gemm_last_n : int(lanes);
        g.gemm(wdata, w_row_bytes, w.cols, r0, r1, panels + size_t(p0) * pbytes, np, n_last, y + p0 * lanes * w.rows,
               w.rows, ts);
    };
    auto few_tokens = [&](int64_t r0, int64_t r1) {
        const bool whole = r1 - r0 >= kNarrowRows;
        for (int64_t p = plan.gemm_panels; whole && p < n_panels; ++p) {
            const int n = p == n_panels - 1 ? plan.narrow_last_n : int(lanes);
            g.narrow(wdata, w_row_bytes, w.cols, r0, r1, panels + size_t(p) * pbytes, n, y + p * lanes * w.rows,
                     w.rows);
        }
        const int64_t t_gemv = whole ? plan.gemv_from : plan.gemm_panels * lanes;
        for (int64_t t = t_gemv; t < n_tokens; ++t)
            g.gemv(wdata, w_row_bytes, w.cols, r0, r1, xq + size_t(t) * x_row_bytes, y + t * w.rows);
    };
    auto work = [&](int index) {
        if (index >= threads) return;
        uint8_t* ts = thread_scratch + tbytes * size_t(index);
        for (int64_t ph = 0; ph < n_phases; ++ph) {
            const int64_t piece = ph < n_passes ? kGemmPieceRows : few_piece;
            int64_t u0, u1;
            while (scratch.phases[size_t(ph)].next(index, u0, u1)) {
                const int64_t r0 = u0 * piece, r1 = std::min(w.rows, u1 * piece);
                if (ph < n_passes) gemm_pass(ph, r0, r1, ts);
                else few_tokens(r0, r1);
            }
        }
    };
    if (threads == 1) work(0);
    else pool.run([&](int index, int) { work(index); });
}

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
        pool.parallel_for(n_tokens, kQuantizeGrain, [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t)
                quantize(x + t * w.cols, dst + size_t(t) * x_row_bytes, w.cols);
        });
        xq = dst;
    }

    if (const GemmKernels* g = kernels_for(w.type).gemm) {
        matmul_gemm(*g, w, xq, x_row_bytes, n_tokens, y, pool, scratch);
        return;
    }

    // 2. Tokens in blocks, so a W row is read from memory once per block rather than once
    //    per token; within a block, rows go out in pieces through WorkShares as on the
    //    gemm path (a block is a phase: the threads move to the next one on their own).
    const VecDotFn dot = kernels_for(w.type).vec_dot;
    const DotTile tile = kernels_for(w.type).dot_tile;
    const size_t w_row_bytes = w.row_bytes();
    const auto* wdata = static_cast<const uint8_t*>(w.data);
    const bool small = w.rows * w.cols * n_tokens < kMinParallelMacs;
    // The same dots, a tile of rows x tokens at a time: synth-1b-F16 pp512 42 -> 148
    // tok/s. Not for a lone token, where it only interleaves rows: generation measured no
    // better that way (tg32 15-20 vs 24-27 tok/s, one noisy run).
    const bool tiled = tile.fn && n_tokens > 1;
    const int64_t block = !tiled ? kTokenTile
                                 : std::max<int64_t>(tile.tokens, int64_t(kDotBlockBytes / x_row_bytes) / tile.tokens *
                                                                      tile.tokens);
    auto rows = [&](int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
        if (tiled) {
            const int64_t tr = tile.rows, tt = tile.tokens;
            for (int64_t r = r0; r < r1; r += tr)
                for (int64_t t = t0; t < t1; t += tt)
                    tile.fn(w.cols, wdata + size_t(r) * w_row_bytes, w_row_bytes, int(std::min<int64_t>(tr, r1 - r)),
                            xq + size_t(t) * x_row_bytes, x_row_bytes, int(std::min<int64_t>(tt, t1 - t)),
                            y + t * w.rows + r, w.rows);
            return;
        }
        for (int64_t r = r0; r < r1; ++r) {
            const uint8_t* wrow = wdata + size_t(r) * w_row_bytes;
            for (int64_t t = t0; t < t1; ++t) y[t * w.rows + r] = dot(w.cols, wrow, xq + size_t(t) * x_row_bytes);
        }
    };
    const int64_t n_blocks = (n_tokens + block - 1) / block;
    // Pieces of whole tiles (BF16's are 5 rows).
    const int64_t piece = tiled ? int64_t(round_up(size_t(kRowGrain), size_t(tile.rows))) : kRowGrain;
    const int64_t pieces = (w.rows + piece - 1) / piece;
    const int threads = small ? 1 : int(std::min<int64_t>(pool.size(), pieces));
    if (threads == 1) {
        for (int64_t t0 = 0; t0 < n_tokens; t0 += block) rows(0, w.rows, t0, std::min(n_tokens, t0 + block));
        return;
    }
    if (scratch.phases.size() < size_t(n_blocks)) scratch.phases.resize(size_t(n_blocks));
    for (int64_t b = 0; b < n_blocks; ++b) scratch.phases[size_t(b)].reset(pieces, threads);
    pool.run([&](int index, int) {
        if (index >= threads) return;
        for (int64_t b = 0; b < n_blocks; ++b) {
            int64_t u0, u1;
            while (scratch.phases[size_t(b)].next(index, u0, u1))
                rows(u0 * piece, std::min(w.rows, u1 * piece), b * block, std::min(n_tokens, (b + 1) * block));
        }
    });
}

void dequantize_row(const WeightMatrix& w, int64_t r, float* out) {
    const TypeTraits& wt = type_traits(w.type);
    if (!wt.supported || !wt.to_float) fail("cannot dequantize weight type ", wt.name);
    wt.to_float(w.row(r), out, w.cols);
}

}  // namespace pensieve
