// AVX-512 VNNI multi-token kernels for the K-quants Q4_K, Q5_K and Q6_K, whose
// activations are Q8_K rows (float d, 256 int8 qs, 16 int16 bsums per super-block).
// Same scheme as gemm_avx512.cpp (gemm.h): a gemm with 16 tokens in lanes over packed
// activation panels, a gemv with 16 weight rows in lanes, and one float order per
// (row, token) that both follow exactly, so results never depend on the batch.
//
// The float order. Per 256-weight super-block b, two exact int32 are formed first:
//
//     isum_b = sum_j sc_j * sum_{i in sub-block j} q_i * y_i    (Q6_K: with q_i - 32)
//     msum_b = sum_j mn_j * (sum of y over sub-block j)          (Q4_K/Q5_K only)
//
// and then, starting from acc = 0, per super-block in order:
//
//     acc = fma(float(isum_b),  d_w[b] * d_x[b],    acc)
//     acc = fma(float(msum_b), (-dmin_w[b]) * d_x[b], acc)    (Q4_K/Q5_K only)
//
// Integer sums are exact in any order (all bounded far below 2^31), so gemm and gemv
// may form them as suits their lane layout; only the float steps must match.
//
// Integer step of the gemm: q is unsigned (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63), so
// vpdpbusd (u8 weight broadcast x s8 activations of 16 tokens) forms each sub-block's
// q.y per token; one vpmulld by the sub-block scale folds it into isum. The min term
// (and Q6_K's -32 offset, -32 * sum_j sc_j * bsum_j) comes from the activations' bsums
// by vpdpwssd against int16 pairs of per-sub-block factors prepared at unpack time.
//
// As in the other AVX-512 files: everything sits in an anonymous namespace and calls
// only intrinsics and local helpers (no shared inline function gets emitted here with
// AVX-512 encodings), and dispatch.cpp calls in only after cpuid says the CPU can run it.
#include <immintrin.h>

#include <cstring>

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "kernels/gemm.h"
#include "kernels/simd_local_avx512.h"
#include "quant/blocks.h"

namespace pensieve::simd {

namespace {

constexpr int kLanes = 16;             // tokens per panel / rows per gemv group
constexpr int kGroups = QK_K / 4;      // 4-byte groups per super-block (one vpdpbusd each)
constexpr int kPairs = QK_K / 32;      // int16 bsum pairs per super-block

// 32 bytes as [x, x] in one register (a single broadcast load).
inline __m512i dup256(const uint8_t* p) { return _mm512_broadcast_i64x4(load256(p)); }

// Two int16 in one dword (lo first), the operand layout of vpdpwssd.
inline int32_t pair16(int lo, int hi) { return int32_t(uint32_t(uint16_t(lo)) | (uint32_t(uint16_t(hi)) << 16)); }

// Q4_K/Q5_K 6-bit scales (sc) and mins (mn) of the 8 sub-blocks, one per byte, as two
// 64-bit words: bytes 0..3 keep scales/mins 0..3 in their low 6 bits; sub-blocks 4..7
// take their low nibbles from bytes 8..11 and top 2 bits from the spare bits of 0..7.
inline void k4_scales_mins(const uint8_t* s, uint64_t& sc, uint64_t& mn) {
    const K4ScaleWords w = k4_scale_words(s);
    sc = uint64_t(w.sc_lo) | (uint64_t(w.sc_hi) << 32);
    mn = uint64_t(w.mn_lo) | (uint64_t(w.mn_hi) << 32);
}

// ------------------------------------------------------------------ unpacked weights
//
// The gemm unpacks each row once per pass into this form, then reuses it for every
// panel: q as unsigned bytes in weight order, the sub-block scales as int32 (broadcast
// operands of vpmulld), and per bsum pair the int16 factors of the bsum term.
struct alignas(64) Unpacked {
    uint8_t q[QK_K];
    int32_t sc[16];       // per sub-block scale (8 used by the 32-weight sub-block types)
    int32_t bfac[kPairs]; // int16 pair k multiplies (bsums[2k], bsums[2k+1])
    float d;              // f16(d)
    float neg_dmin;       // -f16(dmin) (types with a min)
};
static_assert(sizeof(Unpacked) == 384);

// Per type: Block, sub-block size, whether there is a min term, unpack() into the form
// above, and quants(p) for gemv: the 64 unsigned q of weights 64p..64p+63.

// Nibbles of 32 bytes, low ones (weights 64p..+31) in the low half, high ones in the
// high half: the Q4_K/Q5_K order.
inline __m512i nibbles64(const uint8_t* qs) {
    const __m512i v = _mm512_srlv_epi64(dup256(qs), _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
}

struct DecodeQ4_K {
    using Block = BlockQ4_K;
    static constexpr int kSub = 32;
    static constexpr bool kMin = true;
    static constexpr int kScaleOffset = 0;  // d, dmin as one dword at the block start
    static __m512i quants(const Block& b, int p) { return nibbles64(b.qs + 32 * p); }
    static void unpack(const Block& b, Unpacked& u) {
        for (int p = 0; p < 4; ++p) _mm512_storeu_si512(u.q + 64 * p, quants(b, p));
    }
};

// Q5_K: the fifth bit of weight 64p + l is bit 2p of qh[l], of 64p + 32 + l bit 2p+1.
struct DecodeQ5_K {
    using Block = BlockQ5_K;
    static constexpr int kSub = 32;
    static constexpr bool kMin = true;
    static constexpr int kScaleOffset = 0;
    static __m512i quants(const Block& b, int p) {
        const __m512i bit = join(_mm256_set1_epi8(char(1 << (2 * p))), _mm256_set1_epi8(char(1 << (2 * p + 1))));
        const __mmask64 high = _mm512_test_epi8_mask(dup256(b.qh), bit);
        return _mm512_mask_add_epi8(nibbles64(b.qs + 32 * p), high, nibbles64(b.qs + 32 * p), _mm512_set1_epi8(16));
    }
    static void unpack(const Block& b, Unpacked& u) {
        for (int p = 0; p < 4; ++p) _mm512_storeu_si512(u.q + 64 * p, quants(b, p));
    }
};

// Q6_K: weight 128h + 32s + l has its low 4 bits in ql[64h + 32(s&1) + l] (low nibble for
// s < 2, high for s >= 2) and its top 2 bits at bit 2s of qh[32h + l]. quants(p) with
// p = 2h + s/2 covers slots s, s+1 of half h: ql[64h..64h+63] gives the low bits of both
// (nibble by s/2), qh[32h..] duplicated gives bits 2s..2s+3.
struct DecodeQ6_K {
    using Block = BlockQ6_K;
    static constexpr int kSub = 16;
    static constexpr bool kMin = false;
    static constexpr int kScaleOffset = 206;  // d in the high half of the dword at 206
    static __m512i quants(const Block& b, int p) {
        const int h = p / 2, s = 2 * (p % 2);
        const __m512i ql = load512(b.ql + 64 * h);
        const __m512i lo = _mm512_and_si512(s ? _mm512_srli_epi64(ql, 4) : ql, _mm512_set1_epi8(0x0F));
        // bits 2s..2s+1 (low half) and 2s+2..2s+3 (high half) of qh, moved to bits 4..5
        const __m512i shift = s ? _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2) : _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2);
        const __m512i qh = dup256(b.qh + 32 * h);
        const __m512i hi = s ? _mm512_srlv_epi64(qh, shift) : _mm512_sllv_epi64(qh, shift);
        return _mm512_or_si512(lo, _mm512_and_si512(hi, _mm512_set1_epi8(0x30)));
    }
    static void unpack(const Block& b, Unpacked& u) {
        for (int p = 0; p < 4; ++p) _mm512_storeu_si512(u.q + 64 * p, quants(b, p));
    }
};

// Scales, bsum factors and float scales of one super-block (the gemm's scratch form).
template <typename Dec>
void unpack_scales(const typename Dec::Block& b, Unpacked& u) {
    if constexpr (Dec::kMin) {
        uint64_t sc, mn;
        k4_scales_mins(b.scales, sc, mn);
        for (int j = 0; j < 8; ++j) {
            const int m = int((mn >> (8 * j)) & 0xFF);
            u.sc[j] = int32_t((sc >> (8 * j)) & 0xFF);
            u.bfac[j] = pair16(m, m);  // msum: mn_j * (bsums[2j] + bsums[2j+1])
        }
        u.d = f16(b.d);
        u.neg_dmin = -f16(b.dmin);
    } else {
        for (int j = 0; j < 16; ++j) u.sc[j] = b.scales[j];
        // q - 32: -32 * sum_j sc_j * bsums[j], folded into isum
        for (int k = 0; k < kPairs; ++k) u.bfac[k] = pair16(-32 * b.scales[2 * k], -32 * b.scales[2 * k + 1]);
        u.d = f16(b.d);
        u.neg_dmin = 0.0f;
    }
}

// ------------------------------------------------------------------ activation panels
//
// One panel super-block holds 256 activations of 16 tokens: qs[g] is one 512-bit
// register with bytes 4g..4g+3 of every token (token l in dword l); bsum[k] the int16
// pair (bsums[2k], bsums[2k+1]) per token; then the scales. Unused lanes are zero.
struct alignas(64) PanelBlock {
    int8_t qs[kGroups][kLanes][4];
    int32_t bsum[kPairs][kLanes];
    float d[kLanes];
};
static_assert(sizeof(PanelBlock) == 4672);

size_t panel_bytes(int64_t cols) { return size_t(cols / QK_K) * sizeof(PanelBlock); }

// A 16 x 16 transpose of dwords: in[t] holds token t's 16 dwords; out[g] gets dword g of
// every token. Four rounds of 2x2 block swaps (dword, qword, 128-bit, 256-bit).
inline void transpose16(__m512i v[16]) {
    __m512i t[16];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) {
        v[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
        v[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
        v[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        v[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    // Now v[4i + c] holds, per 128-bit lane k, dword (4k + c) of tokens 4i..4i+3.
    for (int i = 0; i < 2; ++i)
        for (int c = 0; c < 4; ++c) {
            t[8 * i + c] = _mm512_shuffle_i32x4(v[8 * i + c], v[8 * i + 4 + c], 0x88);      // lanes 0,2 | 0,2
            t[8 * i + 4 + c] = _mm512_shuffle_i32x4(v[8 * i + c], v[8 * i + 4 + c], 0xDD);  // lanes 1,3 | 1,3
        }
    for (int c = 0; c < 4; ++c) {
        // t[c]: dword c of lane-0 tokens 0..3, lane 2 tokens 0..3, lane 0 tokens 4..7, lane 2 tokens 4..7
        v[c] = _mm512_shuffle_i32x4(t[c], t[8 + c], 0x88);          // dword c, tokens 0..15
        v[8 + c] = _mm512_shuffle_i32x4(t[c], t[8 + c], 0xDD);      // dword 8 + c
        v[4 + c] = _mm512_shuffle_i32x4(t[4 + c], t[12 + c], 0x88); // dword 4 + c
        v[12 + c] = _mm512_shuffle_i32x4(t[4 + c], t[12 + c], 0xDD);// dword 12 + c
    }
}

void pack_panel(const uint8_t* xq, size_t x_row_bytes, int n, int64_t cols, uint8_t* panel) {
    auto* out = reinterpret_cast<PanelBlock*>(panel);
    const int64_t nb = cols / QK_K;
    auto token = [&](int l) { return reinterpret_cast<const BlockQ8_K*>(xq + size_t(l < n ? l : 0) * x_row_bytes); };
    for (int64_t b = 0; b < nb; ++b) {
        // qs: 16 dwords of every token per 64-byte chunk, transposed to token lanes.
        for (int c = 0; c < kGroups / 16; ++c) {
            __m512i v[kLanes];
            for (int l = 0; l < kLanes; ++l)
                v[l] = l < n ? load512(token(l)[b].qs + 64 * c) : _mm512_setzero_si512();
            transpose16(v);
            for (int g = 0; g < 16; ++g) _mm512_store_si512(out[b].qs[16 * c + g], v[g]);
        }
        for (int k = 0; k < kPairs; ++k)
            for (int l = 0; l < kLanes; ++l)
                out[b].bsum[k][l] = l < n ? pair16(token(l)[b].bsums[2 * k], token(l)[b].bsums[2 * k + 1]) : 0;
        for (int l = 0; l < kLanes; ++l) out[b].d[l] = l < n ? token(l)[b].d : 0.0f;
    }
}

// ------------------------------------------------------------------ gemm: tokens in lanes

constexpr int kMaxRows = 4;

// Scratch: kMaxRows unpacked rows.
size_t gemm_scratch_bytes(int64_t cols) { return size_t(kMaxRows) * size_t(cols / QK_K) * sizeof(Unpacked) + 64; }

template <typename Dec>
void unpack_rows(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r, int rows, Unpacked* u) {
    const int64_t nb = cols / QK_K;
    for (int k = 0; k < rows; ++k) {
        const auto* blk = reinterpret_cast<const typename Dec::Block*>(w + size_t(r + k) * w_row_bytes);
        for (int64_t b = 0; b < nb; ++b) {
            Dec::unpack(blk[b], u[k * nb + b]);
            unpack_scales<Dec>(blk[b], u[k * nb + b]);
        }
    }
}

inline __m512i bcast(const void* p) { return _mm512_set1_epi32(int(load_u32(p))); }

// kRows unpacked rows x kPanels panels, register-blocked. Per super-block: the bsum term
// (Q6_K: into isum; Q4_K/Q5_K: msum after the sub-blocks), then per sub-block a q.y
// partial by vpdpbusd that vpmulld scales into isum, then the float steps of gemm.h.
template <typename Dec, int kRows, int kPanels>
void gemm_tile(const Unpacked* u, int64_t nb, const PanelBlock* const* panel, const int* n_valid, float* y,
               int64_t ldy) {
    constexpr int kSteps = Dec::kSub / 4;  // vpdpbusd per sub-block
    __m512 acc[kRows][kPanels];
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 8
        for (int p = 0; p < kPanels; ++p) acc[r][p] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const Unpacked* ub[kRows];
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) ub[r] = u + r * nb + b;
        __m512i isum[kRows][kPanels];
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 8
            for (int p = 0; p < kPanels; ++p) isum[r][p] = _mm512_setzero_si512();
        if constexpr (!Dec::kMin) {
            for (int k = 0; k < kPairs; ++k) {
                __m512i x[kPanels];
#pragma GCC unroll 8
                for (int p = 0; p < kPanels; ++p) x[p] = _mm512_load_si512(panel[p][b].bsum[k]);
#pragma GCC unroll 8
                for (int r = 0; r < kRows; ++r) {
                    const __m512i f = bcast(&ub[r]->bfac[k]);
#pragma GCC unroll 8
                    for (int p = 0; p < kPanels; ++p) isum[r][p] = _mm512_dpwssd_epi32(isum[r][p], x[p], f);
                }
            }
        }
        for (int j = 0; j < QK_K / Dec::kSub; ++j) {
            __m512i part[kRows][kPanels];
#pragma GCC unroll 8
            for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 8
                for (int p = 0; p < kPanels; ++p) part[r][p] = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int s = 0; s < kSteps; ++s) {
                const int g = j * kSteps + s;
                __m512i x[kPanels];
#pragma GCC unroll 8
                for (int p = 0; p < kPanels; ++p) x[p] = _mm512_load_si512(panel[p][b].qs[g]);
#pragma GCC unroll 8
                for (int r = 0; r < kRows; ++r) {
                    const __m512i wg = bcast(ub[r]->q + 4 * g);
#pragma GCC unroll 8
                    for (int p = 0; p < kPanels; ++p) part[r][p] = _mm512_dpbusd_epi32(part[r][p], wg, x[p]);
                }
            }
#pragma GCC unroll 8
            for (int r = 0; r < kRows; ++r) {
                const __m512i sc = bcast(&ub[r]->sc[j]);
#pragma GCC unroll 8
                for (int p = 0; p < kPanels; ++p)
                    isum[r][p] = _mm512_add_epi32(isum[r][p], _mm512_mullo_epi32(part[r][p], sc));
            }
        }
        __m512 dx[kPanels];
#pragma GCC unroll 8
        for (int p = 0; p < kPanels; ++p) dx[p] = _mm512_load_ps(panel[p][b].d);
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
            const __m512 dw = _mm512_set1_ps(ub[r]->d);
#pragma GCC unroll 8
            for (int p = 0; p < kPanels; ++p)
                acc[r][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r][p]), _mm512_mul_ps(dw, dx[p]), acc[r][p]);
        }
        if constexpr (Dec::kMin) {
            // msum reuses the isum registers (their value is in acc now).
#pragma GCC unroll 8
            for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 8
                for (int p = 0; p < kPanels; ++p) isum[r][p] = _mm512_setzero_si512();
            for (int k = 0; k < kPairs; ++k) {
                __m512i x[kPanels];
#pragma GCC unroll 8
                for (int p = 0; p < kPanels; ++p) x[p] = _mm512_load_si512(panel[p][b].bsum[k]);
#pragma GCC unroll 8
                for (int r = 0; r < kRows; ++r) {
                    const __m512i f = bcast(&ub[r]->bfac[k]);
#pragma GCC unroll 8
                    for (int p = 0; p < kPanels; ++p) isum[r][p] = _mm512_dpwssd_epi32(isum[r][p], x[p], f);
                }
            }
#pragma GCC unroll 8
            for (int r = 0; r < kRows; ++r) {
                const __m512 dm = _mm512_set1_ps(ub[r]->neg_dmin);
#pragma GCC unroll 8
                for (int p = 0; p < kPanels; ++p)
                    acc[r][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r][p]), _mm512_mul_ps(dm, dx[p]), acc[r][p]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 8
        for (int p = 0; p < kPanels; ++p) store_tokens(acc[r][p], n_valid[p], y + p * kLanes * ldy + r, ldy);
}

// All panels against kRows unpacked rows: pairs of panels, then a last single one.
template <typename Dec, int kRows>
void gemm_rows(const Unpacked* u, int64_t nb, const uint8_t* panels, int64_t n_panels, int last_n, float* y,
               int64_t ldy) {
    const size_t pbytes = size_t(nb) * sizeof(PanelBlock);
    auto panel_at = [&](int64_t p) { return reinterpret_cast<const PanelBlock*>(panels + size_t(p) * pbytes); };
    auto valid = [&](int64_t p) { return p == n_panels - 1 ? last_n : kLanes; };
    int64_t p = 0;
    for (; p + 1 < n_panels; p += 2) {
        const PanelBlock* pp[2] = {panel_at(p), panel_at(p + 1)};
        const int nv[2] = {valid(p), valid(p + 1)};
        gemm_tile<Dec, kRows, 2>(u, nb, pp, nv, y + p * kLanes * ldy, ldy);
    }
    if (p < n_panels) {
        const PanelBlock* pp[1] = {panel_at(p)};
        const int nv[1] = {valid(p)};
        gemm_tile<Dec, kRows, 1>(u, nb, pp, nv, y + p * kLanes * ldy, ldy);
    }
}

template <typename Dec>
void gemm(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const uint8_t* panels,
          int64_t n_panels, int last_n, float* y, int64_t ldy, uint8_t* scratch) {
    constexpr int kRows = kMaxRows;
    const int64_t nb = cols / QK_K;
    auto* u = reinterpret_cast<Unpacked*>(scratch);
    int64_t r = r0;
    for (; r + kRows <= r1; r += kRows) {
        unpack_rows<Dec>(w, w_row_bytes, cols, r, kRows, u);
        // The next group's rows come from memory while this one runs over the panels.
        if (r + 2 * kRows <= r1) prefetch(w + size_t(r + kRows) * w_row_bytes, size_t(kRows) * w_row_bytes);
        gemm_rows<Dec, kRows>(u, nb, panels, n_panels, last_n, y + r, ldy);
    }
    for (; r < r1; ++r) {  // leftover rows one at a time
        unpack_rows<Dec>(w, w_row_bytes, cols, r, 1, u);
        gemm_rows<Dec, 1>(u, nb, panels, n_panels, last_n, y + r, ldy);
    }
}

// ------------------------------------------------------------------ gemv: rows in lanes

// v[r]: row r's partial sums, two sets of 8 (A in lanes 0..7, B in lanes 8..15) four
// per 128-bit lane. Returns row r's total of A in lane r of sum_a, of B in sum_b: two
// in-lane halvings, then the 128-bit lanes added across by shuffles that also put the
// rows in order (as in gemm_avx512.cpp).
inline void reduce_rows(__m512i v[kLanes], __m512i& sum_a, __m512i& sum_b) {
    for (int m = 0; m < 8; ++m)
        v[m] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * m], v[2 * m + 1]),
                                _mm512_unpackhi_epi32(v[2 * m], v[2 * m + 1]));
    for (int m = 0; m < 4; ++m)
        v[m] = _mm512_add_epi32(_mm512_unpacklo_epi64(v[2 * m], v[2 * m + 1]),
                                _mm512_unpackhi_epi64(v[2 * m], v[2 * m + 1]));
    for (int m = 0; m < 2; ++m)
        v[m] = _mm512_add_epi32(_mm512_shuffle_i32x4(v[2 * m], v[2 * m + 1], 0x88),
                                _mm512_shuffle_i32x4(v[2 * m], v[2 * m + 1], 0xDD));
    sum_a = _mm512_shuffle_i32x4(v[0], v[1], 0x88);
    sum_b = _mm512_shuffle_i32x4(v[0], v[1], 0xDD);
}

// vpermw indices spreading per-sub-block int16 scales over the 32 int16 lanes of one
// 64-weight step p (quants(p)): kSpread32[p] for 32-weight sub-blocks (lanes 0..15 get
// scale 2p, 16..31 scale 2p+1), kSpread16[p] for 16-weight ones (8 lanes per scale).
struct SpreadTable {
    alignas(64) int16_t idx[4][32];
};
constexpr SpreadTable make_spread(int per_step) {
    SpreadTable t{};
    for (int p = 0; p < 4; ++p)
        for (int l = 0; l < 32; ++l) t.idx[p][l] = int16_t(per_step * p + l / (32 / per_step));
    return t;
}
constexpr SpreadTable kSpread32 = make_spread(2);
constexpr SpreadTable kSpread16 = make_spread(4);

// One row's super-block against the token: Q4_K/Q5_K: lanes 0..7 sum to isum, lanes
// 8..15 to msum; Q6_K: all 16 lanes sum to isum. vpmaddubsw pairs stay below
// 2 * 63 * 127, vpdpwssd multiplies each by its sub-block scale into int32.
template <typename Dec>
inline __m512i row_sums(const typename Dec::Block& blk, const __m512i y[4], __m256i bsums) {
    __m512i acc = _mm512_setzero_si512();
    if constexpr (Dec::kMin) {
        uint64_t sc, mn;
        k4_scales_mins(blk.scales, sc, mn);
        const __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(sc))));
        for (int p = 0; p < 4; ++p) {
            const __m512i scale = _mm512_permutexvar_epi16(_mm512_load_si512(kSpread32.idx[p]), sc16);
            acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(Dec::quants(blk, p), y[p]), scale);
        }
        const __m128i mn8 = _mm_cvtsi64_si128(int64_t(mn));
        const __m256i msum = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn8, mn8)), bsums);
        const __m256i folded = _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
        return join(folded, msum);
    } else {
        // bsums arrives negated: the q - 32 offset is one more vpdpwssd, (32 sc) x (-bsum),
        // both factors within int16. All 16 lanes then sum to isum (msum lanes unused).
        const __m256i sc16 = _mm256_cvtepi8_epi16(load128(blk.scales));
        acc = _mm512_dpwssd_epi32(acc, _mm512_zextsi256_si512(_mm256_slli_epi16(sc16, 5)), _mm512_zextsi256_si512(bsums));
        for (int p = 0; p < 4; ++p) {
            const __m512i scale = _mm512_permutexvar_epi16(_mm512_load_si512(kSpread16.idx[p]), _mm512_castsi256_si512(sc16));
            acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(Dec::quants(blk, p), y[p]), scale);
        }
        return acc;
    }
}

template <typename Dec>
void gemv_group(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r, int rows, const BlockQ8_K* x,
                float* y) {
    using Block = typename Dec::Block;
    const int64_t nb = cols / QK_K;
    const Block* row[kLanes];
    alignas(64) int32_t off[kLanes];
    for (int k = 0; k < kLanes; ++k) {  // rows past the end repeat the last one (unused lanes)
        const int kk = k < rows ? k : rows - 1;
        row[k] = reinterpret_cast<const Block*>(w + size_t(r + kk) * w_row_bytes);
        off[k] = int32_t(size_t(kk) * w_row_bytes);
    }
    const __m512i row_offsets = _mm512_load_si512(off);
    const uint8_t* base = w + size_t(r) * w_row_bytes + Dec::kScaleOffset;
    // 16 rows read in lockstep are 16 short streams, which the hardware prefetchers
    // follow poorly; instead fetch the next group's rows (contiguous) a slice per step,
    // into L2: a group of a wide matrix (ffn_down, 5632 columns: 50 KB) does not fit L1,
    // so fetching it there one group ahead evicted itself. Into L1 go the current rows'
    // blocks two steps ahead. synth-1b-Q4_K_M tg64, 14 alternating pairs: 0.99-1.24x
    // the L1-only fetch (median 1.07; the gain shows in windows with bandwidth to
    // spare); prefetching nothing: 0.6x; the next group into L1 two groups ahead: 0.83x.
    const uint8_t* next = w + size_t(r + kLanes) * w_row_bytes;
    const size_t slice = (size_t(kLanes) * w_row_bytes / size_t(nb) + 63) & ~size_t(63);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, next += slice) {
        prefetch_l2(next, slice);
        if (b + 2 < nb)
            for (int k = 0; k < kLanes; ++k) prefetch(reinterpret_cast<const uint8_t*>(&row[k][b + 2]), sizeof(Block));
        __m512i xy[4];
        for (int p = 0; p < 4; ++p) xy[p] = load512(x[b].qs + 64 * p);
        const __m256i bsums = Dec::kMin ? load256(x[b].bsums) : _mm256_sub_epi16(_mm256_setzero_si256(), load256(x[b].bsums));
        __m512i v[kLanes];
        for (int k = 0; k < kLanes; ++k) v[k] = row_sums<Dec>(row[k][b], xy, bsums);
        __m512i isum, msum;
        reduce_rows(v, isum, msum);
        // d (and dmin) of the 16 rows, read as one dword per row.
        const __m512i raw = _mm512_i32gather_epi32(row_offsets, base + size_t(b) * sizeof(Block), 1);
        const __m512 dx = _mm512_set1_ps(x[b].d);
        if constexpr (Dec::kMin) {
            const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
            // exactly -dmin, as the gemm stores it (a sign flip, also for zero)
            const __m512 neg_dmin = _mm512_xor_ps(_mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(raw, 16))),
                                                  _mm512_set1_ps(-0.0f));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, dx), acc);
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(neg_dmin, dx), acc);
        } else {
            const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(raw, 16)));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(isum, msum)), _mm512_mul_ps(dw, dx), acc);
        }
    }
    _mm512_mask_storeu_ps(y + r, __mmask16((1u << rows) - 1), acc);
}

template <typename Dec>
void gemv(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const uint8_t* xq, float* y) {
    const auto* x = reinterpret_cast<const BlockQ8_K*>(xq);
    for (int64_t r = r0; r < r1; r += kLanes)
        gemv_group<Dec>(w, w_row_bytes, cols, r, int(min64(kLanes, r1 - r)), x, y);
}

// ------------------------------------------------------------------ narrow: rows in lanes, few tokens

// 16 rows (lanes) x kT tokens of one panel. Per super-block the rows are unpacked and
// their quants transposed once (wq[g]: the 4-byte group g of every row, lane = row), the
// per-row scales laid out by sub-block; then every token adds its integer sums with its
// own 4 activation bytes broadcast per group, and the float steps of the file's header
// follow per (row, token), d_w in lanes times the token's d_x: the gemm's values exactly.
// The weights are read and decoded once per call however many tokens there are (the gemm
// pads a speculative verify of 5 tokens to 16 lanes: 3x the integer work).
template <typename Dec, int kT>
void narrow_group(const uint8_t* w, size_t w_row_bytes, int64_t nb, const PanelBlock* panel, float* y, int64_t ldy) {
    constexpr int kSteps = Dec::kSub / 4;
    constexpr int kSubs = QK_K / Dec::kSub;
    alignas(64) Unpacked u[kLanes];
    alignas(64) __m512i wq[kGroups];
    alignas(64) int32_t sc[kSubs][kLanes], bfac[kPairs][kLanes];
    alignas(64) float dw[kLanes], dm[kLanes];
    __m512 acc[kT];
#pragma GCC unroll 16
    for (int t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
    // The next group's rows are fetched a slice per super-block, as in gemv_group (16 rows
    // read in lockstep are streams the hardware prefetchers follow poorly: without this
    // the loads of the weights took half the kernel's time).
    const uint8_t* next = w + size_t(kLanes) * w_row_bytes;
    const size_t slice = (size_t(kLanes) * w_row_bytes / size_t(nb) + 63) & ~size_t(63);
    for (int64_t b = 0; b < nb; ++b, next += slice) {
        prefetch(next, slice);
        for (int k = 0; k < kLanes; ++k) {
            const auto& blk = reinterpret_cast<const typename Dec::Block*>(w + size_t(k) * w_row_bytes)[b];
            Dec::unpack(blk, u[k]);
            unpack_scales<Dec>(blk, u[k]);
            for (int j = 0; j < kSubs; ++j) sc[j][k] = u[k].sc[j];
            for (int q = 0; q < kPairs; ++q) bfac[q][k] = u[k].bfac[q];
            dw[k] = u[k].d;
            dm[k] = u[k].neg_dmin;
        }
        for (int c = 0; c < kGroups / 16; ++c) {
            __m512i v[kLanes];
            for (int k = 0; k < kLanes; ++k) v[k] = _mm512_load_si512(u[k].q + 64 * c);
            transpose16(v);
            for (int g = 0; g < 16; ++g) wq[16 * c + g] = v[g];
        }
        const PanelBlock& x = panel[b];
        const __m512 dwv = _mm512_load_ps(dw), dmv = _mm512_load_ps(dm);
#pragma GCC unroll 16
        for (int t = 0; t < kT; ++t) {
            __m512i isum = _mm512_setzero_si512();
            if constexpr (!Dec::kMin)
                for (int q = 0; q < kPairs; ++q)
                    isum = _mm512_dpwssd_epi32(isum, _mm512_load_si512(bfac[q]), _mm512_set1_epi32(x.bsum[q][t]));
            for (int j = 0; j < kSubs; ++j) {
                __m512i part = _mm512_setzero_si512();
#pragma GCC unroll 8
                for (int st = 0; st < kSteps; ++st) {
                    const int g = j * kSteps + st;
                    part = _mm512_dpbusd_epi32(part, wq[g], bcast(x.qs[g][t]));
                }
                isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(part, _mm512_load_si512(sc[j])));
            }
            const __m512 dx = _mm512_set1_ps(x.d[t]);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dwv, dx), acc[t]);
            if constexpr (Dec::kMin) {
                __m512i msum = _mm512_setzero_si512();
                for (int q = 0; q < kPairs; ++q)
                    msum = _mm512_dpwssd_epi32(msum, _mm512_load_si512(bfac[q]), _mm512_set1_epi32(x.bsum[q][t]));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(dmv, dx), acc[t]);
            }
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < kT; ++t) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

template <typename Dec, int kT>
void narrow_rows(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const PanelBlock* panel,
                 float* y, int64_t ldy) {
    const int64_t nb = cols / QK_K;
    for (int64_t r = r0; r < r1; r += kLanes) {
        // A last partial group slides back over rows already done (same values rewritten).
        const int64_t rr = min64(r, r1 - kLanes);
        narrow_group<Dec, kT>(w + size_t(rr) * w_row_bytes, w_row_bytes, nb, panel, y + rr, ldy);
    }
}

template <typename Dec>
void narrow(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const uint8_t* panel, int n,
            float* y, int64_t ldy) {
    using Fn = void (*)(const uint8_t*, size_t, int64_t, int64_t, int64_t, const PanelBlock*, float*, int64_t);
    static constexpr Fn kByTokens[kLanes] = {
        narrow_rows<Dec, 1>,  narrow_rows<Dec, 2>,  narrow_rows<Dec, 3>,  narrow_rows<Dec, 4>,
        narrow_rows<Dec, 5>,  narrow_rows<Dec, 6>,  narrow_rows<Dec, 7>,  narrow_rows<Dec, 8>,
        narrow_rows<Dec, 9>,  narrow_rows<Dec, 10>, narrow_rows<Dec, 11>, narrow_rows<Dec, 12>,
        narrow_rows<Dec, 13>, narrow_rows<Dec, 14>, narrow_rows<Dec, 15>, narrow_rows<Dec, 16>};
    kByTokens[n - 1](w, w_row_bytes, cols, r0, r1, reinterpret_cast<const PanelBlock*>(panel), y, ldy);
}

template <typename Dec>
constexpr GemmKernels make_kernels() {
    GemmKernels k;
    k.panel_tokens = kLanes;
    k.panel_bytes = panel_bytes;
    k.pack = pack_panel;
    k.scratch_bytes = gemm_scratch_bytes;
    k.gemm = gemm<Dec>;
    k.gemv = gemv<Dec>;
    k.narrow = narrow<Dec>;
    // synth-1b-Q4_K_M, one pass of N tokens, 2 threads, 3 alternating pairs (tok/s,
    // gemm -> narrow): N=4 54 -> 89, 5 65 -> 99, 8 92 -> 109, 16 177 -> 144.
    k.narrow_max = 10;
    return k;
}

constexpr GemmKernels kQ4_K = make_kernels<DecodeQ4_K>();
constexpr GemmKernels kQ5_K = make_kernels<DecodeQ5_K>();
constexpr GemmKernels kQ6_K = make_kernels<DecodeQ6_K>();

}  // namespace

const GemmKernels* avx512_gemm_kquant(GgmlType type) {
    switch (type) {
        case GgmlType::Q4_K: return &kQ4_K;
        case GgmlType::Q5_K: return &kQ5_K;
        case GgmlType::Q6_K: return &kQ6_K;
        default: return nullptr;
    }
}

}  // namespace pensieve::simd
