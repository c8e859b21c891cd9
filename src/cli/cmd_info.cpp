// `pensieve info FILE`: what a GGUF file holds — architecture, hyper-parameters,
// metadata, tensors with types and sizes. `--cpu`: the SIMD paths this machine uses.
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>

#include "cli/commands.h"
#include "gguf/gguf.h"
#include "kernels/cpu_features.h"
#include "kernels/dispatch.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "quant/blocks.h"
#include "util/error.h"

namespace pensieve {

namespace {

struct InfoOptions {
    std::string path;
    bool cpu = false;
    bool all_tensors = false;
};

// A metadata value as one short line (long arrays abbreviated).
std::string show(const GgufValue& v, int depth = 0) {
    switch (v.type) {
        case GgufType::STRING: {
            std::string s = v.str.size() > 80 ? v.str.substr(0, 77) + "..." : v.str;
            for (char& ch : s)
                if (ch == '\n') ch = ' ';
            return "\"" + s + "\"";
        }
        case GgufType::BOOL: return v.u ? "true" : "false";
        case GgufType::FLOAT32:
        case GgufType::FLOAT64: return cat(v.f);
        case GgufType::ARRAY: {
            std::string s = cat("[", gguf_type_name(v.array_type), " x ", v.array.size(), "]");
            if (depth == 0 && !v.array.empty()) {
                s += " ";
                for (size_t i = 0; i < std::min<size_t>(v.array.size(), 4); ++i)
                    s += (i ? ", " : "") + show(v.array[i], depth + 1);
                if (v.array.size() > 4) s += ", ...";
            }
            return s;
        }
        default: return v.is_integer() ? (v.type == GgufType::INT8 || v.type == GgufType::INT16 ||
                                          v.type == GgufType::INT32 || v.type == GgufType::INT64
                                              ? cat(v.i)
                                              : cat(v.u))
                                       : "?";
    }
}

std::string human_bytes(double b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) { b /= 1024; ++u; }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f %s", b, units[u]);
    return buf;
}

// How the model runs on the architecture seam (model/arch/): its memory (paged KV and
// window, recurrent state), what that memory supports, pooling, attention direction and
// the memory per position for each --cache-type; or one line saying why it cannot run.
void print_model_features(const GgufFile& f) {
    const std::string arch = f.get_string("general.architecture", "");
    if (arch.empty()) return;
    const auto archs = supported_architectures();
    if (std::find(archs.begin(), archs.end(), arch) == archs.end()) {
        std::string known;
        for (const auto& a : archs) known += (known.empty() ? "" : ", ") + a;
        std::printf("\nmodel: architecture '%s' is not supported (supported: %s)\n", arch.c_str(), known.c_str());
        return;
    }
    std::unique_ptr<Model> m;
    try {
        m = load_model(f.path());
    } catch (const Error& e) {
        std::printf("\nmodel: cannot be built: %s\n", e.what());
        return;
    }
    const ModelConfig& c = m->config();
    const MemoryLayout& mem = m->memory_layout();
    const bool recurrent = mem.has(LayerMemory::Kind::Recurrent);
    std::printf("\nmodel (%s):\n", arch.c_str());
    std::printf("  memory:     %s\n", mem.describe().c_str());
    std::printf("  supports:   %s, prefix sharing (%s)\n",
                recurrent ? "no rollback (no speculation)" : "rollback (speculation)",
                recurrent ? "state snapshots" : "shared KV blocks");
    std::printf("  attention:  %s\n", c.causal ? "causal" : "bidirectional");
    std::printf("  pooling:    %s\n", pooling_name(c.pooling));
    const int64_t n_ctx = std::min<int64_t>(c.n_ctx_train, 4096);
    if (recurrent) {
        size_t state = 0;
        for (const LayerMemory& l : mem.layers) state += size_t(l.state_floats) * sizeof(float);
        std::printf("  state:      %s per sequence, whatever its length; snapshots of the same size kept\n"
                    "              every %d positions, at prompt ends and at each sequence's latest block\n",
                    human_bytes(double(state)).c_str(), KvCache::kBlockSize * KvCache::kSnapshotEvery);
        if (!mem.has(LayerMemory::Kind::Attention)) return;
    }
    for (KvType type : {KvType::F16, KvType::Q8_0}) {
        size_t per_pos = 0;
        try {
            per_pos = m->position_bytes(type);
        } catch (const Error&) {
            continue;  // q8_0 needs widths that are multiples of 32
        }
        std::printf("  --cache-type %-5s %s per position, %s for %lld positions\n", kv_type_name(type),
                    human_bytes(double(per_pos)).c_str(), human_bytes(double(per_pos) * double(n_ctx)).c_str(),
                    static_cast<long long>(n_ctx));
    }
}

// Bytes of weights one generated token reads: every tensor but the token embedding, of
// which decode looks up one row, unless it doubles as the output head (no output.weight).
// Read bandwidth / this = the generation speed limit (bench/compare.sh reports the share).
uint64_t weight_bytes_per_token(const GgufFile& f) {
    const bool tied_head = f.find_tensor("output.weight") == nullptr;
    uint64_t bytes = 0;
    for (const GgufTensor& t : f.tensors())
        if (tied_head || t.name != "token_embd.weight") bytes += t.nbytes;
    return bytes;
}

int info(const InfoOptions& o) {
    if (o.cpu) {
        std::printf("cpu features: %s\n", describe_cpu_features().c_str());
        std::printf("%s", describe_kernels().c_str());
        if (o.path.empty()) return 0;
    }
    if (o.path.empty()) fail("info needs a model file (or --cpu)");
    auto f = GgufFile::open(o.path);
    std::printf("file: %s\n", o.path.c_str());
    std::printf("gguf version: %u, alignment %zu, %s\n", f->version(), f->alignment(),
                human_bytes(double(f->file_size())).c_str());
    std::printf("architecture: %s\n", f->get_string("general.architecture", "(none)").c_str());

    std::printf("\nmetadata (%zu keys):\n", f->metadata().size());
    for (const auto& [key, value] : f->metadata()) std::printf("  %-45s %s\n", key.c_str(), show(value).c_str());

    uint64_t n_params = 0, n_bytes = 0;
    std::map<std::string, std::pair<int, uint64_t>> by_type;
    for (const GgufTensor& t : f->tensors()) {
        n_params += uint64_t(t.n_elements());
        n_bytes += t.nbytes;
        auto& e = by_type[type_name(t.type)];
        e.first++;
        e.second += t.nbytes;
    }
    print_model_features(*f);

    std::printf("\ntensors: %zu, %.2f M parameters, %s\n", f->tensors().size(), double(n_params) / 1e6,
                human_bytes(double(n_bytes)).c_str());
    for (const auto& [name, e] : by_type)
        std::printf("  %-8s %4d tensors  %s\n", name.c_str(), e.first, human_bytes(double(e.second)).c_str());
    const uint64_t per_token = weight_bytes_per_token(*f);
    std::printf("weights read per generated token: %llu bytes (%s)\n", static_cast<unsigned long long>(per_token),
                human_bytes(double(per_token)).c_str());
    std::printf("\n");
    size_t shown = 0;
    for (const GgufTensor& t : f->tensors()) {
        if (!o.all_tensors && shown >= 40) {
            std::printf("  ... %zu more (--all-tensors)\n", f->tensors().size() - shown);
            break;
        }
        std::string dims;
        for (size_t i = 0; i < t.dims.size(); ++i) dims += (i ? " x " : "") + std::to_string(t.dims[i]);
        std::printf("  %-40s %-6s %-22s %s\n", t.name.c_str(), type_name(t.type), dims.c_str(),
                    human_bytes(double(t.nbytes)).c_str());
        ++shown;
    }
    return 0;
}

}  // namespace

Command add_info_command(CLI::App& root) {
    auto o = std::make_shared<InfoOptions>();
    CLI::App* app = root.add_subcommand("info", "Show a GGUF file's architecture, metadata and tensors");
    app->add_option("file", o->path, "GGUF file")->check(CLI::ExistingFile);
    app->add_flag("--cpu", o->cpu, "Show the CPU features and kernel paths in use");
    app->add_flag("--all-tensors", o->all_tensors, "List every tensor");
    return {app, [o] { return info(*o); }};
}

}  // namespace pensieve
