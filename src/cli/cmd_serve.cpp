// `pensieve serve -m MODEL`: the OpenAI- and Anthropic-compatible HTTP server.
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>

#include "cli/commands.h"
#include "cli/common.h"
#include "model/model.h"
#include "server/api_errors.h"
#include "server/http_server.h"
#include "server/model_catalog.h"
#include "server/request_guard.h"
#include "server/warm_up.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/plural.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace pensieve {

namespace {

struct ServeOptions {
    ModelOptions model;
    std::string models_dir;               // --models-dir: load models on demand
    std::string keep_alive = "5m";
    double max_ram_gib = -1;               // -1: 3/4 of physical memory
    server::HostOptions host;
    server::ServerOptions server;
    std::string chat_template_file;
    std::string draft_model;
    CacheTypeOptions cache_type;
    bool quiet = false;
    bool no_prefix_cache = false;
    bool draft_tree = false;
    std::string warm_cache;  // --warm-cache FILE (server/warm_up.h)
};

std::string file_name(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Every connection holds a file descriptor; the usual soft limit (1024) would cap the
// server below --max-connections, the hard limit rarely does.
void raise_open_file_limit() {
    rlimit files{};
    if (getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur >= files.rlim_max) return;
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
}

// glibc adapts its thresholds to the largest block freed so far: after one 32 MB request
// body, blocks up to 32 MB come from per-thread arenas, and each arena keeps up to 64 MB
// free at its top (malloc_trim does not shrink those). Fixed thresholds instead: blocks
// from 4 MiB are mapped on their own and returned when freed; an arena returns its top
// beyond 1 MiB. 60 s soak with hostile 32-40 MB bodies (tests/server/soak.test.mjs), RSS
// after warm-up -> end: glibc's defaults 88 -> 116 and 130 -> 87 MiB; 4 MiB / 4 MiB
// 32 -> 45 and 32 -> 38 MiB; 4 MiB / 1 MiB 25 -> 26, 27 -> 26, 26 -> 26 MiB.
void return_memory_promptly() {
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 20);
}

std::string file_stem(const std::string& path) {
    std::string name = file_name(path);
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) name.resize(name.size() - 5);
    return name;
}

uint64_t physical_memory_bytes() {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : 0;
}

// --models-dir: the folder's catalog and the host's limits, checked before anything loads.
server::ModelCatalog open_models_dir(ServeOptions& o) {
    server::HostOptions& h = o.host;
    try {
        h.keep_alive_seconds = server::parse_keep_alive(json(o.keep_alive));
    } catch (const server::ApiError&) {
        fail("--keep-alive ", o.keep_alive, ": expected seconds or a duration such as 5m, 30s, 1h (negative: forever)");
    }
    h.max_ram_bytes = o.max_ram_gib >= 0 ? uint64_t(o.max_ram_gib * double(1ull << 30)) : physical_memory_bytes() / 4 * 3;
    h.threads = o.model.threads;
    server::ModelCatalog catalog = server::ModelCatalog::folder(o.models_dir);
    const auto entries = catalog.entries();
    std::fprintf(stderr, "pensieve: %s in %s (loaded when a request names one; idle ones unload after %s; "
                         "at most %d loaded, %.1f GiB)\n",
                 count_of(entries.size(), "model").c_str(), o.models_dir.c_str(), o.keep_alive.c_str(), h.max_models,
                 double(h.max_ram_bytes) / double(1ull << 30));
    for (const auto& e : entries)
        std::fprintf(stderr, "pensieve:   %-40s %-10s %-8s %7.2f GiB\n", e.name.c_str(), e.architecture.c_str(),
                     e.quantization.c_str(), double(e.bytes) / double(1ull << 30));
    for (const auto& s : catalog.skipped())
        std::fprintf(stderr, "pensieve:   skipped %s: %s\n", s.path.c_str(), s.reason.c_str());
    return catalog;
}

void warn_if_exposed(const server::ServerOptions& so) {
    const std::vector<std::string> warnings = server::exposure_warnings(so);
    if (warnings.empty()) return;
    const char* rule = "pensieve: ************************************************************************\n";
    std::fprintf(stderr, "\n%s", rule);
    for (const std::string& w : warnings) std::fprintf(stderr, "pensieve: WARNING: %s\n", w.c_str());
    std::fprintf(stderr, "%s\n", rule);
}

int serve(ServeOptions o) {
    server::ServerOptions& so = o.server;
    if (so.api_key.empty())
        if (const char* k = std::getenv("PENSIEVE_API_KEY")) so.api_key = k;
    if (!o.chat_template_file.empty()) so.chat_template_source = read_text_file(o.chat_template_file);
    so.log_requests = !o.quiet;
    for (std::string& origin : so.cors_origins) origin = server::normalize_origin(origin);
    raise_open_file_limit();
    return_memory_promptly();
    so.cache_type = o.cache_type.resolve();
    so.prefix_cache = !o.no_prefix_cache;
    so.draft_tree = o.draft_tree;
    if (!so.prefix_cache && !so.cache_dir.empty()) fail("--no-prefix-cache and --cache-dir exclude each other");
    if (o.model.path.empty() && o.models_dir.empty()) fail("give a model (-m FILE) or a folder of models (--models-dir DIR)");
    std::optional<server::ModelCatalog> catalog;
    if (!o.models_dir.empty()) catalog.emplace(open_models_dir(o));
    std::vector<server::WarmUpRequest> warm_up;  // read now: a bad file fails before the model loads
    if (!o.warm_cache.empty()) {
        if (!so.prefix_cache) fail("--warm-cache needs the prefix cache (drop --no-prefix-cache)");
        warm_up = server::read_warm_up_file(o.warm_cache);
    }

    // SIGINT/SIGTERM are blocked in every thread (threads inherit the mask) and taken
    // by sigwait() below, so shutdown runs as ordinary code, not in a signal handler.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up is a failed write, not death

    // The draft model (small) loads before the server exists: its options are fixed then.
    std::unique_ptr<Model> draft;
    if (!o.draft_model.empty()) {
        draft = load_model(o.draft_model);
        so.draft_model = draft.get();
    }
    std::optional<LoadedModel> m;   // declared first: it must outlive the server's engine
    server::HttpServer http(so);
    http.bind();
    http.start();
    if (!o.model.path.empty())
        std::fprintf(stderr, "pensieve: listening on %s (loading the model; /health says 503 until ready)\n",
                     http.url().c_str());
    warn_if_exposed(so);

    // In a folder, models are named by their stem ("model": "qwen2.5-7b-instruct-q4_k_m");
    // alone, by the file name (any name reaches it).
    const std::string name = catalog ? file_stem(o.model.path) : file_name(o.model.path);
    if (catalog) http.serve_folder(std::move(*catalog), o.host);
    if (!o.model.path.empty()) {
        m.emplace(load(o.model));
        http.set_model(*m->model, *m->tokenizer, *m->pool, name);
    }
    auto announce = [&] {
        std::fprintf(stderr, "pensieve: serving %s at %s%s\n", o.model.path.empty() ? o.models_dir.c_str() : name.c_str(),
                     http.url().c_str(), so.api_key.empty() ? "" : " (API key required)");
    };
    // The warm-up runs on its own thread so that a SIGTERM during a long one (minutes of
    // prefill on a slow machine) stops the server as promptly as at any other time.
    std::atomic<bool> stopping{false};
    std::thread warmer;
    if (warm_up.empty()) {
        announce();
    } else {
        warmer = std::thread([&] {
            Timer timer;
            const int ok = server::warm_prefix_cache(so.host, http.port(), so.api_key, warm_up, &stopping);
            if (stopping) return;
            std::fprintf(stderr, "pensieve: warm-up: %d of %zu prompts cached in %.1f s\n", ok, warm_up.size(),
                         timer.seconds());
            announce();
        });
    }

    int sig = 0;
    sigwait(&signals, &sig);
    stopping = true;
    std::fprintf(stderr, "pensieve: %s received; finishing requests in flight (up to %.0f s; again to force)\n",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", so.shutdown_grace_seconds);
    std::thread([signals] {
        int again = 0;
        sigwait(&signals, &again);
        std::fprintf(stderr, "pensieve: forced exit\n");
        _exit(130);
    }).detach();
    http.shutdown();  // also ends a warm-up request in flight
    if (warmer.joinable()) warmer.join();
    std::fprintf(stderr, "pensieve: stopped\n");
    return 0;
}

}  // namespace

Command add_serve_command(CLI::App& root) {
    auto o = std::make_shared<ServeOptions>();
    server::ServerOptions& s = o->server;
    CLI::App* app = root.add_subcommand("serve", "Serve the model over OpenAI- and Anthropic-compatible HTTP APIs");
    // -m, or --models-dir, or both (the -m model then stays loaded and is the default).
    app->add_option("-m,--model", o->model.path, "Model file (GGUF)")->check(CLI::ExistingFile);
    app->add_option("-t,--threads", o->model.threads, "Threads per model (0: one per core)")->check(CLI::Range(0, 256));
    app->add_option("--models-dir", o->models_dir,
                    "Serve every .gguf in this folder (and its sub-folders), each by its file stem as the "
                    "request's \"model\"; loaded when first asked for (aliases: DIR/models.json)")
        ->check(CLI::ExistingDirectory);
    app->add_option("--keep-alive", o->keep_alive,
                    "How long an idle model stays loaded (--models-dir): seconds or 30s, 5m, 1h; negative: forever; "
                    "a request's \"keep_alive\" overrides it")
        ->capture_default_str();
    app->add_option("--max-models", o->host.max_models, "Models loaded at once (--models-dir; 0: no limit)")
        ->check(CLI::Range(0, 1000))->capture_default_str();
    app->add_option("--max-ram", o->max_ram_gib,
                    "GiB that loaded models (weights + KV cache) may take (--models-dir; default: 3/4 of the memory)")
        ->check(CLI::Range(0.0, 1e6));
    app->add_option("--load-timeout", o->host.load_timeout_seconds,
                    "Seconds a request waits for its model to load or for a busy model to free room")
        ->check(CLI::Range(1.0, 86400.0))->capture_default_str();
    app->add_option("--host", s.host, "Address to listen on")->capture_default_str();
    app->add_option("--port", s.port, "Port to listen on (0: any free port)")->check(CLI::Range(0, 65535))->capture_default_str();
    app->add_option("--parallel,--np", s.n_parallel, "Requests generating at once (slots)")->check(CLI::Range(1, 256))->capture_default_str();
    app->add_option("-c,--ctx-size", s.n_ctx, "Context per slot in tokens (0: the model's, at most 4096)")->check(CLI::Range(0, 1 << 20));
    app->add_option("-b,--batch-size", s.n_batch, "Most tokens in one forward pass")->check(CLI::Range(1, 65536))->capture_default_str();
    app->add_option("--prefill-chunk", s.prefill_chunk_decoding,
                    "Prompt tokens per forward pass while other requests are generating: their streams pause "
                    "for one such pass (0: up to --batch-size)")
        ->check(CLI::Range(0, 65536))->capture_default_str();
    app->add_option("--max-queue", s.max_queue, "Requests waiting for a slot before 429")->check(CLI::Range(0, 100000))->capture_default_str();
    app->add_option("--api-key", s.api_key, "Require this key (also $PENSIEVE_API_KEY)");
    app->add_option("--cors", s.cors_origins,
                    "Web page origins allowed to call the API, comma-separated (e.g. http://localhost:3000; "
                    "* allows any, sensible only with --api-key)")
        ->delimiter(',');
    app->add_option("--max-connections", s.max_connections, "Open client connections; more are refused with 503")
        ->check(CLI::Range(1, 1000000))->capture_default_str();
    app->add_option("--timeout-header", s.header_timeout_seconds, "Seconds a client has to send a request's headers")
        ->check(CLI::Range(0.1, 3600.0))->capture_default_str();
    app->add_option("--timeout-body", s.body_timeout_seconds, "Seconds a client has to send a request's body")
        ->check(CLI::Range(0.1, 3600.0))->capture_default_str();
    app->add_option("--timeout-idle", s.idle_timeout_seconds, "Seconds an idle kept-alive connection stays open")
        ->check(CLI::Range(0.1, 3600.0))->capture_default_str();
    app->add_option("--chat-template-file", o->chat_template_file, "Jinja chat template to use instead of the model's")
        ->check(CLI::ExistingFile);
    app->add_flag("--log-prompts", s.log_prompts, "Log every prompt (off by default: prompts are private)");
    app->add_option("--timeout-shutdown", s.shutdown_grace_seconds, "Seconds in-flight requests get at shutdown")
        ->check(CLI::Range(0.0, 3600.0))->capture_default_str();
    app->add_flag("-q,--quiet", o->quiet, "Do not log each HTTP request");
    app->add_option("-n,--n-predict", s.default_n_predict,
                    "Most tokens a chat reply generates when the request sets no limit (-1: until it ends or the context is full)")
        ->check(CLI::Range(-1, INT32_MAX))->capture_default_str();
    app->add_flag("--context-shift", s.context_shift,
                  "When a chat does not fit the context, drop its oldest turns (after the system prompt) "
                  "instead of refusing it; the usage reports how many");
    app->add_option("--lookup", s.lookup_draft, "Speculative decoding by prompt lookup: draft tokens per step (0: off)")
        ->check(CLI::Range(0, 64));
    app->add_option("--draft-model", o->draft_model, "Speculative decoding with this draft model (same vocabulary)")
        ->check(CLI::ExistingFile);
    app->add_option("--draft-layers", s.draft_layers,
                    "Speculative decoding with the model's own first N layers and output head as the draft (no second file, no extra memory: they use the model's own KV)")
        ->check(CLI::Range(1, 1024));
    app->add_option("--draft-max", s.draft_max, "Most draft tokens per step (default 8; the length adapts to the measured acceptance and costs unless --draft-fixed)")->check(CLI::Range(1, 64));
    app->add_flag("--draft-fixed", s.draft_fixed,
                  "Always draft --draft-max (or --lookup) tokens instead of adapting the length");
    app->add_option("--draft-p-min", s.draft_p_min,
                    "Draft model also stops below this probability of its token (0: the adaptive rule alone)")
        ->check(CLI::Range(0.0, 1.0))->capture_default_str();
    app->add_option("--cache-dir", s.cache_dir,
                    "Persistent prefix cache: KV of earlier prompts is kept here and reused across restarts");
    app->add_option("--cache-ram", s.cache_ram_mib, "MiB of RAM for cached prompt prefixes beyond the slots' own")
        ->check(CLI::Range(0, 1 << 20));
    // A plain flag (not CLI11's "!--no-..." negation, whose help shows "{false}").
    app->add_flag("--draft-tree", o->draft_tree,
                  "Tree drafts: also verify the draft's second choice where it is likely to pay (fp16 cache; default off)");
    app->add_flag("--no-prefix-cache", o->no_prefix_cache,
                  "Never reuse the KV of earlier prompts: every prompt is computed in full (for measurements)");
    app->add_option("--warm-cache", o->warm_cache,
                    "Before serving, compute and cache the prompts of these requests (JSON lines: "
                    "{\"path\": \"/v1/messages\", \"body\": {...}} or chat-completions bodies; "
                    "e.g. a --record-requests file), so a client's first request is a cache hit")
        ->check(CLI::ExistingFile);
    app->add_option("--record-requests", s.record_requests,
                    "Append every generation request (path and JSON body, with its prompt) to this file, "
                    "for --warm-cache");
    add_cache_type_options(*app, o->cache_type);
    return {app, [o] { return serve(*o); }};
}

}  // namespace pensieve
