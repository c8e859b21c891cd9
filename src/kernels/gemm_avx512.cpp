// AVX-512 VNNI multi-token kernels for 32-weight block types with Q8_0 activations
// (gemm.h explains the float order all three kernels share). Compiled with AVX-512 flags;
// dispatch.cpp hands them out only after cpuid says the CPU has them.
//
// As in vec_dot_avx512.cpp: everything sits in an anonymous namespace and calls only
// intrinsics and local helpers, so no inline function from a shared header is emitted
// here with AVX-512 encodings (the linker could pick that copy for the whole program).
//
// Integer step: vpdpbusd multiplies u8 x s8. Each weight type is decoded to unsigned
// bytes u = q + c (c a per-type constant), so sum q*y = sum u*y - c * sum y; the
// correction is exact and is loaded as the accumulator's starting value.
#include <immintrin.h>

#include <cstddef>
#include <cstring>

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "kernels/gemm.h"
#include "kernels/simd_local_avx512.h"
#include "quant/blocks.h"

namespace pensieve::simd {

namespace {

constexpr int kLanes = 16;           // tokens per panel / rows per gemv and narrow group
constexpr int kGroups = QK8_0 / 4;   // 4-byte groups per block (one vpdpbusd step each)

// ------------------------------------------------------------------ weight decoders
//
// unpack(b): the 32 weights of block b as unsigned bytes q + kOffset, in weight order.
// unpack_x2(a, b): the same for two blocks in one register (gemv), a in the low half.

// Nibbles of two blocks (weight j low, j+16 high) as 64 bytes 0..15 in weight order.
inline __m512i nibbles_x2(const uint8_t* qa, const uint8_t* qb) {
    const __m512i v = join(_mm256_broadcastsi128_si256(load128(qa)), _mm256_broadcastsi128_si256(load128(qb)));
    const __m512i shifted = _mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
    return _mm512_and_si512(shifted, _mm512_set1_epi8(0x0F));
}
inline __m256i nibbles(const uint8_t* q) {
    const __m128i x = load128(q);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(x, 4), x), _mm256_set1_epi8(0x0F));
}

struct DecodeQ4_0 {
    using Block = BlockQ4_0;
    static constexpr int kOffset = 8;
    static __m256i unpack(const Block& b) { return nibbles(b.qs); }
    static __m512i unpack_x2(const Block& a, const Block& b) { return nibbles_x2(a.qs, b.qs); }
};

// s8 weights: q ^ 0x80 is q + 128 read as u8.
struct DecodeQ8_0 {
    using Block = BlockQ8_0;
    static constexpr int kOffset = 128;
    static __m256i unpack(const Block& b) { return _mm256_xor_si256(load256(b.qs), _mm256_set1_epi8(char(0x80))); }
    static __m512i unpack_x2(const Block& a, const Block& b) {
        return _mm512_xor_si512(join(load256(a.qs), load256(b.qs)), _mm512_set1_epi8(char(0x80)));
    }
};

// Q5_0: the 32 qh bits are a byte mask as they are (bit k = weight k).
struct DecodeQ5_0 {
    using Block = BlockQ5_0;
    static constexpr int kOffset = 16;
    static __m256i unpack(const Block& b) {
        const __mmask32 hi = _cvtu32_mask32(load_u32(b.qh));
        return _mm256_or_si256(nibbles(b.qs), _mm256_maskz_mov_epi8(hi, _mm256_set1_epi8(16)));
    }
    static __m512i unpack_x2(const Block& a, const Block& b) {
        const __mmask64 hi = _cvtu64_mask64(uint64_t(load_u32(a.qh)) | (uint64_t(load_u32(b.qh)) << 32));
        return _mm512_or_si512(nibbles_x2(a.qs, b.qs), _mm512_maskz_mov_epi8(hi, _mm512_set1_epi8(16)));
    }
};

// IQ4_NL: vpshufb looks up level + 128 (unsigned).
struct DecodeIQ4_NL {
    using Block = BlockIQ4_NL;
    static constexpr int kOffset = 128;
    static __m512i table() {
        return _mm512_xor_si512(_mm512_broadcast_i32x4(load128(kIq4nlValues)), _mm512_set1_epi8(char(0x80)));
    }
    static __m256i unpack(const Block& b) {
        return _mm256_shuffle_epi8(_mm512_castsi512_si256(table()), nibbles(b.qs));
    }
    static __m512i unpack_x2(const Block& a, const Block& b) {
        return _mm512_shuffle_epi8(table(), nibbles_x2(a.qs, b.qs));
    }
};

// ------------------------------------------------------------------ activation panels
//
// One panel block holds 32 activations of 16 tokens: qs[g] is one 512-bit register with
// bytes 4g..4g+3 of every token (token l in dword l), then per token the correction
// -c * sum(qs) and the scale d as float. Lanes past the panel's tokens are all zero.
struct alignas(64) PanelBlock {
    int8_t qs[kGroups][kLanes][4];
    int32_t corr[kLanes];
    float d[kLanes];
};
static_assert(sizeof(PanelBlock) == 640);

size_t panel_bytes(int64_t cols) { return size_t(cols / QK8_0) * sizeof(PanelBlock); }

// Sum of the 32 signed bytes of a Q8_0 block: vpsadbw sums q + 128 as unsigned bytes.
inline int block_sum(const int8_t* qs) {
    const __m256i u = _mm256_xor_si256(load256(qs), _mm256_set1_epi8(char(0x80)));
    const __m256i s = _mm256_sad_epu8(u, _mm256_setzero_si256());
    const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return int(_mm_cvtsi128_si64(_mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2)))) - 128 * QK8_0;
}

template <int kOffset>
void pack_panel(const uint8_t* xq, size_t x_row_bytes, int n, int64_t cols, uint8_t* panel) {
    auto* out = reinterpret_cast<PanelBlock*>(panel);
    const int64_t nb = cols / QK8_0;
    if (n < kLanes) std::memset(panel, 0, panel_bytes(cols));
    for (int l = 0; l < n; ++l) {
        const auto* x = reinterpret_cast<const BlockQ8_0*>(xq + size_t(l) * x_row_bytes);
        for (int64_t b = 0; b < nb; ++b) {
            for (int g = 0; g < kGroups; ++g) std::memcpy(out[b].qs[g][l], x[b].qs + 4 * g, 4);
            out[b].corr[l] = -kOffset * block_sum(x[b].qs);
            out[b].d[l] = f16(x[b].d);
        }
    }
}

// ------------------------------------------------------------------ gemm: tokens in lanes

// Scratch of one row group: kRows unpacked rows (cols bytes each), then their block
// scales as float.
size_t gemm_scratch_bytes(int64_t cols) {
    constexpr int kMaxRows = 4;
    return size_t(kMaxRows) * size_t(cols) + size_t(kMaxRows) * size_t(cols / QK8_0) * sizeof(float) + 64;
}

template <typename Dec>
void unpack_rows(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r, int rows, uint8_t* u, float* dw) {
    const int64_t nb = cols / QK8_0;
    for (int k = 0; k < rows; ++k) {
        const auto* blk = reinterpret_cast<const typename Dec::Block*>(w + size_t(r + k) * w_row_bytes);
        uint8_t* dst = u + size_t(k) * size_t(cols);
        for (int64_t b = 0; b < nb; ++b) {
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * b), Dec::unpack(blk[b]));
            dw[k * nb + b] = f16(blk[b].d);
        }
    }
}

// kRows unpacked rows x kPanels panels, register-blocked: each broadcast weight group
// feeds kPanels vpdpbusd, each activation load kRows of them.
template <int kRows, int kPanels>
void gemm_tile(const uint8_t* u, const float* dw, int64_t cols, const PanelBlock* const* panel,
               const int* n_valid, float* y, int64_t ldy) {
    const int64_t nb = cols / QK8_0;
    __m512 acc[kRows][kPanels];
    for (int r = 0; r < kRows; ++r)
        for (int p = 0; p < kPanels; ++p) acc[r][p] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        __m512i isum[kRows][kPanels];
        for (int p = 0; p < kPanels; ++p) {
            const __m512i corr = _mm512_load_si512(panel[p][b].corr);
            for (int r = 0; r < kRows; ++r) isum[r][p] = corr;
        }
        for (int g = 0; g < kGroups; ++g) {
            __m512i x[kPanels];
            for (int p = 0; p < kPanels; ++p) x[p] = _mm512_load_si512(panel[p][b].qs[g]);
            for (int r = 0; r < kRows; ++r) {
                const __m512i wg = _mm512_set1_epi32(int(load_u32(u + size_t(r) * size_t(cols) + 32 * b + 4 * g)));
                for (int p = 0; p < kPanels; ++p) isum[r][p] = _mm512_dpbusd_epi32(isum[r][p], wg, x[p]);
            }
        }
        for (int r = 0; r < kRows; ++r) {
            const __m512 dwb = _mm512_set1_ps(dw[r * nb + b]);
            for (int p = 0; p < kPanels; ++p) {
                const __m512 scale = _mm512_mul_ps(dwb, _mm512_load_ps(panel[p][b].d));
                acc[r][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r][p]), scale, acc[r][p]);
            }
        }
    }
    for (int r = 0; r < kRows; ++r)
        for (int p = 0; p < kPanels; ++p) store_tokens(acc[r][p], n_valid[p], y + p * kLanes * ldy + r, ldy);
}

// All panels against kRows rows already unpacked: pairs of panels, then a last single one.
template <int kRows>
void gemm_rows(const uint8_t* u, const float* dw, int64_t cols, const uint8_t* panels, int64_t n_panels,
               int last_n, float* y, int64_t ldy) {
    const size_t pbytes = panel_bytes(cols);
    auto panel_at = [&](int64_t p) { return reinterpret_cast<const PanelBlock*>(panels + size_t(p) * pbytes); };
    auto valid = [&](int64_t p) { return p == n_panels - 1 ? last_n : kLanes; };
    int64_t p = 0;
    for (; p + 1 < n_panels; p += 2) {
        const PanelBlock* pp[2] = {panel_at(p), panel_at(p + 1)};
        const int nv[2] = {valid(p), valid(p + 1)};
        gemm_tile<kRows, 2>(u, dw, cols, pp, nv, y + p * kLanes * ldy, ldy);
    }
    if (p < n_panels) {
        const PanelBlock* pp[1] = {panel_at(p)};
        const int nv[1] = {valid(p)};
        gemm_tile<kRows, 1>(u, dw, cols, pp, nv, y + p * kLanes * ldy, ldy);
    }
}

template <typename Dec>
void gemm(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const uint8_t* panels,
          int64_t n_panels, int last_n, float* y, int64_t ldy, uint8_t* scratch) {
    constexpr int kRows = 4;
    uint8_t* u = scratch;
    float* dw = reinterpret_cast<float*>(scratch + size_t(kRows) * size_t(cols));
    int64_t r = r0;
    for (; r + kRows <= r1; r += kRows) {
        unpack_rows<Dec>(w, w_row_bytes, cols, r, kRows, u, dw);
        // The next group's rows come from memory while this one runs over the panels.
        if (r + 2 * kRows <= r1) prefetch(w + size_t(r + kRows) * w_row_bytes, size_t(kRows) * w_row_bytes);
        gemm_rows<kRows>(u, dw, cols, panels, n_panels, last_n, y + r, ldy);
    }
    for (; r < r1; ++r) {  // leftover rows one at a time
        unpack_rows<Dec>(w, w_row_bytes, cols, r, 1, u, dw);
        gemm_rows<1>(u, dw, cols, panels, n_panels, last_n, y + r, ldy);
    }
}

// ------------------------------------------------------------------ gemv: rows in lanes

// v[r]: row r's partial sums of two blocks (lanes 0..7 block A, 8..15 block B), four
// per 128-bit lane. Returns the 16 rows' whole-block sums, row r in lane r: sum_a for A,
// sum_b for B. Two in-lane halvings (unpack + add) leave every 128-bit lane holding 4
// rows' totals of that lane; then 128-bit lanes are added across (A = lanes 0+1,
// B = lanes 2+3) by shuffles that also put the rows in order.
inline void reduce_rows(__m512i v[kLanes], __m512i& sum_a, __m512i& sum_b) {
    for (int m = 0; m < 8; ++m)  // per 128-bit lane: [v2m(0+2), v2m+1(0+2), v2m(1+3), v2m+1(1+3)]
        v[m] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * m], v[2 * m + 1]),
                                _mm512_unpackhi_epi32(v[2 * m], v[2 * m + 1]));
    for (int m = 0; m < 4; ++m)  // per 128-bit lane: rows 4m..4m+3
        v[m] = _mm512_add_epi32(_mm512_unpacklo_epi64(v[2 * m], v[2 * m + 1]),
                                _mm512_unpackhi_epi64(v[2 * m], v[2 * m + 1]));
    for (int m = 0; m < 2; ++m)  // [A rows 8m.., B rows 8m.., A rows 8m+4.., B rows 8m+4..]
        v[m] = _mm512_add_epi32(_mm512_shuffle_i32x4(v[2 * m], v[2 * m + 1], 0x88),
                                _mm512_shuffle_i32x4(v[2 * m], v[2 * m + 1], 0xDD));
    sum_a = _mm512_shuffle_i32x4(v[0], v[1], 0x88);
    sum_b = _mm512_shuffle_i32x4(v[0], v[1], 0xDD);
}

// Block scales of 16 rows as float: the fp16 d sits at the start of every block type here.
inline __m512 gather_scales(const uint8_t* block0, __m512i row_offsets) {
    const __m512i raw = _mm512_i32gather_epi32(row_offsets, block0, 1);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
}

template <typename Dec>
void gemv_group(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r, int rows, const BlockQ8_0* x,
                float* y) {
    using Block = typename Dec::Block;
    const int64_t nb = cols / QK8_0;
    const Block* row[kLanes];
    alignas(64) int32_t off[kLanes];
    for (int k = 0; k < kLanes; ++k) {  // rows past the end repeat the last one (unused lanes)
        const int kk = k < rows ? k : rows - 1;
        row[k] = reinterpret_cast<const Block*>(w + size_t(r + kk) * w_row_bytes);
        off[k] = int32_t(size_t(kk) * w_row_bytes);
    }
    const __m512i row_offsets = _mm512_load_si512(off);
    const uint8_t* base = w + size_t(r) * w_row_bytes;
    const __m512i offset = _mm512_set1_epi8(char(Dec::kOffset));
    // 16 rows read in lockstep are 16 short streams, which the hardware prefetchers
    // follow poorly; instead fetch the next group's rows (contiguous) a slice per step.
    const uint8_t* next = base + size_t(kLanes) * w_row_bytes;
    const size_t slice = (size_t(kLanes) * w_row_bytes / size_t((nb + 1) / 2) + 63) & ~size_t(63);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b += 2, next += slice) {
        prefetch(next, slice);
        const bool pair = b + 1 < nb;
        const int64_t b2 = pair ? b + 1 : b;
        // An odd last block pairs with itself against zero activations: its B sums are 0.
        const __m512i xy = join(load256(x[b].qs), pair ? load256(x[b2].qs) : _mm256_setzero_si256());
        const __m512i corr = _mm512_sub_epi32(_mm512_setzero_si512(),
                                              _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, xy));
        __m512i v[kLanes];
        for (int k = 0; k < kLanes; ++k) v[k] = _mm512_dpbusd_epi32(corr, Dec::unpack_x2(row[k][b], row[k][b2]), xy);
        __m512i sum_a, sum_b;
        reduce_rows(v, sum_a, sum_b);
        const __m512 dw_a = gather_scales(base + size_t(b) * sizeof(Block), row_offsets);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum_a), _mm512_mul_ps(dw_a, _mm512_set1_ps(f16(x[b].d))), acc);
        if (pair) {
            const __m512 dw_b = gather_scales(base + size_t(b2) * sizeof(Block), row_offsets);
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum_b), _mm512_mul_ps(dw_b, _mm512_set1_ps(f16(x[b2].d))), acc);
        }
    }
    _mm512_mask_storeu_ps(y + r, __mmask16((1u << rows) - 1), acc);
}

template <typename Dec>
void gemv(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const uint8_t* xq, float* y) {
    const auto* x = reinterpret_cast<const BlockQ8_0*>(xq);
    for (int64_t r = r0; r < r1; r += kLanes)
        gemv_group<Dec>(w, w_row_bytes, cols, r, int(min64(kLanes, r1 - r)), x, y);
}

// ------------------------------------------------------------------ narrow: rows in lanes, few tokens
//
// A block of 16 rows is transposed so that register g holds weights 4g..4g+3 of every
// row (lane = row). Each token then needs, per block, eight vpdpbusd with its own
// activation group broadcast, and no reduction: the lane already sums one (row, token).
// The decode and transpose cost is paid once per block and shared by all n tokens.

// The 16-row window of a group: row k at p + k * stride; off = k * stride per lane.
struct Rows16 {
    const uint8_t* p;  // block b of row 0
    size_t stride;     // bytes from one row to the next
    __m512i off;
};

// 16 bytes at byte o of each of the 16 rows' blocks as four registers: register k lane
// r = dword k of row r. Loaded four rows per register (row k + 4L in 128-bit lane L),
// then a 4x4 dword transpose inside every 128-bit lane puts row k + 4L in lane 4L + k.
inline void load_transposed(const Rows16& rows, size_t o, __m512i t[4]) {
    const uint8_t* p = rows.p + o;
    const size_t s = rows.stride;
    __m512i z[4];
    for (int k = 0; k < 4; ++k) {
        z[k] = _mm512_castsi128_si512(load128(p + size_t(k) * s));
        z[k] = _mm512_inserti32x4(z[k], load128(p + size_t(k + 4) * s), 1);
        z[k] = _mm512_inserti32x4(z[k], load128(p + size_t(k + 8) * s), 2);
        z[k] = _mm512_inserti32x4(z[k], load128(p + size_t(k + 12) * s), 3);
    }
    const __m512i a0 = _mm512_unpacklo_epi32(z[0], z[1]), a1 = _mm512_unpackhi_epi32(z[0], z[1]);
    const __m512i a2 = _mm512_unpacklo_epi32(z[2], z[3]), a3 = _mm512_unpackhi_epi32(z[2], z[3]);
    t[0] = _mm512_unpacklo_epi64(a0, a2);
    t[1] = _mm512_unpackhi_epi64(a0, a2);
    t[2] = _mm512_unpacklo_epi64(a1, a3);
    t[3] = _mm512_unpackhi_epi64(a1, a3);
}

// Four transposed qs dwords (32 nibble weights) as eight registers of bytes 0..15:
// qs dword k holds weights 4k..4k+3 (low nibbles) and 16+4k.. (high), so register g
// is weights 4g..4g+3, the activation group it meets.
inline void nibbles16(const __m512i t[4], __m512i w[kGroups]) {
    const __m512i m = _mm512_set1_epi8(0x0F);
    for (int k = 0; k < 4; ++k) {
        w[k] = _mm512_and_si512(t[k], m);
        w[k + 4] = _mm512_and_si512(_mm512_srli_epi32(t[k], 4), m);
    }
}

// The 32-bit field at byte o of every row's block, row r in lane r.
inline __m512i gather_rows(const Rows16& rows, size_t o) { return _mm512_i32gather_epi32(rows.off, rows.p + o, 1); }

template <typename Dec>
struct Transposed;  // decode16(rows, w): the block at rows.p of 16 rows, as unsigned q + kOffset

template <>
struct Transposed<DecodeQ4_0> {
    static void decode16(const Rows16& rows, __m512i w[kGroups]) {
        __m512i t[4];
        load_transposed(rows, offsetof(BlockQ4_0, qs), t);
        nibbles16(t, w);
    }
};

template <>
struct Transposed<DecodeIQ4_NL> {
    static void decode16(const Rows16& rows, __m512i w[kGroups]) {
        __m512i t[4];
        load_transposed(rows, offsetof(BlockIQ4_NL, qs), t);
        nibbles16(t, w);
        const __m512i table = DecodeIQ4_NL::table();
        for (int g = 0; g < kGroups; ++g) w[g] = _mm512_shuffle_epi8(table, w[g]);
    }
};

// Q5_0: qh bits 4g..4g+3 are the high bits of group g. vpermd (low 4 index bits only)
// maps those four bits to the four bytes 0/16 through a 16-entry table.
template <>
struct Transposed<DecodeQ5_0> {
    static void decode16(const Rows16& rows, __m512i w[kGroups]) {
        __m512i t[4];
        load_transposed(rows, offsetof(BlockQ5_0, qs), t);
        nibbles16(t, w);
        alignas(64) static constexpr uint32_t kSpread[16] = {
            0x00000000, 0x00000010, 0x00001000, 0x00001010, 0x00100000, 0x00100010, 0x00101000, 0x00101010,
            0x10000000, 0x10000010, 0x10001000, 0x10001010, 0x10100000, 0x10100010, 0x10101000, 0x10101010};
        const __m512i spread = _mm512_load_si512(kSpread);
        const __m512i qh = gather_rows(rows, offsetof(BlockQ5_0, qh));
        w[0] = _mm512_or_si512(w[0], _mm512_permutexvar_epi32(qh, spread));
        w[1] = _mm512_or_si512(w[1], _mm512_permutexvar_epi32(_mm512_srli_epi32(qh, 4), spread));
        w[2] = _mm512_or_si512(w[2], _mm512_permutexvar_epi32(_mm512_srli_epi32(qh, 8), spread));
        w[3] = _mm512_or_si512(w[3], _mm512_permutexvar_epi32(_mm512_srli_epi32(qh, 12), spread));
        w[4] = _mm512_or_si512(w[4], _mm512_permutexvar_epi32(_mm512_srli_epi32(qh, 16), spread));
        w[5] = _mm512_or_si512(w[5], _mm512_permutexvar_epi32(_mm512_srli_epi32(qh, 20), spread));
        w[6] = _mm512_or_si512(w[6], _mm512_permutexvar_epi32(_mm512_srli_epi32(qh, 24), spread));
        w[7] = _mm512_or_si512(w[7], _mm512_permutexvar_epi32(_mm512_srli_epi32(qh, 28), spread));
    }
};

template <>
struct Transposed<DecodeQ8_0> {
    static void decode16(const Rows16& rows, __m512i w[kGroups]) {
        load_transposed(rows, offsetof(BlockQ8_0, qs), w);
        load_transposed(rows, offsetof(BlockQ8_0, qs) + 16, w + 4);
        for (int g = 0; g < kGroups; ++g) w[g] = _mm512_xor_si512(w[g], _mm512_set1_epi8(char(0x80)));
    }
};

// Rows [r, r + 16) against the first kT tokens of a panel. Per block and token:
// isum = corr + sum over groups of u8 weights x s8 activations (exact), then one fma.
template <typename Dec, int kT>
void narrow_group(const uint8_t* w, size_t w_row_bytes, int64_t nb, const PanelBlock* panel, float* y,
                  int64_t ldy) {
    using Block = typename Dec::Block;
    alignas(64) int32_t off[kLanes];
    for (int k = 0; k < kLanes; ++k) off[k] = int32_t(size_t(k) * w_row_bytes);
    Rows16 rows{w, w_row_bytes, _mm512_load_si512(off)};
    // As in gemv: fetch the next 16 rows (contiguous) a slice per block, since 16 rows
    // read in lockstep are streams the hardware prefetchers follow poorly.
    const uint8_t* next = w + size_t(kLanes) * w_row_bytes;
    const size_t slice = (size_t(kLanes) * w_row_bytes / size_t(nb) + 63) & ~size_t(63);
    __m512 acc[kT];
#pragma GCC unroll 16
    for (int t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, rows.p += sizeof(Block), next += slice) {
        prefetch(next, slice);
        __m512i wq[kGroups];
        Transposed<Dec>::decode16(rows, wq);
        const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(gather_rows(rows, 0)));  // fp16 d leads every block
        const PanelBlock& x = panel[b];
#pragma GCC unroll 16
        for (int t = 0; t < kT; ++t) {
            __m512i isum = _mm512_set1_epi32(x.corr[t]);
            for (int g = 0; g < kGroups; ++g)
                isum = _mm512_dpbusd_epi32(isum, wq[g], _mm512_set1_epi32(int(load_u32(x.qs[g][t]))));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(x.d[t])), acc[t]);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < kT; ++t) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

template <typename Dec, int kT>
void narrow_rows(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1,
                 const PanelBlock* panel, float* y, int64_t ldy) {
    const int64_t nb = cols / QK8_0;
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
    k.pack = pack_panel<Dec::kOffset>;
    k.scratch_bytes = gemm_scratch_bytes;
    k.gemm = gemm<Dec>;
    k.gemv = gemv<Dec>;
    k.narrow = narrow<Dec>;
    return k;
}

constexpr GemmKernels kQ4_0 = make_kernels<DecodeQ4_0>();
constexpr GemmKernels kQ5_0 = make_kernels<DecodeQ5_0>();
constexpr GemmKernels kQ8_0 = make_kernels<DecodeQ8_0>();
constexpr GemmKernels kIQ4_NL = make_kernels<DecodeIQ4_NL>();

}  // namespace

const GemmKernels* avx512_gemm(GgmlType type) {
    switch (type) {
        case GgmlType::Q4_0: return &kQ4_0;
        case GgmlType::Q5_0: return &kQ5_0;
        case GgmlType::Q8_0: return &kQ8_0;
        case GgmlType::IQ4_NL: return &kIQ4_NL;
        default: return nullptr;
    }
}

}  // namespace pensieve::simd
