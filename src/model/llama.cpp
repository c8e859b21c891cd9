// The LLaMA family (general.architecture = "llama"): LLaMA 1-3, Mistral, Mixtral-style
// mixture of experts, TinyLlama and the llama2.c "stories" models.
//
// Per layer:  x += Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
//             x += W_down · (silu(W_gate·norm(x)) * W_up·norm(x))        (dense FFN)
//          or x += Σ_top-k  p_e · expert_e(norm(x))                       (MoE FFN)
// then logits = W_out · norm(x), for the tokens that asked for them.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>

#include "kernels/attention.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"
#include "model/model.h"
#include "model/model_loader.h"
#include "util/error.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace pensieve {

// Work (multiply-adds) below which an op runs on the calling thread: handing it to the
// pool costs more (see kernels/matmul.cpp).
constexpr int64_t kMinParallelMacs = int64_t(1) << 16;

namespace {

struct LlamaLayer {
    std::vector<float> attn_norm;
    WeightMatrix wq, wk, wv, wo;
    std::vector<float> bq, bk, bv;  // optional biases (empty when absent)
    std::vector<float> ffn_norm;
    // dense FFN
    WeightMatrix w_gate, w_up, w_down;
    // mixture of experts: router and one matrix per expert
    WeightMatrix router;
    std::vector<WeightMatrix> exp_gate, exp_up, exp_down;
};

class LlamaModel final : public Model {
public:
    explicit LlamaModel(std::unique_ptr<GgufFile> file);
    void forward(const Batch& batch, KvCache& cache, ThreadPool& pool, float* logits) override;

private:
    void attention(int layer, const Batch& batch, KvCache& cache, ThreadPool& pool);
    void store_kv(int layer, const Batch& batch, KvCache& cache);
    void attend_f16(int layer, const Batch& batch, const KvCache& cache, ThreadPool& pool);
    void attend_q8_0(int layer, const Batch& batch, const KvCache& cache, ThreadPool& pool);
    void feed_forward_dense(const LlamaLayer& L, int64_t n, ThreadPool& pool);
    void feed_forward_moe(const LlamaLayer& L, int64_t n, ThreadPool& pool);

    WeightMatrix token_embd_;
    std::vector<float> output_norm_;
    WeightMatrix output_;
    std::vector<LlamaLayer> layers_;

    // Activations for the current batch, grown to the largest batch seen.
    std::vector<float> x_, xb_, q_, k_, v_, att_, tmp_, gate_, up_, moe_out_;
    MatmulScratch mm_;
};

LlamaModel::LlamaModel(std::unique_ptr<GgufFile> file) : Model(std::move(file)) {
    ModelLoader ld(*file_);
    config_ = ld.read_llama_config("llama", RopeStyle::Normal);
    ModelConfig& c = config_;
    const int q_dim = c.n_head * c.head_dim;
    const int kv_dim = c.kv_dim();

    token_embd_ = ld.matrix("token_embd.weight", c.n_embd, -1);
    c.n_vocab = int(token_embd_.rows);
    output_norm_ = ld.vector("output_norm.weight", c.n_embd);
    // Tied embeddings: models without output.weight reuse the token embedding matrix.
    output_ = ld.has("output.weight") ? ld.matrix("output.weight", c.n_embd, c.n_vocab)
                                      : token_embd_;

    layers_.resize(size_t(c.n_layer));
    for (int i = 0; i < c.n_layer; ++i) {
        LlamaLayer& L = layers_[size_t(i)];
        const std::string p = "blk." + std::to_string(i) + ".";
        L.attn_norm = ld.vector(p + "attn_norm.weight", c.n_embd);
        L.wq = ld.matrix(p + "attn_q.weight", c.n_embd, q_dim);
        L.wk = ld.matrix(p + "attn_k.weight", c.n_embd, kv_dim);
        L.wv = ld.matrix(p + "attn_v.weight", c.n_embd, kv_dim);
        L.wo = ld.matrix(p + "attn_output.weight", q_dim, c.n_embd);
        if (ld.has(p + "attn_q.bias")) L.bq = ld.vector(p + "attn_q.bias", q_dim);
        if (ld.has(p + "attn_k.bias")) L.bk = ld.vector(p + "attn_k.bias", kv_dim);
        if (ld.has(p + "attn_v.bias")) L.bv = ld.vector(p + "attn_v.bias", kv_dim);
        L.ffn_norm = ld.vector(p + "ffn_norm.weight", c.n_embd);
        if (c.n_expert > 0) {
            L.router = ld.matrix(p + "ffn_gate_inp.weight", c.n_embd, c.n_expert);
            L.exp_gate = ld.experts(p + "ffn_gate_exps.weight", c.n_embd, c.n_ff, c.n_expert);
            L.exp_up = ld.experts(p + "ffn_up_exps.weight", c.n_embd, c.n_ff, c.n_expert);
            L.exp_down = ld.experts(p + "ffn_down_exps.weight", c.n_ff, c.n_embd, c.n_expert);
        } else {
            L.w_gate = ld.matrix(p + "ffn_gate.weight", c.n_embd, c.n_ff);
            L.w_up = ld.matrix(p + "ffn_up.weight", c.n_embd, c.n_ff);
            L.w_down = ld.matrix(p + "ffn_down.weight", c.n_ff, c.n_embd);
        }
    }
}

void add_bias(float* rows, const std::vector<float>& bias, int64_t n) {
    if (bias.empty()) return;
    const int64_t dim = int64_t(bias.size());
    for (int64_t t = 0; t < n; ++t) add_inplace(rows + t * dim, bias.data(), dim);
}

void LlamaModel::forward(const Batch& batch, KvCache& cache, ThreadPool& pool, float* logits) {
    const ModelConfig& c = config_;
    const int64_t n = batch.size();
    if (n == 0) return;
    validate_batch(batch, cache, c.n_vocab);

    const int64_t E = c.n_embd, Q = int64_t(c.n_head) * c.head_dim, KV = c.kv_dim();
    const int64_t F = c.n_ff;
    x_.resize(size_t(n * E));
    xb_.resize(size_t(n * E));
    q_.resize(size_t(n * Q));
    k_.resize(size_t(n * KV));
    v_.resize(size_t(n * KV));
    att_.resize(size_t(n * Q));
    tmp_.resize(size_t(n * E));
    gate_.resize(size_t(n * F));
    up_.resize(size_t(n * F));

    // 1. Token embeddings.
    for (int64_t t = 0; t < n; ++t) dequantize_row(token_embd_, batch.tokens[size_t(t)], &x_[size_t(t * E)]);

    for (int l = 0; l < c.n_layer; ++l) {
        const LlamaLayer& L = layers_[size_t(l)];

        // 2. Attention block.
        for (int64_t t = 0; t < n; ++t)
            rms_norm(&x_[size_t(t * E)], L.attn_norm.data(), &xb_[size_t(t * E)], E, c.norm_eps);
        matmul(L.wq, xb_.data(), n, q_.data(), pool, mm_);
        matmul(L.wk, xb_.data(), n, k_.data(), pool, mm_);
        matmul(L.wv, xb_.data(), n, v_.data(), pool, mm_);
        add_bias(q_.data(), L.bq, n);
        add_bias(k_.data(), L.bk, n);
        add_bias(v_.data(), L.bv, n);
        for (int64_t t = 0; t < n; ++t) {
            const int32_t pos = batch.positions[size_t(t)];
            rope(&q_[size_t(t * Q)], c.n_head, c.head_dim, pos, c.rope);
            rope(&k_[size_t(t * KV)], c.n_head_kv, c.head_dim, pos, c.rope);
        }
        attention(l, batch, cache, pool);
        matmul(L.wo, att_.data(), n, tmp_.data(), pool, mm_);
        add_inplace(x_.data(), tmp_.data(), n * E);

        // 3. Feed-forward block.
        for (int64_t t = 0; t < n; ++t)
            rms_norm(&x_[size_t(t * E)], L.ffn_norm.data(), &xb_[size_t(t * E)], E, c.norm_eps);
        if (c.n_expert > 0)
            feed_forward_moe(L, n, pool);
        else
            feed_forward_dense(L, n, pool);
        add_inplace(x_.data(), tmp_.data(), n * E);
    }

    // 4. The sequences now hold the batch's positions.
    commit_batch_positions(batch, cache);

    // 5. Logits for the tokens that want them.
    int64_t n_out = 0;
    for (int64_t t = 0; t < n; ++t) {
        if (!batch.want_logits[size_t(t)]) continue;
        rms_norm(&x_[size_t(t * E)], output_norm_.data(), &xb_[size_t(n_out * E)], E, c.norm_eps);
        ++n_out;
    }
    if (n_out > 0) matmul(output_, xb_.data(), n_out, logits, pool, mm_);
}

// Causal attention of each batch token over its own sequence's cached positions
// [0, pos]. The batch's keys and values are written to the cache first, so prompt tokens
// of one chunk see each other.
void LlamaModel::attention(int layer, const Batch& batch, KvCache& cache, ThreadPool& pool) {
    store_kv(layer, batch, cache);
    if (cache.type() == KvType::Q8_0)
        attend_q8_0(layer, batch, cache, pool);
    else
        attend_f16(layer, batch, cache, pool);
}

// The batch's keys and values (k_, v_) into their cache rows, converted to the cache type.
void LlamaModel::store_kv(int layer, const Batch& batch, KvCache& cache) {
    const int64_t n = batch.size(), KV = config_.kv_dim();
    const FromFloatFn quantize = cache.type() == KvType::Q8_0 ? kernels_for(GgmlType::Q8_0).from_float : nullptr;
    for (int64_t t = 0; t < n; ++t) {
        const int seq = batch.seq_ids[size_t(t)], pos = batch.positions[size_t(t)];
        const float* k = &k_[size_t(t * KV)];
        const float* v = &v_[size_t(t * KV)];
        if (quantize) {
            quantize(k, cache.k_row(layer, seq, pos), KV);
            quantize(v, cache.v_row(layer, seq, pos), KV);
            continue;
        }
        auto* kr = reinterpret_cast<fp16_t*>(cache.k_row(layer, seq, pos));
        auto* vr = reinterpret_cast<fp16_t*>(cache.v_row(layer, seq, pos));
        for (int64_t i = 0; i < KV; ++i) {
            kr[i] = fp32_to_fp16(k[i]);
            vr[i] = fp32_to_fp16(v[i]);
        }
    }
}

// fp16 cache. Work item = (sequence, KV head, tile of up to kTile of its batch tokens):
// the group's query heads and the tile's tokens share the item's K/V rows, so a row is
// converted once per group and stays in cache across the tile (with GQA and a prompt
// chunk, the old per-(token, head) loop reloaded every row group * n_tok times). The
// per-query arithmetic is attend_f16_tile's, which is bit-identical to a one-head loop,
// so results do not depend on the tiling, the batch or the thread count.
void LlamaModel::attend_f16(int layer, const Batch& batch, const KvCache& cache, ThreadPool& pool) {
    const ModelConfig& c = config_;
    const int64_t n = batch.size();
    const int hd = c.head_dim;
    const int64_t Q = int64_t(c.n_head) * hd;
    const int group = c.n_head / c.n_head_kv;  // query heads per KV head (GQA)
    const float scale = 1.0f / std::sqrt(float(hd));
    constexpr int kTile = 16;

    // Batch tokens grouped by sequence (stable: batch order within a sequence), cut
    // into tiles.
    struct Tile { int begin, end, max_pos; };
    std::vector<int> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return batch.seq_ids[size_t(a)] < batch.seq_ids[size_t(b)]; });
    std::vector<Tile> tiles;
    for (int i = 0; i < int(n);) {
        const int seq = batch.seq_ids[size_t(order[size_t(i)])];
        Tile tile{i, i, 0};
        while (tile.end < int(n) && tile.end - tile.begin < kTile && batch.seq_ids[size_t(order[size_t(tile.end)])] == seq)
            tile.max_pos = std::max(tile.max_pos, batch.positions[size_t(order[size_t(tile.end++)])]);
        tiles.push_back(tile);
        i = tile.end;
    }
    // Longest tiles first, handed out one at a time: the cost of an item grows with its
    // positions, and a static split of a prompt would leave one thread with its tail.
    std::stable_sort(tiles.begin(), tiles.end(), [](const Tile& a, const Tile& b) { return a.max_pos > b.max_pos; });
    const int64_t n_items = int64_t(tiles.size()) * c.n_head_kv;
    std::atomic<int64_t> next{0};
    // Multiply-adds of the whole call; below kMinParallelMacs it stays on this thread (a
    // hand-off costs more than the work, as in matmul).
    int64_t macs = 0;
    for (const Tile& tile : tiles) macs += int64_t(tile.end - tile.begin) * (tile.max_pos + 1);
    macs *= 2 * int64_t(c.n_head) * hd;

    auto work = [&](int, int) {
        thread_local std::vector<const fp16_t*> krows, vrows;
        thread_local std::vector<float> qt, out, scratch;
        thread_local std::vector<int> n_pos;
        for (int64_t w = next.fetch_add(1); w < n_items; w = next.fetch_add(1)) {
            const Tile& tile = tiles[size_t(w / c.n_head_kv)];
            const int kvh = int(w % c.n_head_kv);
            const int n_tok = tile.end - tile.begin;
            const int seq = batch.seq_ids[size_t(order[size_t(tile.begin)])];
            const int rows = tile.max_pos + 1;
            krows.resize(size_t(rows));
            vrows.resize(size_t(rows));
            for (int j = 0; j < rows; ++j) {
                krows[size_t(j)] = reinterpret_cast<const fp16_t*>(cache.k_row(layer, seq, j)) + size_t(kvh) * size_t(hd);
                vrows[size_t(j)] = reinterpret_cast<const fp16_t*>(cache.v_row(layer, seq, j)) + size_t(kvh) * size_t(hd);
            }
            // The group's query heads are consecutive in q_ (heads kvh * group ...).
            const size_t width = size_t(group) * size_t(hd);
            qt.resize(size_t(n_tok) * width);
            out.resize(size_t(n_tok) * width);
            n_pos.resize(size_t(n_tok));
            scratch.resize(size_t(group) * size_t(hd + rows));
            for (int i = 0; i < n_tok; ++i) {
                const int64_t t = order[size_t(tile.begin + i)];
                n_pos[size_t(i)] = batch.positions[size_t(t)] + 1;
                const float* q = &q_[size_t(t * Q) + size_t(kvh) * width];
                std::copy(q, q + width, &qt[size_t(i) * width]);
            }
            attend_f16_tile(qt.data(), width, n_pos.data(), n_tok, group, hd, krows.data(), vrows.data(), scale,
                            out.data(), width, scratch.data());
            for (int i = 0; i < n_tok; ++i) {
                const int64_t t = order[size_t(tile.begin + i)];
                std::copy(&out[size_t(i) * width], &out[size_t(i + 1) * width], &att_[size_t(t * Q) + size_t(kvh) * width]);
            }
        }
    };
    if (macs < kMinParallelMacs) work(0, 1);
    else pool.run(work);
}

// Q8_0 cache. When head_dim is a multiple of 32 every head owns whole blocks: the query
// is quantized to Q8_0 once and each score is an integer dot (as the reference engine
// does for a quantized K cache); values are dequantized into the fp32 accumulator and
// the attention weights stay fp32. Positions are taken a cache block at a time (their
// rows are row_bytes() apart), which lets the kernels keep their sums in registers.
// Tiny models with heads under 32 share one block between heads: their slices are
// dequantized and used in fp32.
void LlamaModel::attend_q8_0(int layer, const Batch& batch, const KvCache& cache, ThreadPool& pool) {
    const ModelConfig& c = config_;
    const int64_t n = batch.size();
    const int hd = c.head_dim;
    const int64_t Q = int64_t(c.n_head) * hd;
    const int group = c.n_head / c.n_head_kv;
    const float scale = 1.0f / std::sqrt(float(hd));
    const bool whole_blocks = hd % QK8_0 == 0;
    const int nb = hd / QK8_0;  // blocks per head (whole_blocks)
    const size_t stride = cache.row_bytes();
    const FromFloatFn quantize = kernels_for(GgmlType::Q8_0).from_float;
    constexpr int B = KvCache::kBlockSize;
    int64_t macs = 0;
    for (int64_t t = 0; t < n; ++t) macs += batch.positions[size_t(t)] + 1;
    macs *= 2 * int64_t(c.n_head) * hd;
    const int64_t grain = macs < kMinParallelMacs ? n * c.n_head : 1;  // small: this thread only

    pool.parallel_for(n * c.n_head, grain, [&](int64_t w0, int64_t w1) {
        thread_local std::vector<float> scores, acc, tmp;
        thread_local std::vector<BlockQ8_0> qq;
        acc.resize(size_t(hd));
        tmp.resize(size_t(hd));
        qq.resize(size_t(nb));
        for (int64_t w = w0; w < w1; ++w) {
            const int64_t t = w / c.n_head;
            const int h = int(w % c.n_head);
            const int kvh = h / group;
            const int seq = batch.seq_ids[size_t(t)], pos = batch.positions[size_t(t)];
            const float* q = &q_[size_t(t * Q + int64_t(h) * hd)];
            const size_t head_offset = size_t(kvh * nb) * sizeof(BlockQ8_0);
            const int n_pos = pos + 1;
            scores.resize(size_t(n_pos));
            std::fill(acc.begin(), acc.end(), 0.0f);
            if (whole_blocks) {
                quantize(q, qq.data(), hd);
                const size_t head_bytes = size_t(nb) * sizeof(BlockQ8_0);
                // Rows two cache blocks ahead are prefetched (measured at depth 2048:
                // +10% tokens/s over none; one block ahead is slightly less).
                constexpr int ahead = 2 * B;
                for (int j = 0; j < n_pos; j += B) {
                    const int jn = j + ahead;
                    if (jn < n_pos)
                        prefetch_rows(cache.k_row(layer, seq, jn) + head_offset, stride, std::min(B, n_pos - jn), head_bytes);
                    dot_q8_0_rows(qq.data(), cache.k_row(layer, seq, j) + head_offset, stride,
                                  std::min(B, n_pos - j), nb, &scores[size_t(j)]);
                }
                for (float& s : scores) s *= scale;
                softmax(scores.data(), n_pos);
                for (int j = 0; j < n_pos; j += B) {
                    const int jn = j + ahead;
                    if (jn < n_pos)
                        prefetch_rows(cache.v_row(layer, seq, jn) + head_offset, stride, std::min(B, n_pos - jn), head_bytes);
                    axpy_q8_0_rows(&scores[size_t(j)], cache.v_row(layer, seq, j) + head_offset, stride,
                                   std::min(B, n_pos - j), nb, acc.data());
                }
            } else {
                auto row = [](const uint8_t* r) { return reinterpret_cast<const BlockQ8_0*>(r); };
                for (int j = 0; j < n_pos; ++j) {
                    dequantize_q8_0_range(row(cache.k_row(layer, seq, j)), kvh * hd, hd, tmp.data());
                    float s = 0.0f;
                    for (int i = 0; i < hd; ++i) s += q[i] * tmp[size_t(i)];
                    scores[size_t(j)] = s * scale;
                }
                softmax(scores.data(), n_pos);
                for (int j = 0; j < n_pos; ++j) {
                    dequantize_q8_0_range(row(cache.v_row(layer, seq, j)), kvh * hd, hd, tmp.data());
                    for (int i = 0; i < hd; ++i) acc[size_t(i)] += scores[size_t(j)] * tmp[size_t(i)];
                }
            }
            std::copy(acc.begin(), acc.end(), &att_[size_t(t * Q + int64_t(h) * hd)]);
        }
    });
}

void LlamaModel::feed_forward_dense(const LlamaLayer& L, int64_t n, ThreadPool& pool) {
    matmul(L.w_gate, xb_.data(), n, gate_.data(), pool, mm_);
    matmul(L.w_up, xb_.data(), n, up_.data(), pool, mm_);
    swiglu(gate_.data(), up_.data(), n * config_.n_ff);
    matmul(L.w_down, gate_.data(), n, tmp_.data(), pool, mm_);
}

// Each token goes to its top-k experts by router probability (softmax over all experts,
// then the chosen k renormalised to sum to one, as Mixtral does). Tokens routed to the
// same expert are gathered so each expert runs one matrix-matrix product.
void LlamaModel::feed_forward_moe(const LlamaLayer& L, int64_t n, ThreadPool& pool) {
    const ModelConfig& c = config_;
    const int64_t E = c.n_embd, F = c.n_ff;
    const int n_exp = c.n_expert, k = c.n_expert_used;

    std::vector<float> router_logits(size_t(n * n_exp));
    matmul(L.router, xb_.data(), n, router_logits.data(), pool, mm_);

    // expert -> list of (token, weight)
    std::vector<std::vector<std::pair<int64_t, float>>> routed(static_cast<size_t>(n_exp));
    std::vector<int> order(static_cast<size_t>(n_exp));
    for (int64_t t = 0; t < n; ++t) {
        float* p = &router_logits[size_t(t * n_exp)];
        softmax(p, n_exp);
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + k, order.end(),
                          [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
        float sum = 0.0f;
        for (int j = 0; j < k; ++j) sum += p[order[size_t(j)]];
        for (int j = 0; j < k; ++j)
            routed[size_t(order[size_t(j)])].emplace_back(t, p[order[size_t(j)]] / sum);
    }

    std::fill(tmp_.begin(), tmp_.begin() + n * E, 0.0f);
    std::vector<float> xin, out;
    for (int e = 0; e < n_exp; ++e) {
        const auto& toks = routed[size_t(e)];
        if (toks.empty()) continue;
        const int64_t m = int64_t(toks.size());
        xin.resize(size_t(m * E));
        out.resize(size_t(m * E));
        for (int64_t i = 0; i < m; ++i)
            std::copy_n(&xb_[size_t(toks[size_t(i)].first * E)], E, &xin[size_t(i * E)]);
        matmul(L.exp_gate[size_t(e)], xin.data(), m, gate_.data(), pool, mm_);
        matmul(L.exp_up[size_t(e)], xin.data(), m, up_.data(), pool, mm_);
        swiglu(gate_.data(), up_.data(), m * F);
        matmul(L.exp_down[size_t(e)], gate_.data(), m, out.data(), pool, mm_);
        for (int64_t i = 0; i < m; ++i) {
            const auto [t, wgt] = toks[size_t(i)];
            for (int64_t d = 0; d < E; ++d) tmp_[size_t(t * E + d)] += wgt * out[size_t(i * E + d)];
        }
    }
}

}  // namespace

std::unique_ptr<Model> make_llama(std::unique_ptr<GgufFile> file) {
    return std::make_unique<LlamaModel>(std::move(file));
}

}  // namespace pensieve
