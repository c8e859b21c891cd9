// What the route files (openai_api.cpp, anthropic_api.cpp, responses_api.cpp, misc_api.cpp) share: the
// wrapper that turns exceptions into error responses in the right dialect, response
// writers, and the loops that drain a request's events (whole, or streamed as SSE).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "server/api_errors.h"
#include "server/router.h"
#include "server/server_context.h"

namespace pensieve::server {

void write_json(httplib::Response& res, const json& body, int status = 200);
void write_error(httplib::Response& res, Dialect d, int status, const std::string& message,
                 const std::string& param = "");

// A handler of an API route that needs no model. The wrapper answers 503 while the server
// drains, and maps exceptions: ApiError -> its status; QueueFullError -> 429 with
// Retry-After; pensieve::Error (bad prompt, context overflow, template error) -> 400;
// anything else -> 500.
using PlainHandler = std::function<void(const httplib::Request&, httplib::Response&)>;
httplib::Server::Handler guarded_route(ServerContext& ctx, Dialect d, PlainHandler handler);

// A handler for a model route: as guarded_route, and the handler gets the engine of the
// model the request names (server/model_host.h: loaded first when needed; 503 while the
// single model loads, 404 for an unknown name).
using ApiHandler = std::function<void(const httplib::Request&, httplib::Response&, Engine&)>;
httplib::Server::Handler api_route(ServerContext& ctx, Dialect d, ApiHandler handler);

// A request's whole output (non-streaming responses). Waiting, collect() watches the
// client's connection: when it hangs up, the request is cancelled (freeing its slot) and
// ApiError 499 is thrown (nginx's "client closed request"; nobody reads the answer).
struct Collected {
    std::string text;
    std::vector<TokenEvent> tokens;  // kept only when logprobs were asked for
    FinishEvent finish;
};
Collected collect(Tracked& t, bool keep_tokens);

// Throws ApiError unless the request ended normally (stop or length).
void check_finish(const FinishEvent& f);

// Streaming: the next event. While none comes, writes `keepalive` (an SSE comment or
// ping event) every second, because a failed write is how a vanished client shows; on
// failure cancels the request and returns nullopt.
std::optional<RequestStream::Event> next_event(Tracked& t, httplib::DataSink& sink, const std::string& keepalive);

// n > 1 streaming: the next event of any unfinished stream (finished[i] is set when
// stream i ends), with the same keep-alive and hang-up handling as next_event; on a
// hang-up every stream is cancelled.
std::optional<std::pair<size_t, RequestStream::Event>> next_event_any(const std::vector<std::shared_ptr<Tracked>>& ts,
                                                                      std::vector<bool>& finished,
                                                                      httplib::DataSink& sink,
                                                                      const std::string& keepalive);

// Writes to the client; false (and the request cancelled) if it has gone away.
bool send(Tracked& t, httplib::DataSink& sink, const std::string& data);

// Random id for responses: prefix + 24 alphanumerics.
std::string make_id(const char* prefix);
int64_t unix_time();

// Logs the prompt when --log-prompts is on (never otherwise).
void log_prompt(const ServerContext& ctx, const char* endpoint, const std::string& prompt);

void register_openai_routes(Router& router, ServerContext& ctx);
void register_anthropic_routes(Router& router, ServerContext& ctx);
void register_responses_routes(Router& router, ServerContext& ctx);
void register_embeddings_routes(Router& router, ServerContext& ctx);
void register_rerank_routes(Router& router, ServerContext& ctx);
void register_misc_routes(Router& router, ServerContext& ctx);
void register_web_routes(Router& router);
// Paths of the embedded chat page and its icon (served without the API key, like /health).
bool is_web_path(const std::string& path);

}  // namespace pensieve::server
