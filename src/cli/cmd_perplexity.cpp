// `pensieve perplexity -m MODEL -f TEXT -c CTX`: how well the model predicts a text.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/progress.h"
#include "engine/perplexity.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/plural.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace pensieve {

namespace {

struct PerplexityOptions {
    ModelOptions model;
    std::string file;
    int n_ctx = 512;
    int n_batch = 512;
    CacheTypeOptions cache_type;
};

int run_perplexity(const PerplexityOptions& o) {
    const KvType cache_type = o.cache_type.resolve();
    LoadedModel m = load(o.model);
    const std::string text = read_text_file(o.file);
    Timer timer;
    const std::vector<int32_t> tokens = m.tokenizer->encode(text, m.tokenizer->add_bos());
    std::fprintf(stderr, "tokenized %s into %s in %.3f s\n", count_of(text.size(), "byte").c_str(),
                 count_of(tokens.size(), "token").c_str(),
                 timer.seconds());
    ProgressBar bar("perplexity");
    PerplexityResult r = perplexity(*m.model, *m.pool, tokens, o.n_ctx, m.tokenizer->bos_id(), o.n_batch,
                                    [&](int done, int total, double ppl) {
                                        bar.update(done, total, "PPL " + std::to_string(ppl));
                                    },
                                    cache_type);
    bar.finish();
    std::printf("windows: %d of %d tokens, %lld tokens scored\n", r.n_windows, o.n_ctx,
                static_cast<long long>(r.n_scored));
    std::printf("PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_stderr);
    const size_t position_bytes = m.model->position_bytes(cache_type);
    std::fprintf(stderr, "%s\n", describe_kv_cache(cache_type, position_bytes * size_t(o.n_ctx), o.n_ctx).c_str());
    return 0;
}

}  // namespace

Command add_perplexity_command(CLI::App& root) {
    auto o = std::make_shared<PerplexityOptions>();
    CLI::App* app = root.add_subcommand("perplexity", "Measure perplexity on a text file");
    add_model_options(*app, o->model);
    app->add_option("-f,--file", o->file, "Text file")->required()->check(CLI::ExistingFile);
    app->add_option("-c,--ctx-size", o->n_ctx, "Window size in tokens")->capture_default_str()->check(CLI::Range(4, 1 << 20));
    app->add_option("-b,--batch-size", o->n_batch, "Tokens per forward pass")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    add_cache_type_options(*app, o->cache_type);
    return {app, [o] { return run_perplexity(*o); }};
}

}  // namespace pensieve
