// `pensieve serve`'s HTTP server: cpp-httplib wiring (routes, auth, CORS, body limit,
// error shapes, request log) around a ServerContext.
//
// Life cycle, in the order `pensieve serve` (and the tests) use it:
//   bind()      take the port first, so a busy port fails before a slow model load
//   start()     answer requests from a background thread; API routes say 503 "loading"
//   set_model() build the scheduler over the loaded model; now everything works
//   shutdown()  stop accepting, let in-flight requests finish (bounded), cancel the rest
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "server/server_context.h"

namespace httplib {
class Server;
}

namespace pensieve::server {

class HttpServer {
public:
    explicit HttpServer(ServerOptions options);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Returns the bound port (the chosen one when options.port is 0). Throws Error.
    int bind();
    void start();
    void set_model(Model& model, const Tokenizer& tokenizer, ThreadPool& pool, const std::string& model_id);
    void shutdown();

    ServerContext& context() { return *ctx_; }
    Engine* engine() { return engine_.get(); }
    int port() const { return port_; }
    std::string url() const;

private:
    void install_handlers();

    std::unique_ptr<ServerContext> ctx_;
    std::unique_ptr<httplib::Server> svr_;
    std::unique_ptr<Engine> engine_;
    std::thread thread_;
    int port_ = -1;
    bool stopped_ = false;
};

// Equal strings, in time independent of where they differ (API key checks).
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace pensieve::server
