#include "server/tool_grammar.h"

#include <string>
#include <string_view>

#include "engine/grammar.h"
#include "engine/json_schema.h"
#include "util/error.h"

namespace pensieve::server {

namespace {

// Start rule wrapped around the schema's "root". The schema converter names its rules
// after "root" plus path suffixes, or after JSON primitives ("string", "ws", ...), so
// this name cannot collide with one of them.
constexpr const char* kStartRule = "pensieve-tool-call";

// {"name": <const>, <args_key>: <parameters schema>} for one tool, keys in that order.
json call_schema(const json& function, const char* args_key) {
    json props = json::object();
    props["name"] = {{"const", function["name"]}};
    props[args_key] = function.contains("parameters") ? function["parameters"] : json{{"type", "object"}};
    return {{"type", "object"}, {"properties", props}, {"required", json::array({"name", args_key})}};
}

// The GBNF literal for fixed text around the call (only ASCII punctuation/letters and
// newlines occur here).
std::string literal(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '\n') out += "\\n";
        else if (c == '"' || c == '\\' || c == '[' || c == ']') out.append({'\\', c});
        else out.push_back(c);
    }
    return out + "\"";
}

}  // namespace

std::shared_ptr<const Grammar> tool_choice_grammar(const ChatRequest& r, ToolFormat format) {
    if (!r.tools_active() || (r.tool_choice != ToolChoice::Required && r.tool_choice != ToolChoice::Named))
        return nullptr;
    if (r.params.options.grammar)
        bad_request("tool_choice that forces a call cannot be combined with response_format or grammar", "tool_choice");

    const ToolCallSyntax& syntax = tool_call_syntax(format);
    const char* args_key = syntax.arguments_key();
    json alternatives = json::array();
    for (const json& t : r.tools) {
        const json& fn = t["function"];
        if (r.tool_choice == ToolChoice::Named && fn["name"] != r.tool_choice_name) continue;
        alternatives.push_back(call_schema(fn, args_key));
    }
    if (alternatives.empty()) bad_request("tool_choice names no tool in tools", "tool_choice");
    const json schema = alternatives.size() == 1 ? alternatives[0] : json{{"anyOf", alternatives}};

    const std::string_view open = syntax.forced_call_open(), close = syntax.forced_call_close();
    try {
        std::string gbnf = json_schema_to_gbnf(schema);
        gbnf += std::string(kStartRule) + " ::= ";
        if (!open.empty()) gbnf.append(literal(open)).append(" ");
        gbnf += "root";
        if (!close.empty()) gbnf.append(" ").append(literal(close));
        gbnf += "\n";
        return Grammar::parse_gbnf(gbnf, kStartRule);
    } catch (const pensieve::Error& e) {
        bad_request(std::string("tools: a tool's parameters cannot be enforced for tool_choice: ") + e.what(), "tools");
    }
}

void apply_tool_choice(ChatRequest& r, ToolFormat format) {
    if (auto g = tool_choice_grammar(r, format)) r.params.options.grammar = std::move(g);
}

}  // namespace pensieve::server
