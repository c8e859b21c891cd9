// `pensieve cache ls|clear --cache-dir DIR`: inspect or empty the persistent prefix cache.
// Layout (engine/prefix_cache.cpp): DIR/<model id>/<prefix hash>.kv (f16 KV) or
// <prefix hash>.<cache type>.kv (e.g. .q8_0.kv), one KV block a file.
#include <climits>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "cli/commands.h"
#include "engine/prefix_cache.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "util/error.h"

namespace pensieve {

namespace fs = std::filesystem;

namespace {

struct CacheOptions {
    std::string dir;
    std::string model;  // clear: only this model's blocks
    bool ls = false, clear = false;
};

int cache(const CacheOptions& o) {
    if (!fs::is_directory(o.dir)) fail(o.dir, ": no such cache directory");
    // --model: the folders of every id the model's entries can have (a LongRoPE model
    // has one per factor choice: at small and at large contexts).
    std::set<std::string> only;
    if (!o.model.empty()) {
        const std::unique_ptr<Model> m = load_model(o.model);
        for (int n_ctx : {1, INT_MAX}) {
            char buf[17];
            std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(cache_identity(*m, n_ctx)));
            only.insert(buf);
        }
    }
    std::map<std::string, std::pair<size_t, uintmax_t>> per_model;  // id -> (files, bytes)
    for (const auto& d : fs::directory_iterator(o.dir)) {
        if (!d.is_directory()) continue;
        const std::string id = d.path().filename().string();
        if (!o.model.empty() && !only.count(id)) continue;
        auto& entry = per_model[id];
        for (const auto& f : fs::directory_iterator(d.path())) {
            if (f.path().extension() != ".kv" && f.path().extension() != ".tmp") continue;
            entry.first++;
            entry.second += f.file_size();
            if (o.clear) fs::remove(f.path());
        }
        if (o.clear) {
            std::error_code ec;
            fs::remove(d.path(), ec);  // only if now empty
        }
    }
    size_t files = 0;
    uintmax_t bytes = 0;
    for (const auto& [id, e] : per_model) {
        if (o.ls) std::printf("%s  %6zu blocks  %8.1f MiB\n", id.c_str(), e.first, double(e.second) / (1 << 20));
        files += e.first;
        bytes += e.second;
    }
    std::printf("%s %zu blocks, %.1f MiB in %s\n", o.clear ? "removed" : "total", files,
                double(bytes) / (1 << 20), o.dir.c_str());
    return 0;
}

}  // namespace

Command add_cache_command(CLI::App& root) {
    auto o = std::make_shared<CacheOptions>();
    CLI::App* app = root.add_subcommand("cache", "List or clear the persistent prefix cache (--cache-dir)");
    app->require_subcommand(1);
    for (const char* verb : {"ls", "clear"}) {
        CLI::App* sub = app->add_subcommand(verb, std::string(verb) == "ls" ? "List cached blocks per model"
                                                                           : "Delete cached blocks");
        sub->add_option("--cache-dir", o->dir, "Cache directory")->required();
        sub->add_option("-m,--model", o->model, "Only this model's blocks")->check(CLI::ExistingFile);
        sub->callback([o, verb] {
            o->ls = std::string(verb) == "ls";
            o->clear = !o->ls;
        });
    }
    return {app, [o] { return cache(*o); }};
}

}  // namespace pensieve
