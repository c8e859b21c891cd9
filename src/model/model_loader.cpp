#include "model/model_loader.h"

#include <cmath>
#include <unordered_map>

#include "util/error.h"

namespace pensieve {

namespace {

std::string dims_str(const std::vector<int64_t>& dims) {
    std::string s = "{";
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + "}";
}

int positive_int(const GgufFile& f, const std::string& key, int64_t value) {
    if (value <= 0 || value > (1 << 24)) fail(f.path(), ": ", key, " = ", value, " is out of range");
    return int(value);
}

}  // namespace

ModelConfig ModelLoader::read_llama_config(const std::string& arch, RopeStyle rope_style) const {
    const GgufFile& f = file_;
    const std::string p = arch + ".";
    ModelConfig c;
    c.arch = arch;
    c.name = f.get_string("general.name", "");
    c.n_embd = positive_int(f, p + "embedding_length", f.get_int(p + "embedding_length"));
    c.n_layer = positive_int(f, p + "block_count", f.get_int(p + "block_count"));
    c.n_head = positive_int(f, p + "attention.head_count", f.get_int(p + "attention.head_count"));
    c.n_head_kv = positive_int(f, p + "attention.head_count_kv",
                               f.get_int(p + "attention.head_count_kv", c.n_head));
    c.n_ff = positive_int(f, p + "feed_forward_length", f.get_int(p + "feed_forward_length"));
    c.n_ctx_train = positive_int(f, p + "context_length", f.get_int(p + "context_length", 2048));
    c.head_dim = positive_int(f, p + "attention.key_length",
                              f.get_int(p + "attention.key_length", c.n_embd / c.n_head));
    c.norm_eps = float(f.get_float(p + "attention.layer_norm_rms_epsilon", 1e-5));
    c.n_expert = int(f.get_int(p + "expert_count", 0));
    c.n_expert_used = int(f.get_int(p + "expert_used_count", 0));

    if (c.n_head % c.n_head_kv != 0)
        fail(f.path(), ": ", c.n_head, " attention heads are not a multiple of ", c.n_head_kv,
             " KV heads");
    if (c.n_expert < 0 || c.n_expert > 1024 || c.n_expert_used < 0 || c.n_expert_used > c.n_expert ||
        (c.n_expert > 0 && c.n_expert_used == 0))
        fail(f.path(), ": bad expert counts (", c.n_expert, " experts, ", c.n_expert_used, " used)");

    c.rope.style = rope_style;
    c.rope.n_dims = int(f.get_int(p + "rope.dimension_count", c.head_dim));
    if (c.rope.n_dims <= 0 || c.rope.n_dims > c.head_dim || c.rope.n_dims % 2 != 0)
        fail(f.path(), ": rope.dimension_count = ", c.rope.n_dims, " is invalid for head size ",
             c.head_dim);
    c.rope.freq_base = float(f.get_float(p + "rope.freq_base", 10000.0));
    // Linear RoPE scaling ("position interpolation"): positions divided by the factor.
    const std::string scaling = f.get_string(p + "rope.scaling.type", "");
    double factor = 1.0;
    if (scaling == "linear") factor = f.get_float(p + "rope.scaling.factor", 1.0);
    else if (scaling.empty()) factor = f.get_float(p + "rope.scale_linear", 1.0);
    else if (scaling != "none") fail(f.path(), ": RoPE scaling '", scaling, "' is not supported yet");
    if (!(factor > 0.0) || !std::isfinite(factor)) fail(f.path(), ": bad RoPE scaling factor ", factor);
    c.rope.freq_scale = float(1.0 / factor);
    if (!(c.rope.freq_base > 0.0f) || !std::isfinite(c.rope.freq_base))
        fail(f.path(), ": bad rope.freq_base");
    return c;
}

const GgufTensor& ModelLoader::checked(const std::string& name, const std::vector<int64_t>& dims) const {
    const GgufTensor& t = file_.tensor(name);
    bool ok = t.dims.size() == dims.size();
    for (size_t i = 0; ok && i < dims.size(); ++i) ok = dims[i] < 0 || t.dims[i] == dims[i];
    if (!ok)
        fail(file_.path(), ": tensor ", name, " has shape ", dims_str(t.dims), ", expected ",
             dims_str(dims));
    const TypeTraits& tt = type_traits(t.type);
    if (!tt.supported) fail(file_.path(), ": tensor ", name, " has type ", tt.name, ", not supported yet");
    return t;
}

WeightMatrix ModelLoader::matrix(const std::string& name, int64_t cols, int64_t rows) const {
    const GgufTensor& t = checked(name, {cols, rows});
    return WeightMatrix{t.data, t.type, t.dims[1], t.dims[0]};
}

std::vector<WeightMatrix> ModelLoader::experts(const std::string& name, int64_t cols, int64_t rows,
                                               int64_t n_expert) const {
    const GgufTensor& t = checked(name, {cols, rows, n_expert});
    std::vector<WeightMatrix> out;
    const size_t expert_bytes = row_bytes(t.type, cols) * size_t(rows);
    for (int64_t e = 0; e < n_expert; ++e)
        out.push_back(WeightMatrix{t.data + size_t(e) * expert_bytes, t.type, rows, cols});
    return out;
}

std::vector<float> ModelLoader::vector(const std::string& name, int64_t n) const {
    const GgufTensor& t = checked(name, {n});
    std::vector<float> out(static_cast<size_t>(n));
    type_traits(t.type).to_float(t.data, out.data(), n);
    return out;
}

void validate_batch(const Batch& batch, KvCache& cache, int n_vocab) {
    const size_t n = batch.tokens.size();
    if (batch.positions.size() != n || batch.seq_ids.size() != n || batch.want_logits.size() != n)
        fail("malformed batch: field sizes differ");
    std::unordered_map<int, int> next;  // seq -> expected next position
    for (size_t i = 0; i < n; ++i) {
        const int32_t tok = batch.tokens[i], seq = batch.seq_ids[i], pos = batch.positions[i];
        if (tok < 0 || tok >= n_vocab) fail("token id ", tok, " is outside the vocabulary (", n_vocab, ")");
        if (seq < 0 || seq >= cache.n_seq()) fail("sequence id ", seq, " is out of range");
        auto it = next.find(seq);
        const int expected = it == next.end() ? cache.length(seq) : it->second;
        if (pos != expected)
            fail("position ", pos, " of sequence ", seq, " is not the next position (", expected, ")");
        if (pos >= cache.n_ctx())
            fail("context is full: position ", pos, " needs a context larger than ", cache.n_ctx());
        next[seq] = pos + 1;
    }
    // Every position the batch writes needs a block.
    for (const auto& [seq, end] : next)
        if (!cache.reserve(seq, end))
            fail("the KV cache is full: no free block for position ", end - 1, " of sequence ", seq);
}

void commit_batch_positions(const Batch& batch, KvCache& cache) {
    for (size_t i = 0; i < batch.tokens.size(); ++i) {
        const int seq = batch.seq_ids[i];
        cache.set_length(seq, std::max(cache.length(seq), batch.positions[i] + 1));
    }
}

}  // namespace pensieve
