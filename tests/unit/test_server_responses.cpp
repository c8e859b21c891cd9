// POST /v1/responses: request parsing (input items -> chat messages, tools, tool_choice,
// text.format, hostile shapes -> 400), the response store's bounds, and the route
// in-process on stories260K (whole, streamed event order, previous_response_id, GET).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server/request_parse.h"
#include "server/response_store.h"
#include "server_harness.h"

namespace pensieve::server {
namespace {

using nlohmann::json;
using namespace pensieve::test_server;

ResponsesRequest parse(const std::string& text) { return parse_responses_request(json::parse(text)); }

void expect_400(const std::string& text, const std::string& needle) {
    try {
        parse(text);
        ADD_FAILURE() << "accepted: " << text;
    } catch (const ApiError& e) {
        EXPECT_EQ(e.status(), 400);
        EXPECT_NE(e.message().find(needle), std::string::npos) << e.message();
    }
}

TEST(ResponsesParse, StringInputIsOneUserMessage) {
    ResponsesRequest r = parse(R"({"model":"m","input":"hello","instructions":"be brief","max_output_tokens":7,
                                   "temperature":0.5,"reasoning":{"effort":"low"},"store":false})");
    ASSERT_EQ(r.input_messages.size(), 1u);
    EXPECT_EQ(r.input_messages[0], pensieve::json({{"role", "user"}, {"content", "hello"}}));
    EXPECT_EQ(r.instructions, "be brief");
    EXPECT_EQ(r.chat.params.options.n_predict, 7);
    EXPECT_FLOAT_EQ(r.chat.params.options.sampling.temperature, 0.5f);
    EXPECT_FALSE(r.store);
    EXPECT_FALSE(r.chat.stream);
    EXPECT_EQ(r.echo["max_output_tokens"], 7);
    EXPECT_EQ(r.echo["instructions"], "be brief");
    EXPECT_EQ(r.echo["store"], false);
}

TEST(ResponsesParse, InputItemsBecomeChatMessages) {
    ResponsesRequest r = parse(R"({"input":[
        {"role":"developer","content":"sys"},
        {"type":"message","role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_text","text":"b"}]},
        {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"think"}]},
        {"type":"message","role":"assistant","id":"msg_1","status":"completed",
         "content":[{"type":"output_text","text":"let me look","annotations":[]}]},
        {"type":"function_call","call_id":"call_1","name":"f","arguments":"{\"x\":1}"},
        {"type":"function_call","call_id":"call_2","name":"g","arguments":"not json"},
        {"type":"function_call_output","call_id":"call_1","output":"42"},
        {"type":"function_call_output","call_id":"call_2","output":[{"type":"input_text","text":"ok"}]}]})");
    const json& m = r.input_messages;
    ASSERT_EQ(m.size(), 5u) << m.dump();
    EXPECT_EQ(m[0], pensieve::json({{"role", "system"}, {"content", "sys"}}));
    EXPECT_EQ(m[1]["content"], "a\nb");
    EXPECT_EQ(m[2]["role"], "assistant");
    EXPECT_EQ(m[2]["content"], "let me look");
    EXPECT_EQ(m[2]["reasoning_content"], "think");
    ASSERT_EQ(m[2]["tool_calls"].size(), 2u);  // both calls join the assistant's turn
    EXPECT_EQ(m[2]["tool_calls"][0]["id"], "call_1");
    EXPECT_EQ(m[2]["tool_calls"][0]["function"]["arguments"]["x"], 1);
    EXPECT_EQ(m[2]["tool_calls"][1]["function"]["arguments"], "not json");
    EXPECT_EQ(m[3], pensieve::json({{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "42"}}));
    EXPECT_EQ(m[4]["content"], "ok");
}

TEST(ResponsesParse, CallWithoutAssistantTextOpensAnAssistantMessage) {
    ResponsesRequest r = parse(R"({"input":[{"role":"user","content":"q"},
        {"type":"function_call","call_id":"c","name":"f","arguments":"{}"},
        {"type":"function_call_output","call_id":"c","output":"r"}]})");
    ASSERT_EQ(r.input_messages.size(), 3u);
    EXPECT_TRUE(r.input_messages[1]["content"].is_null());
    EXPECT_EQ(r.input_messages[1]["tool_calls"][0]["function"]["name"], "f");
}

TEST(ResponsesParse, FlatToolsToolChoiceAndTextFormat) {
    ResponsesRequest r = parse(R"({"input":"q","tools":[{"type":"function","name":"get_weather","description":"d",
        "parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true}],
        "tool_choice":{"type":"function","name":"get_weather"},
        "text":{"format":{"type":"json_schema","name":"x","schema":{"type":"object","properties":{"a":{"type":"integer"}}}}}})");
    ASSERT_EQ(r.chat.tools.size(), 1u);
    EXPECT_EQ(r.chat.tools[0]["function"]["name"], "get_weather");
    EXPECT_EQ(r.chat.tools[0]["function"]["description"], "d");
    EXPECT_EQ(r.chat.tool_choice, ToolChoice::Named);
    EXPECT_EQ(r.chat.tool_choice_name, "get_weather");
    EXPECT_TRUE(r.chat.params.options.grammar != nullptr);
    EXPECT_EQ(r.echo["tools"][0]["name"], "get_weather");  // echoed in the request's own shape
    EXPECT_EQ(parse(R"({"input":"q","tool_choice":"required"})").chat.tool_choice, ToolChoice::Required);
    EXPECT_TRUE(parse(R"({"input":"q","text":{"format":{"type":"json_object"}}})").chat.params.options.grammar != nullptr);
    EXPECT_TRUE(parse(R"({"input":"q","text":{"format":{"type":"text"}}})").chat.params.options.grammar == nullptr);
}

// Codex CLI groups some function tools in a namespace (multi_agent_v1): they are offered
// one by one; anything but function tools inside is still a 400.
TEST(ResponsesParse, NamespaceToolsAreFlattened) {
    ResponsesRequest r = parse(R"({"input":"q","tools":[{"type":"function","name":"a","parameters":{"type":"object"}},
        {"type":"namespace","name":"ns","description":"d","tools":[{"type":"function","name":"b","parameters":{"type":"object"}},
        {"type":"function","name":"c"}]}]})");
    ASSERT_EQ(r.chat.tools.size(), 3u);
    EXPECT_EQ(r.chat.tools[1]["function"]["name"], "b");
    EXPECT_EQ(r.chat.tools[2]["function"]["name"], "c");
    expect_400(R"({"input":"q","tools":[{"type":"namespace","name":"ns"}]})", "tools[0].tools must be an array");
    expect_400(R"({"input":"q","tools":[{"type":"namespace","name":"ns","tools":[{"type":"web_search"}]}]})",
               "tools[0].tools[0]: tool type \"web_search\"");
}

TEST(ResponsesParse, HostileShapesAre400s) {
    expect_400(R"({"model":"m"})", "input is required");
    expect_400(R"({"input":5})", "input must be a string or an array");
    expect_400(R"({"input":[]})", "at least one");
    expect_400(R"({"input":[7]})", "input[0] must be an object");
    expect_400(R"({"input":[{"type":"computer_call"}]})", "\"computer_call\" is not supported");
    expect_400(R"({"input":[{"type":"item_reference","id":"x"}]})", "item_reference");
    expect_400(R"({"input":[{"role":"tool","content":"x"}]})", "role \"tool\"");
    expect_400(R"({"input":[{"role":"user"}]})", "content is required");
    expect_400(R"({"input":[{"role":"user","content":{"a":1}}]})", "must be a string or an array of content parts");
    expect_400(R"({"input":[{"role":"user","content":[{"type":"input_image","image_url":"x"}]}]})", "text only");
    expect_400(R"({"input":[{"role":"user","content":[{"type":"bogus"}]}]})", "unknown content part type");
    expect_400(R"({"input":[{"role":"user","content":[{"type":"input_text","text":3}]}]})", "text must be a string");
    expect_400(R"({"input":[{"type":"function_call","name":"f"}]})", "call_id is required");
    expect_400(R"({"input":[{"type":"function_call","call_id":"c","name":"f","arguments":[1]}]})", "arguments must be");
    expect_400(R"({"input":[{"type":"function_call_output","call_id":"c"}]})", "output is required");
    expect_400(R"({"input":[{"type":"reasoning","summary":"x"}]})", "summary must be an array");
    expect_400(R"({"input":"q","tools":[{"type":"web_search"}]})", "tool type \"web_search\"");
    expect_400(R"({"input":"q","tools":{"type":"function"}})", "tools must be an array");
    expect_400(R"({"input":"q","tools":[{"type":"function","name":"f","parameters":"x"}]})", "parameters must be an object");
    expect_400(R"({"input":"q","tool_choice":"sometimes"})", "tool_choice must be");
    expect_400(R"({"input":"q","tool_choice":{"type":"function","name":"nope"}})", "not in tools");
    expect_400(R"({"input":"q","tool_choice":{"type":"file_search"}})", "hosted tools");
    expect_400(R"({"input":"q","text":{"format":{"type":"json_schema"}}})", "schema is required");
    expect_400(R"({"input":"q","text":{"format":{"type":"xml"}}})", "response_format.type");
    expect_400(R"({"input":"q","text":"plain"})", "text must be an object");
    expect_400(R"({"input":"q","max_output_tokens":0})", "max_output_tokens");
    expect_400(R"({"input":"q","temperature":"hot"})", "temperature");
    expect_400(R"({"input":"q","instructions":5})", "instructions must be a string");
    expect_400(R"({"input":"q","previous_response_id":1})", "previous_response_id must be a string");
    expect_400(R"({"input":"q","store":"yes"})", "store must be a boolean");
    expect_400(R"({"input":"q","stream":1})", "stream must be a boolean");
    expect_400(R"({"input":"q","background":true})", "background");
    expect_400(R"({"input":"q","reasoning":"high"})", "reasoning must be an object");
    expect_400(R"({"input":"q","model":3})", "model must be a string");
}

TEST(ResponseStore, EvictsLeastRecentlyUsedByCountAndBytes) {
    ResponseStore store(2, 100);
    store.put("a", {json::array(), json::object()}, 10);
    store.put("b", {json::array(), json::object()}, 10);
    ASSERT_TRUE(store.get("a"));  // a is now the most recent
    store.put("c", {json::array(), json::object()}, 10);
    EXPECT_TRUE(store.get("a"));
    EXPECT_FALSE(store.get("b"));
    EXPECT_TRUE(store.get("c"));
    store.put("d", {json::array(), json::object()}, 95);  // over the byte bound with any other
    EXPECT_EQ(store.size(), 1u);
    EXPECT_TRUE(store.get("d"));
    store.put("huge", {json::array(), json::object()}, 101);  // bigger than the store: not kept
    EXPECT_FALSE(store.get("huge"));
    EXPECT_TRUE(store.erase("d"));
    EXPECT_EQ(store.size(), 0u);
}

json responses_body(const std::string& input, int max_output_tokens) {
    return {{"model", "stories260K"}, {"input", input}, {"max_output_tokens", max_output_tokens}, {"temperature", 0}};
}

TEST(ResponsesRoute, WholeAndStreamedAgree) {
    auto& s = shared_server();
    Reply r = post(s, "/v1/responses", responses_body("Once upon a time", 8));
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["object"], "response");
    EXPECT_EQ(r.body["id"].get<std::string>().rfind("resp_", 0), 0u);
    EXPECT_EQ(r.body["status"], "incomplete");
    EXPECT_EQ(r.body["incomplete_details"]["reason"], "max_output_tokens");
    EXPECT_EQ(r.body["usage"]["output_tokens"], 8);
    EXPECT_EQ(r.body["usage"]["total_tokens"],
              r.body["usage"]["input_tokens"].get<int>() + r.body["usage"]["output_tokens"].get<int>());
    ASSERT_EQ(r.body["output"].size(), 1u);
    const json& msg = r.body["output"][0];
    EXPECT_EQ(msg["type"], "message");
    EXPECT_EQ(msg["role"], "assistant");
    EXPECT_EQ(msg["status"], "incomplete");  // cut by max_output_tokens, like the response
    const std::string text = msg["content"][0]["text"];
    EXPECT_FALSE(text.empty());

    json body = responses_body("Once upon a time", 8);
    body["stream"] = true;
    Reply st = post(s, "/v1/responses", body);
    ASSERT_EQ(st.status, 200);
    std::vector<SseEvent> events = parse_sse(st.raw);
    ASSERT_GE(events.size(), 8u) << st.raw;
    std::vector<std::string> types;
    std::string streamed;
    for (size_t i = 0; i < events.size(); ++i) {
        const json d = json::parse(events[i].data);
        EXPECT_EQ(d["type"], events[i].event);
        EXPECT_EQ(d["sequence_number"], i);
        if (types.empty() || types.back() != events[i].event) types.push_back(events[i].event);
        if (d["type"] == "response.output_text.delta") streamed += d["delta"].get<std::string>();
    }
    const std::vector<std::string> expected = {
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.incomplete"};
    EXPECT_EQ(types, expected);
    EXPECT_EQ(streamed, text);
    const json last = json::parse(events.back().data);
    EXPECT_EQ(last["response"]["output"][0]["content"][0]["text"], text);
    EXPECT_EQ(last["response"]["output"][0]["status"], "incomplete");
}

TEST(ResponsesRoute, PreviousResponseContinuesTheConversation) {
    auto& s = shared_server();
    Reply first = post(s, "/v1/responses", responses_body("Once upon a time", 4));
    ASSERT_EQ(first.status, 200) << first.raw;
    const std::string id = first.body["id"];
    json body = responses_body("and then", 4);
    body["previous_response_id"] = id;
    Reply second = post(s, "/v1/responses", body);
    ASSERT_EQ(second.status, 200) << second.raw;
    EXPECT_EQ(second.body["previous_response_id"], id);
    // The stored turn is in the prompt: more input tokens than the first and its reply.
    EXPECT_GT(second.body["usage"]["input_tokens"].get<int>(),
              first.body["usage"]["input_tokens"].get<int>() + 4);
    Reply got = get(s, "/v1/responses/" + id);
    ASSERT_EQ(got.status, 200);
    EXPECT_EQ(got.body, first.body);

    body["previous_response_id"] = "resp_nope";
    expect_openai_error(post(s, "/v1/responses", body), 404, "resp_nope");
    expect_openai_error(get(s, "/v1/responses/resp_nope"), 404);
    json unstored = responses_body("x", 2);
    unstored["store"] = false;
    Reply u = post(s, "/v1/responses", unstored);
    ASSERT_EQ(u.status, 200);
    expect_openai_error(get(s, "/v1/responses/" + u.body["id"].get<std::string>()), 404);
}

TEST(ResponsesRoute, BadRequestsGetOpenAIErrors) {
    auto& s = shared_server();
    expect_openai_error(post(s, "/v1/responses", std::string("{")), 400);
    expect_openai_error(post(s, "/v1/responses", json{{"input", json::array({{{"type", "nope"}}})}}), 400, "nope");
    expect_openai_error(post(s, "/responses", json{{"input", 3}}), 400, "input");
}

}  // namespace
}  // namespace pensieve::server
