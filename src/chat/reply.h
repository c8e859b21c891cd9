// A model's reply, split into what the APIs return apart: reasoning (OpenAI
// `reasoning_content`, Anthropic `thinking` blocks), content, and tool calls.
//
// Reasoning models write their thinking first, between markers their template shows
// (<think>...</think> and friends, see reasoning.h); gpt-oss writes harmony messages on
// channels (analysis = reasoning, final = content, commentary to=functions.f = a call,
// see harmony.h). A ReplyParser reads the reply as it streams and hands out reasoning
// and content deltas as soon as they are certain; the calls come at the end.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "chat/tool_calls.h"

namespace pensieve {

struct ReasoningSyntax;

struct ReplyDelta {
    std::string reasoning;
    std::string content;
    bool empty() const { return reasoning.empty() && content.empty(); }
};

struct ChatReply {
    std::string reasoning;
    std::string content;
    std::vector<ToolCall> calls;
};

class ReplyParser {
public:
    virtual ~ReplyParser() = default;
    // New text from the model -> the reasoning and content it makes certain.
    virtual ReplyDelta feed(std::string_view text) = 0;
    // End of the reply: the rest of the reasoning and content, and the tool calls (ids
    // filled in). Called once.
    virtual ChatReply finish() = 0;
};

// How one model's replies are laid out (from its chat template; ChatFormatter knows).
struct ReplySyntax {
    ToolFormat tool_format = ToolFormat::Hermes;
    const ReasoningSyntax* reasoning = nullptr;  // nullptr: the model does not reason in markers
};

struct ReplyOptions {
    bool parse_tool_calls = false;      // tools are active in this request
    json tools;                         // the request's tools (typing XML-style arguments)
    bool starts_in_reasoning = false;   // the prompt ends inside an open reasoning block
    bool prompt_ends_with_reply_prefix = false;  // ToolCallSyntax::reply_prefix
};

std::unique_ptr<ReplyParser> make_reply_parser(const ReplySyntax& syntax, ReplyOptions options);

// A finished reply in one go (the same parser, fed once); reasoning and content trimmed.
ChatReply parse_reply(std::string_view text, const ReplySyntax& syntax, ReplyOptions options);

}  // namespace pensieve
