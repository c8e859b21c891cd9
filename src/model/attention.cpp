// The attention block: projections, q/k norms, RoPE, the cache write in the cache's
// element type, and attention over the cached positions. Two fast paths: the fp16 cache
// (causal attention, with or without sliding window, soft-cap, ALiBi and sinks) and the
// Q8_0 cache (plain causal attention). The rest (bidirectional, T5's relative bias, V
// heads of another size, options over a Q8_0 cache, fp32 layers) takes the general
// path, which converts each cached row to fp32 (or reads fp32 rows: LayerMemory::f32)
// and follows the textbook formula.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>

#include "kernels/attention.h"
#include "kernels/dispatch.h"
#include "model/blocks.h"
#include "util/error.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace pensieve {

namespace {

int head_dim_v(const AttentionOptions& o) { return o.head_dim_v > 0 ? o.head_dim_v : o.head_dim; }

float score_scale(const AttentionOptions& o) { return o.scale > 0.0f ? o.scale : 1.0f / std::sqrt(float(o.head_dim)); }

bool plain(const AttentionOptions& o, const std::vector<float>& sinks) {
    return o.causal && o.window == 0 && o.soft_cap == 0.0f && o.alibi_max_bias == 0.0f && sinks.empty() &&
           !o.relative_bias && head_dim_v(o) == o.head_dim;
}

// What the fp16 tile handles: causal attention with square heads, and any of sliding
// window, soft-cap, ALiBi and sinks (ScoreOptions).
bool tile_handles(const AttentionOptions& o) { return o.causal && !o.relative_bias && head_dim_v(o) == o.head_dim; }

// The first position a token at `pos` sees: the start of its sliding window, or 0.
int first_visible(const AttentionOptions& o, int pos) { return o.window > 0 ? std::max(0, pos - o.window + 1) : 0; }

// ALiBi slope of head h (of n): a geometric sequence from 2^(-max_bias/n') over the
// largest power of two n' <= n, the remaining heads interleaved (the ALiBi paper's rule).
float alibi_slope(int h, int n_head, float max_bias) {
    const int n_pow2 = 1 << int(std::floor(std::log2(float(n_head))));
    const float m0 = std::pow(2.0f, -max_bias / float(n_pow2));
    const float m1 = std::pow(2.0f, -max_bias / 2.0f / float(n_pow2));
    return h < n_pow2 ? std::pow(m0, float(h + 1)) : std::pow(m1, float(2 * (h - n_pow2) + 1));
}

}  // namespace

// The keys and values of the batch (s.k, s.v) into their cache rows, converted to the
// cache type.
void store_kv(int layer, const Pass& p) {
    KvCache& cache = p.cache;
    const int64_t KD = int64_t(cache.layer(layer).k_dim), VD = int64_t(cache.layer(layer).v_dim);
    const bool f32 = cache.layer(layer).f32;
    const FromFloatFn quantize = cache.type() == KvType::Q8_0 ? kernels_for(GgmlType::Q8_0).from_float : nullptr;
    for (int64_t t = 0; t < p.n; ++t) {
        const int seq = p.batch.seq_ids[size_t(t)], pos = p.batch.slot(t);
        const float* k = &p.s.k[size_t(t * KD)];
        const float* v = &p.s.v[size_t(t * VD)];
        if (f32) {
            std::copy_n(k, KD, reinterpret_cast<float*>(cache.k_row(layer, seq, pos)));
            std::copy_n(v, VD, reinterpret_cast<float*>(cache.v_row(layer, seq, pos)));
            continue;
        }
        if (quantize) {
            quantize(k, cache.k_row(layer, seq, pos), KD);
            quantize(v, cache.v_row(layer, seq, pos), VD);
            continue;
        }
        auto* kr = reinterpret_cast<fp16_t*>(cache.k_row(layer, seq, pos));
        auto* vr = reinterpret_cast<fp16_t*>(cache.v_row(layer, seq, pos));
        for (int64_t i = 0; i < KD; ++i) kr[i] = fp32_to_fp16(k[i]);
        for (int64_t i = 0; i < VD; ++i) vr[i] = fp32_to_fp16(v[i]);
    }
}

namespace {

// fp16 cache. Work item = (sequence, KV head, tile of up to kTile of its batch tokens):
// the group's query heads and the tile's tokens share the item's K/V rows, so a row is
// converted once per group (on AVX-512 once per tile) and stays in cache across the
// tile (with GQA and a prompt
// chunk, the old per-(token, head) loop reloaded every row group * n_tok times). The
// per-query arithmetic is attend_f16_tile's, which is bit-identical to a one-head loop,
// so results do not depend on the tiling, the batch or the thread count.
//
// Sliding window, soft-cap, ALiBi and sinks go through the tile's ScoreOptions. With a
// window an item's rows start at the earliest position its tokens see, rounded down to
// kScoreAlign (so a token's scores sit in the same softmax lanes alone or in any tile);
// rows before a token's own window get weight 0.
void attend_f16(int layer, const AttentionOptions& o, const std::vector<float>& sinks, Pass& p) {
    const Batch& batch = p.batch;
    const KvCache& cache = p.cache;
    const int64_t n = p.n;
    const int hd = o.head_dim;
    const int64_t Q = int64_t(o.n_head) * hd;
    const int group = o.n_head / o.n_head_kv;  // query heads per KV head (GQA)
    const float scale = score_scale(o);
    const float* q_all = p.s.q.data();
    float* att = p.s.att.data();
    constexpr int kTile = 16;

    // Batch tokens grouped by sequence (stable: batch order within a sequence), cut
    // into tiles. A tree row is a tile of its own: its last key row (its own position)
    // comes from its slot (own_slot), the rows before from the cache by position, so its
    // scores sit where a plain decode at that position puts them.
    struct Tile { int begin, end, max_pos, own_slot = -1; };
    std::vector<int> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return batch.seq_ids[size_t(a)] < batch.seq_ids[size_t(b)]; });
    std::vector<Tile> tiles;
    for (int i = 0; i < int(n);) {
        const int seq = batch.seq_ids[size_t(order[size_t(i)])];
        Tile tile{i, i, 0};
        if (batch.tree_row(order[size_t(i)])) {
            tile = Tile{i, i + 1, batch.positions[size_t(order[size_t(i)])], batch.slot(order[size_t(i)])};
            tiles.push_back(tile);
            ++i;
            continue;
        }
        while (tile.end < int(n) && tile.end - tile.begin < kTile &&
               batch.seq_ids[size_t(order[size_t(tile.end)])] == seq && !batch.tree_row(order[size_t(tile.end)]))
            tile.max_pos = std::max(tile.max_pos, batch.positions[size_t(order[size_t(tile.end++)])]);
        tiles.push_back(tile);
        i = tile.end;
    }
    // Longest tiles first, handed out one at a time: the cost of an item grows with its
    // positions, and a static split of a prompt would leave one thread with its tail.
    std::stable_sort(tiles.begin(), tiles.end(), [](const Tile& a, const Tile& b) { return a.max_pos > b.max_pos; });
    const int64_t n_items = int64_t(tiles.size()) * o.n_head_kv;
    std::atomic<int64_t> next{0};
    // Multiply-adds of the whole call; below kMinParallelMacs it stays on this thread (a
    // hand-off costs more than the work, as in matmul).
    int64_t macs = 0;
    for (const Tile& tile : tiles) macs += int64_t(tile.end - tile.begin) * (tile.max_pos + 1);
    macs *= 2 * int64_t(o.n_head) * hd;

    // ALiBi slopes of every query head (the group of KV head h is [h * group, (h + 1) * group)).
    std::vector<float> slopes;
    if (o.alibi_max_bias > 0.0f)
        for (int h = 0; h < o.n_head; ++h) slopes.push_back(alibi_slope(h, o.n_head, o.alibi_max_bias));

    auto work = [&](int, int) {
        thread_local std::vector<const fp16_t*> krows, vrows;
        thread_local std::vector<float> qt, out, scratch;
        thread_local std::vector<int> n_pos, first;
        for (int64_t w = next.fetch_add(1); w < n_items; w = next.fetch_add(1)) {
            const Tile& tile = tiles[size_t(w / o.n_head_kv)];
            const int kvh = int(w % o.n_head_kv);
            const int n_tok = tile.end - tile.begin;
            const int seq = batch.seq_ids[size_t(order[size_t(tile.begin)])];
            int base = tile.max_pos;
            for (int i = 0; i < n_tok; ++i)
                base = std::min(base, first_visible(o, batch.positions[size_t(order[size_t(tile.begin + i)])]));
            base -= base % kScoreAlign;
            const int rows = tile.max_pos + 1 - base;
            krows.resize(size_t(rows));
            vrows.resize(size_t(rows));
            for (int j = 0; j < rows; ++j) {
                const int at = tile.own_slot >= 0 && j == rows - 1 ? tile.own_slot : base + j;
                krows[size_t(j)] = reinterpret_cast<const fp16_t*>(cache.k_row(layer, seq, at)) + size_t(kvh) * size_t(hd);
                vrows[size_t(j)] = reinterpret_cast<const fp16_t*>(cache.v_row(layer, seq, at)) + size_t(kvh) * size_t(hd);
            }
            // The group's query heads are consecutive in q (heads kvh * group ...).
            const size_t width = size_t(group) * size_t(hd);
            qt.resize(size_t(n_tok) * width);
            out.resize(size_t(n_tok) * width);
            n_pos.resize(size_t(n_tok));
            first.resize(size_t(n_tok));
            scratch.resize(attend_f16_tile_scratch(n_tok, group, hd, rows));
            for (int i = 0; i < n_tok; ++i) {
                const int64_t t = order[size_t(tile.begin + i)];
                const int pos = batch.positions[size_t(t)];
                n_pos[size_t(i)] = pos + 1 - base;
                first[size_t(i)] = first_visible(o, pos) - base;
                const float* q = &q_all[size_t(t * Q) + size_t(kvh) * width];
                std::copy(q, q + width, &qt[size_t(i) * width]);
            }
            ScoreOptions mods;
            mods.first = o.window > 0 ? first.data() : nullptr;
            mods.soft_cap = o.soft_cap;
            mods.alibi = slopes.empty() ? nullptr : &slopes[size_t(kvh * group)];
            mods.sinks = sinks.empty() ? nullptr : &sinks[size_t(kvh * group)];
            const bool any = mods.first || mods.soft_cap > 0.0f || mods.alibi || mods.sinks;
            attend_f16_tile(qt.data(), width, n_pos.data(), n_tok, group, hd, krows.data(), vrows.data(), scale,
                            out.data(), width, scratch.data(), any ? &mods : nullptr);
            for (int i = 0; i < n_tok; ++i) {
                const int64_t t = order[size_t(tile.begin + i)];
                std::copy(&out[size_t(i) * width], &out[size_t(i + 1) * width], &att[size_t(t * Q) + size_t(kvh) * width]);
            }
        }
    };
    if (macs < kMinParallelMacs) work(0, 1);
    else p.pool.run(work);
}

// Q8_0 cache. When head_dim is a multiple of 32 every head owns whole blocks: the query
// is quantized to Q8_0 once and each score is an integer dot (as the reference engine
// does for a quantized K cache); values are dequantized into the fp32 accumulator and
// the attention weights stay fp32. Positions are taken a cache block at a time (their
// rows are row bytes apart), which lets the kernels keep their sums in registers.
// Tiny models with heads under 32 share one block between heads: their slices are
// dequantized and used in fp32.
void attend_q8_0(int layer, const AttentionOptions& o, Pass& p) {
    const Batch& batch = p.batch;
    const KvCache& cache = p.cache;
    const int64_t n = p.n;
    const int hd = o.head_dim;
    const int64_t Q = int64_t(o.n_head) * hd;
    const int group = o.n_head / o.n_head_kv;
    const float scale = score_scale(o);
    const bool whole_blocks = hd % QK8_0 == 0;
    const int nb = hd / QK8_0;  // blocks per head (whole_blocks)
    const size_t stride = cache.k_row_bytes(layer);  // K and V rows are the same size here
    const FromFloatFn quantize = kernels_for(GgmlType::Q8_0).from_float;
    const float* q_all = p.s.q.data();
    float* att = p.s.att.data();
    constexpr int B = KvCache::kBlockSize;
    int64_t macs = 0;
    for (int64_t t = 0; t < n; ++t) macs += batch.positions[size_t(t)] + 1;
    macs *= 2 * int64_t(o.n_head) * hd;
    const int64_t grain = macs < kMinParallelMacs ? n * o.n_head : 1;  // small: this thread only
    if (batch.has_tree_rows()) fail("tree rows need an fp16 KV cache");

    p.pool.parallel_for(n * o.n_head, grain, [&](int64_t w0, int64_t w1) {
        thread_local std::vector<float> scores, acc, tmp;
        thread_local std::vector<BlockQ8_0> qq;
        acc.resize(size_t(hd));
        tmp.resize(size_t(hd));
        qq.resize(size_t(nb));
        for (int64_t w = w0; w < w1; ++w) {
            const int64_t t = w / o.n_head;
            const int h = int(w % o.n_head);
            const int kvh = h / group;
            const int seq = batch.seq_ids[size_t(t)], pos = batch.positions[size_t(t)];
            const float* q = &q_all[size_t(t * Q + int64_t(h) * hd)];
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
                softmax_scores(scores.data(), n_pos);
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
                softmax_scores(scores.data(), n_pos);
                for (int j = 0; j < n_pos; ++j) {
                    dequantize_q8_0_range(row(cache.v_row(layer, seq, j)), kvh * hd, hd, tmp.data());
                    for (int i = 0; i < hd; ++i) acc[size_t(i)] += scores[size_t(j)] * tmp[size_t(i)];
                }
            }
            std::copy(acc.begin(), acc.end(), &att[size_t(t * Q + int64_t(h) * hd)]);
        }
    });
}

// One head's slice [first, first + n) of a cache row of `layer`, as floats.
void row_slice(const KvCache& cache, int layer, const uint8_t* row, int first, int n, float* out) {
    if (cache.layer(layer).f32) return (void)std::copy_n(reinterpret_cast<const float*>(row) + first, n, out);
    if (cache.type() == KvType::Q8_0) return dequantize_q8_0_range(reinterpret_cast<const BlockQ8_0*>(row), first, n, out);
    const fp16_t* r = reinterpret_cast<const fp16_t*>(row) + first;
    for (int i = 0; i < n; ++i) out[i] = fp16_to_fp32(r[i]);
}

// Any options, any cache type: per (token, query head), scores over the token's span of
// positions in fp32 (scale, soft-cap, ALiBi, relative bias), softmax with the optional
// sink logit, then the weighted sum of values. fp32 rows (MLA's latent cache) and fp16
// rows are read in place by vector kernels; the scalar loop over a row copy it replaced
// made DeepSeek-V2's prompt 0.39x the reference's.
void attend_general(int layer, const AttentionOptions& o, const std::vector<float>& sinks,
                    const std::vector<KeySpan>& spans, Pass& p) {
    const Batch& batch = p.batch;
    const KvCache& cache = p.cache;
    const int hd = o.head_dim, hv = head_dim_v(o);
    const int group = o.n_head / o.n_head_kv;
    const float scale = score_scale(o);
    const float* q_all = p.s.q.data();
    float* att = grow(p.s.att, p.n * int64_t(o.n_head) * hv);
    const bool f32 = cache.layer(layer).f32, f16 = !f32 && cache.type() == KvType::F16;
    const VecDotFn dot_f32 = kernels_for(GgmlType::F32).vec_dot;
    p.pool.parallel_for(p.n * o.n_head, 1, [&](int64_t w0, int64_t w1) {
        thread_local std::vector<float> scores, row;
        row.resize(size_t(std::max(hd, hv)));
        auto dot_key = [&](int seq, int j, int kvh, const float* q) {
            const uint8_t* k = cache.k_row(layer, seq, j);
            if (f32) return dot_f32(hd, reinterpret_cast<const float*>(k) + size_t(kvh) * size_t(hd), q);
            if (f16) return dot_f32_f16(q, reinterpret_cast<const fp16_t*>(k) + size_t(kvh) * size_t(hd), hd);
            row_slice(cache, layer, k, kvh * hd, hd, row.data());
            float s = 0.0f;
            for (int i = 0; i < hd; ++i) s += q[i] * row[size_t(i)];
            return s;
        };
        auto add_value = [&](int seq, int j, int kvh, float pj, float* out) {
            const uint8_t* v = cache.v_row(layer, seq, j);
            if (f16) return axpy_f16(pj, reinterpret_cast<const fp16_t*>(v) + size_t(kvh) * size_t(hv), out, hv);
            const float* r = reinterpret_cast<const float*>(v) + size_t(kvh) * size_t(hv);
            if (!f32) {
                row_slice(cache, layer, v, kvh * hv, hv, row.data());
                r = row.data();
            }
            for (int i = 0; i < hv; ++i) out[i] += pj * r[i];
        };
        for (int64_t w = w0; w < w1; ++w) {
            const int64_t t = w / o.n_head;
            const int h = int(w % o.n_head), kvh = h / group;
            const int seq = batch.seq_ids[size_t(t)], pos = batch.positions[size_t(t)];
            const int begin = spans[size_t(t)].begin, end = spans[size_t(t)].end;
            const int own = spans[size_t(t)].own_slot;  // read in place of position end - 1
            auto at = [&](int j) { return own >= 0 && j == end - 1 ? own : j; };
            const float* q = q_all + (t * o.n_head + h) * hd;
            const float slope = o.alibi_max_bias > 0.0f ? alibi_slope(h, o.n_head, o.alibi_max_bias) : 0.0f;
            scores.resize(size_t(std::max(end - begin, 0)));
            float max_score = sinks.empty() ? -INFINITY : sinks[size_t(h)];
            for (int j = begin; j < end; ++j) {
                float s = dot_key(seq, at(j), kvh, q) * scale;
                if (o.soft_cap > 0.0f) s = o.soft_cap * std::tanh(s / o.soft_cap);
                s -= slope * float(std::abs(pos - j));
                if (o.relative_bias) s += (*o.relative_bias)(h, j - pos);
                scores[size_t(j - begin)] = s;
                max_score = std::max(max_score, s);
            }
            double sum = sinks.empty() ? 0.0 : std::exp(double(sinks[size_t(h)] - max_score));
            for (float& s : scores) sum += double(s = std::exp(s - max_score));
            float* out = att + (t * o.n_head + h) * hv;
            std::fill(out, out + hv, 0.0f);
            for (int j = begin; j < end; ++j) add_value(seq, at(j), kvh, float(double(scores[size_t(j - begin)]) / sum), out);
        }
    });
}

// Each token's span from the options: causal (up to itself) or its whole sequence, from
// the start of its sliding window.
std::vector<KeySpan> default_spans(const AttentionOptions& o, const Pass& p) {
    std::vector<KeySpan> spans(size_t(p.n));
    for (int64_t t = 0; t < p.n; ++t) {
        const int seq = p.batch.seq_ids[size_t(t)], pos = p.batch.positions[size_t(t)];
        spans[size_t(t)].end = o.causal ? pos + 1 : p.seq_end[size_t(seq)];
        spans[size_t(t)].begin = first_visible(o, pos);
        if (o.causal && p.batch.tree_row(t)) spans[size_t(t)].own_slot = p.batch.slot(t);
    }
    return spans;
}

// An RMS q or k norm if the file has one: per head (head_dim weights) or over the whole
// projection (`width` weights, OLMo 2).
Norm load_qk_norm(const ModelLoader& ld, const std::string& name, int64_t head_dim, int64_t width, float eps) {
    const GgufTensor* t = ld.file().find_tensor(name + ".weight");
    if (!t) return {};
    const bool whole = t->dims.size() == 1 && t->dims[0] == width;
    return load_norm(ld, name, whole ? width : head_dim, NormKind::RMS, eps);
}

}  // namespace

void Attention::project(const float* x, Pass& p) const {
    const int64_t n = p.n, hd = opt.head_dim;
    float* qb = grow(p.s.q, n * q.out());
    float* kb = grow(p.s.k, n * k.out());
    float* vb = grow(p.s.v, n * v.out());
    q.apply(x, n, qb, p);
    k.apply(x, n, kb, p);
    v.apply(x, n, vb, p);
    // Per head (rows of head_dim) or over the whole projection (OLMo 2), as the norm's width says.
    if (!q_norm.empty()) q_norm.apply(qb, qb, n * q.out() / q_norm.dim());
    if (!k_norm.empty()) k_norm.apply(kb, kb, n * k.out() / k_norm.dim());
    if (opt.rope.n_dims == 0) return;
    for (int64_t t = 0; t < n; ++t) {
        const int32_t pos = p.batch.positions[size_t(t)];
        rope(qb + t * opt.n_head * hd, opt.n_head, int(hd), pos, opt.rope);
        rope(kb + t * opt.n_head_kv * hd, opt.n_head_kv, int(hd), pos, opt.rope);
    }
}

// Each batch token attends over its own sequence's cached positions. The batch's keys
// and values are written to the cache first, so prompt tokens of one chunk see each other.
void Attention::attend(Pass& p) const {
    grow(p.s.att, p.n * int64_t(opt.n_head) * head_dim_v(opt));
    store_kv(layer, p);
    const bool f32 = p.cache.layer(layer).f32;
    if (!f32 && p.cache.type() == KvType::F16 && tile_handles(opt)) attend_f16(layer, opt, sinks, p);
    else if (!f32 && p.cache.type() == KvType::Q8_0 && plain(opt, sinks)) attend_q8_0(layer, opt, p);
    else attend_general(layer, opt, sinks, default_spans(opt, p), p);
}

void Attention::apply(const float* x, float* out, Pass& p) const {
    project(x, p);
    attend(p);
    if (!out_norm.empty()) out_norm.apply(p.s.att.data(), p.s.att.data(), p.n);
    o.apply(p.s.att.data(), p.n, out, p);
}

void attend_spans(int layer, const AttentionOptions& o, const std::vector<KeySpan>& spans, Pass& p) {
    if (p.batch.has_tree_rows()) fail("this model cannot verify tree rows");
    attend_general(layer, o, {}, spans, p);
}

int RelativePositionBias::bucket(int relative) const {
    // Buckets per direction; the first half of them are exact distances.
    int n = n_buckets, bucket = 0;
    if (bidirectional) {
        n /= 2;
        if (relative > 0) bucket = n;
        relative = std::abs(relative);
    } else {
        relative = std::max(-relative, 0);  // keys before the query; later ones share bucket 0
    }
    const int exact = n / 2;
    if (relative < exact) return bucket + relative;
    // The reference's arithmetic (float log, floored) decides which distance lands where.
    const int log_bucket = int(std::floor(float(exact) + std::log(float(relative) / float(exact)) * float(n - exact) /
                                                             std::log(float(max_distance) / float(exact))));
    return bucket + std::min(log_bucket, n - 1);
}

RelativePositionBias load_relative_position_bias(const ModelLoader& ld, const std::string& name, int n_head,
                                                 int n_buckets, bool bidirectional) {
    RelativePositionBias b;
    b.table = ld.values(name, {n_head, n_buckets});
    b.n_buckets = n_buckets;
    b.n_head = n_head;
    b.bidirectional = bidirectional;
    if (n_buckets < 4) fail(ld.file().path(), ": ", n_buckets, " relative position buckets (at least 4)");
    return b;
}

LayerMemory Attention::memory() const {
    return LayerMemory::attention(opt.n_head_kv * opt.head_dim, opt.n_head_kv * head_dim_v(opt), opt.window);
}

AttentionOptions attention_options(const ModelConfig& c) {
    AttentionOptions o;
    o.n_head = c.n_head;
    o.n_head_kv = c.n_head_kv;
    o.head_dim = c.head_dim;
    o.head_dim_v = c.head_dim_v;
    o.rope = c.rope;
    return o;
}

Attention load_attention(const ModelLoader& ld, const std::string& prefix, int layer, int64_t n_embd,
                         const AttentionOptions& opt, float norm_eps) {
    Attention a;
    a.layer = layer;
    a.opt = opt;
    const int64_t hv = head_dim_v(opt);
    const int64_t q_dim = int64_t(opt.n_head) * opt.head_dim, k_dim = int64_t(opt.n_head_kv) * opt.head_dim;
    const int64_t v_dim = int64_t(opt.n_head_kv) * hv;
    if (ld.has(prefix + "attn_qkv.weight")) {
        std::vector<Linear> qkv = load_fused_linear(ld, prefix + "attn_qkv", n_embd, {q_dim, k_dim, v_dim});
        a.q = std::move(qkv[0]);
        a.k = std::move(qkv[1]);
        a.v = std::move(qkv[2]);
    } else {
        a.q = load_linear(ld, prefix + "attn_q", n_embd, q_dim);
        a.k = load_linear(ld, prefix + "attn_k", n_embd, k_dim);
        a.v = load_linear(ld, prefix + "attn_v", n_embd, v_dim);
    }
    a.o = load_linear(ld, prefix + "attn_output", int64_t(opt.n_head) * hv, n_embd);
    a.q_norm = load_qk_norm(ld, prefix + "attn_q_norm", opt.head_dim, q_dim, norm_eps);
    a.k_norm = load_qk_norm(ld, prefix + "attn_k_norm", opt.head_dim, k_dim, norm_eps);
    if (ld.has(prefix + "attn_sinks.weight")) a.sinks = ld.vector(prefix + "attn_sinks.weight", opt.n_head);
    return a;
}

}  // namespace pensieve
