#include "server/http_server.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>

#include <httplib.h>

#include "model/kv_cache.h"
#include "model/model.h"
#include "server/connection.h"
#include "server/listener.h"
#include "server/request_guard.h"
#include "server/router.h"
#include "server/routes.h"
#include "util/error.h"
#include "util/plural.h"

namespace pensieve::server {

bool constant_time_equal(const std::string& a, const std::string& b) {
    // Walk the expected key (b) fully whatever a holds; only the length of a can leak.
    unsigned diff = a.size() == b.size() ? 0u : 1u;
    for (size_t i = 0; i < b.size(); ++i) diff |= unsigned(uint8_t(i < a.size() ? a[i] : 0) ^ uint8_t(b[i]));
    return diff == 0;
}

namespace {

// The key a client presented: `Authorization: Bearer K` (OpenAI SDKs) or `x-api-key: K`
// (Anthropic SDKs).
std::string presented_key(const httplib::Request& req) {
    std::string auth = req.get_header_value("Authorization");
    if (auth.size() > 7) {
        std::string scheme = auth.substr(0, 7);
        std::transform(scheme.begin(), scheme.end(), scheme.begin(), ::tolower);
        if (scheme == "bearer ") return auth.substr(7);
    }
    return req.get_header_value("x-api-key");
}

std::string default_error_message(const httplib::Request& req, int status, size_t max_body) {
    switch (status) {
        case 404: return "unknown route: " + req.method + " " + req.path;
        case 413: return "the request body is too large (the limit is " + std::to_string(max_body) + " bytes)";
        case 414: return "the request URI is too long";
        case 400: return "malformed HTTP request";
        default: return "HTTP error " + std::to_string(status);
    }
}

// When the connection refused to read on (deadline, budget, server stopping): the status
// and message that say so; nullopt otherwise.
std::optional<std::pair<int, std::string>> connection_failure(const ServerOptions& o) {
    const Connection* c = current_connection();
    if (!c) return std::nullopt;
    const bool head = c->phase() == Connection::Phase::Head;
    switch (c->failure()) {
        case Connection::Failure::None: return std::nullopt;
        case Connection::Failure::Timeout:
            if (head)
                return std::make_pair(408, "the request head was not received within " +
                                               std::to_string(int(o.header_timeout_seconds)) + " s");
            return std::make_pair(408, "the request body was not received within " +
                                           std::to_string(int(o.body_timeout_seconds)) + " s");
        case Connection::Failure::TooLarge:
            if (head) return std::make_pair(431, std::string("the request head (line and headers) is too large"));
            return std::make_pair(413, "the request body is too large (the limit is " + std::to_string(o.max_body_bytes) +
                                           " bytes)");
        case Connection::Failure::Stopped: return std::make_pair(503, std::string("the server is shutting down"));
    }
    return std::nullopt;
}

// The rest of the request is not read: say so and close after the response.
void close_after(httplib::Response& res) {
    if (Connection* c = current_connection()) c->close_after_response();
    res.set_header("Connection", "close");
}

httplib::Server::HandlerResponse refuse(const httplib::Request& req, httplib::Response& res, int status,
                                        const std::string& message) {
    write_error(res, dialect_for_path(req.path), status, message);
    if (req.has_header("Transfer-Encoding") || content_length(req) > 0) close_after(res);
    return httplib::Server::HandlerResponse::Handled;
}

bool allows(const std::string& allow, const std::string& method) {
    size_t pos = 0;
    while (pos < allow.size()) {
        const size_t end = std::min(allow.find(", ", pos), allow.size());
        if (allow.compare(pos, end - pos, method) == 0) return true;
        pos = end + 2;
    }
    return false;
}

void add_cors_headers(httplib::Response& res, const httplib::Request& req, const std::string& origin,
                      const std::string& allow) {
    res.set_header("Access-Control-Allow-Origin", origin);
    res.set_header("Vary", "Origin");
    if (req.method != "OPTIONS") return;
    res.set_header("Access-Control-Allow-Methods", allow + ", OPTIONS");
    res.set_header("Access-Control-Allow-Headers",
                   "Authorization, Content-Type, x-api-key, anthropic-version, anthropic-beta, "
                   "anthropic-dangerous-direct-browser-access, x-stainless-os, x-stainless-lang, "
                   "x-stainless-package-version, x-stainless-runtime, x-stainless-runtime-version, "
                   "x-stainless-arch, x-stainless-retry-count, x-stainless-timeout");
    res.set_header("Access-Control-Max-Age", "86400");
}

ListenerOptions listener_options(const ServerOptions& o) {
    ListenerOptions l;
    l.limits.header_seconds = o.header_timeout_seconds;
    l.limits.body_seconds = o.body_timeout_seconds;
    l.limits.idle_seconds = o.idle_timeout_seconds;
    // Every connection needs a file descriptor; keep some for the model, the cache and logs.
    rlimit files{};
    const size_t reserve = 64;
    l.max_connections = o.max_connections;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY &&
        files.rlim_cur < o.max_connections + 2 * reserve) {
        l.max_connections = files.rlim_cur > 2 * reserve ? size_t(files.rlim_cur) - reserve : reserve;
        std::fprintf(stderr, "pensieve: at most %zu connections (the open-file limit is %zu)\n", l.max_connections,
                     size_t(files.rlim_cur));
    }
    return l;
}

}  // namespace

HttpServer::HttpServer(ServerOptions options)
    : ctx_(std::make_unique<ServerContext>(std::move(options))),
      svr_(std::make_unique<Listener>(listener_options(ctx_->options))),
      router_(std::make_unique<Router>(*svr_, ctx_->options.max_body_bytes)) {
    install_handlers();
}

HttpServer::~HttpServer() { shutdown(); }

std::string HttpServer::url() const {
    const std::string& h = ctx_->options.host;
    const bool v6 = h.find(':') != std::string::npos;
    return "http://" + (v6 ? "[" + h + "]" : h) + ":" + std::to_string(port_);
}

httplib::Server::HandlerResponse HttpServer::screen(const httplib::Request& req, httplib::Response& res) {
    const ServerOptions& o = ctx_->options;
    const std::string origin = req.get_header_value("Origin");
    const bool listed_origin = !origin.empty() && is_listed_origin(origin, o.cors_origins);
    const std::string allow = router_->allowed_methods(req.path);
    if (listed_origin) add_cors_headers(res, req, origin, allow);

    if (auto r = check_framing(req, o.max_body_bytes)) {
        close_after(res);  // the body's extent is unknown: nothing after it can be trusted
        return refuse(req, res, r->status, r->message);
    }
    if (allow.empty()) return refuse(req, res, 404, default_error_message(req, 404, o.max_body_bytes));
    if (req.method == "OPTIONS") {
        res.status = 204;
        res.set_header("Allow", allow + ", OPTIONS");
        return httplib::Server::HandlerResponse::Handled;
    }
    if (!allows(allow, req.method)) {
        res.set_header("Allow", allow);
        return refuse(req, res, 405, "method " + req.method + " is not allowed on " + req.path + " (allowed: " + allow + ")");
    }

    if (o.api_key.empty()) {
        // No key: only this machine's clients. Browsers always send Host, and Origin on
        // every cross-site POST and fetch.
        const std::string host = req.get_header_value("Host");
        if (req.has_header("Host") && !is_trusted_host(host, o.host))
            return refuse(req, res, 403,
                          "Host '" + host + "' is not this server's address; without --api-key only local clients "
                          "may use it (this blocks web pages reaching the server through their own domain)");
        if (!origin.empty() && !listed_origin && !is_same_origin(origin, host))
            return refuse(req, res, 403,
                          "requests from web pages of other origins (" + origin + ") are refused; allow the origin with "
                          "--cors, or set --api-key");
    } else if (req.path != "/health" && !(req.method == "GET" && is_web_path(req.path)) &&
               !constant_time_equal(presented_key(req), o.api_key)) {
        return refuse(req, res, 401,
                      "invalid or missing API key (send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY')");
    }

    if (Connection* c = current_connection()) {
        // Chunk framing can double a body at worst (one-byte chunks are sillier still and
        // stop early); the decoded limit is the router's.
        if (is_chunked(req)) c->begin_body(2 * o.max_body_bytes + (64u << 10));
        else if (const size_t n = content_length(req)) c->begin_body(n);
        else c->begin_handler();
    }
    return httplib::Server::HandlerResponse::Unhandled;
}

void HttpServer::install_handlers() {
    ServerContext& ctx = *ctx_;
    Listener& svr = *svr_;

    svr.set_payload_max_length(ctx.options.max_body_bytes);
    svr.set_tcp_nodelay(true);  // stream tokens as they come, not in Nagle-sized batches
    // httplib's default sets SO_REUSEPORT, which lets a second server bind a port that is
    // in use and silently share its traffic. SO_REUSEADDR alone still allows a quick
    // restart (TIME_WAIT) but makes a busy port an error.
    svr.set_socket_options([](socket_t sock) {
        int yes = 1;
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    svr.on_own_response = [&ctx](int status) { ctx.metrics.record_response(status); };
    ctx.open_connections = [&svr] { return svr.open_connections(); };

    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) { return screen(req, res); });

    // Responses httplib makes itself (400 bad HTTP, reads the connection refused) get a
    // JSON body in the dialect of the path, so SDKs show a real message.
    svr.set_error_handler(httplib::Server::HandlerWithResponse([&ctx](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty() || res.status < 400) return httplib::Server::HandlerResponse::Unhandled;
        if (auto f = connection_failure(ctx.options)) {
            write_error(res, dialect_for_path(req.path), f->first, f->second);
            res.set_header("Connection", "close");
            return httplib::Server::HandlerResponse::Handled;
        }
        write_error(res, dialect_for_path(req.path), res.status,
                    default_error_message(req, res.status, ctx.options.max_body_bytes));
        return httplib::Server::HandlerResponse::Handled;
    }));

    svr.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
            if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        write_error(res, dialect_for_path(req.path), 500, "internal error: " + what);
    });

    svr.set_logger([&ctx](const httplib::Request& req, const httplib::Response& res) {
        ctx.metrics.record_response(res.status);
        if (ctx.options.log_requests)
            std::fprintf(stderr, "pensieve: %s %s %d\n", req.method.c_str(), req.path.c_str(), res.status);
    });

    register_misc_routes(*router_, ctx);
    register_openai_routes(*router_, ctx);
    register_embeddings_routes(*router_, ctx);
    register_rerank_routes(*router_, ctx);
    register_anthropic_routes(*router_, ctx);
    register_responses_routes(*router_, ctx);
    register_web_routes(*router_);
}

int HttpServer::bind() {
    const ServerOptions& o = ctx_->options;
    if (o.port == 0) {
        port_ = svr_->bind_to_any_port(o.host);
    } else {
        port_ = svr_->bind_to_port(o.host, o.port) ? o.port : -1;
    }
    if (port_ <= 0)
        fail("cannot listen on ", o.host, ":", o.port, " (address in use, or not an address of this machine?)");
    svr_->widen_backlog();
    return port_;
}

void HttpServer::start() {
    thread_ = std::thread([this] { svr_->listen_after_bind(); });
    // Wait until it is accepting, so a shutdown() right after start() cannot miss it.
    for (int i = 0; i < 5000 && !svr_->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void HttpServer::set_model(Model& model, const Tokenizer& tokenizer, ThreadPool& pool, const std::string& model_id) {
    auto engine = std::make_shared<Engine>(model, tokenizer, pool, ctx_->options, model_id);
    const ServerOptions& o = ctx_->options;
    std::fprintf(stderr, "pensieve: chat format: %s\n", engine->chat.describe().c_str());
    std::fprintf(stderr, "pensieve: %s x %s of context, queue up to %d\n", count_of(std::max(1, o.n_parallel), "slot").c_str(),
                 count_of(engine->n_ctx, "token").c_str(), o.max_queue);
    const SchedulerStats st = engine->scheduler.stats();
    std::fprintf(stderr, "pensieve: %s\n", describe_kv_cache(st.kv_type, st.kv_bytes, st.kv_tokens_capacity).c_str());
    CatalogEntry entry;
    try {
        entry = describe_model_file(model.file().path());
    } catch (const Error&) {
        entry.path = model.file().path();  // not a file on disk (a test's model in memory)
        entry.architecture = model.config().arch;
    }
    entry.name = model_id;
    ctx_->models.pin(std::move(engine), std::move(entry));
}

void HttpServer::serve_folder(ModelCatalog catalog, HostOptions options) {
    ctx_->models.serve_folder(std::move(catalog), options);
}

Engine* HttpServer::engine() { return ctx_->models.pinned().get(); }

void HttpServer::shutdown() {
    if (stopped_) return;
    stopped_ = true;
    ctx_->draining = true;
    svr_->stop_all();  // closes the listening socket and idle connections; then waits for the rest

    // In-flight requests get the grace period to finish, then are cancelled (their
    // streams end with an error event, their handlers return).
    using namespace std::chrono;
    const auto deadline = steady_clock::now() + duration<double>(ctx_->options.shutdown_grace_seconds);
    while (ctx_->in_flight() > 0 && steady_clock::now() < deadline) std::this_thread::sleep_for(milliseconds(20));
    if (ctx_->in_flight() > 0) {
        std::fprintf(stderr, "pensieve: cancelling %zu request(s) still running\n", ctx_->in_flight());
        ctx_->cancel_all();
        ctx_->models.shutdown_schedulers();  // also refuses anything submitted since
    }
    if (thread_.joinable()) thread_.join();
    ctx_->models.unload_all();  // the scheduler threads stop here
}

}  // namespace pensieve::server
