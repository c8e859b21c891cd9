#include "model/model_loader.h"

#include <cmath>
#include <algorithm>

#include "util/error.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

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

int HParams::count(const std::string& key) const {
    const std::string k = arch_ + "." + key;
    if (!file_.has(k)) fail(file_.path(), ": missing required key ", k, " (architecture ", arch_, ")");
    return positive_int(file_, k, file_.get_int(k));
}

int HParams::count(const std::string& key, int def) const {
    return has(key) ? count(key) : def;
}

int HParams::integer(const std::string& key, int def) const {
    const std::string k = arch_ + "." + key;
    const int64_t v = file_.get_int(k, def);
    if (v < -(int64_t(1) << 30) || v > (int64_t(1) << 30)) fail(file_.path(), ": ", k, " = ", v, " is out of range");
    return int(v);
}

float HParams::real(const std::string& key, float def) const {
    const std::string k = arch_ + "." + key;
    const double v = file_.get_float(k, def);
    if (!std::isfinite(v)) fail(file_.path(), ": ", k, " is not a finite number");
    return float(v);
}

std::string HParams::str(const std::string& key, const std::string& def) const {
    return file_.get_string(arch_ + "." + key, def);
}

ModelConfig read_transformer_config(const HParams& hp, RopeStyle rope_style) {
    const std::string& path = hp.file().path();
    ModelConfig c;
    c.arch = hp.arch();
    c.n_embd = hp.count("embedding_length");
    c.n_layer = hp.count("block_count");
    c.n_head = hp.count("attention.head_count");
    c.n_head_kv = hp.count("attention.head_count_kv", c.n_head);
    c.n_ff = hp.count("feed_forward_length");
    c.n_ctx_train = hp.count("context_length", 2048);
    c.head_dim = hp.count("attention.key_length", c.n_embd / c.n_head);
    c.head_dim_v = hp.count("attention.value_length", c.head_dim);
    c.norm_eps = hp.real("attention.layer_norm_rms_epsilon", hp.real("attention.layer_norm_epsilon", 1e-5f));
    c.n_expert = hp.integer("expert_count", 0);
    c.n_expert_used = hp.integer("expert_used_count", 0);
    c.causal = hp.file().get_bool(hp.arch() + ".attention.causal", true);  // a bool in GGUF
    const int pooling = hp.integer("pooling_type", 0);
    if (pooling < 0 || pooling > 4) fail(path, ": ", hp.arch(), ".pooling_type = ", pooling, " is not supported");
    c.pooling = Pooling(pooling);

    if (c.head_dim <= 0 || c.head_dim_v <= 0)
        fail(path, ": head size ", c.n_embd, " / ", c.n_head, " is zero (set ", hp.arch(), ".attention.key_length)");
    if (c.n_head % c.n_head_kv != 0)
        fail(path, ": ", c.n_head, " attention heads are not a multiple of ", c.n_head_kv, " KV heads");
    if (c.n_expert < 0 || c.n_expert > 1024 || c.n_expert_used < 0 || c.n_expert_used > c.n_expert ||
        (c.n_expert > 0 && c.n_expert_used == 0))
        fail(path, ": bad expert counts (", c.n_expert, " experts, ", c.n_expert_used, " used)");
    c.rope.style = rope_style;
    return c;
}

namespace {

// YaRN's correction range: the pairs whose wavelength spans between beta_fast and
// beta_slow rotations over the original context are blended between interpolation and
// extrapolation (the formula of the YaRN paper, as GGUF engines apply it).
float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return float(n_dims) * std::log(float(n_ctx_orig) / (n_rot * 2.0f * float(M_PI))) / (2.0f * std::log(base));
}

}  // namespace

RopeParams read_rope(const HParams& hp, const ModelLoader& ld, RopeStyle style, int head_dim,
                     std::vector<float>& freq_factors) {
    const std::string& path = ld.file().path();
    RopeParams r;
    r.style = style;
    r.n_dims = hp.count("rope.dimension_count", head_dim);
    if (r.n_dims > head_dim || r.n_dims % 2 != 0)
        fail(path, ": rope.dimension_count = ", r.n_dims, " is invalid for head size ", head_dim);
    r.freq_base = hp.real("rope.freq_base", 10000.0f);
    if (!(r.freq_base > 0.0f)) fail(path, ": bad rope.freq_base");
    // Linear scaling ("position interpolation") divides positions by the factor; YaRN
    // blends interpolated and original frequencies per pair and scales cos and sin.
    const std::string scaling = hp.str("rope.scaling.type", "");
    float factor = 1.0f;
    if (scaling == "linear" || scaling == "yarn") factor = hp.real("rope.scaling.factor", 1.0f);
    else if (scaling.empty()) factor = hp.real("rope.scale_linear", 1.0f);
    else if (scaling != "none") fail(path, ": RoPE scaling '", scaling, "' is not supported yet");
    if (!(factor > 0.0f)) fail(path, ": bad RoPE scaling factor ", factor);
    r.freq_scale = 1.0f / factor;
    // A further multiplier of cos and sin (LongRoPE files carry it; YaRN multiplies its own on top).
    r.attn_factor = hp.real("rope.scaling.attn_factor", 1.0f);
    if (!(r.attn_factor > 0.0f)) fail(path, ": bad rope.scaling.attn_factor ", r.attn_factor);
    if (scaling == "yarn" && factor != 1.0f) {
        const int n_ctx_orig = hp.count("rope.scaling.original_context_length", hp.count("context_length", 2048));
        const float beta_fast = 32.0f, beta_slow = 1.0f;
        r.ext_factor = 1.0f;
        r.yarn_low = std::max(0.0f, std::floor(yarn_corr_dim(r.n_dims, n_ctx_orig, beta_fast, r.freq_base)));
        r.yarn_high = std::min(float(r.n_dims - 1), std::ceil(yarn_corr_dim(r.n_dims, n_ctx_orig, beta_slow, r.freq_base)));
    }
    // Llama 3.1+: per-pair divisors of the frequencies.
    if (ld.has("rope_freqs.weight")) {
        freq_factors = ld.vector("rope_freqs.weight", r.n_dims / 2);
        r.freq_factors = freq_factors.data();
    }
    return r;
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

std::vector<std::vector<float>> ModelLoader::expert_vectors(const std::string& name, int64_t n,
                                                            int64_t n_expert) const {
    const GgufTensor& t = checked(name, {n, n_expert});
    std::vector<float> all(size_t(n * n_expert));
    type_traits(t.type).to_float(t.data, all.data(), n * n_expert);
    std::vector<std::vector<float>> out;
    for (int64_t e = 0; e < n_expert; ++e) out.emplace_back(all.begin() + e * n, all.begin() + (e + 1) * n);
    return out;
}

std::vector<float> ModelLoader::vector(const std::string& name, int64_t n) const { return values(name, {n}); }

std::vector<float> ModelLoader::values(const std::string& name, const std::vector<int64_t>& dims) const {
    const GgufTensor& t = checked(name, dims);
    int64_t n = 1;
    for (int64_t d : t.dims) n *= d;
    std::vector<float> out(static_cast<size_t>(n));
    type_traits(t.type).to_float(t.data, out.data(), n);
    return out;
}

}  // namespace pensieve
