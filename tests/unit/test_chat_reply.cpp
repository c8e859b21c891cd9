// ChatReply parsing on canned model output: reasoning split from content (streamed in every
// piece size, so markers arrive split across tokens), harmony channels, and each
// tool-call syntax's parser on the shapes models write (several calls, a call cut off
// at the end of the reply, broken calls staying content). The real templates' own
// renderings are round-tripped in test_chat_formats.cpp.
#include <gtest/gtest.h>

#include "chat/reasoning.h"
#include "chat/reply.h"
#include "chat/tool_call_families.h"

namespace pensieve {
namespace {

const ReasoningSyntax& think() {
    static const ReasoningSyntax* s = detect_reasoning("{{ '<think>' }}...{{ '</think>' }}");
    return *s;
}

// Feeds text in pieces of `piece` bytes; returns the deltas joined and the final reply.
// Checks that nothing streamed is taken back: the streamed text is a prefix of the end
// result.
ChatReply stream(const ReplySyntax& syntax, const ReplyOptions& options, const std::string& text, size_t piece,
             std::vector<ReplyDelta>* deltas = nullptr) {
    std::unique_ptr<ReplyParser> p = make_reply_parser(syntax, options);
    ChatReply out;
    for (size_t i = 0; i < text.size(); i += piece) {
        ReplyDelta d = p->feed(text.substr(i, piece));
        out.reasoning += d.reasoning;
        out.content += d.content;
        if (deltas) deltas->push_back(d);
    }
    ChatReply end = p->finish();
    out.reasoning += end.reasoning;
    out.content += end.content;
    out.calls = std::move(end.calls);
    return out;
}

// Every piece size gives the same reasoning and content (and calls) as parsing at once.
void expect_same_in_every_piece_size(const ReplySyntax& syntax, const ReplyOptions& options, const std::string& text,
                                     const std::string& reasoning, const std::string& content, size_t n_calls = 0) {
    const ChatReply whole = parse_reply(text, syntax, options);
    EXPECT_EQ(whole.reasoning, reasoning) << text;
    EXPECT_EQ(whole.content, content) << text;
    EXPECT_EQ(whole.calls.size(), n_calls) << text;
    for (size_t piece = 1; piece <= text.size(); ++piece) {
        const ChatReply r = stream(syntax, options, text, piece);
        EXPECT_EQ(r.reasoning, reasoning) << "piece " << piece << ": " << text;
        // Streamed content keeps what whole-reply parsing trims at its very end.
        EXPECT_EQ(std::string(r.content.substr(0, r.content.find_last_not_of(" \n") + 1)), content) << "piece " << piece;
        EXPECT_EQ(r.calls.size(), n_calls) << "piece " << piece;
    }
}

TEST(Reasoning, ThinkBlockSplitsInEveryPieceSize) {
    const ReplySyntax s{ToolFormat::Hermes, &think()};
    expect_same_in_every_piece_size(s, {}, "<think>\nLet me see: 2+2.\n</think>\n\nIt is 4.", "Let me see: 2+2.", "It is 4.");
    expect_same_in_every_piece_size(s, {}, "  <think></think>Just the answer.", "", "Just the answer.");
    expect_same_in_every_piece_size(s, {}, "No reasoning here, <think> is prose.", "", "No reasoning here, <think> is prose.");
    expect_same_in_every_piece_size(s, {}, "<thinking is not the marker", "", "<thinking is not the marker");
    expect_same_in_every_piece_size(s, {}, "<think>cut off while thinking </th", "cut off while thinking </th", "");
}

TEST(Reasoning, ReplyStartsInsideWhenThePromptOpensTheBlock) {
    EXPECT_TRUE(prompt_opens_reasoning(think(), "<｜Assistant｜><think>\n"));
    EXPECT_FALSE(prompt_opens_reasoning(think(), "<｜Assistant｜><think></think>"));
    EXPECT_FALSE(prompt_opens_reasoning(think(), "<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    EXPECT_FALSE(prompt_opens_reasoning(think(), "<|im_start|>assistant\n"));
    ReplyOptions o;
    o.starts_in_reasoning = true;
    const ReplySyntax s{ToolFormat::Hermes, &think()};
    expect_same_in_every_piece_size(s, o, "Hmm, 7 * 13 = 91.\n</think>\n\nNot prime.", "Hmm, 7 * 13 = 91.", "Not prime.");
    expect_same_in_every_piece_size(s, o, "still thinking when max_tokens hit", "still thinking when max_tokens hit", "");
}

TEST(Reasoning, StreamedDeltasNeverShowMarkerPieces) {
    const ReplySyntax s{ToolFormat::Hermes, &think()};
    std::vector<ReplyDelta> deltas;
    const std::vector<std::string> tokens = {"<th", "ink", ">", "a", " b", "</", "think", ">\n", "\nc", "d"};
    std::unique_ptr<ReplyParser> p = make_reply_parser(s, {});
    std::string reasoning, content;
    for (const std::string& t : tokens) {
        ReplyDelta d = p->feed(t);
        EXPECT_EQ(d.reasoning.find('<'), std::string::npos) << t;
        EXPECT_EQ(d.content.find('<'), std::string::npos) << t;
        reasoning += d.reasoning;
        content += d.content;
    }
    ChatReply end = p->finish();
    EXPECT_EQ(reasoning + end.reasoning, "a b");
    EXPECT_EQ(content + end.content, "cd");
}

TEST(Reasoning, OtherMarkerFamilies) {
    const ReasoningSyntax* gemma = detect_reasoning("'<|channel>thought\\n' ... '<channel|>'");
    ASSERT_NE(gemma, nullptr);
    expect_same_in_every_piece_size({ToolFormat::Gemma4, gemma}, {}, "<|channel>thought\nPlan it.<channel|>Done.", "Plan it.", "Done.");
    const ReasoningSyntax* seed = detect_reasoning("<seed:think> </seed:think> <think>");
    ASSERT_NE(seed, nullptr);
    EXPECT_EQ(std::string(seed->name), "seed-think");
    expect_same_in_every_piece_size({ToolFormat::SeedOss, seed}, {}, "<seed:think>x</seed:think>y", "x", "y");
    const ReasoningSyntax* mistral = detect_reasoning("'[THINK]' + block['thinking'] + '[/THINK]'");
    ASSERT_NE(mistral, nullptr);
    expect_same_in_every_piece_size({ToolFormat::Mistral, mistral}, {}, "[THINK]a[/THINK]b", "a", "b");
    EXPECT_EQ(detect_reasoning("{{ messages }}"), nullptr);
}

TEST(Reasoning, CommandR7BPlanAndResponseWrappers) {
    const ReplySyntax s{ToolFormat::CommandR7B, detect_reasoning("<|START_THINKING|><|END_THINKING|>")};
    expect_same_in_every_piece_size(s, {}, "<|START_THINKING|>Easy.<|END_THINKING|><|START_RESPONSE|>Hello!<|END_RESPONSE|>",
                                    "Easy.", "Hello!");
    ReplyOptions tools;
    tools.parse_tool_calls = true;
    expect_same_in_every_piece_size(
        s, tools,
        "<|START_THINKING|>Call it.<|END_THINKING|><|START_ACTION|>[\n    {\"tool_call_id\": \"0\", \"tool_name\": \"f\", "
        "\"parameters\": {\"a\": 1}}\n]<|END_ACTION|>",
        "Call it.", "", 1);
}

TEST(Reasoning, ThinkingThenToolCall) {
    ReplyOptions o;
    o.parse_tool_calls = true;
    const ReplySyntax s{ToolFormat::Hermes, &think()};
    const std::string text = "<think>\nNeed weather.\n</think>\n\n<tool_call>\n{\"name\": \"w\", \"arguments\": {\"c\": \"P\"}}\n</tool_call>";
    expect_same_in_every_piece_size(s, o, text, "Need weather.", "", 1);
    const ChatReply r = parse_reply(text, s, o);
    EXPECT_EQ(r.calls[0].name, "w");
    EXPECT_EQ(r.calls[0].arguments["c"], "P");
    // Without tools the call syntax is ordinary content.
    EXPECT_EQ(parse_reply(text, s, {}).content.rfind("<tool_call>", 0), 0u);
}

// ------------------------------------------------------------------------------------
// harmony (gpt-oss)

const ReplySyntax kHarmony{ToolFormat::Harmony, nullptr};

TEST(Harmony, ChannelsInEveryPieceSize) {
    expect_same_in_every_piece_size(kHarmony, {},
                                    "<|channel|>analysis<|message|>User greets.<|end|><|start|>assistant<|channel|>final<|message|>Hi there!",
                                    "User greets.", "Hi there!");
    ReplyOptions o;
    o.parse_tool_calls = true;
    const std::string call =
        "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary "
        "to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}";
    expect_same_in_every_piece_size(kHarmony, o, call, "Need the weather.", "", 1);
    const ChatReply r = parse_reply(call, kHarmony, o);
    EXPECT_EQ(r.calls[0].name, "get_weather");
    EXPECT_EQ(r.calls[0].arguments["city"], "Paris");
    // The template's own spelling: the recipient before the channel.
    const ChatReply t = parse_reply(" to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Oslo\"}", kHarmony, o);
    ASSERT_EQ(t.calls.size(), 1u);
    EXPECT_EQ(t.calls[0].arguments["city"], "Oslo");
}

TEST(Harmony, PlainTextPreamblesAndOtherRecipients) {
    expect_same_in_every_piece_size(kHarmony, {}, "Just text, no channels.", "", "Just text, no channels.");
    // A commentary preamble is content; a built-in tool's message is not the client's.
    expect_same_in_every_piece_size(kHarmony, {},
                                    "<|channel|>commentary<|message|>Checking.<|end|><|start|>assistant<|channel|>commentary "
                                    "to=browser.search<|message|>{\"q\": 1}<|call|>",
                                    "", "Checking.");
    // A call's arguments that are not JSON stay content.
    ReplyOptions o;
    o.parse_tool_calls = true;
    const ChatReply bad = parse_reply("<|channel|>commentary to=functions.f<|message|>{oops", kHarmony, o);
    EXPECT_TRUE(bad.calls.empty());
    EXPECT_EQ(bad.content, "{oops");
}

// ------------------------------------------------------------------------------------
// each syntax on model-shaped output

ChatReply calls_of(ToolFormat f, const std::string& text, const json& tools = nullptr) {
    ReplyOptions o;
    o.parse_tool_calls = true;
    o.tools = tools;
    return parse_reply(text, {f, nullptr}, o);
}

TEST(ToolCallSyntaxes, Qwen3XmlTypesValuesBySchema) {
    const json tools = json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
        "properties": {"code": {"type": "string"}, "n": {"type": "integer"}, "ok": {"type": "boolean"}}}}}])");
    const ChatReply r = calls_of(ToolFormat::Qwen3Xml,
                             "Sure.\n<tool_call>\n<function=f>\n<parameter=code>\n007\n</parameter>\n<parameter=n>\n7\n"
                             "</parameter>\n<parameter=ok>\nTrue\n</parameter>\n</function>\n</tool_call>\n"
                             "<tool_call>\n<function=g>\n<parameter=x>\nline 1\nline 2\n</parameter>\n",  // cut off
                             tools);
    EXPECT_EQ(r.content, "Sure.");
    ASSERT_EQ(r.calls.size(), 2u);
    EXPECT_EQ(r.calls[0].arguments, json::parse(R"({"code": "007", "n": 7, "ok": true})"));
    EXPECT_EQ(r.calls[1].name, "g");
    EXPECT_EQ(r.calls[1].arguments["x"], "line 1\nline 2");
    // No <tool_call> wrapper (the models sometimes leave it out).
    EXPECT_EQ(calls_of(ToolFormat::Qwen3Xml, "<function=h>\n<parameter=a>\n1\n</parameter>\n</function>").calls.size(), 1u);
    EXPECT_TRUE(calls_of(ToolFormat::Qwen3Xml, "<tool_call>\nnot xml\n</tool_call>").calls.empty());
}

TEST(ToolCallSyntaxes, DeepSeekBothGenerations) {
    const ChatReply v3 = calls_of(ToolFormat::DeepSeekV3,
                              "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>a\n```json\n{\"x\": 1}\n```"
                              "<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>b\n```json\n{}\n```"
                              "<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
    ASSERT_EQ(v3.calls.size(), 2u);
    EXPECT_EQ(v3.calls[1].name, "b");
    const ChatReply v31 = calls_of(ToolFormat::DeepSeekV31,
                               "Let me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>a<｜tool▁sep｜>{\"x\": 2}");
    EXPECT_EQ(v31.content, "Let me check.");
    ASSERT_EQ(v31.calls.size(), 1u);
    EXPECT_EQ(v31.calls[0].arguments["x"], 2);
}

TEST(ToolCallSyntaxes, KimiKeepsItsIds) {
    const ChatReply r = calls_of(ToolFormat::KimiK2,
                             "<|tool_calls_section_begin|><|tool_call_begin|>functions.a:0<|tool_call_argument_begin|>{}"
                             "<|tool_call_end|><|tool_call_begin|>functions.b:1<|tool_call_argument_begin|>{\"q\": \"x\"}"
                             "<|tool_call_end|><|tool_calls_section_end|>");
    ASSERT_EQ(r.calls.size(), 2u);
    EXPECT_EQ(r.calls[1].id, "functions.b:1");
    EXPECT_EQ(r.calls[1].name, "b");
    EXPECT_TRUE(calls_of(ToolFormat::KimiK2, "<|tool_calls_section_begin|>garbage").calls.empty());
}

TEST(ToolCallSyntaxes, GlmPairs) {
    const ChatReply r = calls_of(ToolFormat::Glm45,
                             "<tool_call>a\n<arg_key>n</arg_key>\n<arg_value>3</arg_value>\n<arg_key>l</arg_key>\n"
                             "<arg_value>[1, 2]</arg_value>\n</tool_call>\n<tool_call>b\n</tool_call>");
    ASSERT_EQ(r.calls.size(), 2u);
    EXPECT_EQ(r.calls[0].arguments, json::parse(R"({"n": 3, "l": [1, 2]})"));
    EXPECT_EQ(r.calls[1].arguments, json::object());
}

TEST(ToolCallSyntaxes, Gemma4Notation) {
    const ChatReply r = calls_of(ToolFormat::Gemma4,
                             "<|tool_call>call:f{a:<|\"|>x, y: {z}<|\"|>,b:{c:[1,true,null]},d:-2.5}<tool_call|>");
    ASSERT_EQ(r.calls.size(), 1u);
    EXPECT_EQ(r.calls[0].arguments, json::parse(R"({"a": "x, y: {z}", "b": {"c": [1, true, null]}, "d": -2.5})"));
    EXPECT_TRUE(calls_of(ToolFormat::Gemma4, "<|tool_call>call:f{a:}<tool_call|>").calls.empty());
}

TEST(ToolCallSyntaxes, CommandRActionsWithoutDirectlyAnswer) {
    const ChatReply r = calls_of(ToolFormat::CommandR,
                             "I will search.\nAction: ```json\n[\n    {\n        \"tool_name\": \"search\",\n        "
                             "\"parameters\": {\"q\": \"x\"}\n    },\n    {\"tool_name\": \"directly-answer\", \"parameters\": {}}\n]\n```");
    EXPECT_EQ(r.content, "I will search.");
    ASSERT_EQ(r.calls.size(), 1u);
    EXPECT_EQ(r.calls[0].name, "search");
}

TEST(ToolCallSyntaxes, FunctionaryV32ContinuesThePrompt) {
    ReplyOptions o;
    o.parse_tool_calls = true;
    o.prompt_ends_with_reply_prefix = true;
    const ReplySyntax s{ToolFormat::FunctionaryV32, nullptr};
    expect_same_in_every_piece_size(s, o, "all\nHello there.", "", "Hello there.");
    expect_same_in_every_piece_size(s, o, "all\nChecking.\n>>>get_weather\n{\"city\": \"Paris\"}", "", "Checking.", 1);
}

}  // namespace
}  // namespace pensieve
