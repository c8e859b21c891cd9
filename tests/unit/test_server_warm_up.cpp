// --record-requests / --warm-cache (server/warm_up.h) and the progress of long prompts
// (Scheduler's on_prefill_progress, /metrics pensieve_prompt_tokens_pending).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "drain_stream.h"
#include "server/warm_up.h"
#include "server_harness.h"
#include "util/error.h"

namespace pensieve::test_server {
namespace {

namespace fs = std::filesystem;
using server::WarmUpRequest;

std::string temp_file(const std::string& name, const std::string& text = "") {
    const fs::path p = fs::temp_directory_path() / ("pensieve-warm-" + std::to_string(getpid()) + "-" + name);
    std::ofstream(p) << text;
    return p.string();
}

std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

TEST(WarmUpFile, ReadsRecordedLinesAndBareChatBodies) {
    const std::string f = temp_file("read.jsonl",
                                    "{\"path\":\"/v1/messages\",\"body\":{\"max_tokens\":5,\"messages\":[]}}\n"
                                    "\n"
                                    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n");
    const std::vector<WarmUpRequest> r = server::read_warm_up_file(f);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0].path, "/v1/messages");
    EXPECT_EQ(r[0].body["max_tokens"], 5);
    EXPECT_EQ(r[1].path, "/v1/chat/completions");
    EXPECT_EQ(r[1].body["messages"][0]["content"], "hi");
    fs::remove(f);
}

TEST(WarmUpFile, BadLinesAreNamed) {
    const std::string not_json = temp_file("bad1.jsonl", "{\"messages\":[]}\n{oops\n");
    EXPECT_THROW(
        try { server::read_warm_up_file(not_json); } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("line 2: not JSON"), std::string::npos) << e.what();
            throw;
        },
        Error);
    const std::string bad_path = temp_file("bad2.jsonl", "{\"path\":\"/health\",\"body\":{}}\n");
    EXPECT_THROW(server::read_warm_up_file(bad_path), Error);
    const std::string not_object = temp_file("bad3.jsonl", "[1,2]\n");
    EXPECT_THROW(server::read_warm_up_file(not_object), Error);
    EXPECT_THROW(server::read_warm_up_file("/nonexistent/warm.jsonl"), Error);
    for (const auto& f : {not_json, bad_path, not_object}) fs::remove(f);
}

TEST(WarmUpFile, BodiesAreCutToOneTokenNotStreamedNotStored) {
    const ::pensieve::json chat = server::one_token_body(
        "/v1/chat/completions", {{"stream", true}, {"max_completion_tokens", 900}, {"n", 3}, {"stream_options", {}}});
    EXPECT_EQ(chat["stream"], false);
    EXPECT_EQ(chat["max_tokens"], 1);
    EXPECT_EQ(chat["n"], 1);
    EXPECT_FALSE(chat.contains("max_completion_tokens"));
    EXPECT_FALSE(chat.contains("stream_options"));
    const ::pensieve::json msg = server::one_token_body("/v1/messages", {{"stream", true}, {"max_tokens", 4096}});
    EXPECT_EQ(msg["max_tokens"], 1);
    EXPECT_FALSE(msg.contains("n"));
    const ::pensieve::json resp =
        server::one_token_body("/v1/responses", {{"max_output_tokens", 50}, {"previous_response_id", "resp_x"}});
    EXPECT_EQ(resp["max_output_tokens"], 1);
    EXPECT_EQ(resp["store"], false);
    EXPECT_FALSE(resp.contains("previous_response_id"));
}

TEST(WarmUpFile, PromptUsageInEveryDialect) {
    auto openai = server::prompt_usage({{"usage", {{"prompt_tokens", 90}, {"prompt_tokens_details", {{"cached_tokens", 80}}}}}});
    EXPECT_EQ(openai.prompt, 90);
    EXPECT_EQ(openai.cached, 80);
    auto anthropic = server::prompt_usage({{"usage", {{"input_tokens", 10}, {"cache_read_input_tokens", 80}}}});
    EXPECT_EQ(anthropic.prompt, 90);
    EXPECT_EQ(anthropic.cached, 80);
    auto responses = server::prompt_usage({{"usage", {{"input_tokens", 90}, {"input_tokens_details", {{"cached_tokens", 64}}}}}});
    EXPECT_EQ(responses.prompt, 90);
    EXPECT_EQ(responses.cached, 64);
}

json long_chat(const std::string& system) {
    json body = chat_body("Tell me a story about a cat.", 4);
    body["messages"].insert(body["messages"].begin(), json{{"role", "system"}, {"content", system}});
    return body;
}

const char* kSystem =
    "You are a helpful assistant who tells short stories to children. Keep every story kind, simple "
    "and happy. Use small words. Lily and Tom are friends who like to play in the park with a ball.";

int cached_tokens(const Reply& r) { return r.body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(); }

// A request recorded by one server warms another: the client's first request there is
// a cache hit. The warm-up's own requests are not recorded again.
TEST(WarmUp, RecordedRequestMakesTheFirstRequestOfANewServerACacheHit) {
    const std::string record = temp_file("record.jsonl");
    fs::remove(record);
    const json body = long_chat(kSystem);
    {
        ServerOptions o;
        o.record_requests = record;
        TestServer s(o);
        const Reply first = post(s, "/v1/chat/completions", body);
        ASSERT_EQ(first.status, 200) << first.raw;
        EXPECT_EQ(cached_tokens(first), 0);
        EXPECT_EQ(post(s, "/health", std::string("{}")).status, 405);  // not a generation route: not recorded
    }
    ASSERT_EQ(lines_of(record).size(), 1u);
    const std::vector<WarmUpRequest> warm = server::read_warm_up_file(record);
    ASSERT_EQ(warm.size(), 1u);
    EXPECT_EQ(warm[0].path, "/v1/chat/completions");
    EXPECT_EQ(json::parse(warm[0].body.dump()), body);

    // A cold server computes the whole prompt...
    {
        TestServer cold;
        EXPECT_EQ(cached_tokens(post(cold, "/v1/chat/completions", body)), 0);
    }
    // ... a warmed one reads all but its last block from the cache.
    ServerOptions o;
    o.record_requests = record;
    TestServer s(o);
    EXPECT_EQ(server::warm_prefix_cache("127.0.0.1", s.port, "", warm), 1);
    const Reply hit = post(s, "/v1/chat/completions", body);
    ASSERT_EQ(hit.status, 200) << hit.raw;
    const int prompt = hit.body["usage"]["prompt_tokens"].get<int>();
    EXPECT_GT(prompt, 48);
    EXPECT_GE(cached_tokens(hit), prompt - 16);
    EXPECT_EQ(lines_of(record).size(), 2u);  // the client's request, not the warm-up's
    fs::remove(record);
}

TEST(WarmUp, FailedRequestsAreSkippedAndKeyIsSent) {
    ServerOptions o;
    o.api_key = "sekrit";
    TestServer s(o);
    const std::vector<WarmUpRequest> warm = {{"/v1/chat/completions", {{"messages", "not a list"}}},
                                             {"/v1/messages", {{"model", "stories260K"}, {"max_tokens", 8},
                                                               {"system", kSystem},
                                                               {"messages", ::pensieve::json::array({{{"role", "user"}, {"content", "Hi"}}})}}}};
    EXPECT_EQ(server::warm_prefix_cache("127.0.0.1", s.port, "sekrit", warm), 1);
    EXPECT_EQ(server::warm_prefix_cache("127.0.0.1", s.port, "wrong", warm), 0);
}

// A long prompt reports its progress while it is read and once at its end; pending
// prompt tokens show in the stats.
TEST(PrefillProgress, LongPromptsReportProgressAndEnd) {
    SharedModel& m = SharedModel::get();
    SchedulerConfig c;
    c.n_slots = 2;
    c.n_ctx = 512;
    c.n_batch = 32;
    c.progress_min_tokens = 100;
    c.progress_seconds = 0;  // every pass
    std::mutex mutex;
    std::vector<PrefillProgress> seen;
    c.on_prefill_progress = [&](const PrefillProgress& p) {
        std::lock_guard<std::mutex> lock(mutex);
        seen.push_back(p);
    };
    Scheduler sched(*m.model, *m.tokenizer, *m.pool, c);
    RequestParams longer, shorter;
    for (int i = 0; i < 300; ++i) longer.prompt.push_back(1 + i % 200);
    for (int i = 0; i < 40; ++i) shorter.prompt.push_back(1 + i);
    longer.options.n_predict = shorter.options.n_predict = 2;
    auto a = sched.submit(longer);
    auto b = sched.submit(shorter);
    testing_support::drain(*a);
    testing_support::drain(*b);
    std::lock_guard<std::mutex> lock(mutex);
    ASSERT_GE(seen.size(), 300u / 32u);  // the short prompt says nothing
    for (size_t i = 0; i < seen.size(); ++i) {
        EXPECT_EQ(seen[i].total, 300);
        EXPECT_EQ(seen[i].finished, i + 1 == seen.size());
        if (i > 0) EXPECT_GT(seen[i].done, seen[i - 1].done);
    }
    EXPECT_EQ(seen.back().done, 300);
    EXPECT_EQ(sched.stats().prompt_tokens_pending, 0);
}

}  // namespace
}  // namespace pensieve::test_server
