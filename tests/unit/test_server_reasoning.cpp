// Reasoning and model-specific tool-call syntaxes through the HTTP routes. The server
// runs stories260K with a real model family's chat template (as --chat-template-file
// gives it), and each request's `grammar` makes the model write exactly a reply of that
// family (reasoning markers, harmony channels, XML calls), one small token at a time, so
// markers arrive split across tokens. Checked: OpenAI `reasoning_content` (whole and
// streamed as delta.reasoning_content), Anthropic `thinking` blocks (whole and streamed
// as thinking_delta events), tool calls, and reasoning sent back in the history reaching
// the template. ~2 s.
#include <gtest/gtest.h>

#include <map>

#include "server_harness.h"

namespace pensieve::server {
namespace {

using namespace pensieve::test_server;
using nlohmann::json;

// One server per template, kept for the whole test binary.
TestServer& server_with(const std::string& template_name) {
    static std::map<std::string, std::unique_ptr<TestServer>> servers;
    std::unique_ptr<TestServer>& s = servers[template_name];
    if (!s) {
        ServerOptions o;
        o.chat_template_source = read_text_file(shared_dir() + "/templates/" + template_name);
        o.n_ctx = 8192;  // some templates' tool instructions are long (Command-R7B: ~4000 tokens here)
        s = std::make_unique<TestServer>(o);
    }
    return *s;
}

// A GBNF grammar whose only sentence is `text`.
std::string exactly(const std::string& text) {
    std::string g = "root ::= \"";
    for (char c : text) {
        if (c == '\n') g += "\\n";
        else if (c == '"' || c == '\\') g.append({'\\', c});
        else g += c;
    }
    return g + "\"\n";
}

json weather_tools() {
    return json::parse(R"([{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City"},
        "days": {"type": "integer", "description": "Days ahead"}}, "required": ["city"]}}}])");
}

json chat(const std::string& reply_text, bool stream) {
    return {{"model", "m"},
            {"messages", json::array({{{"role", "user"}, {"content", "Is 91 prime?"}}})},
            {"max_tokens", 200},
            {"temperature", 0},
            {"grammar", exactly(reply_text)},
            {"stream", stream}};
}

struct Streamed {
    std::string reasoning, content, finish;
    json tool_calls = json::array();
};

Streamed openai_stream(const TestServer& s, const json& body) {
    Reply r = post(s, "/v1/chat/completions", body);
    EXPECT_EQ(r.status, 200) << r.raw;
    Streamed out;
    for (const SseEvent& ev : parse_sse(r.raw)) {
        if (ev.data == "[DONE]") continue;
        const json j = json::parse(ev.data);
        if (j["choices"].empty()) continue;
        const json& d = j["choices"][0]["delta"];
        if (d.contains("reasoning_content")) out.reasoning += d["reasoning_content"].get<std::string>();
        if (d.contains("content") && d["content"].is_string()) out.content += d["content"].get<std::string>();
        if (d.contains("tool_calls"))
            for (const json& c : d["tool_calls"]) out.tool_calls.push_back(c);
        if (!j["choices"][0]["finish_reason"].is_null()) out.finish = j["choices"][0]["finish_reason"];
    }
    return out;
}

const char* kQwen3 = "Qwen-Qwen3-0.6B.jinja";
const std::string kThinkReply = "<think>\n91 = 7 * 13.\n</think>\n\nNo, 91 is not prime.";

TEST(ServerReasoning, OpenAIReasoningContentWholeAndStreamed) {
    TestServer& s = server_with(kQwen3);
    Reply r = post(s, "/v1/chat/completions", chat(kThinkReply, false));
    ASSERT_EQ(r.status, 200) << r.raw;
    const json& m = r.body["choices"][0]["message"];
    EXPECT_EQ(m["reasoning_content"], "91 = 7 * 13.") << r.raw;
    EXPECT_EQ(m["content"], "No, 91 is not prime.") << r.raw;

    const Streamed st = openai_stream(s, chat(kThinkReply, true));
    EXPECT_EQ(st.reasoning, "91 = 7 * 13.");
    EXPECT_EQ(st.content, "No, 91 is not prime.");
    EXPECT_EQ(st.finish, "stop");
}

TEST(ServerReasoning, ReplyStartsInReasoningWhenThePromptOpensIt) {
    // DeepSeek R1's generation prompt ends with "<think>\n": the model writes no open marker.
    TestServer& s = server_with("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja");
    Reply r = post(s, "/v1/chat/completions", chat("Hmm, 7 * 13.\n</think>\n\nNot prime.", false));
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["choices"][0]["message"]["reasoning_content"], "Hmm, 7 * 13.") << r.raw;
    EXPECT_EQ(r.body["choices"][0]["message"]["content"], "Not prime.") << r.raw;
}

// Anthropic requests carry no grammar; DeepSeek R1's prompt opens the reasoning block, so
// everything the model writes (it never closes the block) is reasoning.
TEST(ServerReasoning, AnthropicThinkingBlocksWholeAndStreamed) {
    TestServer& s = server_with("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja");
    json body = {{"model", "m"},
                 {"max_tokens", 24},
                 {"temperature", 0},
                 {"messages", json::array({{{"role", "user"}, {"content", "Once upon a time"}}})}};
    Reply whole = post(s, "/v1/messages", body);
    ASSERT_EQ(whole.status, 200) << whole.raw;
    const json& content = whole.body["content"];
    ASSERT_EQ(content.size(), 2u) << whole.raw;
    EXPECT_EQ(content[0]["type"], "thinking");
    const std::string thought = content[0]["thinking"];
    EXPECT_FALSE(thought.empty());
    EXPECT_EQ(content[0]["signature"], "");
    EXPECT_EQ(content[1]["type"], "text");  // clients expect a text block
    EXPECT_EQ(content[1]["text"], "");

    body["stream"] = true;
    Reply r = post(s, "/v1/messages", body);
    ASSERT_EQ(r.status, 200) << r.raw;
    std::vector<std::string> blocks;
    std::string thinking, text;
    for (const SseEvent& e : parse_sse(r.raw)) {
        const json d = json::parse(e.data);
        if (e.event == "content_block_start") blocks.push_back(d["content_block"]["type"]);
        if (e.event == "content_block_delta") {
            const json& delta = d["delta"];
            EXPECT_EQ(delta["type"], "thinking_delta") << e.data;
            EXPECT_EQ(d["index"], 0);
            thinking += delta.value("thinking", "");
        }
    }
    EXPECT_EQ(blocks, (std::vector<std::string>{"thinking", "text"}));
    EXPECT_EQ(thinking, thought);
}

TEST(ServerReasoning, HarmonyChannelsAndCall) {
    TestServer& s = server_with("openai-gpt-oss-120b.jinja");
    json body = chat("<|channel|>analysis<|message|>Simple.<|end|><|start|>assistant<|channel|>final<|message|>Not prime.",
                     false);
    Reply r = post(s, "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["choices"][0]["message"]["reasoning_content"], "Simple.") << r.raw;
    EXPECT_EQ(r.body["choices"][0]["message"]["content"], "Not prime.") << r.raw;

    const std::string call =
        "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary "
        "to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\", \"days\": 2}";
    for (bool stream : {false, true}) {
        json b = chat(call, stream);
        b["tools"] = weather_tools();
        if (!stream) {
            Reply w = post(s, "/v1/chat/completions", b);
            ASSERT_EQ(w.status, 200) << w.raw;
            const json& m = w.body["choices"][0]["message"];
            EXPECT_EQ(w.body["choices"][0]["finish_reason"], "tool_calls") << w.raw;
            EXPECT_EQ(m["reasoning_content"], "Need the weather.");
            EXPECT_TRUE(m["content"].is_null()) << w.raw;
            ASSERT_EQ(m["tool_calls"].size(), 1u) << w.raw;
            EXPECT_EQ(m["tool_calls"][0]["function"]["name"], "get_weather");
            EXPECT_EQ(json::parse(m["tool_calls"][0]["function"]["arguments"].get<std::string>()),
                      json::parse(R"({"city": "Paris", "days": 2})"));
        } else {
            const Streamed st = openai_stream(s, b);
            EXPECT_EQ(st.reasoning, "Need the weather.");
            EXPECT_EQ(st.content, "");
            EXPECT_EQ(st.finish, "tool_calls");
            ASSERT_EQ(st.tool_calls.size(), 1u);
            EXPECT_EQ(st.tool_calls[0]["function"]["name"], "get_weather");
        }
    }
}

TEST(ServerReasoning, Qwen3CoderXmlCallsAreTypedBySchema) {
    TestServer& s = server_with("Qwen3-Coder.jinja");
    json b = chat("Let me check.\n<tool_call>\n<function=get_weather>\n<parameter=city>\n1984\n</parameter>\n"
                  "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
                  false);
    b["tools"] = weather_tools();
    Reply r = post(s, "/v1/chat/completions", b);
    ASSERT_EQ(r.status, 200) << r.raw;
    const json& m = r.body["choices"][0]["message"];
    EXPECT_EQ(m["content"], "Let me check.");
    ASSERT_EQ(m["tool_calls"].size(), 1u) << r.raw;
    // city is a string in the schema, so "1984" stays one; days is an integer.
    EXPECT_EQ(json::parse(m["tool_calls"][0]["function"]["arguments"].get<std::string>()),
              json::parse(R"({"city": "1984", "days": 3})"));
}

// tool_choice "required" with syntaxes other than Hermes: the forced reply parses into a
// call (with its arguments' schema met).
TEST(ServerReasoning, ForcedCallsInOtherSyntaxes) {
    for (const char* tmpl : {"openai-gpt-oss-120b.jinja", "moonshotai-Kimi-K2.jinja", "deepseek-ai-DeepSeek-V3.1.jinja",
                             "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja"}) {
        SCOPED_TRACE(tmpl);
        TestServer& s = server_with(tmpl);
        json b = {{"model", "m"},
                  {"messages", json::array({{{"role", "user"}, {"content", "Weather in Paris?"}}})},
                  {"max_tokens", 150},
                  {"temperature", 0},
                  {"tools", weather_tools()},
                  {"tool_choice", "required"}};
        Reply r = post(s, "/v1/chat/completions", b);
        ASSERT_EQ(r.status, 200) << r.raw;
        EXPECT_EQ(r.body["choices"][0]["finish_reason"], "tool_calls") << r.raw;
        const json& calls = r.body["choices"][0]["message"]["tool_calls"];
        ASSERT_EQ(calls.size(), 1u) << r.raw;
        const json args = json::parse(calls[0]["function"]["arguments"].get<std::string>());
        EXPECT_TRUE(args["city"].is_string()) << args;
    }
    // Qwen3-Coder's XML parameters are not one JSON object: forcing is refused clearly.
    json b = {{"model", "m"},
              {"messages", json::array({{{"role", "user"}, {"content", "Weather?"}}})},
              {"max_tokens", 20},
              {"tools", weather_tools()},
              {"tool_choice", "required"}};
    Reply r = post(server_with("Qwen3-Coder.jinja"), "/v1/chat/completions", b);
    EXPECT_EQ(r.status, 400) << r.raw;
}

// Reasoning sent back in the history reaches the template: Qwen3 shows the reasoning of
// turns after the last user message, so the prompt (and its token count) grows by it.
TEST(ServerReasoning, HistoryReasoningReachesTheTemplate) {
    TestServer& s = server_with(kQwen3);
    auto prompt_tokens = [&](const json& assistant) {
        json b = {{"model", "m"},
                  {"max_tokens", 1},
                  {"tools", weather_tools()},
                  {"messages", json::array({{{"role", "user"}, {"content", "Weather?"}},
                                            assistant,
                                            {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "sunny"}}})}};
        Reply r = post(s, "/v1/chat/completions", b);
        EXPECT_EQ(r.status, 200) << r.raw;
        return r.body["usage"]["prompt_tokens"].get<int>();
    };
    json call = {{"role", "assistant"},
                 {"content", nullptr},
                 {"tool_calls", json::array({{{"id", "c1"}, {"type", "function"},
                                              {"function", {{"name", "get_weather"}, {"arguments", "{\"city\":\"P\"}"}}}}})}};
    const int without = prompt_tokens(call);
    call["reasoning_content"] = "I should look up the weather for this city.";
    EXPECT_GT(prompt_tokens(call), without + 5);

    // Anthropic: a thinking block of an assistant turn is that turn's reasoning.
    auto count = [&](const json& assistant_content) {
        json b = {{"model", "m"},
                  {"tools", json::array({{{"name", "get_weather"}, {"input_schema", {{"type", "object"}}}}})},
                  {"messages", json::array({{{"role", "user"}, {"content", "Weather?"}},
                                            {{"role", "assistant"}, {"content", assistant_content}},
                                            {{"role", "user"},
                                             {"content", json::array({{{"type", "tool_result"}, {"tool_use_id", "t1"},
                                                                       {"content", "sunny"}}})}}})}};
        Reply r = post(s, "/v1/messages/count_tokens", b);
        EXPECT_EQ(r.status, 200) << r.raw;
        return r.body["input_tokens"].get<int>();
    };
    json blocks = json::array({{{"type", "tool_use"}, {"id", "t1"}, {"name", "get_weather"}, {"input", {{"city", "P"}}}}});
    const int plain = count(blocks);
    const json thinking = {{"type", "thinking"}, {"thinking", "I should look up the weather."}, {"signature", ""}};
    blocks.insert(blocks.begin(), thinking);
    EXPECT_GT(count(blocks), plain + 5);
}

}  // namespace
}  // namespace pensieve::server
