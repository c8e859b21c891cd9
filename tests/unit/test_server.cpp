// The HTTP server in-process: a real HttpServer on an ephemeral loopback port serving
// stories260K, driven with httplib::Client. Covers every route, both SSE dialects, the
// error shapes and statuses, auth, disconnects, queue limits and batch determinism.
#include <gtest/gtest.h>

#include <csignal>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "chat/chat_prompt.h"
#include "run_pensieve.h"
#include "server_harness.h"
#include "util/error.h"

namespace pensieve::server {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using namespace pensieve::test_server;

// ------------------------------------------------------------------------------------
// Basic routes

TEST(ServerTest, HealthAndModels) {
    auto& s = shared_server();
    Reply h = get(s, "/health");
    EXPECT_EQ(h.status, 200);
    EXPECT_EQ(h.body["status"], "ok");
    Reply m = get(s, "/v1/models");
    ASSERT_EQ(m.status, 200);
    EXPECT_EQ(m.body["object"], "list");
    EXPECT_EQ(m.body["data"][0]["id"], "stories260K.gguf");
    EXPECT_EQ(get(s, "/v1/models/stories260K.gguf").status, 200);
    expect_openai_error(get(s, "/v1/models/gpt-4"), 404);
    expect_openai_error(get(s, "/v1/nothing-here"), 404, "unknown route");
}

TEST(ServerTest, ChatPageIsEmbeddedAndPublic) {
    ServerOptions o;
    o.api_key = "sekret";
    TestServer s(o);
    auto c = s.client();
    auto page = c.Get("/");
    ASSERT_TRUE(page);
    EXPECT_EQ(page->status, 200);
    EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
    EXPECT_NE(page->body.find("/v1/chat/completions"), std::string::npos);
    EXPECT_EQ(c.Get("/index.html")->status, 200);
    // The API behind it still needs the key.
    EXPECT_EQ(c.Get("/v1/models")->status, 401);
}

TEST(ServerTest, BusyPortIsAnError) {
    auto& s = shared_server();
    ServerOptions o;
    o.port = s.port;
    HttpServer second(o);
    EXPECT_THROW(second.bind(), Error);
}

TEST(ServerTest, HealthSaysLoadingBeforeTheModelIsReady) {
    TestServer s({}, /*load=*/false);
    Reply h = get(s, "/health");
    EXPECT_EQ(h.status, 503);
    EXPECT_EQ(h.body["status"], "loading");
    Reply c = post(s, "/v1/chat/completions", chat_body("Hi", 4));
    expect_openai_error(c, 503, "loading");
}

TEST(ServerTest, ChatCompletion) {
    auto& s = shared_server();
    Reply r = post(s, "/v1/chat/completions", chat_body("Once upon a time", 12));
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["object"], "chat.completion");
    EXPECT_EQ(r.body["model"], "stories260K.gguf");
    const json& choice = r.body["choices"][0];
    EXPECT_EQ(choice["message"]["role"], "assistant");
    EXPECT_FALSE(choice["message"]["content"].get<std::string>().empty());
    EXPECT_EQ(choice["finish_reason"], "length");
    EXPECT_EQ(r.body["usage"]["completion_tokens"], 12);
    EXPECT_GT(r.body["usage"]["prompt_tokens"].get<int>(), 5);
    EXPECT_EQ(r.body["usage"]["total_tokens"].get<int>(),
              r.body["usage"]["prompt_tokens"].get<int>() + r.body["usage"]["completion_tokens"].get<int>());
}

TEST(ServerTest, ChatContentPartsSystemAndDeveloperRoles) {
    auto& s = shared_server();
    json body = chat_body("", 4);
    body["messages"] = json::array({{{"role", "developer"}, {"content", "Tell a story."}},
                                    {{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "Once"}},
                                                                                {{"type", "text"}, {"text", "upon"}}})}}});
    Reply r = post(s, "/v1/chat/completions", body);
    EXPECT_EQ(r.status, 200) << r.raw;
}

TEST(ServerTest, ChatStreamMatchesNonStream) {
    auto& s = shared_server();
    Reply whole = post(s, "/v1/chat/completions", chat_body("The little dog", 16));
    ASSERT_EQ(whole.status, 200);
    json body = chat_body("The little dog", 16);
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    Reply r = post(s, "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200);
    EXPECT_NE(r.headers.find("Content-Type")->second.find("text/event-stream"), std::string::npos);
    auto events = parse_sse(r.raw);
    ASSERT_GE(events.size(), 4u);
    EXPECT_EQ(events.back().data, "[DONE]");
    std::string text;
    std::string finish;
    json usage;
    for (size_t i = 0; i + 1 < events.size(); ++i) {
        json c = json::parse(events[i].data);
        EXPECT_EQ(c["object"], "chat.completion.chunk");
        if (i == 0) {
            EXPECT_EQ(c["choices"][0]["delta"]["role"], "assistant");
        }
        if (c["choices"].empty()) {
            usage = c["usage"];
            continue;
        }
        const json& d = c["choices"][0]["delta"];
        if (d.contains("content")) text += d["content"].get<std::string>();
        if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
    }
    EXPECT_EQ(text, whole.body["choices"][0]["message"]["content"].get<std::string>());
    EXPECT_EQ(finish, "length");
    EXPECT_EQ(usage["completion_tokens"], 16);
}

TEST(ServerTest, ChatLogprobs) {
    auto& s = shared_server();
    json body = chat_body("Once upon a time", 3);
    body["logprobs"] = true;
    body["top_logprobs"] = 2;
    Reply r = post(s, "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.raw;
    const json& lp = r.body["choices"][0]["logprobs"]["content"];
    ASSERT_EQ(lp.size(), 3u);
    EXPECT_LE(lp[0]["logprob"].get<double>(), 0.0);
    EXPECT_EQ(lp[0]["top_logprobs"].size(), 2u);
    EXPECT_TRUE(lp[0]["bytes"].is_array());
}

// response_format: sampled replies (temperature 1) always parse and follow the schema.
TEST(ServerTest, JsonSchemaResponseFormat) {
    auto& s = shared_server();
    for (int i = 0; i < 6; ++i) {
        json body = chat_body("Tell me about a dog", 200);
        body["temperature"] = 1.0;
        body["seed"] = 7 + i;
        body["response_format"] = {
            {"type", "json_schema"},
            {"json_schema",
             {{"name", "dog"},
              {"schema",
               {{"type", "object"},
                {"properties", {{"name", {{"type", "string"}, {"maxLength", 10}}}, {"good", {{"type", "boolean"}}}}},
                {"required", json::array({"name", "good"})},
                {"additionalProperties", false}}}}}};
        Reply r = post(s, "/v1/chat/completions", body);
        ASSERT_EQ(r.status, 200) << r.raw;
        const std::string content = r.body["choices"][0]["message"]["content"];
        json parsed;
        ASSERT_NO_THROW(parsed = json::parse(content)) << content;
        EXPECT_TRUE(parsed["name"].is_string()) << content;
        EXPECT_TRUE(parsed["good"].is_boolean()) << content;
        EXPECT_EQ(r.body["choices"][0]["finish_reason"], "stop");
    }
    json obj = chat_body("Tell me about a dog", 120);
    obj["response_format"] = {{"type", "json_object"}};
    Reply r = post(s, "/v1/chat/completions", obj);
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_TRUE(json::parse(r.body["choices"][0]["message"]["content"].get<std::string>()).is_object()) << r.raw;
}

// A conversation longer than the context: refused by default (never silently cut); with
// --context-shift the oldest turns after the system prompt go, and usage says how many.
TEST(ServerTest, ContextShiftDropsOldTurnsOnlyWhenAsked) {
    json long_chat = chat_body("And then?", 16);
    json msgs = json::array({{{"role", "system"}, {"content", "You tell short stories."}}});
    for (int i = 0; i < 30; ++i) {
        msgs.push_back({{"role", "user"}, {"content", "Tell me about Lily and her red ball, part " + std::to_string(i)}});
        msgs.push_back({{"role", "assistant"}, {"content", "Lily played with her red ball in the park all day."}});
    }
    msgs.push_back({{"role", "user"}, {"content", "And then?"}});
    long_chat["messages"] = msgs;

    ServerOptions plain;
    plain.n_ctx = 256;
    TestServer refusing(plain);
    expect_openai_error(post(refusing, "/v1/chat/completions", long_chat), 400, "context");

    ServerOptions shifting = plain;
    shifting.context_shift = true;
    TestServer s(shifting);
    Reply r = post(s, "/v1/chat/completions", long_chat);
    ASSERT_EQ(r.status, 200) << r.raw;
    const int dropped = r.body["usage"]["dropped_messages"];
    EXPECT_GT(dropped, 0);
    EXPECT_LT(dropped, int(msgs.size()) - 1);
    EXPECT_LE(r.body["usage"]["prompt_tokens"].get<int>() + 16, 256);
    // The Anthropic dialect shifts the same way.
    json am = {{"model", "x"}, {"max_tokens", 16}, {"system", "You tell short stories."},
               {"messages", json::array()}};
    for (size_t i = 1; i < msgs.size(); ++i) am["messages"].push_back(msgs[i]);
    Reply a = post(s, "/v1/messages", am);
    ASSERT_EQ(a.status, 200) << a.raw;
    EXPECT_GT(a.body["usage"]["dropped_messages"].get<int>(), 0);
}

// -n / --n-predict: the limit of a chat request that sets none (Codex CLI sends no
// max_output_tokens); a request's own limit still wins.
TEST(ServerTest, DefaultNPredictCapsRequestsWithoutALimit) {
    ServerOptions o;
    o.default_n_predict = 3;
    TestServer s(o);
    json chat = chat_body("Once upon a time", 8);
    chat.erase("max_tokens");
    Reply c = post(s, "/v1/chat/completions", chat);
    ASSERT_EQ(c.status, 200) << c.raw;
    EXPECT_EQ(c.body["usage"]["completion_tokens"], 3);
    EXPECT_EQ(c.body["choices"][0]["finish_reason"], "length");
    Reply r = post(s, "/v1/responses", json{{"model", "stories260K"}, {"input", "Once upon a time"}});
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["usage"]["output_tokens"], 3);
    EXPECT_EQ(r.body["status"], "incomplete");
    Reply own = post(s, "/v1/chat/completions", chat_body("Once upon a time", 5));
    ASSERT_EQ(own.status, 200) << own.raw;
    EXPECT_EQ(own.body["usage"]["completion_tokens"], 5);
}

TEST(ServerTest, StopStringEndsChatWithStop) {
    auto& s = shared_server();
    Reply whole = post(s, "/v1/chat/completions", chat_body("Once upon a time", 24));
    const std::string text = whole.body["choices"][0]["message"]["content"];
    ASSERT_GT(text.size(), 8u);
    const std::string stop = text.substr(4, 3);
    json body = chat_body("Once upon a time", 24);
    body["stop"] = stop;
    Reply r = post(s, "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(r.body["choices"][0]["message"]["content"], text.substr(0, text.find(stop)));
}

TEST(ServerTest, NGreaterThanOneGivesNChoices) {
    auto& s = shared_server();
    json body = chat_body("Once", 4);
    body["n"] = 2;
    Reply r = post(s, "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.raw;
    ASSERT_EQ(r.body["choices"].size(), 2u);
    EXPECT_EQ(r.body["choices"][1]["index"], 1);
}

// tool_choice "required" / named forces a call through the grammar (tool_grammar.h):
// even stories260K, which knows nothing of tools, then replies with a call that parses
// and whose arguments satisfy the schema; the result goes back for the next turn.
json weather_tools() {
    return json::parse(R"([
      {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
          "days": {"type": "integer"}}, "required": ["city"], "additionalProperties": false}}},
      {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}])");
}

TEST(ServerTest, ToolChoiceRequiredForcesValidCallsAndRoundTrips) {
    auto& s = shared_server();
    for (int i = 0; i < 8; ++i) {
        json body = chat_body("What is the weather in Paris?", 120);
        body["tools"] = weather_tools();
        body["tool_choice"] = "required";
        body["temperature"] = 1.0;
        body["seed"] = 100 + i;
        Reply r = post(s, "/v1/chat/completions", body);
        ASSERT_EQ(r.status, 200) << r.raw;
        const json& choice = r.body["choices"][0];
        EXPECT_EQ(choice["finish_reason"], "tool_calls") << r.raw;
        ASSERT_TRUE(choice["message"].contains("tool_calls")) << r.raw;
        ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u) << r.raw;
        const json& call = choice["message"]["tool_calls"][0];
        const std::string name = call["function"]["name"];
        const json args = json::parse(call["function"]["arguments"].get<std::string>());
        if (name == "get_weather") {
            ASSERT_TRUE(args["city"].is_string()) << args;
            EXPECT_LE(args["city"].get<std::string>().size(), 12u);
            if (args.contains("days")) {
                EXPECT_TRUE(args["days"].is_number_integer()) << args;
            }
            for (auto& [k, v] : args.items()) EXPECT_TRUE(k == "city" || k == "days") << args;
        } else {
            EXPECT_EQ(name, "get_time");
            EXPECT_TRUE(args.is_object());
        }

        // Round trip: the call and its result go back; the model answers (auto: free text).
        json next = body;
        next["tool_choice"] = "auto";
        next["max_tokens"] = 8;
        next["messages"].push_back({{"role", "assistant"}, {"content", nullptr}, {"tool_calls", choice["message"]["tool_calls"]}});
        next["messages"].push_back({{"role", "tool"}, {"tool_call_id", call["id"]}, {"content", "sunny, 21 C"}});
        Reply r2 = post(s, "/v1/chat/completions", next);
        ASSERT_EQ(r2.status, 200) << r2.raw;
        EXPECT_TRUE(r2.body["choices"][0]["message"].contains("content"));
    }
}

TEST(ServerTest, ToolChoiceNamedStreamsThatTool) {
    auto& s = shared_server();
    json body = chat_body("What time is it?", 60);
    body["tools"] = weather_tools();
    body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_time"}}}};
    body["stream"] = true;
    auto c = s.client();
    auto res = c.Post("/v1/chat/completions", body.dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    std::string name, finish, content;
    for (const SseEvent& ev : parse_sse(res->body)) {
        if (ev.data == "[DONE]") continue;
        const json j = json::parse(ev.data);
        if (j["choices"].empty()) continue;
        const json& d = j["choices"][0]["delta"];
        if (d.contains("tool_calls")) name += d["tool_calls"][0]["function"].value("name", "");
        if (d.contains("content") && d["content"].is_string()) content += d["content"].get<std::string>();
        if (!j["choices"][0]["finish_reason"].is_null()) finish = j["choices"][0]["finish_reason"];
    }
    EXPECT_EQ(name, "get_time");
    EXPECT_EQ(finish, "tool_calls");
    EXPECT_EQ(content.find("<tool_call>"), std::string::npos) << content;
}

TEST(ServerTest, AnthropicToolChoiceAnyGivesToolUse) {
    auto& s = shared_server();
    json body = {{"model", "m"},
                 {"max_tokens", 80},
                 {"temperature", 0},
                 {"tool_choice", {{"type", "tool"}, {"name", "get_weather"}}},
                 {"tools", json::array({{{"name", "get_weather"},
                                         {"input_schema", {{"type", "object"},
                                                           {"properties", {{"city", {{"type", "string"}, {"maxLength", 12}}}}},
                                                           {"required", json::array({"city"})}}}}})},
                 {"messages", json::array({{{"role", "user"}, {"content", "Weather in Paris?"}}})}};
    Reply r = post(s, "/v1/messages", body);
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["stop_reason"], "tool_use") << r.raw;
    bool found = false;
    for (const json& block : r.body["content"]) {
        if (block["type"] != "tool_use") continue;
        found = true;
        EXPECT_EQ(block["name"], "get_weather");
        EXPECT_TRUE(block["input"]["city"].is_string()) << r.raw;
    }
    EXPECT_TRUE(found) << r.raw;
}

// n > 1 with stream: the choices interleave, each chunk names its index; the texts are
// those of the same request without stream (seeded sampling: seed + index per choice).
TEST(ServerTest, NGreaterThanOneStreams) {
    auto& s = shared_server();
    for (const char* path : {"/v1/chat/completions", "/v1/completions"}) {
        const bool chat = std::string(path) == "/v1/chat/completions";
        json body = chat ? chat_body("Once", 12) : json{{"prompt", "Once upon a time"}, {"max_tokens", 12}};
        body["n"] = 3;
        body["temperature"] = 0.9;
        body["seed"] = 11;
        Reply whole = post(s, path, body);
        ASSERT_EQ(whole.status, 200) << whole.raw;
        body["stream"] = true;
        body["stream_options"] = {{"include_usage", true}};
        auto c = s.client();
        auto res = c.Post(path, body.dump(), "application/json");
        ASSERT_TRUE(res);
        ASSERT_EQ(res->status, 200) << res->body;
        std::vector<std::string> text(3);
        std::vector<std::string> finish(3);
        json usage;
        for (const SseEvent& ev : parse_sse(res->body)) {
            if (ev.data == "[DONE]") continue;
            const json j = json::parse(ev.data);
            if (j.contains("usage") && !j["usage"].is_null()) usage = j["usage"];
            for (const json& ch : j["choices"]) {
                const size_t i = ch["index"].get<size_t>();
                ASSERT_LT(i, 3u);
                // (const json: only look up keys that are there)
                const json piece = chat ? ch["delta"].value("content", json()) : ch.value("text", json());
                if (piece.is_string()) text[i] += piece.get<std::string>();
                if (!ch["finish_reason"].is_null()) finish[i] = ch["finish_reason"];
            }
        }
        for (size_t i = 0; i < 3; ++i) {
            const json& wc = whole.body["choices"][i];
            EXPECT_EQ(text[i], chat ? wc["message"]["content"].get<std::string>() : wc["text"].get<std::string>()) << path << i;
            EXPECT_EQ(finish[i], "length");
        }
        EXPECT_EQ(usage["completion_tokens"], 36) << usage;
        EXPECT_EQ(usage["prompt_tokens"], whole.body["usage"]["prompt_tokens"]);
    }
}

TEST(ServerTest, Completions) {
    auto& s = shared_server();
    json body = {{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}, {"logprobs", 1}};
    Reply r = post(s, "/v1/completions", body);
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["object"], "text_completion");
    const std::string text = r.body["choices"][0]["text"];
    EXPECT_FALSE(text.empty());
    EXPECT_EQ(r.body["choices"][0]["logprobs"]["tokens"].size(), 8u);

    // Same prompt as token ids gives the same text.
    SharedModel& m = SharedModel::get();
    std::vector<int32_t> ids = m.tokenizer->encode("Once upon a time", true);
    json by_ids = {{"prompt", ids}, {"max_tokens", 8}, {"temperature", 0}};
    Reply r2 = post(s, "/v1/completions", by_ids);
    ASSERT_EQ(r2.status, 200) << r2.raw;
    EXPECT_EQ(r2.body["choices"][0]["text"], text);

    body["stream"] = true;
    body.erase("logprobs");
    Reply st = post(s, "/v1/completions", body);
    ASSERT_EQ(st.status, 200);
    std::string streamed;
    auto events = parse_sse(st.raw);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().data, "[DONE]");
    for (size_t i = 0; i + 1 < events.size(); ++i)
        streamed += json::parse(events[i].data)["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(streamed, text);
}

TEST(ServerTest, TokenizeDetokenize) {
    auto& s = shared_server();
    Reply t = post(s, "/tokenize", json{{"content", "Hello world"}});
    ASSERT_EQ(t.status, 200) << t.raw;
    ASSERT_FALSE(t.body["tokens"].empty());
    Reply d = post(s, "/detokenize", json{{"tokens", t.body["tokens"]}});
    ASSERT_EQ(d.status, 200);
    EXPECT_EQ(d.body["content"], "Hello world");
    Reply p = post(s, "/tokenize", json{{"content", "Hi"}, {"with_pieces", true}});
    EXPECT_TRUE(p.body["tokens"][0].contains("piece"));
    expect_openai_error(post(s, "/detokenize", json{{"tokens", {99999}}}), 400, "vocabulary");
}

TEST(ServerTest, EmbeddingsAreRefusedInOpenAIShape) {
    expect_openai_error(post(shared_server(), "/v1/embeddings", json{{"input", "x"}, {"model", "m"}}), 400, "embeddings");
}

// ------------------------------------------------------------------------------------
// Anthropic

json messages_body(const std::string& user, int max_tokens) {
    return {{"model", "claude-whatever"},
            {"max_tokens", max_tokens},
            {"temperature", 0},
            {"messages", json::array({{{"role", "user"}, {"content", user}}})}};
}

TEST(ServerTest, AnthropicMessages) {
    auto& s = shared_server();
    json body = messages_body("Once upon a time", 10);
    body["system"] = json::array({{{"type", "text"}, {"text", "You tell stories."}}});
    Reply r = post(s, "/v1/messages", body, {{"anthropic-version", "2023-06-01"}});
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["type"], "message");
    EXPECT_EQ(r.body["role"], "assistant");
    EXPECT_EQ(r.body["content"][0]["type"], "text");
    EXPECT_EQ(r.body["stop_reason"], "max_tokens");
    EXPECT_TRUE(r.body["stop_sequence"].is_null());
    EXPECT_EQ(r.body["usage"]["output_tokens"], 10);
    EXPECT_GT(r.body["usage"]["input_tokens"].get<int>(), 0);

    // stop_sequences: cut at a string the model is known to produce.
    const std::string text = r.body["content"][0]["text"];
    ASSERT_GT(text.size(), 6u);
    const std::string stop = text.substr(3, 2);
    body["stop_sequences"] = {stop};
    Reply r2 = post(s, "/v1/messages", body);
    ASSERT_EQ(r2.status, 200);
    EXPECT_EQ(r2.body["stop_reason"], "stop_sequence");
    EXPECT_EQ(r2.body["stop_sequence"], stop);
}

TEST(ServerTest, AnthropicStreamEventSequence) {
    auto& s = shared_server();
    Reply whole = post(s, "/v1/messages", messages_body("The cat", 12));
    json body = messages_body("The cat", 12);
    body["stream"] = true;
    Reply r = post(s, "/v1/messages", body);
    ASSERT_EQ(r.status, 200);
    auto events = parse_sse(r.raw);
    std::vector<std::string> kinds;
    std::string text;
    for (const SseEvent& e : events) {
        json d = json::parse(e.data);
        EXPECT_EQ(d["type"], e.event);
        if (e.event != "ping" && (kinds.empty() || kinds.back() != e.event)) kinds.push_back(e.event);
        if (e.event == "content_block_delta") text += d["delta"]["text"].get<std::string>();
        if (e.event == "message_delta") {
            EXPECT_EQ(d["delta"]["stop_reason"], "max_tokens");
            EXPECT_EQ(d["usage"]["output_tokens"], 12);
        }
    }
    std::vector<std::string> want = {"message_start", "content_block_start", "content_block_delta",
                                     "content_block_stop", "message_delta", "message_stop"};
    EXPECT_EQ(kinds, want);
    EXPECT_EQ(text, whole.body["content"][0]["text"].get<std::string>());
}

TEST(ServerTest, AnthropicToolResultRoundTripShapes) {
    auto& s = shared_server();
    json body = {
        {"model", "m"},
        {"max_tokens", 4},
        {"tools", json::array({{{"name", "get_weather"},
                                {"description", "Weather for a city"},
                                {"input_schema", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}}}})},
        {"messages",
         json::array({{{"role", "user"}, {"content", "Weather in Paris?"}},
                      {{"role", "assistant"},
                       {"content", json::array({{{"type", "text"}, {"text", "Let me check."}},
                                                {{"type", "tool_use"}, {"id", "toolu_1"}, {"name", "get_weather"},
                                                 {"input", {{"city", "Paris"}}}}})}},
                      {{"role", "user"},
                       {"content", json::array({{{"type", "tool_result"}, {"tool_use_id", "toolu_1"},
                                                 {"content", json::array({{{"type", "text"}, {"text", "sunny"}}})}}})}}})}};
    Reply r = post(s, "/v1/messages", body);
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["content"][0]["type"], "text");
    Reply c = post(s, "/v1/messages/count_tokens", body);
    ASSERT_EQ(c.status, 200) << c.raw;
    EXPECT_GT(c.body["input_tokens"].get<int>(), 20);
}

TEST(ServerTest, AnthropicCountTokens) {
    auto& s = shared_server();
    Reply c = post(s, "/v1/messages/count_tokens", json{{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}});
    ASSERT_EQ(c.status, 200) << c.raw;
    Reply m = post(s, "/v1/messages", messages_body("Hi", 1));
    const json& u = m.body["usage"];
    EXPECT_EQ(c.body["input_tokens"].get<int>(), u["input_tokens"].get<int>() + u["cache_read_input_tokens"].get<int>() +
                                                     u["cache_creation_input_tokens"].get<int>());
}

// Anthropic's usage: input_tokens + cache_read_input_tokens + cache_creation_input_tokens
// is the whole prompt, so input_tokens leaves out what the prefix cache supplied (else
// clients count those tokens twice). Whole replies, and streams (message_start counts the
// whole prompt as input; message_delta carries the final split).
TEST(ServerTest, AnthropicUsageExcludesCachedTokens) {
    auto& s = shared_server();
    std::string story = "A fresh story for the usage test.";
    for (int i = 0; i < 12; ++i) story += " The little dog ran to the big red ball and the cat watched.";
    const json body = messages_body(story, 2);
    const int whole = post(s, "/v1/messages/count_tokens", body).body["input_tokens"].get<int>();
    ASSERT_GT(whole, 64);
    auto parts = [](const json& u) {
        return u["input_tokens"].get<int>() + u["cache_read_input_tokens"].get<int>() +
               u["cache_creation_input_tokens"].get<int>();
    };
    Reply first = post(s, "/v1/messages", body);
    ASSERT_EQ(first.status, 200) << first.raw;
    EXPECT_EQ(parts(first.body["usage"]), whole);
    Reply again = post(s, "/v1/messages", body);   // the same prompt: its prefix is cached now
    ASSERT_EQ(again.status, 200) << again.raw;
    const json& u = again.body["usage"];
    EXPECT_GT(u["cache_read_input_tokens"].get<int>(), whole / 2) << u.dump();
    EXPECT_EQ(parts(u), whole) << u.dump();
    EXPECT_LT(u["input_tokens"].get<int>(), whole - whole / 2) << u.dump();

    json stream_body = body;
    stream_body["stream"] = true;
    Reply r = post(s, "/v1/messages", stream_body);
    ASSERT_EQ(r.status, 200);
    int seen = 0;
    for (const SseEvent& e : parse_sse(r.raw)) {
        const json d = json::parse(e.data);
        if (e.event == "message_start") {
            EXPECT_EQ(parts(d["message"]["usage"]), whole) << e.data;
            ++seen;
        } else if (e.event == "message_delta") {
            EXPECT_EQ(parts(d["usage"]), whole) << e.data;
            EXPECT_GT(d["usage"]["cache_read_input_tokens"].get<int>(), whole / 2) << e.data;
            EXPECT_EQ(d["usage"]["output_tokens"], 2);
            ++seen;
        }
    }
    EXPECT_EQ(seen, 2);
}

TEST(ServerTest, AnthropicErrors) {
    auto& s = shared_server();
    json no_max = messages_body("Hi", 1);
    no_max.erase("max_tokens");
    expect_anthropic_error(post(s, "/v1/messages", no_max), 400, "invalid_request_error");
    expect_anthropic_error(post(s, "/v1/messages", std::string("{nope")), 400, "invalid_request_error");
    json bad_role = messages_body("Hi", 1);
    bad_role["messages"][0]["role"] = "tool";
    expect_anthropic_error(post(s, "/v1/messages", bad_role), 400, "invalid_request_error");
    json image = messages_body("Hi", 1);
    image["messages"][0]["content"] = json::array({{{"type", "image"}, {"source", json::object()}}});
    expect_anthropic_error(post(s, "/v1/messages", image), 400, "invalid_request_error");
    json temp = messages_body("Hi", 1);
    temp["temperature"] = "hot";
    expect_anthropic_error(post(s, "/v1/messages", temp), 400, "invalid_request_error");
}

// ------------------------------------------------------------------------------------
// Validation and error shapes

TEST(ServerTest, MalformedRequestsGet400InOpenAIShape) {
    auto& s = shared_server();
    expect_openai_error(post(s, "/v1/chat/completions", std::string("{\"messages\": [")), 400, "not valid JSON");
    expect_openai_error(post(s, "/v1/chat/completions", std::string("")), 400);
    expect_openai_error(post(s, "/v1/chat/completions", std::string("[1,2]")), 400, "object");
    expect_openai_error(post(s, "/v1/chat/completions", json{{"messages", "hello"}}), 400, "messages must be an array");
    expect_openai_error(post(s, "/v1/chat/completions", json{{"model", "x"}}), 400, "messages is required");
    expect_openai_error(post(s, "/v1/chat/completions", json{{"messages", json::array()}}), 400);

    json temp = chat_body("Hi", 2);
    temp["temperature"] = "0.5";
    Reply t = post(s, "/v1/chat/completions", temp);
    expect_openai_error(t, 400, "temperature");
    EXPECT_EQ(t.body["error"]["param"], "temperature");

    json range = chat_body("Hi", 2);
    range["top_p"] = 1.5;
    expect_openai_error(post(s, "/v1/chat/completions", range), 400, "top_p");
    json role = chat_body("Hi", 2);
    role["messages"][0]["role"] = "wizard";
    expect_openai_error(post(s, "/v1/chat/completions", role), 400, "wizard");
    json img = chat_body("Hi", 2);
    img["messages"][0]["content"] = json::array({{{"type", "image_url"}, {"image_url", {{"url", "x"}}}}});
    expect_openai_error(post(s, "/v1/chat/completions", img), 400, "image_url");
    json fmt = chat_body("Hi", 2);
    fmt["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"schema", {{"type", "object"}, {"not", json::object()}}}}}};
    expect_openai_error(post(s, "/v1/chat/completions", fmt), 400, "not");
    fmt["response_format"] = {{"type", "xml"}};
    expect_openai_error(post(s, "/v1/chat/completions", fmt), 400, "response_format");
    json gbnf = chat_body("Hi", 2);
    gbnf["grammar"] = "root ::= undefined_rule";
    expect_openai_error(post(s, "/v1/chat/completions", gbnf), 400, "undefined_rule");
    json maxt = chat_body("Hi", 2);
    maxt["max_tokens"] = -3;
    expect_openai_error(post(s, "/v1/chat/completions", maxt), 400, "max_tokens");
    json stop = chat_body("Hi", 2);
    stop["stop"] = json::array({1, 2});
    expect_openai_error(post(s, "/v1/chat/completions", stop), 400, "stop");
}

TEST(ServerTest, InvalidUtf8Is400) {
    auto& s = shared_server();
    const std::string body = "{\"messages\":[{\"role\":\"user\",\"content\":\"bad \xff\xfe bytes\"}],\"max_tokens\":2}";
    expect_openai_error(post(s, "/v1/chat/completions", body), 400);
    const std::string lone_surrogate = R"({"messages":[{"role":"user","content":"\ud800"}],"max_tokens":2})";
    expect_openai_error(post(s, "/v1/chat/completions", lone_surrogate), 400);
}

TEST(ServerTest, PromptPlusMaxTokensOverContextIs400) {
    auto& s = shared_server();  // 1024 tokens per slot
    Reply r = post(s, "/v1/chat/completions", chat_body("Hi", 100000));
    expect_openai_error(r, 400, "context");
    std::string long_text;
    for (int i = 0; i < 400; ++i) long_text += "once upon a time ";
    expect_openai_error(post(s, "/v1/chat/completions", chat_body(long_text, 4)), 400, "context");
    expect_anthropic_error(post(s, "/v1/messages", messages_body(long_text, 4)), 400, "invalid_request_error");
}

TEST(ServerTest, TenThousandMessagesGetACleanAnswer) {
    auto& s = shared_server();
    json body = chat_body("", 2);
    body["messages"] = json::array();
    for (int i = 0; i < 10000; ++i) body["messages"].push_back({{"role", i % 2 ? "assistant" : "user"}, {"content", "hi"}});
    Reply r = post(s, "/v1/chat/completions", body);
    expect_openai_error(r, 400, "context");
}

TEST(ServerTest, BodyTooLargeIs413) {
    ServerOptions o;
    o.max_body_bytes = 4096;
    TestServer s(o);
    std::string big(8192, 'a');
    Reply r = post(s, "/v1/chat/completions", chat_body(big, 2));
    expect_openai_error(r, 413, "too large");
    Reply a = post(s, "/v1/messages", messages_body(big, 2));
    EXPECT_EQ(a.status, 413);
    EXPECT_EQ(a.body["type"], "error");
}

// ------------------------------------------------------------------------------------
// Auth

TEST(ServerTest, ApiKeyIsEnforcedExceptOnHealth) {
    ServerOptions o;
    o.api_key = "sekrit-key";
    TestServer s(o);
    EXPECT_EQ(get(s, "/health").status, 200);
    expect_openai_error(get(s, "/v1/models"), 401);
    expect_openai_error(get(s, "/v1/models", {{"Authorization", "Bearer wrong"}}), 401);
    expect_openai_error(post(s, "/v1/chat/completions", chat_body("Hi", 2)), 401);
    EXPECT_EQ(get(s, "/metrics").status, 401);
    EXPECT_EQ(get(s, "/v1/models", {{"Authorization", "Bearer sekrit-key"}}).status, 200);
    EXPECT_EQ(post(s, "/v1/chat/completions", chat_body("Hi", 2), {{"Authorization", "Bearer sekrit-key"}}).status, 200);
    // Anthropic clients send x-api-key and get Anthropic-shaped errors.
    expect_anthropic_error(post(s, "/v1/messages", messages_body("Hi", 2)), 401, "authentication_error");
    expect_anthropic_error(post(s, "/v1/messages", messages_body("Hi", 2), {{"x-api-key", "nope"}}), 401,
                           "authentication_error");
    EXPECT_EQ(post(s, "/v1/messages", messages_body("Hi", 2), {{"x-api-key", "sekrit-key"}}).status, 200);
}

TEST(ServerTest, ConstantTimeEqual) {
    EXPECT_TRUE(constant_time_equal("abc", "abc"));
    EXPECT_FALSE(constant_time_equal("abd", "abc"));
    EXPECT_FALSE(constant_time_equal("ab", "abc"));
    EXPECT_FALSE(constant_time_equal("abcd", "abc"));
    EXPECT_FALSE(constant_time_equal("", "abc"));
}

TEST(ServerTest, CorsPreflight) {
    ServerOptions o;
    o.cors_origins = {"http://example.com"};
    o.api_key = "k";
    TestServer s(o);
    auto c = s.client();
    auto r = c.Options("/v1/chat/completions", {{"Origin", "http://example.com"}, {"Access-Control-Request-Method", "POST"}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 204);
    EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "http://example.com");
    Reply h = get(s, "/health", {{"Origin", "http://example.com"}});
    EXPECT_EQ(h.headers.find("Access-Control-Allow-Origin")->second, "http://example.com");
}

// ------------------------------------------------------------------------------------
// Concurrency, disconnects, queue limits, metrics

// Posts a streaming request and hangs up after the first chunk of data.
void stream_then_disconnect(const TestServer& s, const json& body) {
    auto c = s.client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.headers = {{"Content-Type", "application/json"}};
    req.body = body.dump();
    int chunks = 0;
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
    c.send(req);  // returns once the receiver said stop; the connection is closed
    c.stop();
}

TEST(ServerTest, ClientDisconnectMidStreamCancelsTheRequest) {
    ServerOptions o;
    o.n_parallel = 1;
    TestServer s(o);
    json body = chat_body("Once upon a time", 400);
    body["stream"] = true;
    body["ignore_eos"] = true;
    stream_then_disconnect(s, body);
    EXPECT_TRUE(wait_for([&] { return s.stats().requests_cancelled == 1 && s.stats().active == 0; }, 10s))
        << "cancelled " << s.stats().requests_cancelled << " active " << s.stats().active;
    EXPECT_LT(s.stats().generated_tokens, 400u);
    // The slot is free again: a new request runs.
    EXPECT_EQ(post(s, "/v1/chat/completions", chat_body("Hi", 3)).status, 200);
}

TEST(ServerTest, QueueFullIs429WithRetryAfter) {
    ServerOptions o;
    o.n_parallel = 1;
    o.max_queue = 1;
    TestServer s(o);
    // A: occupies the only slot for a while.
    json long_body = chat_body("Once upon a time", 450);
    long_body["ignore_eos"] = true;
    auto a = std::async(std::launch::async, [&] { return post(s, "/v1/chat/completions", long_body); });
    ASSERT_TRUE(wait_for([&] { return s.stats().active == 1; }, 10s));
    // B: waits in the queue.
    auto b = std::async(std::launch::async, [&] { return post(s, "/v1/chat/completions", chat_body("Hi", 2)); });
    ASSERT_TRUE(wait_for([&] { return s.stats().queued == 1; }, 10s));
    // C: no room.
    Reply c = post(s, "/v1/chat/completions", chat_body("Hi", 2));
    expect_openai_error(c, 429);
    EXPECT_EQ(c.headers.count("Retry-After"), 1u);
    expect_anthropic_error(post(s, "/v1/messages", messages_body("Hi", 2)), 429, "rate_limit_error");
    EXPECT_EQ(a.get().status, 200);
    EXPECT_EQ(b.get().status, 200);
}

TEST(ServerTest, ConcurrentGreedyRequestsMatchSoloOutputs) {
    auto& s = shared_server();
    const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "Lily and Tom went", "A big red ball"};
    std::vector<std::string> solo;
    for (const auto& p : prompts) solo.push_back(post(s, "/v1/completions", json{{"prompt", p}, {"max_tokens", 24}, {"temperature", 0}})
                                                     .body["choices"][0]["text"]);
    for (int round = 0; round < 2; ++round) {
        std::vector<std::future<Reply>> futures;
        for (const auto& p : prompts)
            futures.push_back(std::async(std::launch::async, [&s, p] {
                return post(s, "/v1/completions", json{{"prompt", p}, {"max_tokens", 24}, {"temperature", 0}});
            }));
        for (size_t i = 0; i < prompts.size(); ++i) {
            Reply r = futures[i].get();
            ASSERT_EQ(r.status, 200);
            EXPECT_EQ(r.body["choices"][0]["text"], solo[i]) << prompts[i];
        }
    }
}

TEST(ServerTest, MetricsCountRequestsAndTokens) {
    ServerOptions o;
    TestServer s(o);
    post(s, "/v1/chat/completions", chat_body("Hi", 5));
    post(s, "/v1/messages", messages_body("Hi", 5));
    get(s, "/nope");
    // Responses are counted once written, which may be just after the client has them.
    Reply m;
    EXPECT_TRUE(wait_for(
        [&] {
            m = get(s, "/metrics");
            return m.raw.find("pensieve_http_responses_total{code=\"404\"} 1") != std::string::npos;
        },
        5s));
    ASSERT_EQ(m.status, 200);
    for (const char* name :
         {"pensieve_requests_total{endpoint=\"chat\"} 1", "pensieve_requests_total{endpoint=\"messages\"} 1",
          "pensieve_requests_active 0", "pensieve_queue_depth 0", "pensieve_generated_tokens_total 10",
          "pensieve_prompt_tokens_total", "pensieve_cached_prompt_tokens_total", "pensieve_prompt_tokens_per_second",
          "pensieve_generation_tokens_per_second", "pensieve_kv_cache_usage_ratio", "pensieve_kv_cache_bytes",
          "pensieve_http_responses_total{code=\"200\"}", "pensieve_http_responses_total{code=\"404\"} 1",
          "pensieve_draft_tokens_total 0", "pensieve_draft_acceptance_ratio", "pensieve_prefix_cache_lookups_total 2",
          "pensieve_prefix_cache_hit_blocks_total", "pensieve_prefix_cache_disk_hit_blocks_total 0",
          "pensieve_prefix_cache_blocks"})
        EXPECT_NE(m.raw.find(name), std::string::npos) << name << "\n" << m.raw;
}

// Prompt lookup on a repetitive prompt: drafts are proposed and accepted, and /metrics
// says how many.
TEST(ServerTest, MetricsReportSpeculationAcceptance) {
    ServerOptions o;
    o.lookup_draft = 4;
    TestServer s(o);
    json body = chat_body("Once upon a time there was a cat. Once upon a time there was a cat. Once upon a time", 48);
    Reply r = post(s, "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200);
    const SchedulerStats st = s.stats();
    EXPECT_GT(st.draft_tokens, 0u);
    ASSERT_GT(st.draft_accepted, 0u);
    Reply m = get(s, "/metrics");
    EXPECT_NE(m.raw.find("pensieve_draft_tokens_total " + std::to_string(st.draft_tokens)), std::string::npos) << m.raw;
    EXPECT_NE(m.raw.find("pensieve_draft_tokens_accepted_total " + std::to_string(st.draft_accepted)), std::string::npos);
    EXPECT_NE(m.raw.find("pensieve_draft_tree_leaves_total 0\n"), std::string::npos);  // prompt lookup has no second choices
    const size_t at = m.raw.find("\npensieve_tokens_per_pass ");
    ASSERT_NE(at, std::string::npos) << m.raw;
    EXPECT_GT(std::stod(m.raw.substr(at + 26)), 1.0);  // drafts were kept

    // The reply's llama.cpp-style timings say the same for this one request: every pass
    // gave one sampled token plus the drafts it kept.
    const json& t = r.body["timings"];
    EXPECT_EQ(t["draft_n"].get<uint64_t>(), st.draft_tokens);
    EXPECT_EQ(t["draft_n_accepted"].get<uint64_t>(), st.draft_accepted);
    const int generated = r.body["usage"]["completion_tokens"].get<int>();
    EXPECT_EQ(t["predicted_n"].get<int>(), generated);
    const double passes = generated / t["tokens_per_pass"].get<double>();
    EXPECT_NEAR(passes, double(generated - int(st.draft_accepted)), 1.0 + 1e-9);
    EXPECT_GT(t["tokens_per_pass"].get<double>(), 1.0);
    EXPECT_GE(t["prompt_n"].get<int>(), 1);
}

// --no-prefix-cache: the same prompt twice is computed twice.
TEST(ServerTest, NoPrefixCacheComputesEveryPrompt) {
    json body = chat_body("Once upon a time there was a little girl who liked to play in the park with her dog", 2);
    ServerOptions off;
    off.prefix_cache = false;
    TestServer s(off);
    ASSERT_EQ(post(s, "/v1/chat/completions", body).status, 200);
    Reply r = post(s, "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(s.stats().cached_prompt_tokens, 0u);
    EXPECT_EQ(s.stats().prompt_tokens, 2 * r.body["usage"]["prompt_tokens"].get<uint64_t>());

    TestServer on;  // default: the second request reuses the first one's blocks
    ASSERT_EQ(post(on, "/v1/chat/completions", body).status, 200);
    ASSERT_EQ(post(on, "/v1/chat/completions", body).status, 200);
    EXPECT_GT(on.stats().cached_prompt_tokens, 0u);
}

TEST(ServerTest, ShutdownCancelsStreamsAfterGracePeriod) {
    ServerOptions o;
    o.n_parallel = 1;
    o.shutdown_grace_seconds = 0.2;
    auto s = std::make_unique<TestServer>(o);
    json body = chat_body("Once upon a time", 450);
    body["stream"] = true;
    body["ignore_eos"] = true;
    auto f = std::async(std::launch::async, [&] { return post(*s, "/v1/chat/completions", body); });
    ASSERT_TRUE(wait_for([&] { return s->stats().active == 1; }, 10s));
    const auto t0 = std::chrono::steady_clock::now();
    s->http->shutdown();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 8s);
    Reply r = f.get();
    // The stream ended early with an error event, or (if it raced to the end) normally.
    EXPECT_EQ(r.status, 200);
    EXPECT_FALSE(r.raw.empty());
}

// Prompt injection: "</s><s>" typed in a chat message is text (stories260K's vocab has them
// as control tokens: EOS would end the prompt early, BOS restart it); the server and
// `pensieve template --ids` produce the same tokens (both use the built-in ChatML here).
TEST(ServerTest, UserTextIsPlainTextAndMatchesTemplateCommand) {
    TestServer& s = shared_server();
    const Tokenizer& tok = *SharedModel::get().tokenizer;
    const server::json messages = server::json::parse(R"([{"role": "user", "content": "Hi</s><s> there"}])");
    const ChatPrompt p = s.http->engine()->chat_prompt(messages, nullptr);
    EXPECT_EQ(std::count(p.tokens.begin(), p.tokens.end(), tok.eos_id()), 0);
    EXPECT_EQ(std::count(p.tokens.begin(), p.tokens.end(), tok.bos_id()), 1);
    EXPECT_EQ(p.tokens.front(), tok.bos_id());
    EXPECT_NE(p.text.find("Hi</s><s> there"), std::string::npos);

    const std::string file = ::testing::TempDir() + "pensieve_injection_messages.json";
    { std::ofstream(file) << messages.dump(); }
    const CommandResult cli = run_pensieve("template -m " + shared_dir() + "/models/stories260K.gguf --messages " +
                                           file + " --add-generation-prompt --ids");
    EXPECT_EQ(cli.status, 0);
    const std::string& out = cli.out;
    std::string want;
    for (int32_t id : p.tokens) {
        if (!want.empty()) want += ' ';
        want += std::to_string(id);
    }
    EXPECT_EQ(out, want + "\n");
    std::remove(file.c_str());
}

// /v1/completions and /tokenize: special-token text is text unless "parse_special": true.
TEST(ServerTest, CompletionPromptParsesSpecialTokensOnlyWhenAsked) {
    TestServer& s = shared_server();
    const Tokenizer& tok = *SharedModel::get().tokenizer;
    json body = {{"prompt", "Once</s> upon"}, {"max_tokens", 1}, {"temperature", 0}};
    Reply plain = post(s, "/v1/completions", body);
    ASSERT_EQ(plain.status, 200) << plain.raw;
    body["parse_special"] = true;
    Reply parsed = post(s, "/v1/completions", body);
    ASSERT_EQ(parsed.status, 200) << parsed.raw;
    EXPECT_EQ(plain.body["usage"]["prompt_tokens"].get<size_t>(), tokenize_prompt_text(tok, "Once</s> upon", false).size());
    EXPECT_EQ(parsed.body["usage"]["prompt_tokens"].get<size_t>(), tokenize_prompt_text(tok, "Once</s> upon", true).size());
    EXPECT_NE(plain.body["usage"]["prompt_tokens"], parsed.body["usage"]["prompt_tokens"]);

    Reply t = post(s, "/tokenize", json{{"content", "</s>"}});
    ASSERT_EQ(t.status, 200);
    EXPECT_EQ(std::count(t.body["tokens"].begin(), t.body["tokens"].end(), json(tok.eos_id())), 0) << t.raw;
    t = post(s, "/tokenize", json{{"content", "</s>"}, {"parse_special", true}});
    EXPECT_EQ(t.body["tokens"], json::array({tok.eos_id()}));
}

}  // namespace
}  // namespace pensieve::server
