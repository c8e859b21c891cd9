#include "kernels/ssm_scan.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/simd_local.h"

namespace pensieve {

using simd::exp_nonpositive;
using simd::horizontal_sum;

void exp_nonpositive_avx2(const float* x, float* out, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, exp_nonpositive(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float in[8] = {0}, res[8];
        for (int64_t j = i; j < n; ++j) in[j - i] = x[j];
        _mm256_storeu_ps(res, exp_nonpositive(_mm256_loadu_ps(in)));
        for (int64_t j = i; j < n; ++j) out[j] = res[j - i];
    }
}

void selective_scan_avx2(float* h, const float* u, const float* dt, const float* A, const float* B, const float* C,
                         const float* D, float* y, int64_t n_channel, int64_t d_state) {
    const int64_t S8 = d_state / 8 * 8;
    for (int64_t c = 0; c < n_channel; ++c) {
        const float uc = u[c], dtc = dt[c];
        float* hc = h + c * d_state;
        const float* Ac = A + c * d_state;
        const __m256 vdt = _mm256_set1_ps(dtc), vdtu = _mm256_set1_ps(dtc * uc);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t s = 0; s < S8; s += 8) {
            const __m256 decay = exp_nonpositive(_mm256_mul_ps(vdt, _mm256_loadu_ps(Ac + s)));
            // h = decay h + (dt u) B: as the reference's dt B u up to rounding.
            const __m256 hs = _mm256_fmadd_ps(decay, _mm256_loadu_ps(hc + s),
                                              _mm256_mul_ps(vdtu, _mm256_loadu_ps(B + s)));
            _mm256_storeu_ps(hc + s, hs);
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(C + s), hs, acc);
        }
        float sum = horizontal_sum(acc);
        for (int64_t s = S8; s < d_state; ++s) {
            hc[s] = std::exp(dtc * Ac[s]) * hc[s] + dtc * B[s] * uc;
            sum += C[s] * hc[s];
        }
        y[c] = sum + D[c] * uc;
    }
}

// ------------------------------------------------------------------ Mamba-2 scan

void ssd_scan_step_avx2(float* S, const float* x, const float* dt, const float* A, const float* B, const float* C,
                        const float* D, float* y, int64_t n_head, int64_t head_dim, int64_t n_group, int64_t d_state,
                        int64_t h0, int64_t h1) {
    const int64_t heads_per_group = n_head / n_group, N8 = d_state / 8 * 8;
    for (int64_t h = h0; h < h1; ++h) {
        const int64_t g = h / heads_per_group;
        const float* Bg = B + g * d_state;
        const float* Cg = C + g * d_state;
        const float decay = std::exp(dt[h] * A[h]);
        const __m256 vdecay = _mm256_set1_ps(decay);
        for (int64_t i = 0; i < head_dim; ++i) {
            const int64_t c = h * head_dim + i;
            const float xc = x[c], dt_x = dt[h] * xc;
            const __m256 vdtx = _mm256_set1_ps(dt_x);
            float* Sc = S + c * d_state;
            __m256 acc = _mm256_setzero_ps();
            for (int64_t s = 0; s < N8; s += 8) {
                const __m256 v = _mm256_fmadd_ps(vdecay, _mm256_loadu_ps(Sc + s), _mm256_mul_ps(vdtx, _mm256_loadu_ps(Bg + s)));
                _mm256_storeu_ps(Sc + s, v);
                acc = _mm256_fmadd_ps(v, _mm256_loadu_ps(Cg + s), acc);
            }
            float sum = horizontal_sum(acc);
            for (int64_t s = N8; s < d_state; ++s) {
                Sc[s] = decay * Sc[s] + dt_x * Bg[s];
                sum += Sc[s] * Cg[s];
            }
            y[c] = sum + D[h] * xc;
        }
    }
}

namespace {

// One thread's working set for a head: its state transposed (channels contiguous, so a
// state row is a few vectors), and per chunk the masked decay-weighted C.B matrix.
struct SsdScratch {
    std::vector<float> ST;  // [d_state][head_dim]
    std::vector<float> CB;  // [n_tokens][kSsdChunk]: C_t . B_k for k <= t in t's chunk
    std::vector<float> W;   // [kSsdChunk][kSsdChunk]
    std::vector<float> VB;  // [d_state][kSsdChunk]: exp(cs_L - cs_k) dt_k B_k[s]
};
thread_local SsdScratch tls_ssd;

float dot(const float* a, const float* b, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    float sum = horizontal_sum(acc);
    for (; i < n; ++i) sum += a[i] * b[i];
    return sum;
}

// CB for every chunk of the segment, group g: row t holds C_t . B_k for the k <= t of
// t's chunk (column k - chunk start).
void chunk_dots(const SsdTokens& in, const SsdShape& sh, int64_t g, float* CB) {
    const int64_t N = sh.d_state;
    for (int64_t t = 0; t < in.n_tokens; ++t) {
        const int64_t c0 = t / kSsdChunk * kSsdChunk;
        const float* Ct = in.C + t * in.x_stride + g * N;
        for (int64_t k = c0; k <= t; ++k) CB[t * kSsdChunk + (k - c0)] = dot(Ct, in.B + k * in.x_stride + g * N, N);
    }
}

// One head over the segment, V = head_dim / 8 vectors per channel row.
template <int V>
void ssd_head(float* Sh, const SsdTokens& in, float A, float D, const SsdShape& sh, int64_t h, int64_t g,
              const float* CB, SsdScratch& w) {
    constexpr int64_t P = 8 * V;
    const int64_t N = sh.d_state, H = sh.n_head;
    float* ST = w.ST.data();
    for (int64_t i = 0; i < P; ++i)
        for (int64_t s = 0; s < N; ++s) ST[s * P + i] = Sh[i * N + s];

    for (int64_t c0 = 0; c0 < in.n_tokens; c0 += kSsdChunk) {
        const int64_t L = std::min(kSsdChunk, in.n_tokens - c0);
        alignas(32) float cs[kSsdChunk], dtk[kSsdChunk], arg[kSsdChunk], e[kSsdChunk];
        float run = 0.0f;
        for (int64_t t = 0; t < L; ++t) {
            dtk[t] = in.dt[(c0 + t) * H + h];
            run += dtk[t] * A;
            cs[t] = run;
        }
        exp_nonpositive_avx2(cs, e, L);  // exp(cs_t): the decay of the chunk's starting state
        // W[t][k] = exp(cs_t - cs_k) dt_k CB[t][k] for k <= t (exponents <= 0: A < 0, dt > 0).
        float* W = w.W.data();
        for (int64_t t = 0; t < L; ++t) {
            for (int64_t k = 0; k <= t; ++k) arg[k] = cs[t] - cs[k];
            exp_nonpositive_avx2(arg, W + t * kSsdChunk, t + 1);
            const float* cb = CB + (c0 + t) * kSsdChunk;
            for (int64_t k = 0; k <= t; ++k) W[t * kSsdChunk + k] *= dtk[k] * cb[k];
        }
        // y_t = exp(cs_t) (S C_t) + D x_t + sum_k W[t][k] x_k, S as of the chunk's start.
        for (int64_t t = 0; t < L; ++t) {
            const float* Ct = in.C + (c0 + t) * in.x_stride + g * N;
            __m256 acc[V];
            for (int v = 0; v < V; ++v) acc[v] = _mm256_setzero_ps();
            for (int64_t s = 0; s < N; ++s) {
                const __m256 c = _mm256_set1_ps(Ct[s]);
                for (int v = 0; v < V; ++v) acc[v] = _mm256_fmadd_ps(c, _mm256_loadu_ps(ST + s * P + 8 * v), acc[v]);
            }
            const __m256 ve = _mm256_set1_ps(e[t]), vd = _mm256_set1_ps(D);
            const float* xt = in.x + (c0 + t) * in.x_stride + h * P;
            for (int v = 0; v < V; ++v)
                acc[v] = _mm256_fmadd_ps(vd, _mm256_loadu_ps(xt + 8 * v), _mm256_mul_ps(ve, acc[v]));
            for (int64_t k = 0; k <= t; ++k) {
                const __m256 wk = _mm256_set1_ps(W[t * kSsdChunk + k]);
                const float* xk = in.x + (c0 + k) * in.x_stride + h * P;
                for (int v = 0; v < V; ++v) acc[v] = _mm256_fmadd_ps(wk, _mm256_loadu_ps(xk + 8 * v), acc[v]);
            }
            float* yt = in.y + (c0 + t) * in.y_stride + h * P;
            for (int v = 0; v < V; ++v) _mm256_storeu_ps(yt + 8 * v, acc[v]);
        }
        // S <- exp(cs_L) S + sum_k (exp(cs_L - cs_k) dt_k B_k) (x) x_k, row s of ST at a time.
        for (int64_t k = 0; k < L; ++k) arg[k] = cs[L - 1] - cs[k];
        alignas(32) float decay_k[kSsdChunk];
        exp_nonpositive_avx2(arg, decay_k, L);
        float* VB = w.VB.data();
        for (int64_t k = 0; k < L; ++k) {
            const float* Bk = in.B + (c0 + k) * in.x_stride + g * N;
            const float f = decay_k[k] * dtk[k];
            for (int64_t s = 0; s < N; ++s) VB[s * kSsdChunk + k] = f * Bk[s];
        }
        const __m256 vel = _mm256_set1_ps(e[L - 1]);
        for (int64_t s = 0; s < N; ++s) {
            __m256 acc[V];
            for (int v = 0; v < V; ++v) acc[v] = _mm256_mul_ps(vel, _mm256_loadu_ps(ST + s * P + 8 * v));
            for (int64_t k = 0; k < L; ++k) {
                const __m256 b = _mm256_set1_ps(VB[s * kSsdChunk + k]);
                const float* xk = in.x + (c0 + k) * in.x_stride + h * P;
                for (int v = 0; v < V; ++v) acc[v] = _mm256_fmadd_ps(b, _mm256_loadu_ps(xk + 8 * v), acc[v]);
            }
            for (int v = 0; v < V; ++v) _mm256_storeu_ps(ST + s * P + 8 * v, acc[v]);
        }
    }
    for (int64_t i = 0; i < P; ++i)
        for (int64_t s = 0; s < N; ++s) Sh[i * N + s] = ST[s * P + i];
}

using HeadFn = void (*)(float*, const SsdTokens&, float, float, const SsdShape&, int64_t, int64_t, const float*,
                        SsdScratch&);

HeadFn head_kernel(int64_t head_dim) {
    switch (head_dim) {
        case 8: return ssd_head<1>;
        case 16: return ssd_head<2>;
        case 32: return ssd_head<4>;
        case 64: return ssd_head<8>;
        case 128: return ssd_head<16>;
        default: return nullptr;
    }
}

}  // namespace

bool ssd_chunked_supported(const SsdShape& shape) { return head_kernel(shape.head_dim) != nullptr; }

void ssd_scan_chunked_avx2(float* S, const SsdTokens& in, const float* A, const float* D, const SsdShape& sh,
                           int64_t h0, int64_t h1) {
    const HeadFn head = head_kernel(sh.head_dim);
    SsdScratch& w = tls_ssd;
    w.ST.resize(size_t(sh.d_state * sh.head_dim));
    w.CB.resize(size_t(in.n_tokens * kSsdChunk));
    w.W.resize(size_t(kSsdChunk * kSsdChunk));
    w.VB.resize(size_t(sh.d_state * kSsdChunk));
    const int64_t heads_per_group = sh.n_head / sh.n_group;
    int64_t group = -1;
    for (int64_t h = h0; h < h1; ++h) {
        const int64_t g = h / heads_per_group;
        if (g != group) chunk_dots(in, sh, group = g, w.CB.data());  // heads of a group are adjacent
        head(S + h * sh.head_dim * sh.d_state, in, A[h], D[h], sh, h, g, w.CB.data(), w);
    }
}

}  // namespace pensieve
