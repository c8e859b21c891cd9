// `pensieve run -m MODEL -p PROMPT`: generate a continuation, streamed to stdout.
// Runs through the same scheduler as the server (one slot), so prompt lookup
// speculation and the persistent prefix cache work here too.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/scheduler.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/plural.h"
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
    bool ids = false;  // print generated token ids instead of text
    int lookup = 0;
    std::string draft_model;
    int draft_max = 8;
    int draft_layers = 0;
    float draft_p_min = 0.0f;
    bool draft_fixed = false;
    bool draft_tree = false;
    std::string cache_dir;
    CacheTypeOptions cache_type;
    GenerateOptions gen;
};

void write_out(const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
}

int run(const RunOptions& o) {
    const KvType cache_type = o.cache_type.resolve();
    // Without a prompt the model would just ramble for a whole context: say what is missing.
    if (o.prompt.empty() && o.prompt_file.empty()) fail("no prompt: give -p TEXT or -f FILE");
    std::string prompt = o.prompt;
    if (!o.prompt_file.empty()) prompt = read_text_file(o.prompt_file);
    if (prompt.empty()) fail(o.prompt_file, ": the prompt file is empty");
    LoadedModel m = load(o.model);

    // The metadata's special tokens: BOS, or for an encoder-decoder (T5) the EOS that ends
    // the encoder's input.
    const bool add_bos =
        (m.tokenizer->add_bos() || (m.model->config().encoder_decoder && m.tokenizer->add_eos())) && !o.no_bos;
    RequestParams req;
    req.prompt = m.tokenizer->encode(prompt, add_bos);
    req.options = o.gen;
    req.options.n_predict = o.n_predict;

    SchedulerConfig sc;
    sc.n_slots = 1;
    sc.n_ctx = context_size(o.n_ctx, *m.model);
    sc.n_batch = o.gen.n_batch;
    sc.max_queue = 1;
    sc.lookup_draft = o.lookup;
    sc.draft_adaptive = !o.draft_fixed;
    sc.draft_tree = o.draft_tree;
    sc.reuse_prefix = !o.cache_dir.empty();  // one request: only a disk cache can help
    sc.cache_blocks = 0;
    sc.cache_dir = o.cache_dir;
    sc.cache_type = cache_type;
    std::unique_ptr<Model> draft;
    if (!o.draft_model.empty()) {
        draft = load_model(o.draft_model);
        sc.draft_model = draft.get();
    }
    sc.draft_layers = o.draft_layers;
    sc.draft_max = o.draft_max;
    sc.draft_p_min = o.draft_p_min;
    Scheduler sched(*m.model, *m.tokenizer, *m.pool, sc);
    auto stream = sched.submit(std::move(req));

    FinishEvent done;
    int n_ids = 0;
    for (;;) {
        auto ev = stream->next(std::chrono::hours(24));
        if (!ev) continue;
        if (auto* t = std::get_if<TokenEvent>(&*ev)) {
            if (o.ids) write_out((n_ids++ ? " " : "") + std::to_string(t->token));
            else write_out(t->text);
            continue;
        }
        done = std::get<FinishEvent>(*ev);
        if (!o.ids) write_out(done.tail_text);
        break;
    }
    std::fputc('\n', stdout);
    std::fflush(stdout);
    sched.shutdown();  // writes the prefix cache to --cache-dir
    if (done.reason == FinishReason::Error) fail(done.error);

    const int computed = done.n_prompt - done.n_cached;
    std::fprintf(stderr, "\nprompt: %s (%d from cache), %.2f s, %.2f tokens/s\n", count_of(done.n_prompt, "token").c_str(),
                 done.n_cached, done.prompt_seconds,
                 done.prompt_seconds > 0 ? computed / done.prompt_seconds : 0.0);
    const double gen_tps = done.generate_seconds > 0 && done.n_generated > 1
                               ? (done.n_generated - 1) / done.generate_seconds
                               : 0.0;
    std::fprintf(stderr, "generation: %s, %.2f s, %.2f tokens/s (stop: %s)\n",
                 count_of(done.n_generated, "token").c_str(), done.generate_seconds, gen_tps, finish_reason_word(done.reason));
    const SchedulerStats st = sched.stats();
    std::fprintf(stderr, "%s\n", describe_kv_cache(st.kv_type, st.kv_bytes, st.kv_tokens_capacity).c_str());
    if (o.lookup > 0 || draft || o.draft_layers > 0)
        std::fprintf(stderr, "speculation: %llu drafted, %llu accepted (%.1f%%), %llu forward passes; tree: %llu second choices, %llu kept\n",
                     static_cast<unsigned long long>(st.draft_tokens),
                     static_cast<unsigned long long>(st.draft_accepted),
                     st.draft_tokens ? 100.0 * double(st.draft_accepted) / double(st.draft_tokens) : 0.0,
                     static_cast<unsigned long long>(st.steps), static_cast<unsigned long long>(st.draft_leaves),
                     static_cast<unsigned long long>(st.draft_leaves_taken));
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
    app->add_flag("--ids", o->ids, "Print the generated token ids (space-separated) instead of text");
    app->add_option("--lookup", o->lookup, "Speculative decoding by prompt lookup: draft tokens per step (0: off)")
        ->check(CLI::Range(0, 64));
    app->add_option("--draft-model", o->draft_model, "Speculative decoding with this draft model (same vocabulary)")
        ->check(CLI::ExistingFile);
    app->add_option("--draft-layers", o->draft_layers,
                    "Speculative decoding with the model's own first N layers and output head as the draft (no second file, no extra memory: they use the model's own KV)")
        ->check(CLI::Range(1, 1024));
    app->add_option("--draft-max", o->draft_max, "Most draft tokens per step (default 8; the length adapts to the measured acceptance and costs unless --draft-fixed)")->check(CLI::Range(1, 64));
    app->add_flag("--draft-fixed", o->draft_fixed,
                  "Always draft --draft-max (or --lookup) tokens instead of adapting the length");
    app->add_flag("--draft-tree", o->draft_tree,
                  "Tree drafts: also verify the draft's second choice where it is likely to pay (fp16 cache; default off)");
    app->add_option("--draft-p-min", o->draft_p_min,
                    "Draft model also stops below this probability of its token (0: the adaptive rule alone)")
        ->check(CLI::Range(0.0, 1.0))->capture_default_str();
    app->add_option("--cache-dir", o->cache_dir, "Persistent prefix cache directory (reuse prompt KV across runs)");
    add_cache_type_options(*app, o->cache_type);
    add_sampling_options(*app, o->gen);
    return {app, [o] { return run(*o); }};
}

}  // namespace pensieve
