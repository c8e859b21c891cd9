// Tool calls in model output. Models that were trained for tool use write calls in
// their family's own syntax; the chat template tells which family a model belongs to:
//
//   Hermes / Qwen:  <tool_call>{"name": "f", "arguments": {...}}</tool_call>   (one or more)
//   Llama 3.x:      {"name": "f", "parameters": {...}}   (the whole reply; optionally
//                   after <|python_tag|>; several separated by ';')
//   Mistral:        [TOOL_CALLS][{"name": "f", "arguments": {...}, "id": "..."}]
//                   or the newer [TOOL_CALLS]f[ARGS]{...}
//
// Each family is one small file (tool_call_<family>.cpp) implementing ToolCallSyntax;
// tool_call_syntax.cpp lists them and picks one from a template. To add a family: a
// ToolFormat value, a file, and a line in the registry.
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

// What one family's call syntax is: how a template teaches it, how a reply carries it,
// and the fixed text a forced call (tool_choice "required") is wrapped in.
class ToolCallSyntax {
public:
    virtual ~ToolCallSyntax() = default;
    virtual ToolFormat format() const = 0;
    virtual const char* name() const = 0;
    // True when a chat template's source teaches this syntax.
    virtual bool taught_by(std::string_view template_source) const = 0;
    // Splits a finished reply; text that does not parse as calls stays content. Ids
    // are left empty where the model gave none (parse_tool_calls fills them).
    virtual ParsedReply parse(std::string_view text) const = 0;
    // Texts that open a call anywhere in a reply (held back while streaming).
    virtual std::vector<std::string_view> markers() const = 0;
    // True when a reply that starts with a JSON object is a call (Llama 3's bare JSON).
    virtual bool reply_may_be_bare_call() const { return false; }
    // A forced call: fixed text before and after the one call object, and the key its
    // arguments go under.
    virtual std::string_view forced_call_open() const = 0;
    virtual std::string_view forced_call_close() const = 0;
    virtual const char* arguments_key() const { return "arguments"; }
};

const ToolCallSyntax& tool_call_syntax(ToolFormat f);

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
    explicit ToolCallStreamer(ToolFormat format) : syntax_(tool_call_syntax(format)) {}
    // New text from the model -> text that is certainly content, to stream now.
    std::string feed(std::string_view text);
    // End of reply: the calls, plus any held-back text that turned out to be content.
    ParsedReply finish();

private:
    const ToolCallSyntax& syntax_;
    std::string text_;       // everything fed
    size_t emitted_ = 0;     // bytes of text_ already returned as content
    bool capturing_ = false; // a call has started: hold everything back
};

}  // namespace pensieve
