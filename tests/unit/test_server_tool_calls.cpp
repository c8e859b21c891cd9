// Tool-call parsing on canned model outputs, the streaming filter that keeps call syntax
// out of streamed content, and the grammars that force a call for tool_choice
// "required"/named (test_server.cpp runs those through a real model).
#include <gtest/gtest.h>

#include "chat/tool_calls.h"
#include "engine/grammar.h"
#include "engine/grammar_matcher.h"
#include "gguf/gguf.h"
#include "server/request_parse.h"
#include "server/tool_grammar.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pensieve::server {
namespace {

TEST(ToolCalls, HermesSingleAndMultiple) {
    ParsedReply r = parse_tool_calls(
        "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
        ToolFormat::Hermes);
    EXPECT_EQ(r.content, "Let me look.");
    ASSERT_EQ(r.calls.size(), 1u);
    EXPECT_EQ(r.calls[0].name, "get_weather");
    EXPECT_EQ(r.calls[0].arguments["city"], "Paris");
    EXPECT_EQ(r.calls[0].id.rfind("call_", 0), 0u);

    r = parse_tool_calls(
        "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>\n<tool_call>{\"name\": \"b\", \"arguments\": "
        "\"{\\\"x\\\": 1}\"}</tool_call>",
        ToolFormat::Hermes);
    ASSERT_EQ(r.calls.size(), 2u);
    EXPECT_EQ(r.calls[1].name, "b");
    EXPECT_EQ(r.calls[1].arguments["x"], 1);  // string arguments are parsed
    EXPECT_EQ(r.content, "");
}

TEST(ToolCalls, HermesUnclosedAtEndOfOutputStillParses) {
    ParsedReply r = parse_tool_calls("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": [1, 2]}}\n", ToolFormat::Hermes);
    ASSERT_EQ(r.calls.size(), 1u);
    EXPECT_EQ(r.calls[0].arguments["a"][1], 2);
}

TEST(ToolCalls, BrokenCallStaysContent) {
    const std::string text = "<tool_call>{\"name\": \"f\", \"arguments\": {oops}}</tool_call>";
    ParsedReply r = parse_tool_calls(text, ToolFormat::Hermes);
    EXPECT_TRUE(r.calls.empty());
    EXPECT_EQ(r.content, text);
    EXPECT_TRUE(parse_tool_calls("Just prose { with braces }.", ToolFormat::Llama3).calls.empty());
}

TEST(ToolCalls, Llama3Json) {
    ParsedReply r = parse_tool_calls("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", ToolFormat::Llama3);
    ASSERT_EQ(r.calls.size(), 1u);
    EXPECT_EQ(r.calls[0].name, "get_weather");
    EXPECT_EQ(r.calls[0].arguments["city"], "Oslo");

    r = parse_tool_calls("<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"k\": \"}\"}}",
                         ToolFormat::Llama3);
    ASSERT_EQ(r.calls.size(), 2u);
    EXPECT_EQ(r.calls[1].arguments["k"], "}");
}

TEST(ToolCalls, MistralBothSyntaxes) {
    ParsedReply r = parse_tool_calls(
        "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"q\": 1}, \"id\": \"abc123def\"}, {\"name\": \"g\", \"arguments\": {}}]",
        ToolFormat::Mistral);
    ASSERT_EQ(r.calls.size(), 2u);
    EXPECT_EQ(r.calls[0].id, "abc123def");
    EXPECT_EQ(r.calls[1].name, "g");

    r = parse_tool_calls("[TOOL_CALLS]search[ARGS]{\"q\": \"x\"}", ToolFormat::Mistral);
    ASSERT_EQ(r.calls.size(), 1u);
    EXPECT_EQ(r.calls[0].name, "search");
    EXPECT_EQ(r.calls[0].arguments["q"], "x");
}

TEST(ToolCalls, DetectFormatFromTemplate) {
    EXPECT_EQ(detect_tool_format("{{ '<tool_call>' }}"), ToolFormat::Hermes);
    EXPECT_EQ(detect_tool_format("[TOOL_CALLS] {{ tools }}"), ToolFormat::Mistral);
    EXPECT_EQ(detect_tool_format("<|start_header_id|>ipython ... \"parameters\": d"), ToolFormat::Llama3);
    EXPECT_EQ(detect_tool_format(""), ToolFormat::Hermes);
}

// Feeding a reply in small pieces: ordinary text streams at once, the call never leaks.
std::string stream_all(ToolCallStreamer& s, const std::string& text, size_t piece) {
    std::string out;
    for (size_t i = 0; i < text.size(); i += piece) out += s.feed(text.substr(i, piece));
    return out;
}

TEST(ToolCalls, StreamerHoldsBackCallSyntax) {
    const std::string text = "Checking <now>. <tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>";
    for (size_t piece : {1u, 2u, 5u, 100u}) {
        ToolCallStreamer s(ToolFormat::Hermes);
        std::string streamed = stream_all(s, text, piece);
        ParsedReply end = s.finish();
        EXPECT_EQ(streamed + end.content, "Checking <now>. ") << piece;
        ASSERT_EQ(end.calls.size(), 1u) << piece;
        EXPECT_EQ(end.calls[0].name, "f");
    }
}

TEST(ToolCalls, StreamerPassesPlainTextThrough) {
    ToolCallStreamer s(ToolFormat::Hermes);
    std::string out = stream_all(s, "No calls here, just <b>text</b> <tool", 3);
    ParsedReply end = s.finish();
    EXPECT_TRUE(end.calls.empty());
    EXPECT_EQ(out + end.content, "No calls here, just <b>text</b> <tool");
    EXPECT_EQ(out, "No calls here, just <b>text</b> ");  // only the possible marker waited
}

TEST(ToolCalls, StreamerLlama3WholeReplyJson) {
    ToolCallStreamer s(ToolFormat::Llama3);
    std::string out = stream_all(s, "  {\"name\": \"f\", \"parameters\": {\"a\": 1}}", 4);
    EXPECT_EQ(out, "");
    ParsedReply end = s.finish();
    ASSERT_EQ(end.calls.size(), 1u);

    ToolCallStreamer prose(ToolFormat::Llama3);
    out = stream_all(prose, "Hello {there}", 2);
    EXPECT_EQ(out + prose.finish().content, "Hello {there}");
}

TEST(ToolCalls, OpenAIToolsAreValidated) {
    using json = pensieve::server::json;
    json ok = json::parse(R"([{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}])");
    EXPECT_EQ(normalize_openai_tools(ok)[0]["function"]["name"], "f");
    EXPECT_THROW(normalize_openai_tools(json::parse(R"([{"type":"function"}])")), ApiError);
    EXPECT_THROW(normalize_openai_tools(json::parse(R"([{"type":"function","function":{"name":3}}])")), ApiError);
    EXPECT_THROW(normalize_openai_tools(json::parse(R"({"a":1})")), ApiError);
}

TEST(ToolCalls, OpenAIChatParseNormalizesToolMessages) {
    using json = pensieve::server::json;
    json body = json::parse(R"({"messages":[
        {"role":"user","content":"hi"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]},
        {"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"42"}]}],
        "tools":[{"type":"function","function":{"name":"f"}}], "tool_choice":"auto"})");
    ChatRequest r = parse_openai_chat(body);
    EXPECT_TRUE(r.tools_active());
    EXPECT_EQ(r.messages[1]["tool_calls"][0]["function"]["arguments"]["x"], 1);
    EXPECT_EQ(r.messages[2]["content"], "42");
    EXPECT_EQ(r.messages[2]["tool_call_id"], "c1");
    body["messages"][1]["reasoning_content"] = "think first";
    EXPECT_EQ(parse_openai_chat(body).messages[1]["reasoning_content"], "think first");
    body["messages"][1]["reasoning_content"] = 5;
    EXPECT_THROW(parse_openai_chat(body), ApiError);
    body["messages"][1].erase("reasoning_content");
    body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "missing"}}}};
    EXPECT_THROW(parse_openai_chat(body), ApiError);
}

TEST(ToolCalls, AnthropicMessagesBecomeOpenAIShaped) {
    using json = pensieve::server::json;
    json body = json::parse(R"({"model":"m","max_tokens":5,"system":"sys","messages":[
        {"role":"user","content":"weather?"},
        {"role":"assistant","content":[{"type":"thinking","thinking":"hmm"},{"type":"tool_use","id":"t1","name":"w","input":{"c":"P"}}]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"sunny"},{"type":"text","text":"thanks"}]}]})");
    ChatRequest r = parse_anthropic_messages(body, false);
    ASSERT_EQ(r.messages.size(), 5u);
    EXPECT_EQ(r.messages[0]["role"], "system");
    EXPECT_EQ(r.messages[2]["tool_calls"][0]["function"]["arguments"]["c"], "P");
    EXPECT_TRUE(r.messages[2]["content"].is_null());
    EXPECT_EQ(r.messages[2]["reasoning_content"], "hmm");  // the thinking block
    EXPECT_EQ(r.messages[3]["role"], "tool");
    EXPECT_EQ(r.messages[3]["content"], "sunny");
    EXPECT_EQ(r.messages[4]["content"], "thanks");
    EXPECT_EQ(r.params.options.n_predict, 5);
}

// Claude Code 2.1.33x puts a system message after the first user turn (its environment):
// it stays a system message in place; other roles are still refused.
TEST(ToolCalls, AnthropicSystemMessageInsideMessages) {
    using json = pensieve::server::json;
    json body = json::parse(R"({"model":"m","max_tokens":5,"system":"sys","messages":[
        {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
        {"role":"system","content":[{"type":"text","text":"# Environment"}]}]})");
    ChatRequest r = parse_anthropic_messages(body, false);
    ASSERT_EQ(r.messages.size(), 3u);
    EXPECT_EQ(r.messages[2]["role"], "system");
    EXPECT_EQ(r.messages[2]["content"], "# Environment");
    body["messages"][1]["content"] = json::array({{{"type", "image"}}});
    EXPECT_THROW(parse_anthropic_messages(body, false), ApiError);
    body["messages"][1] = {{"role", "tool"}, {"content", "x"}};
    EXPECT_THROW(parse_anthropic_messages(body, false), ApiError);
}

// ------------------------------------------------------------------------------------
// tool_choice grammars

const Tokenizer& llama_tokenizer() {
    static std::unique_ptr<GgufFile> file = GgufFile::open(shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf");
    static std::unique_ptr<Tokenizer> tok = Tokenizer::from_gguf(*file);
    return *tok;
}

ChatRequest weather_request(ToolChoice choice, const std::string& name = "") {
    ChatRequest r;
    r.tools = normalize_openai_tools(json::parse(R"([
      {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}},
      {"type": "function", "function": {"name": "get_time"}}])"));
    r.tool_choice = choice;
    r.tool_choice_name = name;
    return r;
}

// True when `text` is a complete sentence of g (throws inside mean: not even a prefix).
bool grammar_accepts(const std::shared_ptr<const Grammar>& g, const std::string& text) {
    GrammarMatcher m(g, llama_tokenizer());
    try {
        m.accept_bytes(text);
    } catch (const Error&) {
        return false;
    }
    return m.is_complete();
}

TEST(ToolChoiceGrammar, AutoAndNoneAreUnconstrained) {
    EXPECT_EQ(tool_choice_grammar(weather_request(ToolChoice::Auto), ToolFormat::Hermes), nullptr);
    EXPECT_EQ(tool_choice_grammar(weather_request(ToolChoice::None), ToolFormat::Hermes), nullptr);
    ChatRequest no_tools;
    no_tools.tool_choice = ToolChoice::Required;
    EXPECT_EQ(tool_choice_grammar(no_tools, ToolFormat::Hermes), nullptr);
}

TEST(ToolChoiceGrammar, RequiredHermesAcceptsOnlyValidCalls) {
    auto g = tool_choice_grammar(weather_request(ToolChoice::Required), ToolFormat::Hermes);
    ASSERT_NE(g, nullptr);
    EXPECT_TRUE(grammar_accepts(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"));
    EXPECT_TRUE(grammar_accepts(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Oslo\",\"days\":3}}\n</tool_call>"));
    EXPECT_TRUE(grammar_accepts(g, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"));
    EXPECT_FALSE(grammar_accepts(g, "Sure! The weather is nice."));                      // prose
    EXPECT_FALSE(grammar_accepts(g, "<tool_call>\n{\"name\": \"rm_rf\", \"arguments\": {}}\n</tool_call>"));  // unknown tool
    EXPECT_FALSE(grammar_accepts(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>"));  // city missing
    EXPECT_FALSE(grammar_accepts(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": 5}}\n</tool_call>"));
    EXPECT_FALSE(grammar_accepts(g, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}"));  // unclosed
    // What the grammar produces, the parser reads back as a call.
    ParsedReply p = parse_tool_calls("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", ToolFormat::Hermes);
    ASSERT_EQ(p.calls.size(), 1u);
}

TEST(ToolChoiceGrammar, NamedAllowsOnlyThatTool) {
    auto g = tool_choice_grammar(weather_request(ToolChoice::Named, "get_time"), ToolFormat::Hermes);
    ASSERT_NE(g, nullptr);
    EXPECT_TRUE(grammar_accepts(g, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"));
    EXPECT_FALSE(grammar_accepts(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"));
}

TEST(ToolChoiceGrammar, Llama3AndMistralSyntaxes) {
    auto l = tool_choice_grammar(weather_request(ToolChoice::Required), ToolFormat::Llama3);
    EXPECT_TRUE(grammar_accepts(l, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}"));
    EXPECT_FALSE(grammar_accepts(l, "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}"));
    ParsedReply pl = parse_tool_calls("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}", ToolFormat::Llama3);
    ASSERT_EQ(pl.calls.size(), 1u);
    EXPECT_EQ(pl.calls[0].arguments["city"], "Rome");

    auto m = tool_choice_grammar(weather_request(ToolChoice::Required), ToolFormat::Mistral);
    const std::string call = "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}]";
    EXPECT_TRUE(grammar_accepts(m, call));
    ParsedReply pm = parse_tool_calls(call, ToolFormat::Mistral);
    ASSERT_EQ(pm.calls.size(), 1u);
    EXPECT_EQ(pm.calls[0].name, "get_weather");
}

// Every syntax: the grammar accepts a forced call of each allowed tool written the
// syntax's way and nothing else, and the parser reads that text back as the call.
// Syntaxes whose arguments are not one JSON object refuse with a 400.
TEST(ToolChoiceGrammar, EverySyntaxForcesACallItsParserReads) {
    const json args = json::parse(R"({"city": "Rome", "days": 2})");
    for (ToolFormat f : all_tool_formats()) {
        const ToolCallSyntax& syntax = tool_call_syntax(f);
        SCOPED_TRACE(syntax.name());
        const std::optional<ForcedCall> call = syntax.forced_call("get_weather");
        if (!call) {
            EXPECT_THROW(tool_choice_grammar(weather_request(ToolChoice::Required), f), ApiError);
            continue;
        }
        auto g = tool_choice_grammar(weather_request(ToolChoice::Required), f);
        ASSERT_NE(g, nullptr);
        const std::string text = call->before + dump_json(args) + call->after;
        EXPECT_TRUE(grammar_accepts(g, text)) << text;
        EXPECT_FALSE(grammar_accepts(g, call->before + "{\"days\": 2}" + call->after));  // city is required
        EXPECT_FALSE(grammar_accepts(g, "The weather is nice."));
        const std::optional<ForcedCall> other = syntax.forced_call("get_time");
        EXPECT_TRUE(grammar_accepts(g, other->before + "{}" + other->after));
        // The reply continues the prompt, which ends with the syntax's reply prefix if any.
        const ParsedReply p = parse_tool_calls(std::string(syntax.reply_prefix()) + text, f);
        ASSERT_EQ(p.calls.size(), 1u) << text;
        EXPECT_EQ(p.calls[0].name, "get_weather");
        EXPECT_EQ(p.calls[0].arguments, args);
        EXPECT_EQ(p.content, "");
    }
}

TEST(ToolChoiceGrammar, ConflictsAndUnsupportedSchemasAre400) {
    ChatRequest r = weather_request(ToolChoice::Required);
    r.params.options.grammar = Grammar::any_json();
    EXPECT_THROW(tool_choice_grammar(r, ToolFormat::Hermes), ApiError);
    ChatRequest bad = weather_request(ToolChoice::Required);
    bad.tools[0]["function"]["parameters"] = json::parse(R"({"type": "object", "not": {}})");
    EXPECT_THROW(tool_choice_grammar(bad, ToolFormat::Hermes), ApiError);
}

}  // namespace
}  // namespace pensieve::server
