#include "cli/common.h"

#include <fstream>
#include <sstream>

#include "engine/request.h"
#include "model/model.h"
#include "util/error.h"

namespace pensieve {

void add_model_options(CLI::App& app, ModelOptions& o) {
    app.add_option("-m,--model", o.path, "Model file (GGUF)")->required()->check(CLI::ExistingFile);
    app.add_option("-t,--threads", o.threads, "Threads (0: one per core)")->check(CLI::Range(0, 256));
}

void add_sampling_options(CLI::App& app, GenerateOptions& o) {
    SamplingParams& s = o.sampling;
    // The ranges the HTTP API accepts (server/request_parse.cpp), so a value works in both
    // or in neither.
    app.add_option("--temp,--temperature", s.temperature, "Temperature (0: greedy)")
        ->check(CLI::Range(0.0, 2.0))->capture_default_str();
    app.add_option("--top-k", s.top_k, "Top-k (0: off)")->check(CLI::NonNegativeNumber)->capture_default_str();
    app.add_option("--top-p", s.top_p, "Top-p / nucleus (1: off)")->check(CLI::Range(0.0, 1.0))->capture_default_str();
    app.add_option("--min-p", s.min_p, "Min-p (0: off)")->check(CLI::Range(0.0, 1.0))->capture_default_str();
    app.add_option("--repeat-penalty", s.repeat_penalty, "Repetition penalty (1: off)")
        ->check(CLI::Range(0.01, 10.0))->capture_default_str();
    app.add_option("--repeat-last-n", s.repeat_last_n, "Tokens the penalties look back over (-1: all)")
        ->check(CLI::Range(-1, INT32_MAX))->capture_default_str();
    app.add_option("--frequency-penalty", s.frequency_penalty, "Frequency penalty")
        ->check(CLI::Range(-2.0, 2.0))->capture_default_str();
    app.add_option("--presence-penalty", s.presence_penalty, "Presence penalty")
        ->check(CLI::Range(-2.0, 2.0))->capture_default_str();
    app.add_option("-s,--seed", s.seed, "Random seed (default: random)");
    app.add_option("--stop", o.stop, "Stop string (repeatable)");
    app.add_flag("--ignore-eos", o.ignore_eos, "Keep generating past end-of-text");
    app.add_option("-b,--batch-size", o.n_batch, "Prompt tokens per forward pass")->check(CLI::Range(1, 65536));
}

void add_cache_type_options(CLI::App& app, CacheTypeOptions& o) {
    const auto types = CLI::IsMember({"f16", "q8_0"});
    app.add_option("--cache-type", o.both, "KV cache element type: f16 (default) or q8_0 (53% of the memory)")
        ->check(types);
    app.add_option("--cache-type-k", o.k, "Same as --cache-type (K and V must match)")->check(types);
    app.add_option("--cache-type-v", o.v, "Same as --cache-type (K and V must match)")->check(types);
}

KvType CacheTypeOptions::resolve() const {
    std::string type;
    for (const std::string* given : {&both, &k, &v}) {
        if (given->empty()) continue;
        if (!type.empty() && *given != type)
            fail("K and V cache types differ (", type, " and ", *given, "); pensieve stores both in one type");
        type = *given;
    }
    return type.empty() ? KvType::F16 : parse_kv_type(type);
}

LoadedModel load(const ModelOptions& o) { return load_model_and_tokenizer(o.path, o.threads); }

int context_size(int requested, const Model& model) {
    if (requested > 0) return requested;
    return std::min(model.config().n_ctx_train, 4096);
}

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, ": cannot open");
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace pensieve
