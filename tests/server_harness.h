// The HTTP server in-process for tests: a real HttpServer on an ephemeral loopback port
// serving stories260K (loaded once per test binary), driven with httplib::Client, and
// the helpers that read its replies (JSON bodies, SSE events).
#pragma once

#include <gtest/gtest.h>

#include <csignal>
#include <httplib.h>

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "server/http_server.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "util/thread_pool.h"

namespace pensieve::test_server {

using server::HttpServer;
using pensieve::SchedulerStats;
using server::ServerOptions;
using json = nlohmann::json;

// The model is loaded once for all tests; each server gets its own scheduler over it.
struct SharedModel {
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<ThreadPool> pool;
    static SharedModel& get() {
        static SharedModel m = [] {
            std::signal(SIGPIPE, SIG_IGN);
            SharedModel s;
            s.model = load_model(shared_dir() + "/models/stories260K.gguf");
            s.tokenizer = Tokenizer::from_gguf(s.model->file());
            s.pool = std::make_unique<ThreadPool>(1);
            return s;
        }();
        return m;
    }
};

struct TestServer {
    explicit TestServer(ServerOptions o = {}, bool load = true) {
        o.host = "127.0.0.1";
        o.port = 0;
        o.log_requests = false;
        if (o.n_ctx == 0) o.n_ctx = 1024;
        http = std::make_unique<HttpServer>(o);
        port = http->bind();
        http->start();
        if (load) {
            SharedModel& m = SharedModel::get();
            http->set_model(*m.model, *m.tokenizer, *m.pool, "stories260K.gguf");
        }
    }
    httplib::Client client(const std::string& key = "") const {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(60, 0);
        if (!key.empty()) c.set_bearer_token_auth(key.c_str());
        return c;
    }
    SchedulerStats stats() { return http->engine()->scheduler.stats(); }
    std::unique_ptr<HttpServer> http;
    int port = 0;
};

struct Reply {
    int status = 0;
    json body;
    std::string raw;
    httplib::Headers headers;
};

// The reply to a request, or a test failure (and status 0) when there was none.
inline Reply reply_of(const httplib::Result& r, const std::string& path) {
    Reply out;
    if (!r) {
        ADD_FAILURE() << "no response from " << path << ": " << httplib::to_string(r.error());
        return out;
    }
    out.status = r->status;
    out.raw = r->body;
    out.headers = r->headers;
    out.body = json::parse(r->body, nullptr, false);
    return out;
}

inline Reply post(const TestServer& s, const std::string& path, const std::string& body, const httplib::Headers& h = {}) {
    return reply_of(s.client().Post(path.c_str(), h, body, "application/json"), path);
}
inline Reply post(const TestServer& s, const std::string& path, const json& body, const httplib::Headers& h = {}) {
    return post(s, path, body.dump(), h);
}
inline Reply get(const TestServer& s, const std::string& path, const httplib::Headers& h = {}) {
    return reply_of(s.client().Get(path.c_str(), h), path);
}

struct SseEvent {
    std::string event;
    std::string data;
};

inline std::vector<SseEvent> parse_sse(const std::string& text) {
    std::vector<SseEvent> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find("\n\n", pos);
        if (end == std::string::npos) end = text.size();
        SseEvent ev;
        std::string block = text.substr(pos, end - pos);
        size_t lp = 0;
        while (lp < block.size()) {
            size_t le = block.find('\n', lp);
            if (le == std::string::npos) le = block.size();
            std::string line = block.substr(lp, le - lp);
            if (line.rfind("event: ", 0) == 0) ev.event = line.substr(7);
            else if (line.rfind("data: ", 0) == 0) ev.data = line.substr(6);
            lp = le + 1;
        }
        if (!ev.data.empty() || !ev.event.empty()) out.push_back(ev);
        pos = end + 2;
    }
    return out;
}

// One server for the tests that need no options of their own.
inline TestServer& shared_server() {
    static TestServer s;
    return s;
}

inline json chat_body(const std::string& user, int max_tokens) {
    return {{"model", "stories260K"},
            {"messages", json::array({{{"role", "user"}, {"content", user}}})},
            {"max_tokens", max_tokens},
            {"temperature", 0}};
}

inline void expect_openai_error(const Reply& r, int status, const std::string& needle = "") {
    EXPECT_EQ(r.status, status) << r.raw;
    ASSERT_TRUE(r.body.is_object()) << r.raw;
    ASSERT_TRUE(r.body.contains("error")) << r.raw;
    EXPECT_TRUE(r.body["error"]["message"].is_string());
    EXPECT_TRUE(r.body["error"]["type"].is_string());
    EXPECT_TRUE(r.body["error"].contains("param"));
    EXPECT_TRUE(r.body["error"].contains("code"));
    if (!needle.empty()) {
        EXPECT_NE(r.body["error"]["message"].get<std::string>().find(needle), std::string::npos) << r.raw;
    }
}

inline void expect_anthropic_error(const Reply& r, int status, const std::string& type) {
    EXPECT_EQ(r.status, status) << r.raw;
    ASSERT_TRUE(r.body.is_object()) << r.raw;
    EXPECT_EQ(r.body["type"], "error") << r.raw;
    EXPECT_EQ(r.body["error"]["type"], type) << r.raw;
    EXPECT_TRUE(r.body["error"]["message"].is_string());
}

inline bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return cond();
}

}  // namespace pensieve::test_server
