// `pensieve serve`'s HTTP server: cpp-httplib wiring (routes, checks of each request's
// head, auth, CORS, error shapes, request log) around a ServerContext. Connections are
// served by a Listener (listener.h): a thread each, deadlines, a connection cap.
//
// Life cycle, in the order `pensieve serve` (and the tests) use it:
//   bind()      take the port first, so a busy port fails before a slow model load
//   start()     answer requests from a background thread; API routes say 503 "loading"
//   set_model() build the scheduler over the loaded model; now everything works
//   (or serve_folder(): models load as requests name them)
//   shutdown()  stop accepting, let in-flight requests finish (bounded), cancel the rest
#pragma once

#include <memory>
#include <string>
#include <thread>

#include <httplib.h>

#include "server/server_context.h"

namespace pensieve::server {

class Listener;
class Router;

class HttpServer {
public:
    explicit HttpServer(ServerOptions options);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Returns the bound port (the chosen one when options.port is 0). Throws Error.
    int bind();
    void start();
    // One model, which the caller owns and keeps until shutdown(); every request reaches it.
    void set_model(Model& model, const Tokenizer& tokenizer, ThreadPool& pool, const std::string& model_id);
    // A folder of models loaded on demand (server/model_host.h); a set_model() model too,
    // when given, is the default and stays loaded.
    void serve_folder(ModelCatalog catalog, HostOptions options);
    void shutdown();

    ServerContext& context() { return *ctx_; }
    Engine* engine();  // the set_model() engine (null before)
    int port() const { return port_; }
    std::string url() const;

private:
    void install_handlers();
    // Pre-routing: framing, route and method, exposure (Host, Origin), API key; then the
    // connection's body phase. Answers and returns Handled when the request is refused.
    httplib::Server::HandlerResponse screen(const httplib::Request& req, httplib::Response& res);

    std::unique_ptr<ServerContext> ctx_;
    std::unique_ptr<Listener> svr_;
    std::unique_ptr<Router> router_;
    std::thread thread_;
    int port_ = -1;
    bool stopped_ = false;
};

// Equal strings, in time independent of where they differ (API key checks).
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace pensieve::server
