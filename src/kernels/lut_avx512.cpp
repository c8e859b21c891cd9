// Lookup-table kernel for TQ2_0 (lut.h). Compiled with AVX-512 flags.
//
// The bit patterns. A TQ2_0 byte qs[32h + m] holds the 2-bit codes c_k (bits 2k..2k+1)
// of weights 128h + 32k + m, k = 0..3, and w = c - 1 = b0 + 2*b1 - 1 (b0, b1 the code's
// bits). So the low nibble is the four bits (b0, b1 of k=0; b0, b1 of k=1) and the high
// nibble the same for k = 2, 3: no bit shuffling is needed to read a pattern. Per byte
// position j = 32h + m of a block we precompute, for all 16 nibble values p,
//
//     A_j[p] = (p & 3) * y[128h + m]      + (p >> 2) * y[128h + 32 + m]
//     B_j[p] = (p & 3) * y[128h + 64 + m] + (p >> 2) * y[128h + 96 + m]
//
// (the partial sums over the pattern's bits, with bit weights y, 2y, y', 2y'), so the
// byte contributes A_j[lo] + B_j[hi] = sum_k c_k y_k. The block's integer is the sum over
// its 64 bytes minus sum y (the -1 of every weight, from the Q8_K block sums): exactly
// the reference's sum_j (c_j - 1) y_j. Table values lie in [-762, 762] (a code may be 3),
// so each table is stored as two byte planes, low byte and high byte, which vpshufb
// indexes with the nibble; the two looked-up bytes, interleaved, are the int16 value.
//
// Lanes are rows. vpshufb looks up 16 bytes per 128-bit lane in that lane's own 16-byte
// table, so a register must hold the same byte position of many rows: the 64-byte qs of
// a block of 16 rows is transposed (16x16 bytes inside each 128-bit lane, four unpack
// stages), after which register q holds byte position 16L + rev4(q) of rows 0..15 in lane
// L (rev4 reverses 4 bits: the unpack network's output order). The tables are stored in
// that order: per block and q, four 64-byte registers (A low, A high, B low, B high) with
// lane L holding position 16L + rev4(q). Per (16 rows, block): 64 unpacks, then per q two
// index masks, four vpshufb, four unpacks to int16 and four adds.
//
// Float step, per row, as the reference: sum += float(isum) * (d_x * d_w), a multiply
// then an add (no FMA), blocks in order; so the results are bit-identical to it.
#include "kernels/lut.h"

#include <immintrin.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "kernels/gemm.h"
#include "kernels/simd_local_avx512.h"
#include "quant/blocks.h"

namespace pensieve::simd {

namespace {

constexpr int kRows = 16;                     // rows per strip (bytes per 128-bit lane)
constexpr size_t kLutBlockBytes = 16 * 256;  // per 256-weight block: 16 registers x 4 planes x 64 bytes

constexpr int rev4(int q) { return ((q & 1) << 3) | ((q & 2) << 1) | ((q & 4) >> 1) | ((q & 8) >> 3); }

// vpmaddubsw coefficients: int16 lane n (and 16 + n) is the byte pair (n & 3, n >> 2).
struct Coef {
    alignas(64) uint8_t b[64];
};
constexpr Coef make_coef() {
    Coef c{};
    for (int l = 0; l < 32; ++l) {
        c.b[2 * l] = uint8_t((l % 16) & 3);
        c.b[2 * l + 1] = uint8_t((l % 16) >> 2);
    }
    return c;
}
constexpr Coef kCoef = make_coef();

// ------------------------------------------------------------------ tables (one per token)

void build(const uint8_t* xq, int64_t cols, uint8_t* lut) {
    const auto* x = reinterpret_cast<const BlockQ8_K*>(xq);
    const __m512i coef = _mm512_load_si512(kCoef.b);
    // vpermt2w indices: lanes 0..15 take pair m of the first source, 16..31 of the second
    const __m512i base = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(32), 1);
    for (int64_t i = 0; i < cols / QK_K; ++i) {
        uint8_t* tab = lut + size_t(i) * kLutBlockBytes;
        for (int h = 0; h < 2; ++h) {
            const int8_t* y = x[i].qs + 128 * h;
            // int16 lane m: bytes (y[m], y[32 + m]), and (y[64 + m], y[96 + m])
            auto pairs = [](const int8_t* a, const int8_t* b) {
                return _mm512_or_si512(_mm512_cvtepu8_epi16(load256(a)),
                                       _mm512_slli_epi16(_mm512_cvtepu8_epi16(load256(b)), 8));
            };
            const __m512i p01 = pairs(y, y + 32), p23 = pairs(y + 64, y + 96);
            for (int m = 0; m < 32; ++m) {
                const __m512i yy = _mm512_permutex2var_epi16(p01, _mm512_add_epi16(base, _mm512_set1_epi16(int16_t(m))), p23);
                const __m512i e = _mm512_maddubs_epi16(coef, yy);  // lanes 0..15: A[p], 16..31: B[p]; |e| <= 762
                const __m256i lo = _mm512_cvtepi16_epi8(e);
                const __m256i hi = _mm512_cvtepi16_epi8(_mm512_srai_epi16(e, 8));
                const int j = 32 * h + m;
                uint8_t* dst = tab + 256 * rev4(j % 16) + 16 * (j / 16);
                _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm256_castsi256_si128(lo));
                _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 64), _mm256_castsi256_si128(hi));
                _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 128), _mm256_extracti128_si256(lo, 1));
                _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 192), _mm256_extracti128_si256(hi, 1));
            }
        }
    }
}

// ------------------------------------------------------------------ lookups (16 rows)

// 16x16 byte transpose inside every 128-bit lane: in, r[k] = bytes of row k; out, r[q]
// byte k = byte rev4(q) of row k. Stage s pairs the registers whose index differs in
// bit s; each stage moves one index bit into the byte offset.
inline void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int k = 0; k < 16; k += 2) {
        t[k] = _mm512_unpacklo_epi8(r[k], r[k + 1]);
        t[k + 1] = _mm512_unpackhi_epi8(r[k], r[k + 1]);
    }
    for (int k = 0; k < 16; ++k)
        if (!(k & 2)) {
            r[k] = _mm512_unpacklo_epi16(t[k], t[k + 2]);
            r[k + 2] = _mm512_unpackhi_epi16(t[k], t[k + 2]);
        }
    for (int k = 0; k < 16; ++k)
        if (!(k & 4)) {
            t[k] = _mm512_unpacklo_epi32(r[k], r[k + 4]);
            t[k + 4] = _mm512_unpackhi_epi32(r[k], r[k + 4]);
        }
    for (int k = 0; k < 8; ++k) {
        r[k] = _mm512_unpacklo_epi64(t[k], t[k + 8]);
        r[k + 8] = _mm512_unpackhi_epi64(t[k], t[k + 8]);
    }
}

// sum_j codes_j . y_j of one block for 16 rows (int32, lane = row). q[] is the transposed
// qs, tab the block's tables. int16 partial sums: at most 16 * 2 * 762 < 32767.
inline __m512i lookup_block(const __m512i q[16], const uint8_t* tab) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512i acc_lo = _mm512_setzero_si512(), acc_hi = _mm512_setzero_si512();  // rows 0..7 / 8..15 of each lane
    for (int k = 0; k < 16; ++k) {
        const uint8_t* t = tab + 256 * k;
        const __m512i ia = _mm512_and_si512(q[k], low4);
        const __m512i ib = _mm512_and_si512(_mm512_srli_epi16(q[k], 4), low4);
        const __m512i al = _mm512_shuffle_epi8(_mm512_load_si512(t), ia);
        const __m512i ah = _mm512_shuffle_epi8(_mm512_load_si512(t + 64), ia);
        const __m512i bl = _mm512_shuffle_epi8(_mm512_load_si512(t + 128), ib);
        const __m512i bh = _mm512_shuffle_epi8(_mm512_load_si512(t + 192), ib);
        acc_lo = _mm512_add_epi16(acc_lo, _mm512_add_epi16(_mm512_unpacklo_epi8(al, ah), _mm512_unpacklo_epi8(bl, bh)));
        acc_hi = _mm512_add_epi16(acc_hi, _mm512_add_epi16(_mm512_unpackhi_epi8(al, ah), _mm512_unpackhi_epi8(bl, bh)));
    }
    // Sum the four lanes of each row in int32: [L0+L2 | L1+L3], then the two halves.
    auto rows8 = [](__m512i acc) {
        const __m512i s = _mm512_add_epi32(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(acc)),
                                           _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(acc, 1)));
        return _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
    };
    return _mm512_inserti64x4(_mm512_castsi256_si512(rows8(acc_lo)), rows8(acc_hi), 1);
}

// Sum of the 256 activations of a Q8_K block, from its block sums.
inline int block_ysum(const BlockQ8_K& b) {
    const __m256i s = _mm256_madd_epi16(load256(b.bsums), _mm256_set1_epi16(1));
    __m128i v = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    v = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 1));
    return _mm_cvtsi128_si32(v);
}

// Rows r .. r + n - 1 (n <= 16; missing rows repeat the last, their lanes unused).
void strip(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r, int n, const uint8_t* lut,
           const BlockQ8_K* x, float* y) {
    const uint8_t* rows[kRows];
    alignas(64) int32_t d_off[kRows];  // byte offset of each row's d field, minus 2 (gathered as dwords)
    for (int k = 0; k < kRows; ++k) {
        const int64_t row = r + (k < n ? k : n - 1);
        rows[k] = w + size_t(row) * w_row_bytes;
        d_off[k] = int32_t(size_t(k < n ? k : n - 1) * w_row_bytes) + int32_t(offsetof(BlockTQ2_0, d)) - 2;
    }
    const __m512i d_offsets = _mm512_load_si512(d_off);
    const uint8_t* w0 = rows[0];
    const uint8_t* next = w0 + kRows * w_row_bytes;  // the next strip (prefetched; may be past the end)
    const size_t next_chunk = (kRows * w_row_bytes) / size_t(cols / QK_K);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < cols / QK_K; ++i) {
        const size_t bo = size_t(i) * sizeof(BlockTQ2_0);
        __m512i q[kRows];
        // Sixteen interleaved row streams defeat the hardware prefetchers when the matrix
        // comes from DRAM (decode); the next strip's rows are the bytes that follow this
        // strip's, so fetch them by hand, spread over this strip's blocks.
        for (size_t o = size_t(i) * next_chunk; o < size_t(i + 1) * next_chunk; o += 64)
            _mm_prefetch(reinterpret_cast<const char*>(next + o), _MM_HINT_T1);
        for (int k = 0; k < kRows; ++k) q[k] = load512(rows[k] + bo);
        transpose16(q);
        const __m512i isum = _mm512_sub_epi32(lookup_block(q, lut + size_t(i) * kLutBlockBytes),
                                              _mm512_set1_epi32(block_ysum(x[i])));
        // d of the 16 rows: the dword ending with it (stays inside the block), top halves
        const __m512i dd = _mm512_i32gather_epi32(d_offsets, w0 + bo, 1);
        const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
        // Explicit rounding forms: the compiler must not fuse them into an FMA.
        const __m512 scale = _mm512_mul_round_ps(_mm512_set1_ps(x[i].d), dw, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512 term = _mm512_mul_round_ps(_mm512_cvtepi32_ps(isum), scale, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        acc = _mm512_add_round_ps(acc, term, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
    _mm512_mask_storeu_ps(y, __mmask16((1u << n) - 1), acc);
}

void gemv_rows(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const uint8_t* lut,
               const uint8_t* xq, float* y) {
    const auto* x = reinterpret_cast<const BlockQ8_K*>(xq);
    for (int64_t r = r0; r < r1; r += kRows)
        strip(w, w_row_bytes, cols, r, int(r1 - r < kRows ? r1 - r : kRows), lut, x, y + (r - r0));
}

// ------------------------------------------------------------------ as GemmKernels

constexpr int kPanelTokens = 16;
constexpr size_t kAlign = 64;

size_t lut_bytes(int64_t cols) { return size_t(cols / QK_K) * kLutBlockBytes; }
size_t x_row_bytes(int64_t cols) { return size_t(cols / QK_K) * sizeof(BlockQ8_K); }
size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// A panel is just the tokens' Q8_K rows, one after another; the tables are built per
// token inside gemm (into the per-thread scratch).
size_t panel_bytes(int64_t cols) { return round_up(kPanelTokens * x_row_bytes(cols)); }

void pack(const uint8_t* xq, size_t x_row, int n, int64_t cols, uint8_t* panel) {
    const size_t bytes = x_row_bytes(cols);
    for (int t = 0; t < kPanelTokens; ++t) {
        if (t < n) std::memcpy(panel + size_t(t) * bytes, xq + size_t(t) * x_row, bytes);
        else std::memset(panel + size_t(t) * bytes, 0, bytes);
    }
}

size_t scratch_bytes(int64_t cols) { return kPanelTokens * lut_bytes(cols); }

// Rows in chunks that stay in L2 while every token of the panel runs over them.
constexpr int64_t kRowChunk = 64;

void gemm(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const uint8_t* panels,
          int64_t n_panels, int last_n, float* y, int64_t ldy, uint8_t* scratch) {
    const size_t xb = x_row_bytes(cols), lb = lut_bytes(cols), pb = panel_bytes(cols);
    for (int64_t p = 0; p < n_panels; ++p) {
        const uint8_t* panel = panels + size_t(p) * pb;
        const int n = p + 1 == n_panels ? last_n : kPanelTokens;
        for (int t = 0; t < n; ++t) build(panel + size_t(t) * xb, cols, scratch + size_t(t) * lb);
        for (int64_t c0 = r0; c0 < r1; c0 += kRowChunk) {
            const int64_t c1 = c0 + kRowChunk < r1 ? c0 + kRowChunk : r1;
            for (int t = 0; t < n; ++t)
                gemv_rows(w, w_row_bytes, cols, c0, c1, scratch + size_t(t) * lb, panel + size_t(t) * xb,
                          y + (p * kPanelTokens + t) * ldy + c0);
        }
    }
}

// One token: the tables go in a per-thread buffer (grown once; freed at thread exit).
// Plain malloc'd memory, not std::vector: a library template instantiated in this file
// would be compiled with AVX-512 and could be the copy the linker keeps for everyone.
struct LutBuffer {
    uint8_t* p = nullptr;
    size_t cap = 0;
    ~LutBuffer() { std::free(p); }
};

void gemv(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const uint8_t* xq, float* y) {
    thread_local LutBuffer buf;
    const size_t need = lut_bytes(cols);
    if (buf.cap < need) {
        std::free(buf.p);
        buf.p = static_cast<uint8_t*>(std::aligned_alloc(kAlign, round_up(need)));
        if (!buf.p) std::abort();
        buf.cap = need;
    }
    build(xq, cols, buf.p);
    gemv_rows(w, w_row_bytes, cols, r0, r1, buf.p, xq, y + r0);
}

// constexpr: initialized at compile time, no AVX-512 code runs before the cpuid check.
constexpr GemmKernels make_lut_gemm() {
    GemmKernels g;
    g.panel_tokens = kPanelTokens;
    g.call_rows = 256;  // gemv builds its table per call (~ the cost of 16 rows of 2048 columns)
    g.panel_bytes = panel_bytes;
    g.pack = pack;
    g.scratch_bytes = scratch_bytes;
    g.gemm = gemm;
    g.gemv = gemv;
    return g;
}

constexpr GemmKernels kLutGemm = make_lut_gemm();

}  // namespace

size_t tq2_lut_bytes(int64_t cols) { return lut_bytes(cols); }

void tq2_lut_build(const uint8_t* xq, int64_t cols, uint8_t* lut) { build(xq, cols, lut); }

void tq2_lut_gemv(const uint8_t* w, size_t w_row_bytes, int64_t cols, int64_t r0, int64_t r1, const uint8_t* lut,
                  const uint8_t* xq, float* y) {
    gemv_rows(w, w_row_bytes, cols, r0, r1, lut, xq, y);
}

const GemmKernels* avx512_lut_gemm(GgmlType type) { return type == GgmlType::TQ2_0 ? &kLutGemm : nullptr; }

}  // namespace pensieve::simd
