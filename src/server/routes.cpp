#include "server/routes.h"

#include <chrono>
#include <cstdio>

#include "chat/tool_calls.h"
#include "server/connection.h"
#include "server/json_fields.h"
#include "util/error.h"

namespace pensieve::server {

void write_json(httplib::Response& res, const json& body, int status) {
    res.status = status;
    res.set_content(dump_json(body), "application/json");
}

void write_error(httplib::Response& res, Dialect d, int status, const std::string& message, const std::string& param) {
    write_json(res, error_json(d, status, message, param), status);
}

httplib::Server::Handler guarded_route(ServerContext& ctx, Dialect d, PlainHandler handler) {
    return [&ctx, d, handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
        try {
            if (ctx.draining) throw ApiError(503, "the server is shutting down");
            handler(req, res);
        } catch (const ApiError& e) {
            write_error(res, d, e.status(), e.message(), e.param());
            if (e.status() == 503 || e.status() == 429) res.set_header("Retry-After", "1");
        } catch (const QueueFullError& e) {
            const int status = ctx.draining ? 503 : 429;
            write_error(res, d, status, e.what());
            res.set_header("Retry-After", "1");
        } catch (const Error& e) {
            write_error(res, d, 400, e.what());
        } catch (const std::bad_alloc&) {
            write_error(res, d, 500, "out of memory");
        } catch (const std::exception& e) {
            write_error(res, d, 500, std::string("internal error: ") + e.what());
        }
    };
}

httplib::Server::Handler api_route(ServerContext& ctx, Dialect d, ApiHandler handler) {
    return guarded_route(ctx, d, [&ctx, handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
        // One model: any name reaches it, and the body need not be read twice.
        const ModelWish wish = ctx.models.serves_folder() ? model_wish_of_body(req.body) : ModelWish{};
        const std::shared_ptr<Engine> e = ctx.models.acquire(wish);  // held until the handler returns
        if (ctx.recorder && req.method == "POST" && is_generation_path(req.path) && !req.has_header(kWarmUpHeader))
            ctx.recorder->record(req.path, req.body);
        handler(req, res, *e);
    });
}

Collected collect(Tracked& t, bool keep_tokens) {
    using namespace std::chrono;
    Collected c;
    auto checked = steady_clock::now();
    for (;;) {
        // Tokens may come without pause for minutes: look at the client every 100 ms
        // whether or not events arrive.
        if (steady_clock::now() - checked >= milliseconds(100)) {
            if (client_hung_up()) {
                t.stream().cancel();
                throw ApiError(499, "the client closed the connection");
            }
            checked = steady_clock::now();
        }
        // The scheduler always ends a request (shutdown cancels it), so waiting is bounded.
        auto e = t.stream().next(milliseconds(100));
        if (!e) continue;
        if (auto* tok = std::get_if<TokenEvent>(&*e)) {
            c.text += tok->text;
            if (keep_tokens) c.tokens.push_back(std::move(*tok));
            continue;
        }
        c.finish = std::get<FinishEvent>(std::move(*e));
        c.text += c.finish.tail_text;
        t.mark_finished();
        return c;
    }
}

void check_finish(const FinishEvent& f) {
    if (f.reason == FinishReason::Error) throw ApiError(f.error_status, "generation failed: " + f.error);
    if (f.reason == FinishReason::Cancelled) throw ApiError(503, "the request was cancelled because the server is shutting down");
}

bool send(Tracked& t, httplib::DataSink& sink, const std::string& data) {
    if (sink.write(data.data(), data.size())) return true;
    t.stream().cancel();
    return false;
}

std::optional<RequestStream::Event> next_event(Tracked& t, httplib::DataSink& sink, const std::string& keepalive) {
    using namespace std::chrono;
    auto idle_since = steady_clock::now();
    for (;;) {
        if (auto e = t.stream().next(milliseconds(100))) {
            if (std::holds_alternative<FinishEvent>(*e)) t.mark_finished();
            return e;
        }
        if (steady_clock::now() - idle_since >= seconds(1)) {
            if (!send(t, sink, keepalive)) return std::nullopt;
            idle_since = steady_clock::now();
        }
    }
}

std::optional<std::pair<size_t, RequestStream::Event>> next_event_any(const std::vector<std::shared_ptr<Tracked>>& ts,
                                                                      std::vector<bool>& finished,
                                                                      httplib::DataSink& sink,
                                                                      const std::string& keepalive) {
    using namespace std::chrono;
    auto idle_since = steady_clock::now();
    for (;;) {
        // One non-blocking look at every stream, then a short wait on the first
        // unfinished one: events of one scheduler step arrive together, so this costs
        // at most a few milliseconds of latency for the others.
        size_t first = ts.size();
        for (size_t i = 0; i < ts.size(); ++i) {
            if (finished[i]) continue;
            if (first == ts.size()) first = i;
            if (auto e = ts[i]->stream().next(milliseconds(0))) {
                if (std::holds_alternative<FinishEvent>(*e)) {
                    ts[i]->mark_finished();
                    finished[i] = true;
                }
                return std::make_pair(i, std::move(*e));
            }
        }
        if (first == ts.size()) return std::nullopt;  // nothing left (callers stop before this)
        if (auto e = ts[first]->stream().next(milliseconds(10))) {
            if (std::holds_alternative<FinishEvent>(*e)) {
                ts[first]->mark_finished();
                finished[first] = true;
            }
            return std::make_pair(first, std::move(*e));
        }
        if (steady_clock::now() - idle_since >= seconds(1)) {
            if (!sink.write(keepalive.data(), keepalive.size())) {
                for (const auto& t : ts) t->stream().cancel();
                return std::nullopt;
            }
            idle_since = steady_clock::now();
        }
    }
}

std::string make_id(const char* prefix) { return make_tool_call_id(prefix); }

int64_t unix_time() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void log_prompt(const ServerContext& ctx, const char* endpoint, const std::string& prompt) {
    if (!ctx.options.log_prompts) return;
    std::fprintf(stderr, "pensieve: %s prompt:\n%s\n---\n", endpoint, prompt.c_str());
}

}  // namespace pensieve::server
