// Tool calls in model output. Models that were trained for tool use write calls in
// their family's own syntax; the chat template tells which family a model belongs to:
//
//   Hermes / Qwen 2.5-3 / Granite 4:  <tool_call>{"name": "f", "arguments": {...}}</tool_call>
//   Llama 3.x:        {"name": "f", "parameters": {...}}   (the whole reply; optionally
//                     after <|python_tag|>; several separated by ';')
//   Mistral:          [TOOL_CALLS][{"name": "f", "arguments": {...}, "id": "..."}]
//                     or the newer [TOOL_CALLS]f[ARGS]{...}
//   Qwen3-Coder / Qwen 3.5:  <tool_call><function=f><parameter=x>v</parameter>...
//                     (Seed-OSS: the same inside <seed:tool_call>)
//   gpt-oss (harmony): <|channel|>commentary to=functions.f <|constrain|>json<|message|>{...}<|call|>
//   DeepSeek V3 / R1: <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{...}\n```...
//   DeepSeek V3.1:    <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{...}<｜tool▁call▁end｜>...
//   Gemma 4:          <|tool_call>call:f{x:<|"|>v<|"|>,n:3}<tool_call|>
//   Command-R(+):     Action: ```json [{"tool_name": "f", "parameters": {...}}] ```
//   Command-R7B:      <|START_ACTION|>[{"tool_call_id": "0", "tool_name": "f", "parameters": {...}}]<|END_ACTION|>
//   Kimi K2:          <|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{...}<|tool_call_end|>...
//   GLM 4.5 / 4.6:    <tool_call>f\n<arg_key>x</arg_key>\n<arg_value>v</arg_value>\n</tool_call>
//   Functionary:      v3.1 <function=f>{...}</function>; v3.2 >>>f\n{...} (>>>all\n before text)
//
// Each family is one small file (tool_call_<family>.cpp) implementing ToolCallSyntax;
// the table in tool_calls.cpp lists them in detection order. To add a family: a
// ToolFormat value, a file, and a line in that table (and the test's template list).
//
// parse_tool_calls() splits a finished reply into ordinary content and calls. While
// streaming, ToolCallStreamer passes ordinary text through at once but holds back
// anything that might be the start of a call, so a client never sees half of the
// call syntax as content. Reasoning (<think>...) is split off before, see reply.h.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/json.h"

namespace pensieve {

enum class ToolFormat {
    Hermes, Llama3, Mistral, Qwen3Xml, SeedOss, Harmony, DeepSeekV3, DeepSeekV31, Gemma4, CommandR, CommandR7B,
    KimiK2, Glm45, FunctionaryV31, FunctionaryV32,
};

struct ToolCall {
    std::string id;             // generated if the model gave none
    std::string name;
    json arguments;   // an object
};

struct ParsedReply {
    std::string content;        // the text outside tool calls, trimmed
    std::vector<ToolCall> calls;
};

// A call forced by a grammar (tool_choice "required" / named): the fixed text before and
// after the arguments, which are one JSON object.
struct ForcedCall {
    std::string before;
    std::string after;
};

// What one family's call syntax is: how a template teaches it, how a reply carries it,
// and the fixed text a forced call is wrapped in.
class ToolCallSyntax {
public:
    virtual ~ToolCallSyntax() = default;
    virtual ToolFormat format() const = 0;
    virtual const char* name() const = 0;
    // True when a chat template's source teaches this syntax.
    virtual bool taught_by(std::string_view template_source) const = 0;
    // Splits a finished reply; text that does not parse as calls stays content. Ids
    // are left empty where the model gave none (parse_tool_calls fills them). tools: the
    // request's OpenAI-shaped tool list (or null), for syntaxes whose argument values
    // are untyped text (XML parameters) and need the schema to become JSON values.
    virtual ParsedReply parse(std::string_view text, const json& tools) const = 0;
    // Texts that open a call anywhere in a reply (held back while streaming).
    virtual std::vector<std::string_view> markers() const = 0;
    // Every fixed text of the syntax that a vocabulary may hold as one token (<tool_call>,
    // <|channel|>, ...): when such a token is a control token, the engine shows its text
    // in the output (control tokens are otherwise dropped), so the parser can see it.
    virtual std::vector<std::string_view> special_texts() const;
    // True when a reply that starts with a JSON object is a call (Llama 3's bare JSON).
    virtual bool reply_may_be_bare_call() const { return false; }
    // Texts that wrap ordinary content and are not part of it (Command-R7B's
    // <|START_RESPONSE|>...<|END_RESPONSE|>): removed from content.
    virtual std::vector<std::string_view> content_wrappers() const { return {}; }
    // Text of the syntax that the generation prompt ends with, so the reply continues it
    // (Functionary v3.2's ">>>" before the recipient): read as if the reply began with it.
    virtual std::string_view reply_prefix() const { return {}; }
    // The text around a forced call of function `name`; nullopt when the arguments are
    // not one JSON object in this syntax (XML parameters, Gemma's own notation), so a
    // grammar cannot force a call.
    virtual std::optional<ForcedCall> forced_call(std::string_view name) const = 0;
};

const ToolCallSyntax& tool_call_syntax(ToolFormat f);

// Which syntax a chat template's model uses, guessed from the template source.
ToolFormat detect_tool_format(std::string_view template_source);
const char* tool_format_name(ToolFormat f);
// Every format, in detection order (tests).
std::vector<ToolFormat> all_tool_formats();

// Splits a finished reply. Text that looks like a call but does not parse as one stays
// content (the client sees exactly what the model wrote).
ParsedReply parse_tool_calls(std::string_view text, ToolFormat format, const json& tools = nullptr);

// "call_" / "toolu_" + 24 random alphanumerics.
std::string make_tool_call_id(const char* prefix);

class ToolCallStreamer {
public:
    explicit ToolCallStreamer(ToolFormat format, json tools = nullptr)
        : syntax_(&tool_call_syntax(format)), tools_(std::move(tools)) {}
    // New text from the model -> text that is certainly content, to stream now.
    std::string feed(std::string_view text);
    // End of reply: the calls, plus any held-back text that turned out to be content.
    ParsedReply finish();

private:
    const ToolCallSyntax* syntax_;
    json tools_;
    std::string text_;       // everything fed
    size_t emitted_ = 0;     // bytes of text_ already returned as content
    bool capturing_ = false; // a call has started: hold everything back
};

}  // namespace pensieve
