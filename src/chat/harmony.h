// gpt-oss's "harmony" replies: a sequence of messages, each a header then a body,
//
//   <|channel|>analysis<|message|>thinking...<|end|>
//   <|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>
//   <|start|>assistant<|channel|>final<|message|>The answer.<|return|>
//
// The prompt ends with "<|start|>assistant", so the reply starts in the first header. A
// header names the channel and, for a tool call, the recipient ("to=functions.<name>";
// the template writes it before the channel, the model also writes it after). Channels:
// analysis -> reasoning; final -> content; commentary to=functions.f -> a call whose
// body is its JSON arguments; commentary without a recipient -> content (a preamble the
// user may see). Messages to other recipients (the built-in browser / python tools) are
// not the client's and are dropped. A reply that does not start with a header is plain
// content.
#pragma once

#include "chat/reply.h"

namespace pensieve {

class HarmonyParser final : public ReplyParser {
public:
    explicit HarmonyParser(bool parse_tool_calls) : parse_calls_(parse_tool_calls) {}
    ReplyDelta feed(std::string_view text) override;
    ChatReply finish() override;

private:
    enum class State { Header, Reasoning, Content, Call, Ignored, Plain };
    ReplyDelta step(bool at_end);
    void begin_body(std::string_view header);
    void end_call(ReplyDelta& out);

    bool parse_calls_;
    State state_ = State::Header;
    bool first_header_ = true;
    std::string pending_;
    std::string call_name_, call_body_;
    std::vector<ToolCall> calls_;
};

}  // namespace pensieve
