#include "server/http_server.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <httplib.h>
#include <sys/socket.h>

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
        case 405: return "method " + req.method + " is not allowed on " + req.path;
        case 413: return "the request body is too large (the limit is " + std::to_string(max_body) + " bytes)";
        case 414: return "the request URI is too long";
        case 400: return "malformed HTTP request";
        default: return "HTTP error " + std::to_string(status);
    }
}

}  // namespace

HttpServer::HttpServer(ServerOptions options)
    : ctx_(std::make_unique<ServerContext>(std::move(options))), svr_(std::make_unique<httplib::Server>()) {
    install_handlers();
}

HttpServer::~HttpServer() { shutdown(); }

std::string HttpServer::url() const {
    const std::string& h = ctx_->options.host;
    const bool v6 = h.find(':') != std::string::npos;
    return "http://" + (v6 ? "[" + h + "]" : h) + ":" + std::to_string(port_);
}

void HttpServer::install_handlers() {
    const ServerOptions& o = ctx_->options;
    ServerContext& ctx = *ctx_;
    httplib::Server& svr = *svr_;

    // Every blocked generation request holds a worker thread, so there are enough for
    // all slots and the whole queue plus a few for /health and /metrics.
    const int threads = o.http_threads > 0 ? o.http_threads : std::clamp(o.n_parallel + o.max_queue + 8, 8, 512);
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
    svr.set_payload_max_length(o.max_body_bytes);
    svr.set_keep_alive_timeout(3);  // also bounds how long shutdown waits on idle connections
    svr.set_read_timeout(30);
    svr.set_write_timeout(30);
    svr.set_tcp_nodelay(true);      // stream tokens as they come, not in Nagle-sized batches
    // httplib's default sets SO_REUSEPORT, which lets a second server bind a port that is
    // in use and silently share its traffic. SO_REUSEADDR alone still allows a quick
    // restart (TIME_WAIT) but makes a busy port an error.
    svr.set_socket_options([](socket_t sock) {
        int yes = 1;
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });

    svr.set_pre_routing_handler([&ctx](const httplib::Request& req, httplib::Response& res) {
        const ServerOptions& o = ctx.options;
        if (o.cors) {
            res.set_header("Access-Control-Allow-Origin", req.has_header("Origin") ? req.get_header_value("Origin") : "*");
            res.set_header("Vary", "Origin");
            if (req.method == "OPTIONS") {
                res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
                res.set_header("Access-Control-Allow-Headers",
                               "Authorization, Content-Type, x-api-key, anthropic-version, anthropic-beta, "
                               "anthropic-dangerous-direct-browser-access, x-stainless-os, x-stainless-lang, "
                               "x-stainless-package-version, x-stainless-runtime, x-stainless-runtime-version, "
                               "x-stainless-arch, x-stainless-retry-count, x-stainless-timeout");
                res.set_header("Access-Control-Max-Age", "86400");
                res.status = 204;
                return httplib::Server::HandlerResponse::Handled;
            }
        }
        if (!o.api_key.empty() && req.path != "/health" && !(req.method == "GET" && is_web_path(req.path)) &&
            !constant_time_equal(presented_key(req), o.api_key)) {
            write_error(res, dialect_for_path(req.path), 401,
                        "invalid or missing API key (send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY')");
            return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });

    // Responses httplib makes itself (404 route, 413 body, 400 bad HTTP) get a JSON body
    // in the dialect of the path, so SDKs show a real message.
    svr.set_error_handler(httplib::Server::HandlerWithResponse([&ctx](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty() || res.status < 400) return httplib::Server::HandlerResponse::Unhandled;
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

    register_misc_routes(svr, ctx);
    register_openai_routes(svr, ctx);
    register_anthropic_routes(svr, ctx);
    register_web_routes(svr);
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
    return port_;
}

void HttpServer::start() {
    thread_ = std::thread([this] { svr_->listen_after_bind(); });
    // Wait until it is accepting, so a shutdown() right after start() cannot miss it.
    for (int i = 0; i < 5000 && !svr_->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void HttpServer::set_model(Model& model, const Tokenizer& tokenizer, ThreadPool& pool, const std::string& model_id) {
    engine_ = std::make_unique<Engine>(model, tokenizer, pool, ctx_->options, model_id);
    const ServerOptions& o = ctx_->options;
    std::fprintf(stderr, "pensieve: chat format: %s\n", engine_->chat.describe().c_str());
    std::fprintf(stderr, "pensieve: %s x %s of context, queue up to %d\n", count_of(std::max(1, o.n_parallel), "slot").c_str(),
                 count_of(engine_->n_ctx, "token").c_str(), o.max_queue);
    ctx_->set_engine(engine_.get());
}

void HttpServer::shutdown() {
    if (stopped_) return;
    stopped_ = true;
    ctx_->draining = true;
    svr_->stop();  // closes the listening socket; httplib then waits for its workers

    // In-flight requests get the grace period to finish, then are cancelled (their
    // streams end with an error event, their handlers return).
    using namespace std::chrono;
    const auto deadline = steady_clock::now() + duration<double>(ctx_->options.shutdown_grace_seconds);
    while (ctx_->in_flight() > 0 && steady_clock::now() < deadline) std::this_thread::sleep_for(milliseconds(20));
    if (ctx_->in_flight() > 0) {
        std::fprintf(stderr, "pensieve: cancelling %zu request(s) still running\n", ctx_->in_flight());
        ctx_->cancel_all();
        if (engine_) engine_->scheduler.shutdown();  // also refuses anything submitted since
    }
    if (thread_.joinable()) thread_.join();
    ctx_->set_engine(nullptr);
    engine_.reset();  // the scheduler thread stops here
}

}  // namespace pensieve::server
