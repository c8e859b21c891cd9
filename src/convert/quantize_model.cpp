// Whole-model quantization: the per-tensor type rules of the reference GGUF quantizer
// (as documented by its behaviour: which tensors are kept, which get more bits, and
// the fallbacks for rows that do not fit a 256-block), and the streaming converter.
#include "convert/quantize_model.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "util/error.h"
#include "util/thread_pool.h"

namespace pensieve {

namespace {

using T = GgmlType;
using F = FileType;

// ---------------------------------------------------------------------------------------
// The mixes, by the names GGUF tools use. Aliases come after the canonical names.

struct MixName {
    const char* name;
    QuantMix mix;
};

constexpr MixName kMixes[] = {
    {"F32", {"F32", F::ALL_F32, T::F32}},
    {"F16", {"F16", F::MOSTLY_F16, T::F16}},
    {"BF16", {"BF16", F::MOSTLY_BF16, T::BF16}},
    {"Q4_0", {"Q4_0", F::MOSTLY_Q4_0, T::Q4_0}},
    {"Q4_1", {"Q4_1", F::MOSTLY_Q4_1, T::Q4_1}},
    {"Q5_0", {"Q5_0", F::MOSTLY_Q5_0, T::Q5_0}},
    {"Q5_1", {"Q5_1", F::MOSTLY_Q5_1, T::Q5_1}},
    {"Q8_0", {"Q8_0", F::MOSTLY_Q8_0, T::Q8_0}},
    {"Q2_K", {"Q2_K", F::MOSTLY_Q2_K, T::Q2_K}},
    {"Q2_K_S", {"Q2_K_S", F::MOSTLY_Q2_K_S, T::Q2_K}},
    {"Q3_K_S", {"Q3_K_S", F::MOSTLY_Q3_K_S, T::Q3_K}},
    {"Q3_K_M", {"Q3_K_M", F::MOSTLY_Q3_K_M, T::Q3_K}},
    {"Q3_K_L", {"Q3_K_L", F::MOSTLY_Q3_K_L, T::Q3_K}},
    {"Q4_K_S", {"Q4_K_S", F::MOSTLY_Q4_K_S, T::Q4_K}},
    {"Q4_K_M", {"Q4_K_M", F::MOSTLY_Q4_K_M, T::Q4_K}},
    {"Q5_K_S", {"Q5_K_S", F::MOSTLY_Q5_K_S, T::Q5_K}},
    {"Q5_K_M", {"Q5_K_M", F::MOSTLY_Q5_K_M, T::Q5_K}},
    {"Q6_K", {"Q6_K", F::MOSTLY_Q6_K, T::Q6_K}},
    {"IQ4_NL", {"IQ4_NL", F::MOSTLY_IQ4_NL, T::IQ4_NL}},
    {"TQ1_0", {"TQ1_0", F::MOSTLY_TQ1_0, T::TQ1_0}},
    {"TQ2_0", {"TQ2_0", F::MOSTLY_TQ2_0, T::TQ2_0}},
    // aliases, as in the reference tool
    {"Q3_K", {"Q3_K_M", F::MOSTLY_Q3_K_M, T::Q3_K}},
    {"Q4_K", {"Q4_K_M", F::MOSTLY_Q4_K_M, T::Q4_K}},
    {"Q5_K", {"Q5_K_M", F::MOSTLY_Q5_K_M, T::Q5_K}},
};

bool same_ignoring_case(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

bool ends_with(const std::string& s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "blk.12.attn_v.weight" -> 12; -1 for tensors outside the layers.
int layer_of(const std::string& name) {
    int layer = -1;
    if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
    return layer;
}

int64_t block_size(T t) { return type_traits(t).block_size; }

bool is_quantized(T t) {
    return t != T::F32 && t != T::F16 && t != T::BF16 && t != T::F64 && t != T::I8 && t != T::I16 &&
           t != T::I32 && t != T::I64;
}

// ---------------------------------------------------------------------------------------
// What the rules need to know about the model.

struct ModelFacts {
    std::string arch;
    int n_layer = 0;
    int n_head = 0;
    int n_head_kv = 0;
    int n_expert = 0;
    bool has_output = false;  // false: token_embd doubles as the output matrix
    int n_attention_wv = 0;   // attention value matrices (one per attention layer)

    int n_gqa() const { return n_head_kv > 0 ? n_head / n_head_kv : 0; }
    bool falcon() const { return arch == "falcon"; }
    // The reference gives LLaMA-2/3 70B (80 layers, grouped KV heads) extra bits in attn_v.
    bool is_70b() const { return arch == "llama" && n_layer == 80 && n_head != n_head_kv; }
};

// An integer hyper-parameter; per-layer arrays (some files store head counts that way)
// give their first element, as the reference does for these rules.
int hparam(const GgufFile& in, const std::string& key) {
    const GgufValue* v = in.find(key);
    if (!v) return 0;
    if (v->type == GgufType::ARRAY) return v->array.empty() ? 0 : int(v->array[0].as_int());
    if (!v->is_integer()) return 0;
    return int(v->as_int());
}

ModelFacts model_facts(const GgufFile& in) {
    ModelFacts m;
    m.arch = in.get_string("general.architecture", "");
    m.n_layer = hparam(in, m.arch + ".block_count");
    m.n_head = hparam(in, m.arch + ".attention.head_count");
    m.n_head_kv = hparam(in, m.arch + ".attention.head_count_kv");
    if (m.n_head_kv == 0) m.n_head_kv = m.n_head;
    m.n_expert = hparam(in, m.arch + ".expert_count");
    for (const GgufTensor& t : in.tensors()) {
        if (contains(t.name, "attn_v.weight") || contains(t.name, "attn_qkv.weight") ||
            contains(t.name, "attn_kv_b.weight"))
            ++m.n_attention_wv;
        else if (t.name == "output.weight")
            m.has_output = true;
    }
    return m;
}

// Dimensions as the reference counts them: trailing dimensions of 1 do not count.
int n_dims(const GgufTensor& t) {
    int n = 1;
    for (size_t i = 0; i < t.dims.size(); ++i)
        if (t.dims[i] > 1) n = int(i) + 1;
    return n;
}

// Tensors that are never converted: 1-D tensors (norms, biases, scales), norms, MoE
// routers (ffn_gate_inp), positional / token-type embeddings, and small special matrices
// of a few architectures (Mamba, RWKV, T5, Gemma-3n).
bool is_quantizable(const GgufTensor& t) {
    const std::string& n = t.name;
    if (!ends_with(n, "weight") || n_dims(t) < 2) return false;
    static const char* const kKeep[] = {
        "_norm.weight", "ffn_gate_inp.weight", "altup", "laurel", "per_layer_model_proj",
        "ssm_conv1d.weight", "shortconv.conv.weight", "time_mix_first.weight",
        "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight",
        "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight",
        "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
        "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
    };
    for (const char* k : kKeep)
        if (contains(n, k)) return false;
    return n != "position_embd.weight" && n != "token_types.weight";
}

// ---------------------------------------------------------------------------------------
// The rules. `ty` starts as the mix's default type.

struct Counters {
    int i_attention_wv = 0;
    int i_ffn_down = 0;
};

// The "use more bits" layers of the _M mixes: the first and last eighth of the layers,
// and every third layer in between.
bool use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

T rule_type(const GgufTensor& t, T ty, F ft, const ModelFacts& m, Counters& c) {
    const std::string& name = t.name;

    if (name == "output.weight" || (!m.has_output && name == "token_embd.weight")) {
        // The output matrix matters most: Q6_K unless the mix is Q8_0 (or rows do not fit).
        if (m.falcon() || t.cols() % block_size(ty) != 0) return T::Q8_0;
        return ty != T::Q8_0 ? T::Q6_K : ty;
    }
    if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") {
        if (ft == F::MOSTLY_TQ1_0 || ft == F::MOSTLY_TQ2_0) return T::Q4_K;
        return ty;
    }
    if (contains(name, "attn_v.weight")) {
        const int i = c.i_attention_wv++;
        if (ft == F::MOSTLY_Q2_K) ty = m.n_gqa() >= 4 ? T::Q4_K : T::Q3_K;
        else if (ft == F::MOSTLY_Q2_K_S && m.n_gqa() >= 4) ty = T::Q4_K;
        else if (ft == F::MOSTLY_Q3_K_M) ty = i < 2 ? T::Q5_K : T::Q4_K;
        else if (ft == F::MOSTLY_Q3_K_L) ty = T::Q5_K;
        else if (ft == F::MOSTLY_IQ4_NL && m.n_gqa() >= 4) ty = T::Q5_K;
        else if ((ft == F::MOSTLY_Q4_K_M || ft == F::MOSTLY_Q5_K_M) && use_more_bits(i, m.n_attention_wv)) ty = T::Q6_K;
        else if (ft == F::MOSTLY_Q4_K_S && i < 4) ty = T::Q5_K;
        if (m.is_70b() && (ty == T::Q3_K || ty == T::Q4_K)) ty = T::Q5_K;
        if (m.n_expert == 8) ty = T::Q8_0;
        return ty;
    }
    if (contains(name, "attn_k.weight")) {
        if (m.n_expert == 8) ty = T::Q8_0;
        return ty;
    }
    if (contains(name, "ffn_down")) {
        // In MoE files the experts' tensors are not in layer order: read the layer from the name.
        int i = c.i_ffn_down++;
        if (m.n_expert > 1 && layer_of(name) >= 0) i = layer_of(name);
        const int n = m.n_layer;
        if (ft == F::MOSTLY_Q2_K) ty = T::Q3_K;
        else if (ft == F::MOSTLY_Q2_K_S) { if (i < n / 8) ty = T::Q4_K; }
        else if (ft == F::MOSTLY_Q3_K_M)
            ty = i < n / 16 ? T::Q5_K : (!m.falcon() || use_more_bits(i, n)) ? T::Q4_K : T::Q3_K;
        else if (ft == F::MOSTLY_Q3_K_L) ty = m.falcon() ? T::Q4_K : T::Q5_K;
        else if (ft == F::MOSTLY_Q4_K_M) {
            if (m.falcon()) ty = i < n / 16 ? T::Q6_K : use_more_bits(i, n) ? T::Q5_K : T::Q4_K;
            else if (use_more_bits(i, n)) ty = T::Q6_K;
        }
        else if (ft == F::MOSTLY_IQ4_NL && i < n / 8) ty = T::Q5_K;
        else if (ft == F::MOSTLY_Q5_K_M && use_more_bits(i, n)) ty = T::Q6_K;
        else if (ft == F::MOSTLY_Q4_K_S && !m.falcon() && i < n / 8) ty = T::Q5_K;
        return ty;
    }
    if (contains(name, "attn_output.weight")) {
        if (m.falcon()) {
            if (ft == F::MOSTLY_Q3_K_L) ty = T::Q4_K;
        } else if (m.n_expert == 8) {
            if (ft == F::MOSTLY_Q2_K || ft == F::MOSTLY_Q3_K_S || ft == F::MOSTLY_Q3_K_M ||
                ft == F::MOSTLY_IQ4_NL || ft == F::MOSTLY_Q4_K_S || ft == F::MOSTLY_Q4_K_M)
                ty = T::Q5_K;
        } else {
            if (ft == F::MOSTLY_Q2_K) ty = T::Q3_K;
            else if (ft == F::MOSTLY_Q3_K_M) ty = T::Q4_K;
            else if (ft == F::MOSTLY_Q3_K_L) ty = T::Q5_K;
        }
        return ty;
    }
    if (contains(name, "attn_qkv.weight")) {
        if (ft == F::MOSTLY_Q3_K_M || ft == F::MOSTLY_Q3_K_L) ty = T::Q4_K;
        else if (ft == F::MOSTLY_Q4_K_M) ty = T::Q5_K;
        else if (ft == F::MOSTLY_Q5_K_M) ty = T::Q6_K;
        return ty;
    }
    return ty;
}

// A row length the chosen type cannot hold (K-quants and ternary types need multiples of
// 256): step to a 32-block type of similar size, else F16.
T fallback_type(T ty, int64_t cols) {
    T f;
    switch (ty) {
        case T::TQ1_0:
        case T::TQ2_0: f = T::Q4_0; break;
        case T::Q2_K:
        case T::Q3_K: f = T::IQ4_NL; break;
        case T::Q4_K: f = T::Q5_0; break;
        case T::Q5_K: f = T::Q5_1; break;
        case T::Q6_K: f = T::Q8_0; break;
        default: f = T::F16; break;  // (the reference tool gives up here)
    }
    return cols % block_size(f) == 0 ? f : T::F16;
}

// ---------------------------------------------------------------------------------------
// Conversion: rows of the input type -> floats -> rows of the output type, a few
// thousand values at a time per thread, so memory stays small whatever the tensor.

void convert_tensor(const GgufTensor& t, T to, uint8_t* out, ThreadPool& pool) {
    const TypeTraits& src = type_traits(t.type);
    const TypeTraits& dst = type_traits(to);
    const int64_t cols = t.cols(), rows = t.rows();
    const size_t in_row = row_bytes(t.type, cols), out_row = row_bytes(to, cols);
    const int64_t step = std::max<int64_t>(1, (int64_t(1) << 16) / cols);  // rows per pass

    pool.parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
        std::vector<float> buf;
        if (t.type != T::F32) buf.resize(size_t(std::min(step, r1 - r0) * cols));
        for (int64_t r = r0; r < r1; r += step) {
            const int64_t n = std::min(step, r1 - r) * cols;
            const uint8_t* in = t.data + size_t(r) * in_row;
            const float* x = reinterpret_cast<const float*>(in);
            if (t.type != T::F32) {
                src.to_float(in, buf.data(), n);
                x = buf.data();
            }
            dst.from_float(x, out + size_t(r) * out_row, n);
        }
    });
}

}  // namespace

std::optional<QuantMix> quant_mix_from_name(std::string_view name) {
    for (const MixName& m : kMixes)
        if (same_ignoring_case(name, m.name)) return m.mix;
    return std::nullopt;
}

std::optional<QuantMix> quant_mix_of_file_type(uint32_t file_type) {
    for (const MixName& m : kMixes)
        if (uint32_t(m.mix.ftype) == file_type) return m.mix;
    return std::nullopt;
}

std::string quant_mix_names() {
    std::string s;
    for (const MixName& m : kMixes) {
        if (!s.empty()) s += ", ";
        s += m.name;
    }
    return s;
}

QuantizePlan plan_quantization(const GgufFile& in, const QuantMix& mix) {
    const ModelFacts m = model_facts(in);
    const auto& tensors = in.tensors();
    const bool rules = is_quantized(mix.default_type);

    // The layer counters of the rules advance in the order the reference visits
    // tensors: by layer (non-layer tensors first), then by name.
    std::vector<size_t> order(tensors.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        const int la = layer_of(tensors[a].name), lb = layer_of(tensors[b].name);
        if (la != lb) return la < lb;
        return tensors[a].name < tensors[b].name;
    });

    QuantizePlan plan;
    plan.mix = mix;
    plan.tensors.resize(tensors.size());
    Counters counters;
    for (size_t idx : order) {
        const GgufTensor& t = tensors[idx];
        TensorPlan p{&t, t.type, false, false, false};
        if (is_quantizable(t)) {
            T ty = mix.default_type;
            if (rules) {
                ty = rule_type(t, ty, mix.ftype, m, counters);
                if (t.cols() % block_size(ty) != 0) {
                    ty = fallback_type(ty, t.cols());
                    p.fallback = true;
                }
            }
            if (ty != t.type) {
                const TypeTraits& from = type_traits(t.type);
                if (!from.to_float && t.type != T::F32)
                    fail(in.path(), ": tensor ", t.name, " has type ", from.name,
                         ", which pensieve cannot convert (supported inputs: F32, F16, BF16 and the "
                         "quantized types it can run)");
                p.type = ty;
                p.convert = true;
                p.requantize = is_quantized(t.type);
            }
        }
        plan.tensors[idx] = p;
    }
    for (const TensorPlan& p : plan.tensors) {
        plan.n_convert += p.convert;
        plan.n_requantize += p.requantize;
        plan.n_fallback += p.fallback;
        plan.out_data_bytes += p.convert ? row_bytes(p.type, p.tensor->cols()) * size_t(p.tensor->rows())
                                         : p.tensor->nbytes;
    }
    return plan;
}

void write_quantized(const GgufFile& in, const QuantizePlan& plan, const std::string& out_path,
                     ThreadPool& pool, const QuantizeProgress& progress) {
    GgufWriter w(3, in.alignment());
    for (const auto& [key, value] : in.metadata()) {
        // One output file: the split keys of multi-file models do not carry over.
        if (key == "split.no" || key == "split.count" || key == "split.tensors.count") continue;
        w.set(key, value);
    }
    w.set_u32("general.quantization_version", 2);
    w.set_u32("general.file_type", uint32_t(plan.mix.ftype));

    const size_t total = plan.tensors.size();
    for (size_t i = 0; i < total; ++i) {
        const TensorPlan& p = plan.tensors[i];
        const GgufTensor& t = *p.tensor;
        const size_t nbytes = p.convert ? row_bytes(p.type, t.cols()) * size_t(t.rows()) : t.nbytes;
        w.add_tensor(t.name, t.dims, p.type, nbytes, [&pool, &progress, &p, i, total, nbytes](uint8_t* out) {
            if (p.convert) convert_tensor(*p.tensor, p.type, out, pool);
            else std::memcpy(out, p.tensor->data, nbytes);
            if (progress) progress(i + 1, total, p);
        });
    }
    w.write(out_path);
}

}  // namespace pensieve
