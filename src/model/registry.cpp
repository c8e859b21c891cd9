// Maps `general.architecture` to the code that builds that model (model/arch/).
#include <functional>
#include <map>

#include "model/arch/arch.h"
#include "model/model.h"
#include "util/error.h"

namespace pensieve {

namespace {

using Factory = std::function<std::unique_ptr<Model>(std::unique_ptr<GgufFile>)>;

const std::map<std::string, Factory>& registry() {
    static const std::map<std::string, Factory> r = {
        {"bert", make_bert},
        {"bitnet", make_bitnet},
        {"bloom", make_bloom},
        {"command-r", make_command_r},
        {"deepseek2", make_deepseek2},
        {"falcon", make_falcon},
        {"gemma2", make_gemma2},
        {"gemma3", make_gemma3},
        {"gpt-oss", make_gpt_oss},
        {"gpt2", make_gpt2},
        {"llama", make_llama},
        {"mamba", make_mamba},
        {"mamba2", make_mamba2},
        {"olmo2", make_olmo2},
        {"phi3", make_phi3},
        {"qwen2", make_qwen2},
        {"qwen2moe", make_qwen2moe},
        {"qwen3", make_qwen3},
        {"qwen3moe", make_qwen3moe},
        {"rwkv6", make_rwkv6},
        {"rwkv7", make_rwkv7},
        {"starcoder2", make_starcoder2},
        {"t5", make_t5},
    };
    return r;
}

}  // namespace

std::vector<std::string> supported_architectures() {
    std::vector<std::string> names;
    for (const auto& [name, _] : registry()) names.push_back(name);
    return names;
}

std::unique_ptr<Model> load_model(const std::string& path) {
    auto file = GgufFile::open(path);
    const std::string arch = file->get_string("general.architecture");
    auto it = registry().find(arch);
    if (it == registry().end()) {
        std::string known;
        for (const auto& name : supported_architectures()) known += (known.empty() ? "" : ", ") + name;
        fail(path, ": architecture '", arch, "' is not supported (supported: ", known, ")");
    }
    return it->second(std::move(file));
}

const char* pooling_name(Pooling p) {
    switch (p) {
        case Pooling::None: return "none";
        case Pooling::Mean: return "mean";
        case Pooling::Cls: return "cls";
        case Pooling::Last: return "last";
        case Pooling::Rank: return "rank";
    }
    return "?";
}

KvCache Model::make_cache_for_layers(int n_layers, int n_ctx, int n_seq) const {
    if (n_layers < 1 || n_layers > int(memory_.layers.size()))
        fail("a cache for ", n_layers, " layers of a model with ", memory_.layers.size());
    MemoryLayout first = memory_;
    first.layers.resize(size_t(n_layers));
    return KvCache(first, n_ctx, n_seq);
}

size_t Model::position_bytes(KvType type) const {
    return KvCache(memory_, KvCache::kBlockSize, 1, 1, type).position_bytes();
}

}  // namespace pensieve
