// AVX-512 multi-token kernels for F32 weights with F32 activations, bit-identical to
// the scalar reference vec_dot_f32 (quant/quant_float.cpp) for every (row, token):
//
//     acc = +0;  for i = 0 .. cols-1 in order:  acc = acc + (w[i] * x[i])
//
// with the product rounded to float before the add (no FMA). Why so strict: on the
// F32 model the golden test checks (stories260K) every other summation order tried
// moves the worst prompt logit past its tolerance (NOTES.md), so speed may come only
// from doing 16 such sequential sums at once, one per lane, never from reordering one.
//
//  - gemm: lanes are 16 tokens of a packed panel (panel[i][lane] = x_lane[i]); each
//    weight w[r][i] is broadcast. Several rows x panels are register-blocked so the
//    independent sums hide the add latency.
//  - gemv: lanes are 16 rows: 16x16 blocks of W are transposed so lane r holds w[r][i],
//    then acc += Wt[i] * broadcast(x[i]), several row groups side by side.
//  - narrow (up to 16 tokens of one panel): lanes are 16 rows as in gemv, each block is
//    transposed once and then used by every token (x of the token broadcast).
//
// The separate multiply and add are explicit intrinsics, but GCC defines _mm512_mul_ps
// and _mm512_add_ps as plain vector arithmetic, which it may fuse into an FMA under its
// default -ffp-contract=fast: contraction is switched off for this file below.
//
// As in vec_dot_avx512.cpp: only intrinsics and local helpers in an anonymous namespace
// (no shared inline function is emitted here with AVX-512 encodings).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <immintrin.h>

#include <cstddef>
#include <cstring>

// GCC's masked-load intrinsics read their (unused) pass-through operand uninitialised.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "kernels/gemm.h"
#include "kernels/simd_local_avx512.h"

namespace pensieve::simd {

namespace {

constexpr int kLanes = 16;  // tokens per panel / rows per gemv and narrow group

// One step of the reference sum, in every lane.
inline __m512 step(__m512 acc, __m512 w, __m512 x) { return _mm512_add_ps(acc, _mm512_mul_ps(w, x)); }

// ------------------------------------------------------------------ activation panels
//
// A panel is cols x 16 floats: row i holds x[i] of the 16 tokens (token l in lane l),
// so one aligned load feeds one column to all tokens. Lanes past the tokens are zero.

size_t panel_bytes(int64_t cols) { return size_t(cols) * kLanes * sizeof(float); }

void pack_panel(const uint8_t* xq, size_t x_row_bytes, int n, int64_t cols, uint8_t* panel) {
    auto* out = reinterpret_cast<float*>(panel);
    if (n < kLanes) std::memset(panel, 0, panel_bytes(cols));
    for (int l = 0; l < n; ++l) {
        const auto* x = reinterpret_cast<const float*>(xq + size_t(l) * x_row_bytes);
        for (int64_t i = 0; i < cols; ++i) out[i * kLanes + l] = x[i];
    }
}

// Weights are broadcast straight from the mapping: gemm needs no scratch.
size_t gemm_scratch_bytes(int64_t) { return 0; }

// ------------------------------------------------------------------ gemm: tokens in lanes

// kRows weight rows x kPanels panels: per column, kPanels loads and kRows broadcasts
// feed kRows * kPanels independent sums.
template <int kRows, int kPanels>
void gemm_tile(const float* w, size_t w_stride, int64_t cols, const float* const* panel, const int* n_valid,
               float* y, int64_t ldy) {
    __m512 acc[kRows][kPanels];
    for (int r = 0; r < kRows; ++r)
        for (int p = 0; p < kPanels; ++p) acc[r][p] = _mm512_setzero_ps();
    for (int64_t i = 0; i < cols; ++i) {
        __m512 x[kPanels];
        for (int p = 0; p < kPanels; ++p) x[p] = _mm512_load_ps(panel[p] + i * kLanes);
        for (int r = 0; r < kRows; ++r) {
            const __m512 wb = _mm512_set1_ps(w[size_t(r) * w_stride + size_t(i)]);
            for (int p = 0; p < kPanels; ++p) acc[r][p] = step(acc[r][p], wb, x[p]);
        }
    }
    for (int r = 0; r < kRows; ++r)
        for (int p = 0; p < kPanels; ++p) store_tokens(acc[r][p], n_valid[p], y + p * kLanes * ldy + r, ldy);
}

// kRows rows against all panels: three at a time, then the rest one by one.
template <int kRows>
void gemm_rows(const float* w, size_t w_stride, int64_t cols, const uint8_t* panels, int64_t n_panels, int last_n,
               float* y, int64_t ldy) {
    const size_t pbytes = panel_bytes(cols);
    auto panel_at = [&](int64_t p) { return reinterpret_cast<const float*>(panels + size_t(p) * pbytes); };
    auto valid = [&](int64_t p) { return p == n_panels - 1 ? last_n : kLanes; };
    int64_t p = 0;
    for (; p + 3 <= n_panels; p += 3) {
        const float* pp[3] = {panel_at(p), panel_at(p + 1), panel_at(p + 2)};
        const int nv[3] = {valid(p), valid(p + 1), valid(p + 2)};
        gemm_tile<kRows, 3>(w, w_stride, cols, pp, nv, y + p * kLanes * ldy, ldy);
    }
    for (; p < n_panels; ++p) {
        const float* pp[1] = {panel_at(p)};
        const int nv[1] = {valid(p)};
        gemm_tile<kRows, 1>(w, w_stride, cols, pp, nv, y + p * kLanes * ldy, ldy);
    }
}

void gemm(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const uint8_t* panels,
          int64_t n_panels, int last_n, float* y, int64_t ldy, uint8_t*) {
    constexpr int kRows = 4;  // 4 rows x 3 panels = 12 sums in flight
    const size_t stride = w_row_bytes / sizeof(float);
    auto row = [&](int64_t r) { return reinterpret_cast<const float*>(w + size_t(r) * w_row_bytes); };
    int64_t r = r0;
    for (; r + kRows <= r1; r += kRows) gemm_rows<kRows>(row(r), stride, cols, panels, n_panels, last_n, y + r, ldy);
    for (; r < r1; ++r) gemm_rows<1>(row(r), stride, cols, panels, n_panels, last_n, y + r, ldy);
}

// ------------------------------------------------------------------ transposed weight blocks

// In place: v[k] = row k (16 floats) becomes v[j] = column j (lane k = row k). Two
// in-lane stages leave 4x4 blocks transposed inside every 128-bit lane (register 4q + c,
// lane L = column 4L + c of rows 4q..4q+3); two 128-bit shuffle stages then transpose
// those lanes across registers c, 4 + c, 8 + c, 12 + c.
inline void transpose16(__m512 v[kLanes]) {
    __m512 t[kLanes];
    for (int k = 0; k < kLanes; k += 2) {
        t[k] = _mm512_unpacklo_ps(v[k], v[k + 1]);
        t[k + 1] = _mm512_unpackhi_ps(v[k], v[k + 1]);
    }
    for (int q = 0; q < 4; ++q) {  // t[4q..4q+3] hold rows 4q..4q+3
        const __m512 lo0 = t[4 * q], hi0 = t[4 * q + 1], lo1 = t[4 * q + 2], hi1 = t[4 * q + 3];
        v[4 * q + 0] = _mm512_shuffle_ps(lo0, lo1, 0x44);
        v[4 * q + 1] = _mm512_shuffle_ps(lo0, lo1, 0xEE);
        v[4 * q + 2] = _mm512_shuffle_ps(hi0, hi1, 0x44);
        v[4 * q + 3] = _mm512_shuffle_ps(hi0, hi1, 0xEE);
    }
    for (int c = 0; c < 4; ++c) {  // 0x88: lanes 0, 2 of each; 0xDD: lanes 1, 3
        t[c] = _mm512_shuffle_f32x4(v[c], v[4 + c], 0x88);
        t[4 + c] = _mm512_shuffle_f32x4(v[c], v[4 + c], 0xDD);
        t[8 + c] = _mm512_shuffle_f32x4(v[8 + c], v[12 + c], 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(v[8 + c], v[12 + c], 0xDD);
    }
    for (int c = 0; c < 4; ++c) {
        v[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);           // column c
        v[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xDD);       // column 8 + c
        v[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);  // column 4 + c
        v[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xDD); // column 12 + c
    }
}

// 16 rows (row k at rows + k * stride floats) x columns [c, c + nc), nc <= 16, as out[j]
// = column c + j with row k in lane k. Columns past nc are loaded as zero (never used).
inline void load_block_t(const float* rows, size_t stride, int64_t c, int nc, __m512 out[kLanes]) {
    const __mmask16 m = __mmask16((1u << nc) - 1);
    for (int k = 0; k < kLanes; ++k) out[k] = _mm512_maskz_loadu_ps(m, rows + size_t(k) * stride + size_t(c));
    transpose16(out);
}

// ------------------------------------------------------------------ gemv: rows in lanes

// kG groups of 16 rows side by side (independent sums hide the add latency). Rows of a
// group past `rows_last` (in the last group) repeat its last row; their lanes are not
// stored.
template <int kG>
void gemv_groups(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r, int rows_last, const float* x,
                 float* y) {
    const float* row[kG][kLanes];
    for (int g = 0; g < kG; ++g) {
        const int n = g == kG - 1 ? rows_last : kLanes;
        for (int k = 0; k < kLanes; ++k)
            row[g][k] = reinterpret_cast<const float*>(w + size_t(r + g * kLanes + (k < n ? k : n - 1)) * w_row_bytes);
    }
    __m512 acc[kG];
    for (int g = 0; g < kG; ++g) acc[g] = _mm512_setzero_ps();
    alignas(64) float wt[kG][kLanes][kLanes];
    for (int64_t c = 0; c < cols; c += kLanes) {
        const int nc = int(min64(kLanes, cols - c));
        const __mmask16 m = __mmask16((1u << nc) - 1);
        for (int g = 0; g < kG; ++g) {
            __m512 v[kLanes];  // columns past nc load as zero (never used)
            for (int k = 0; k < kLanes; ++k) v[k] = _mm512_maskz_loadu_ps(m, row[g][k] + c);
            transpose16(v);
            for (int j = 0; j < kLanes; ++j) _mm512_store_ps(wt[g][j], v[j]);
        }
        for (int j = 0; j < nc; ++j) {
            const __m512 xb = _mm512_set1_ps(x[c + j]);
            for (int g = 0; g < kG; ++g) acc[g] = step(acc[g], _mm512_load_ps(wt[g][j]), xb);
        }
    }
    for (int g = 0; g < kG; ++g) {
        const int n = g == kG - 1 ? rows_last : kLanes;
        _mm512_mask_storeu_ps(y + r + g * kLanes, __mmask16((1u << n) - 1), acc[g]);
    }
}

void gemv(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const uint8_t* xq, float* y) {
    const auto* x = reinterpret_cast<const float*>(xq);
    constexpr int kG = 4;
    int64_t r = r0;
    for (; r + kG * kLanes <= r1; r += kG * kLanes) gemv_groups<kG>(w, w_row_bytes, cols, r, kLanes, x, y);
    for (; r < r1; r += kLanes) gemv_groups<1>(w, w_row_bytes, cols, r, int(min64(kLanes, r1 - r)), x, y);
}

// ------------------------------------------------------------------ narrow: rows in lanes, few tokens

// Rows [0, 16) of w against the first kT tokens of a panel: each 16x16 block is
// transposed once, then every token runs its 16 sequential steps over it.
template <int kT>
void narrow_group(const float* w, size_t stride, int64_t cols, const float* panel, float* y, int64_t ldy) {
    __m512 acc[kT];
#pragma GCC unroll 16
    for (int t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t c = 0; c < cols; c += kLanes) {
        const int nc = int(min64(kLanes, cols - c));
        __m512 wt[kLanes];
        load_block_t(w, stride, c, nc, wt);
        for (int j = 0; j < nc; ++j) {
            const float* xj = panel + (c + j) * kLanes;
#pragma GCC unroll 16
            for (int t = 0; t < kT; ++t) acc[t] = step(acc[t], wt[j], _mm512_set1_ps(xj[t]));
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < kT; ++t) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

template <int kT>
void narrow_rows(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const float* panel,
                 float* y, int64_t ldy) {
    const size_t stride = w_row_bytes / sizeof(float);
    for (int64_t r = r0; r < r1; r += kLanes) {
        // A last partial group slides back over rows already done (same values rewritten).
        const int64_t rr = min64(r, r1 - kLanes);
        narrow_group<kT>(reinterpret_cast<const float*>(w + size_t(rr) * w_row_bytes), stride, cols, panel, y + rr,
                         ldy);
    }
}

void narrow(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const uint8_t* panel, int n,
            float* y, int64_t ldy) {
    using Fn = void (*)(const uint8_t*, size_t, int64_t, int64_t, int64_t, const float*, float*, int64_t);
    static constexpr Fn kByTokens[kLanes] = {
        narrow_rows<1>,  narrow_rows<2>,  narrow_rows<3>,  narrow_rows<4>,  narrow_rows<5>,  narrow_rows<6>,
        narrow_rows<7>,  narrow_rows<8>,  narrow_rows<9>,  narrow_rows<10>, narrow_rows<11>, narrow_rows<12>,
        narrow_rows<13>, narrow_rows<14>, narrow_rows<15>, narrow_rows<16>};
    kByTokens[n - 1](w, w_row_bytes, cols, r0, r1, reinterpret_cast<const float*>(panel), y, ldy);
}

constexpr GemmKernels make_kernels() {
    GemmKernels k;
    k.panel_tokens = kLanes;
    k.panel_bytes = panel_bytes;
    k.pack = pack_panel;
    k.scratch_bytes = gemm_scratch_bytes;
    k.gemm = gemm;
    k.gemv = gemv;
    k.narrow = narrow;
    return k;
}

constexpr GemmKernels kF32 = make_kernels();

}  // namespace

const GemmKernels* avx512_gemm_f32(GgmlType type) { return type == GgmlType::F32 ? &kF32 : nullptr; }

}  // namespace pensieve::simd
