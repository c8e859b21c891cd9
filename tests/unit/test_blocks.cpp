// The model blocks against textbook formulas: attention with each option (sliding window,
// soft-cap, ALiBi, sinks, bidirectional, narrower V heads, GQA) over the paged fp16 cache,
// norms with bias and 1 + w, activations, mixture of experts (renormalised or not, shared
// expert with its sigmoid gate; sigmoid routing with a selection bias), a fused QKV tensor and a fused gate+up tensor split into
// views, the LongRoPE factor choice, multi-head latent attention (absorbed) against its
// decompressed form. Random F32 weights, a few milliseconds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "gguf/gguf.h"
#include "model/blocks.h"
#include "util/thread_pool.h"

namespace pensieve {
namespace {

struct Weights {
    std::vector<float> data;
    WeightMatrix matrix(int64_t cols, int64_t rows, std::mt19937& rng) {
        std::normal_distribution<float> d(0.0f, 0.4f);
        data.resize(size_t(cols * rows));
        for (float& v : data) v = d(rng);
        return WeightMatrix{data.data(), GgmlType::F32, rows, cols};
    }
};

float dot_row(const WeightMatrix& w, int64_t r, const float* x) {
    const float* row = static_cast<const float*>(w.data) + r * w.cols;
    float s = 0.0f;
    for (int64_t i = 0; i < w.cols; ++i) s += row[i] * x[i];
    return s;
}

// out = Wo · softmax(options(q·k)) v, written the long way, one (token, head) at a time.
std::vector<float> reference_attention(const Attention& a, const std::vector<float>& x, int n, int E) {
    const AttentionOptions& o = a.opt;
    const int hd = o.head_dim, hv = o.head_dim_v ? o.head_dim_v : hd, group = o.n_head / o.n_head_kv;
    const float scale = 1.0f / std::sqrt(float(hd));
    std::vector<float> att(size_t(n * o.n_head * hv)), out(size_t(n * E));
    for (int t = 0; t < n; ++t)
        for (int h = 0; h < o.n_head; ++h) {
            const int kvh = h / group;
            std::vector<float> s;
            std::vector<int> js;
            for (int j = 0; j < n; ++j) {
                if (o.causal && j > t) continue;
                if (o.window > 0 && t - j >= o.window) continue;
                float sc = 0.0f;
                for (int i = 0; i < hd; ++i)
                    sc += dot_row(a.q.w, h * hd + i, &x[size_t(t * E)]) * dot_row(a.k.w, kvh * hd + i, &x[size_t(j * E)]);
                sc *= scale;
                if (o.soft_cap > 0) sc = o.soft_cap * std::tanh(sc / o.soft_cap);
                if (o.alibi_max_bias > 0) sc -= std::pow(2.0f, -o.alibi_max_bias / float(o.n_head) * float(h + 1)) * float(std::abs(t - j));
                s.push_back(sc);
                js.push_back(j);
            }
            float mx = a.sinks.empty() ? -INFINITY : a.sinks[size_t(h)];
            for (float v : s) mx = std::max(mx, v);
            double sum = a.sinks.empty() ? 0.0 : std::exp(double(a.sinks[size_t(h)] - mx));
            for (float& v : s) sum += (v = std::exp(v - mx));
            for (size_t k = 0; k < s.size(); ++k)
                for (int i = 0; i < hv; ++i)
                    att[size_t((t * o.n_head + h) * hv + i)] +=
                        float(s[k] / sum) * dot_row(a.v.w, kvh * hv + i, &x[size_t(js[k] * E)]);
        }
    for (int t = 0; t < n; ++t)
        for (int e = 0; e < E; ++e) out[size_t(t * E + e)] = dot_row(a.o.w, e, &att[size_t(t * o.n_head * hv)]);
    return out;
}

void check_attention(AttentionOptions o, bool sinks, const char* what) {
    const int E = 32, n = 12;
    o.n_head = 4;
    o.n_head_kv = 2;
    o.head_dim = 8;
    std::mt19937 rng(7);
    Weights wq, wk, wv, wo;
    Attention a;
    a.opt = o;
    const int hv = o.head_dim_v ? o.head_dim_v : o.head_dim;
    a.q.w = wq.matrix(E, o.n_head * o.head_dim, rng);
    a.k.w = wk.matrix(E, o.n_head_kv * o.head_dim, rng);
    a.v.w = wv.matrix(E, o.n_head_kv * hv, rng);
    a.o.w = wo.matrix(o.n_head * hv, E, rng);
    if (sinks) a.sinks = {0.5f, -1.0f, 2.0f, 0.0f};
    std::vector<float> x(size_t(n * E));
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (float& v : x) v = d(rng);

    MemoryLayout layout;
    layout.layers.push_back(a.memory());
    KvCache cache(layout, 64, 1);
    ThreadPool pool(2);
    Scratch scratch;
    // Two batches (7 + 5 tokens): the second attends over cached rows of the first.
    std::vector<float> got(size_t(n * E));
    for (int begin : {0, 7}) {
        const int end = begin == 0 ? 7 : n;
        Batch b;
        for (int t = begin; t < end; ++t) b.add(0, t, 0, true);
        begin_pass(b, cache, 1);
        Pass p(b, cache, pool, scratch);
        a.apply(&x[size_t(begin * E)], &got[size_t(begin * E)], p);
        p.commit();
    }
    const std::vector<float> want = reference_attention(a, x, n, E);
    // Bidirectional attention in two batches sees only what is cached: compare the
    // tokens of the last batch, which see the whole sequence.
    const int first = o.causal ? 0 : 7;
    for (int i = first * E; i < n * E; ++i) ASSERT_NEAR(got[size_t(i)], want[size_t(i)], 2e-2f) << what << " at " << i;
}

TEST(Blocks, AttentionOptionsMatchTheFormula) {
    AttentionOptions o;
    check_attention(o, false, "plain (fast fp16 path)");
    o.window = 3;
    check_attention(o, false, "sliding window");
    o = {};
    o.soft_cap = 0.5f;
    check_attention(o, false, "soft-cap");
    o = {};
    o.alibi_max_bias = 8.0f;
    check_attention(o, false, "ALiBi");
    o = {};
    check_attention(o, true, "sinks");
    o = {};
    o.causal = false;
    check_attention(o, false, "bidirectional");
    o = {};
    o.head_dim_v = 4;
    check_attention(o, false, "V heads of 4");
}

// x / rms(x) * w for one vector, the long way.
std::vector<float> reference_rms(const float* x, const std::vector<float>& w, float eps) {
    double ss = 0.0;
    for (size_t i = 0; i < w.size(); ++i) ss += double(x[i]) * x[i];
    const float r = float(1.0 / std::sqrt(ss / double(w.size()) + eps));
    std::vector<float> out(w.size());
    for (size_t i = 0; i < w.size(); ++i) out[i] = x[i] * r * w[i];
    return out;
}

// Multi-head latent attention over its latent cache (up-projections absorbed) against the
// decompressed textbook form: per head k = [W_kb^T latent, rope(k_pe)], v = W_vb latent,
// q = [q_nope, rope(q_pe)] from the q LoRA, softmax(q·k / sqrt(nope + rope)) v, then Wo.
TEST(Blocks, LatentAttentionMatchesTheDecompressedFormula) {
    const int E = 16, H = 3, q_lora = 6, kv_lora = 8, nope = 4, rd = 4, v_dim = 5, n = 9;
    const int qk = nope + rd;
    std::mt19937 rng(5);
    std::vector<Weights> w(4 + 2 * H);
    LatentAttention a;
    a.nope = nope, a.rope_dims = rd, a.kv_lora = kv_lora, a.v_dim = v_dim;
    a.attn.opt.n_head = H, a.attn.opt.n_head_kv = 1;
    a.attn.opt.head_dim = kv_lora + rd, a.attn.opt.head_dim_v = kv_lora;
    a.attn.opt.rope.n_dims = rd;
    a.attn.opt.scale = 1.0f / std::sqrt(float(qk));
    a.q_a.w = w[0].matrix(E, q_lora, rng);
    a.q_b.w = w[1].matrix(q_lora, H * qk, rng);
    a.kv_a.w = w[2].matrix(E, kv_lora + rd, rng);
    a.attn.o.w = w[3].matrix(H * v_dim, E, rng);
    for (int h = 0; h < H; ++h) {
        a.k_b.push_back(w[size_t(4 + h)].matrix(nope, kv_lora, rng));
        a.v_b.push_back(w[size_t(4 + H + h)].matrix(kv_lora, v_dim, rng));
    }
    std::uniform_real_distribution<float> pos_w(0.5f, 1.5f);
    a.q_a_norm.weight.resize(q_lora);
    a.kv_a_norm.weight.resize(kv_lora);
    for (float& v : a.q_a_norm.weight) v = pos_w(rng);
    for (float& v : a.kv_a_norm.weight) v = pos_w(rng);
    a.q_a_norm.eps = a.kv_a_norm.eps = 1e-6f;
    std::vector<float> x(size_t(n * E));
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (float& v : x) v = d(rng);

    MemoryLayout layout;
    layout.layers.push_back(a.memory());
    KvCache cache(layout, 64, 1);
    ThreadPool pool(2);
    Scratch scratch;
    std::vector<float> got(size_t(n * E));
    for (int begin : {0, 5}) {  // two batches: the second reads the first's cached latents
        const int end = begin == 0 ? 5 : n;
        Batch b;
        for (int t = begin; t < end; ++t) b.add(0, t, 0, true);
        begin_pass(b, cache, 1);
        Pass p(b, cache, pool, scratch);
        a.apply(&x[size_t(begin * E)], &got[size_t(begin * E)], p);
        p.commit();
    }

    // Decompressed per-head q, k, v of every token.
    std::vector<float> q(size_t(n * H * qk)), k(size_t(n * H * qk)), v(size_t(n * H * v_dim));
    for (int t = 0; t < n; ++t) {
        const float* xt = &x[size_t(t * E)];
        std::vector<float> c(q_lora), kv(size_t(kv_lora + rd));
        for (int i = 0; i < q_lora; ++i) c[size_t(i)] = dot_row(a.q_a.w, i, xt);
        c = reference_rms(c.data(), a.q_a_norm.weight, 1e-6f);
        for (int i = 0; i < H * qk; ++i) q[size_t(t * H * qk + i)] = dot_row(a.q_b.w, i, c.data());
        for (int i = 0; i < kv_lora + rd; ++i) kv[size_t(i)] = dot_row(a.kv_a.w, i, xt);
        const std::vector<float> latent = reference_rms(kv.data(), a.kv_a_norm.weight, 1e-6f);
        RopeParams one = a.attn.opt.rope;
        rope(&kv[size_t(kv_lora)], 1, rd, t, one);
        for (int h = 0; h < H; ++h) {
            float* qh = &q[size_t((t * H + h) * qk)];
            rope(qh + nope, 1, rd, t, one);
            float* kh = &k[size_t((t * H + h) * qk)];
            const float* kb = static_cast<const float*>(a.k_b[size_t(h)].data);  // kv_lora rows of nope
            for (int i = 0; i < nope; ++i) {
                kh[i] = 0.0f;
                for (int cdx = 0; cdx < kv_lora; ++cdx) kh[i] += kb[cdx * nope + i] * latent[size_t(cdx)];
            }
            std::copy_n(&kv[size_t(kv_lora)], rd, kh + nope);
            for (int r = 0; r < v_dim; ++r) v[size_t((t * H + h) * v_dim + r)] = dot_row(a.v_b[size_t(h)], r, latent.data());
        }
    }
    for (int t = 0; t < n; ++t) {
        std::vector<float> att(size_t(H * v_dim), 0.0f);
        for (int h = 0; h < H; ++h) {
            std::vector<double> s(size_t(t + 1));
            double mx = -INFINITY, sum = 0.0;
            for (int j = 0; j <= t; ++j) {
                double sc = 0.0;
                for (int i = 0; i < qk; ++i) sc += double(q[size_t((t * H + h) * qk + i)]) * k[size_t((j * H + h) * qk + i)];
                mx = std::max(mx, s[size_t(j)] = sc / std::sqrt(double(qk)));
            }
            for (double& e : s) sum += (e = std::exp(e - mx));
            for (int j = 0; j <= t; ++j)
                for (int r = 0; r < v_dim; ++r)
                    att[size_t(h * v_dim + r)] += float(s[size_t(j)] / sum) * v[size_t((j * H + h) * v_dim + r)];
        }
        for (int e = 0; e < E; ++e)
            ASSERT_NEAR(got[size_t(t * E + e)], dot_row(a.attn.o.w, e, att.data()), 3e-2f) << "token " << t << " value " << e;
    }
}

// SwiGLU expert down(silu(gate x) * up x) for one token, the long way.
std::vector<float> reference_expert(const WeightMatrix& gate, const WeightMatrix& up, const WeightMatrix& down,
                                    const float* x) {
    std::vector<float> h(size_t(gate.rows)), y(size_t(down.rows));
    for (int64_t f = 0; f < gate.rows; ++f) {
        const float g = dot_row(gate, f, x);
        h[size_t(f)] = g / (1.0f + std::exp(-g)) * dot_row(up, f, x);
    }
    for (int64_t e = 0; e < down.rows; ++e) y[size_t(e)] = dot_row(down, e, h.data());
    return y;
}

// sigmoid: DeepSeek-V3 routing (each expert's sigmoid, a selection bias, scaled weights).
void check_moe(bool normalize, bool shared, bool sigmoid = false) {
    const int E = 8, F = 6, n_exp = 4, n = 5;
    std::mt19937 rng(11);
    std::vector<Weights> w(3 * n_exp + 4);
    MoE m;
    m.n_used = 2;
    m.n_ff = F;
    m.normalize = normalize;
    if (sigmoid) {
        m.gating = MoE::Gating::Sigmoid;
        m.select_bias = {0.0f, 0.6f, -0.3f, 0.2f};
        m.weights_scale = 2.5f;
    }
    m.router.w = w[0].matrix(E, n_exp, rng);
    for (int e = 0; e < n_exp; ++e) {
        m.gate.push_back(w[size_t(1 + 3 * e)].matrix(E, F, rng));
        m.up.push_back(w[size_t(2 + 3 * e)].matrix(E, F, rng));
        m.down.push_back(w[size_t(3 + 3 * e)].matrix(F, E, rng));
    }
    if (shared) {
        m.shared.gate.w = w[size_t(3 * n_exp + 1)].matrix(E, 3, rng);
        m.shared.up.w = w[size_t(3 * n_exp + 2)].matrix(E, 3, rng);
        m.shared.down.w = w[size_t(3 * n_exp + 3)].matrix(3, E, rng);
        m.shared_gate = {0.3f, -0.2f, 0.1f, 0.5f, -0.4f, 0.2f, 0.0f, 0.1f};
    }
    std::vector<float> x(size_t(n * E)), got(size_t(n * E));
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (float& v : x) v = d(rng);
    Batch b;
    for (int t = 0; t < n; ++t) b.add(0, t, 0, true);
    MemoryLayout layout;  // the block keeps no memory; a Pass needs a cache all the same
    layout.layers.push_back(LayerMemory::attention(8, 8));
    KvCache cache(layout, 64, 1);
    ThreadPool pool(2);
    Scratch scratch;
    Pass p(b, cache, pool, scratch);
    m.apply(x.data(), n, got.data(), p);

    for (int t = 0; t < n; ++t) {
        const float* xt = &x[size_t(t * E)];
        std::vector<double> prob(n_exp);
        double z = 0.0;
        for (int e = 0; e < n_exp; ++e) z += prob[size_t(e)] = std::exp(double(dot_row(m.router.w, e, xt)));
        for (int e = 0; e < n_exp; ++e)
            prob[size_t(e)] = sigmoid ? 1.0 / (1.0 + std::exp(-double(dot_row(m.router.w, e, xt)))) : prob[size_t(e)] / z;
        auto choice = [&](int e) { return prob[size_t(e)] + (sigmoid ? m.select_bias[size_t(e)] : 0.0); };
        std::vector<int> order = {0, 1, 2, 3};
        std::sort(order.begin(), order.end(), [&](int a, int c) { return choice(a) > choice(c); });
        const double top = prob[size_t(order[0])] + prob[size_t(order[1])];
        std::vector<double> want(E, 0.0);
        for (int j = 0; j < 2; ++j) {
            const int e = order[size_t(j)];
            const double wgt = (normalize ? prob[size_t(e)] / top : prob[size_t(e)]) * m.weights_scale;
            const auto y = reference_expert(m.gate[size_t(e)], m.up[size_t(e)], m.down[size_t(e)], xt);
            for (int i = 0; i < E; ++i) want[size_t(i)] += wgt * y[size_t(i)];
        }
        if (shared) {
            double g = 0.0;
            for (int i = 0; i < E; ++i) g += m.shared_gate[size_t(i)] * xt[i];
            const auto y = reference_expert(m.shared.gate.w, m.shared.up.w, m.shared.down.w, xt);
            for (int i = 0; i < E; ++i) want[size_t(i)] += y[size_t(i)] / (1.0 + std::exp(-g));
        }
        for (int i = 0; i < E; ++i)
            ASSERT_NEAR(got[size_t(t * E + i)], want[size_t(i)], 1e-3) << "token " << t << " value " << i
                                                                        << (normalize ? " normalised" : " raw")
                                                                        << (shared ? " + shared" : "")
                                                                        << (sigmoid ? " sigmoid" : "");
    }
}

TEST(Blocks, MixtureOfExpertsMatchesTheFormula) {
    check_moe(true, false);   // Mixtral, Qwen3-MoE
    check_moe(false, true);   // Qwen2-MoE
    check_moe(true, true, true);  // DeepSeek-V3: sigmoid, selection bias, scale
    check_moe(false, true, true);
}

// attn_qkv ({E, Q + K + V} with bias) split by load_attention: q, k and v are views of
// the file's rows (no copy) and each computes its slice of the fused product.
TEST(Blocks, FusedQkvSplitsIntoViews) {
    const int E = 16, Q = 16, K = 8, V = 8, R = Q + K + V;
    std::mt19937 rng(5);
    Weights fused;
    const WeightMatrix w = fused.matrix(E, R, rng);
    std::vector<float> bias(static_cast<size_t>(R));
    for (int r = 0; r < R; ++r) bias[size_t(r)] = 0.01f * float(r);
    GgufWriter writer;
    writer.add_tensor("blk.0.attn_qkv.weight", {E, R}, GgmlType::F32, w.data, size_t(E * R) * sizeof(float));
    writer.add_tensor("blk.0.attn_qkv.bias", {R}, GgmlType::F32, bias.data(), size_t(R) * sizeof(float));
    std::vector<float> wo(size_t(Q * E), 0.0f);
    writer.add_tensor("blk.0.attn_output.weight", {Q, E}, GgmlType::F32, wo.data(), wo.size() * sizeof(float));
    const std::vector<uint8_t> bytes = writer.to_bytes();
    const auto file = GgufFile::parse(bytes.data(), bytes.size());
    AttentionOptions o;
    o.n_head = 4;
    o.n_head_kv = 2;
    o.head_dim = 4;
    const Attention a = load_attention(ModelLoader(*file), "blk.0.", 0, E, o, 1e-5f);

    const auto* base = static_cast<const uint8_t*>(file->find_tensor("blk.0.attn_qkv.weight")->data);
    EXPECT_EQ(a.q.w.data, base);
    EXPECT_EQ(a.k.w.data, base + size_t(Q * E) * sizeof(float));
    EXPECT_EQ(a.v.w.data, base + size_t((Q + K) * E) * sizeof(float));
    std::vector<float> x(static_cast<size_t>(E));
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (float& v : x) v = d(rng);
    MemoryLayout layout;
    layout.layers.push_back(a.memory());
    KvCache cache(layout, 64, 1);
    ThreadPool pool(1);
    Scratch scratch;
    Batch b;
    b.add(0, 0, 0, true);
    Pass p(b, cache, pool, scratch);
    int first = 0;
    for (const Linear* l : {&a.q, &a.k, &a.v}) {
        std::vector<float> y(size_t(l->out()));
        l->apply(x.data(), 1, y.data(), p);
        for (int64_t r = 0; r < l->out(); ++r)
            ASSERT_NEAR(y[size_t(r)], dot_row(w, first + r, x.data()) + bias[size_t(first + r)], 1e-4f) << "row " << first + r;
        first += int(l->out());
    }
    EXPECT_EQ(first, R);
}

// q/k norms over the whole projection (OLMo 2: one RMS over all heads) and per head
// (Qwen3): project() normalises rows of the norm's width.
TEST(Blocks, QkNormPerHeadOrWhole) {
    const int E = 8, H = 2, hd = 4, n = 3;
    std::mt19937 rng(3);
    Weights wq, wk, wv;
    Attention a;
    a.opt.n_head = H;
    a.opt.n_head_kv = 1;
    a.opt.head_dim = hd;
    a.q.w = wq.matrix(E, H * hd, rng);
    a.k.w = wk.matrix(E, hd, rng);
    a.v.w = wv.matrix(E, hd, rng);
    std::vector<float> x(static_cast<size_t>(n * E));
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (float& v : x) v = d(rng);
    MemoryLayout layout;
    layout.layers.push_back(a.memory());
    KvCache cache(layout, 64, 1);
    ThreadPool pool(1);
    Scratch scratch;
    Batch b;
    for (int t = 0; t < n; ++t) b.add(0, t, 0, true);
    Pass p(b, cache, pool, scratch);
    for (int width : {H * hd, hd}) {
        a.q_norm = Norm{NormKind::RMS, std::vector<float>(size_t(width)), {}, 1e-6f};
        for (int i = 0; i < width; ++i) a.q_norm.weight[size_t(i)] = 0.5f + 0.1f * float(i);
        a.project(x.data(), p);
        for (int t = 0; t < n; ++t)
            for (int r0 = 0; r0 < H * hd; r0 += width) {
                double ss = 0.0;
                for (int i = 0; i < width; ++i) ss += std::pow(dot_row(a.q.w, r0 + i, &x[size_t(t * E)]), 2);
                const double inv = 1.0 / std::sqrt(ss / width + 1e-6);
                for (int i = 0; i < width; ++i)
                    ASSERT_NEAR(scratch.q[size_t(t * H * hd + r0 + i)],
                                dot_row(a.q.w, r0 + i, &x[size_t(t * E)]) * inv * a.q_norm.weight[size_t(i)], 1e-4)
                        << "width " << width << " token " << t << " value " << r0 + i;
            }
    }
}

TEST(Blocks, NormsAndActivations) {
    const std::vector<float> x = {1.0f, -2.0f, 3.0f, 0.5f};
    Norm rms{NormKind::RMS, {1.0f, 2.0f, 0.5f, 1.0f}, {0.1f, 0.0f, 0.0f, -0.1f}, 1e-6f};
    std::vector<float> out(4);
    rms.apply(x.data(), out.data(), 1);
    const float r = std::sqrt((1 + 4 + 9 + 0.25f) / 4);
    EXPECT_NEAR(out[0], 1.0f / r + 0.1f, 1e-5f);
    EXPECT_NEAR(out[1], -4.0f / r, 1e-5f);
    Norm ln{NormKind::Layer, {1, 1, 1, 1}, {0, 0, 0, 1}, 1e-6f};
    ln.apply(x.data(), out.data(), 1);
    const float mean = 2.5f / 4, sd = std::sqrt(((1 - mean) * (1 - mean) + (-2 - mean) * (-2 - mean) +
                                                 (3 - mean) * (3 - mean) + (0.5f - mean) * (0.5f - mean)) / 4);
    EXPECT_NEAR(out[2], (3 - mean) / sd, 1e-4f);
    EXPECT_NEAR(out[3], (0.5f - mean) / sd + 1.0f, 1e-4f);

    float a[] = {1.0f, 1.0f, 1.0f, -1.0f, 2.0f};
    activate(a, 1, Activation::SiLU);
    activate(a + 1, 1, Activation::GELU);
    activate(a + 2, 1, Activation::GELUTanh);
    activate(a + 3, 2, Activation::ReLU2);
    EXPECT_NEAR(a[0], 0.7310586f, 1e-6f);
    EXPECT_NEAR(a[1], 0.8413447f, 1e-6f);
    EXPECT_NEAR(a[2], 0.8411920f, 1e-6f);
    EXPECT_EQ(a[3], 0.0f);
    EXPECT_EQ(a[4], 4.0f);
    float g[] = {1.0f, 1.0f}, u[] = {3.0f, 3.0f};
    gated_activate(g, u, 1, Activation::SiLU);
    gated_activate(g + 1, u + 1, 1, Activation::GELU);
    EXPECT_NEAR(g[0], 3 * 0.7310586f, 1e-5f);
    EXPECT_NEAR(g[1], 3 * 0.8413447f, 1e-5f);
    // gpt-oss: the gate is clamped above at 7, the up value to [-7, 7], and 1 added to it.
    float cg[] = {10.0f, -1.0f}, cu[] = {9.0f, -9.0f};
    gated_activate(cg, cu, 2, Activation::SwiGLUClamped);
    EXPECT_NEAR(cg[0], 7.0f / (1.0f + std::exp(-1.702f * 7.0f)) * 8.0f, 1e-4f);
    EXPECT_NEAR(cg[1], -1.0f / (1.0f + std::exp(1.702f)) * -6.0f, 1e-5f);
}

// The vectorised activations over a sweep (every length 1..20 for the padded tail, and
// -90..90): against the formulas in double, within 2e-6 relative + 2e-7 absolute; a
// value is the same whatever the length of its row.
TEST(Blocks, VectorActivationsFollowTheFormulas) {
    std::vector<float> x;
    for (float v = -90.0f; v <= 90.0f; v += 0.0137f) x.push_back(v);
    for (float v : {0.0f, -0.0f, 1e-20f, -1e-6f, 88.5f, -88.5f, 1e4f, -1e4f}) x.push_back(v);
    auto silu_d = [](double v) { return v / (1.0 + std::exp(-v)); };
    auto gelu_d = [](double v) { return 0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))); };
    std::vector<float> up(x.size());
    for (size_t i = 0; i < x.size(); ++i) up[i] = 0.5f + float(i % 7);
    for (Activation act : {Activation::SiLU, Activation::GELUTanh})
        for (bool gated : {false, true}) {
            std::vector<float> got = x;
            if (gated) gated_activate(got.data(), up.data(), int64_t(got.size()), act);
            else activate(got.data(), int64_t(got.size()), act);
            for (size_t i = 0; i < x.size(); ++i) {
                const double want = (act == Activation::SiLU ? silu_d(x[i]) : gelu_d(x[i])) * (gated ? up[i] : 1.0);
                ASSERT_NEAR(got[i], want, 2e-6 * std::abs(want) + 2e-7 * (gated ? up[i] : 1.0)) << x[i] << " gated " << gated;
            }
            for (int n = 1; n <= 20; ++n) {  // the same values through short rows (the padded tail)
                std::vector<float> part(x.begin() + 1000, x.begin() + 1000 + n);
                if (gated) gated_activate(part.data(), up.data() + 1000, n, act);
                else activate(part.data(), n, act);
                for (int i = 0; i < n; ++i) ASSERT_EQ(part[size_t(i)], got[size_t(1000 + i)]) << n;
            }
        }
}

// Phi-3's fused gate+up ffn_up ({E, 2F}: gate rows, then up rows) read by
// load_feed_forward when the file has no ffn_gate: two views of the file's rows, and the
// GeGLU block over them follows down(gelu_tanh(gate x) * up x).
TEST(Blocks, FusedGateUpSplitsIntoViews) {
    const int E = 8, F = 5, n = 3;
    std::mt19937 rng(5);
    Weights wf, wd;
    const WeightMatrix fused = wf.matrix(E, 2 * F, rng), down = wd.matrix(F, E, rng);
    GgufWriter writer;
    writer.add_tensor("blk.0.ffn_up.weight", {E, 2 * F}, GgmlType::F32, fused.data, size_t(E * 2 * F) * sizeof(float));
    writer.add_tensor("blk.0.ffn_down.weight", {F, E}, GgmlType::F32, down.data, size_t(F * E) * sizeof(float));
    const std::vector<uint8_t> bytes = writer.to_bytes();
    const auto file = GgufFile::parse(bytes.data(), bytes.size());
    const FeedForward ffn = load_feed_forward(ModelLoader(*file), "blk.0.", E, F, Activation::GELUTanh);
    const auto* base = static_cast<const uint8_t*>(file->find_tensor("blk.0.ffn_up.weight")->data);
    EXPECT_EQ(ffn.gate.w.data, base);
    EXPECT_EQ(ffn.up.w.data, base + size_t(F * E) * sizeof(float));

    std::vector<float> x(size_t(n * E)), y(size_t(n * E));
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (float& v : x) v = d(rng);
    Batch b;
    for (int t = 0; t < n; ++t) b.add(0, t, 0, true);
    MemoryLayout layout;
    layout.layers.push_back(LayerMemory::attention(8, 8));
    KvCache cache(layout, 64, 1);
    ThreadPool pool(2);
    Scratch scratch;
    Pass p(b, cache, pool, scratch);
    ffn.apply(x.data(), n, y.data(), p);
    for (int t = 0; t < n; ++t) {
        const float* xt = &x[size_t(t * E)];
        std::vector<float> h(F);
        for (int f = 0; f < F; ++f) {
            const float g = dot_row(fused, f, xt), u = dot_row(fused, F + f, xt);
            h[size_t(f)] = 0.5f * g * (1.0f + std::tanh(0.7978845608f * (g + 0.044715f * g * g * g))) * u;
        }
        for (int e = 0; e < E; ++e) ASSERT_NEAR(y[size_t(t * E + e)], dot_row(down, e, h.data()), 1e-4f) << t << " " << e;
    }
}

// LongRoPE: the long factors once the memory's context per sequence exceeds the original.
TEST(Blocks, LongRopeChoosesFactorsByContext) {
    LongRope r{{4.0f, 8.0f}, {1.0f, 2.0f}, 64};
    EXPECT_EQ(r.for_context(64), r.short_factors);
    EXPECT_EQ(r.for_context(65), r.long_factors);
    EXPECT_TRUE(LongRope{}.empty());
}

}  // namespace
}  // namespace pensieve
