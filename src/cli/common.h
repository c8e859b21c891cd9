// Options and helpers shared by several subcommands.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "engine/loaded_model.h"
#include "model/kv_cache.h"

namespace pensieve {

class Model;
class Tokenizer;
class ThreadPool;
struct GenerateOptions;

struct ModelOptions {
    std::string path;
    int threads = 0;  // 0: all cores
};

// --cache-type (K and V), or llama.cpp's --cache-type-k / --cache-type-v, which must
// then name the same type: pensieve keeps K and V in one type.
struct CacheTypeOptions {
    std::string both, k, v;  // empty: not given
    KvType resolve() const;  // fails if the given types disagree; f16 when none given
};

// -m/--model (required, must exist) and -t/--threads.
void add_model_options(CLI::App& app, ModelOptions& o);
// --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n,
// --frequency-penalty, --presence-penalty, --seed, --stop, --ignore-eos.
void add_sampling_options(CLI::App& app, GenerateOptions& o);

void add_cache_type_options(CLI::App& app, CacheTypeOptions& o);
// Loads model + tokenizer, starts the thread pool; prints a one-line summary on stderr.
LoadedModel load(const ModelOptions& o);
// The context to use: the user's, else the model's training context capped at 4096.
int context_size(int requested, const Model& model);
std::string read_text_file(const std::string& path);

}  // namespace pensieve
