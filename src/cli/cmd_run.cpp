// `pensieve run -m MODEL -p PROMPT`: generate a continuation, streamed to stdout.
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace pensieve {

namespace {

struct RunOptions {
    ModelOptions model;
    std::string prompt;
    std::string prompt_file;
    int n_predict = -1;
    int n_ctx = 0;
    bool no_bos = false;
    GenerateOptions gen;
};

int run(const RunOptions& o) {
    std::string prompt = o.prompt;
    if (!o.prompt_file.empty()) prompt = read_text_file(o.prompt_file);
    LoadedModel m = load(o.model);

    const bool add_bos = m.tokenizer->add_bos() && !o.no_bos;
    std::vector<int32_t> tokens = m.tokenizer->encode(prompt, add_bos);
    const int n_ctx = context_size(o.n_ctx, *m.model);
    KvCache cache = m.model->make_cache(n_ctx, 1);

    GenerateOptions gen = o.gen;
    gen.n_predict = o.n_predict;
    GenerateResult r = generate(*m.model, *m.tokenizer, cache, *m.pool, tokens, gen,
                                [](std::string_view text) {
                                    std::fwrite(text.data(), 1, text.size(), stdout);
                                    std::fflush(stdout);
                                    return true;
                                });
    std::fputc('\n', stdout);
    std::fflush(stdout);
    std::fprintf(stderr, "\nprompt: %d tokens, %.2f s, %.2f tokens/s\n", r.n_prompt, r.prompt_seconds,
                 r.prompt_tps());
    std::fprintf(stderr, "generation: %zu tokens, %.2f s, %.2f tokens/s (stop: %s)\n", r.tokens.size(),
                 r.generate_seconds, r.generate_tps(), r.stop_reason.c_str());
    return 0;
}

}  // namespace

Command add_run_command(CLI::App& root) {
    auto o = std::make_shared<RunOptions>();
    CLI::App* app = root.add_subcommand("run", "Generate text from a prompt (streamed to stdout)");
    add_model_options(*app, o->model);
    auto* p = app->add_option("-p,--prompt", o->prompt, "Prompt text");
    app->add_option("-f,--file", o->prompt_file, "Read the prompt from a file")->excludes(p);
    app->add_option("-n,--n-predict", o->n_predict, "Tokens to generate (-1: until end of text or context full)");
    app->add_option("-c,--ctx-size", o->n_ctx, "Context size in tokens (0: the model's, at most 4096)");
    app->add_flag("--no-bos", o->no_bos, "Do not add the BOS token");
    add_sampling_options(*app, o->gen);
    return {app, [o] { return run(*o); }};
}

}  // namespace pensieve
