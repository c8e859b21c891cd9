// State shared by every route: the options, the loaded model (once it is ready), the
// metrics, and the set of requests in flight (so shutdown can cancel them).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "chat/chat_format.h"
#include "chat/chat_prompt.h"
#include "engine/encoder_queue.h"
#include "engine/loaded_model.h"
#include "engine/scheduler.h"
#include "server/metrics.h"
#include "server/model_host.h"
#include "server/warm_up.h"

namespace pensieve {
class Model;
class Tokenizer;
class ThreadPool;
}  // namespace pensieve

namespace pensieve::server {

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;                       // 0: any free port (tests)
    int n_parallel = 4;                    // requests generating at once (scheduler slots)
    int n_ctx = 0;                         // context per slot; 0: min(model's, 4096)
    int n_batch = 512;
    int prefill_chunk_decoding = 128;      // prompt tokens per pass while others generate
    int max_queue = 64;                    // waiting requests before 429
    std::string api_key;                   // empty: no authentication
    std::vector<std::string> cors_origins; // origins whose pages may call the API ("*": any)
    bool log_prompts = false;
    bool log_requests = true;              // one line per HTTP request (never bodies)
    std::string chat_template_source;      // from --chat-template-file
    size_t max_body_bytes = 32u << 20;
    size_t max_connections = 2048;         // open connections; more are refused with 503
    double header_timeout_seconds = 10;    // a request's line and headers, from their first byte
    double body_timeout_seconds = 60;      // a request's whole body
    double idle_timeout_seconds = 5;       // a kept-alive connection waiting for its next request
    double shutdown_grace_seconds = 10.0;  // in-flight requests get this long to finish
    bool context_shift = false;            // drop old turns instead of refusing a long chat
    int default_n_predict = -1;            // chat requests without a token limit (-1: until the end or the context is full)
    int lookup_draft = 0;                  // prompt-lookup speculation: draft tokens per step
    Model* draft_model = nullptr;          // draft-model speculation (same vocabulary)
    int draft_layers = 0;                  // self-speculation from the model's first layers
    int draft_max = 8;
    float draft_p_min = 0.0f;              // draft model: also stop proposing below this probability
    bool draft_fixed = false;              // always the most draft tokens (no adaptive length)
    bool draft_tree = false;               // also verify the draft's second choices (tree drafts)
    std::string cache_dir;                 // persistent prefix cache
    int cache_ram_mib = -1;                // RAM for cached prefixes beyond the slots (-1: one context)
    KvType cache_type = KvType::F16;       // KV cache element type (--cache-type)
    bool prefix_cache = true;              // reuse the KV of earlier prompts (--no-prefix-cache: off)
    std::string record_requests;           // append generation requests here (server/warm_up.h)
};

// The model and what serves it. Built once the model has loaded; shared by the requests
// using it (server/model_host.h unloads it when none does).
struct Engine : std::enable_shared_from_this<Engine> {
    // Over a model the caller owns (and keeps until the engine ends).
    Engine(Model& model, const Tokenizer& tokenizer, ThreadPool& pool, const ServerOptions& o,
           std::string model_id);
    // Over a model it owns from now on.
    Engine(LoadedModel owned, const ServerOptions& o, std::string model_id);

    // A conversation -> the chat template's prompt text and tokens; special tokens come
    // only from the template's own text (chat/chat_prompt.h). Throws Error (HTTP 400) when
    // the template rejects the conversation.
    ChatPrompt chat_prompt(const json& messages, const json& tools) const;
    // Completion text -> token ids: special-token text ("<s>", "<|im_start|>") is plain
    // text unless parse_special (the request opted in); BOS as the model wants it.
    std::vector<int32_t> tokenize_prompt(const std::string& text, bool parse_special) const;

private:
    Engine(LoadedModel&& owned, Model& model, const Tokenizer& tokenizer, ThreadPool& pool, const ServerOptions& o,
           std::string model_id);

public:
    LoadedModel owned;        // empty when borrowed; declared first, so it ends last
    Model& model;
    const Tokenizer& tokenizer;
    ThreadPool& pool;         // the scheduler's, also for embedding passes (under forward_mutex)
    std::string model_id;     // its name (file name or stem), reported by /v1/models and in responses
    int64_t created;          // unix time the model was loaded
    int n_ctx;                // per slot
    ChatFormatter chat;
    // The chat syntax's markers that are control tokens in this vocabulary: shown in
    // generated text (GenerateOptions::shown_control_tokens) so replies can be parsed.
    std::vector<int32_t> shown_control_tokens;
    Scheduler scheduler;
    EncoderQueue encoder;     // embedding requests, batched across requests
};

// A submitted request, cancelled when the handler lets go of it before its end (client
// gone, handler error), and registered with the context so shutdown can cancel it.
class Tracked {
public:
    Tracked(class ServerContext& ctx, std::shared_ptr<Engine> engine, std::shared_ptr<RequestStream> stream);
    ~Tracked();
    Tracked(const Tracked&) = delete;
    Tracked& operator=(const Tracked&) = delete;

    RequestStream& stream() { return *stream_; }
    Engine& engine() { return *engine_; }
    void mark_finished() { finished_ = true; }

private:
    ServerContext& ctx_;
    std::shared_ptr<Engine> engine_;  // kept while the response reads the stream
    std::shared_ptr<RequestStream> stream_;
    bool finished_ = false;
};

class ServerContext {
public:
    explicit ServerContext(ServerOptions o)
        : options(std::move(o)),
          recorder(options.record_requests.empty() ? nullptr : std::make_unique<RequestRecorder>(options.record_requests)),
          models(options) {}

    // Submits to the scheduler and tracks the request; throws what submit() throws.
    std::unique_ptr<Tracked> submit(Engine& e, RequestParams params, const std::string& endpoint);

    size_t in_flight() const;
    void cancel_all();

    const ServerOptions options;
    const std::unique_ptr<RequestRecorder> recorder;  // --record-requests, else null
    Metrics metrics;
    std::function<size_t()> open_connections;  // HTTP connections open now (set by the server)
    std::atomic<bool> draining{false};  // shutting down: refuse new work
    ModelHost models;                   // the loaded models; each request acquires its own

private:
    friend class Tracked;
    mutable std::mutex mutex_;
    std::set<std::shared_ptr<RequestStream>> streams_;
};

}  // namespace pensieve::server
