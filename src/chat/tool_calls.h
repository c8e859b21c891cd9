// Tool calls in model output. Models that were trained for tool use write calls in
// their family's own syntax; the chat template tells which family a model belongs to:
//
//   Hermes / Qwen:  <tool_call>{"name": "f", "arguments": {...}}</tool_call>   (one or more)
//   Llama 3.x:      {"name": "f", "parameters": {...}}   (the whole reply; optionally
//                   after <|python_tag|>; several separated by ';')
//   Mistral:        [TOOL_CALLS][{"name": "f", "arguments": {...}, "id": "..."}]
//                   or the newer [TOOL_CALLS]f[ARGS]{...}
//
// parse_tool_calls() splits a finished reply into ordinary content and calls. While
// streaming, ToolCallStreamer passes ordinary text through at once but holds back
// anything that might be the start of a call, so a client never sees half of the
// call syntax as content.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/json.h"

namespace pensieve {

enum class ToolFormat { Hermes, Llama3, Mistral };

struct ToolCall {
    std::string id;             // generated if the model gave none
    std::string name;
    json arguments;   // an object
};

struct ParsedReply {
    std::string content;        // the text outside tool calls, trimmed
    std::vector<ToolCall> calls;
};

// Which syntax a chat template's model uses, guessed from the template source.
ToolFormat detect_tool_format(std::string_view template_source);
const char* tool_format_name(ToolFormat f);

// Splits a finished reply. Text that looks like a call but does not parse as one stays
// content (the client sees exactly what the model wrote).
ParsedReply parse_tool_calls(std::string_view text, ToolFormat format);

// "call_" / "toolu_" + 24 random alphanumerics.
std::string make_tool_call_id(const char* prefix);

class ToolCallStreamer {
public:
    explicit ToolCallStreamer(ToolFormat format) : format_(format) {}
    // New text from the model -> text that is certainly content, to stream now.
    std::string feed(std::string_view text);
    // End of reply: the calls, plus any held-back text that turned out to be content.
    ParsedReply finish();

private:
    ToolFormat format_;
    std::string text_;       // everything fed
    size_t emitted_ = 0;     // bytes of text_ already returned as content
    bool capturing_ = false; // a call has started: hold everything back
};

}  // namespace pensieve
