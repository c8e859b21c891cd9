#include "server/tool_grammar.h"

#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "engine/grammar.h"
#include "engine/json_schema.h"
#include "util/error.h"

namespace pensieve::server {

namespace {

// Start rule of the call grammar. The schema converter names its rules after the root
// names given here ("tool-N-args...") or after JSON primitives ("string", "ws", ...), so
// this name cannot collide with one of them.
constexpr const char* kStartRule = "pensieve-tool-call";

// The GBNF literal for fixed text around the call.
std::string literal(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '\n') out += "\\n";
        else if (c == '"' || c == '\\' || c == '[' || c == ']') out.append({'\\', c});
        else out.push_back(c);
    }
    return out + "\"";
}

// Appends the lines of `rules` that `out` does not have yet (the primitives every
// schema's grammar shares).
void merge_rules(std::string& out, std::set<std::string>& seen, const std::string& rules) {
    size_t pos = 0;
    while (pos < rules.size()) {
        size_t end = rules.find('\n', pos);
        if (end == std::string::npos) end = rules.size();
        std::string line = rules.substr(pos, end - pos);
        if (!line.empty() && seen.insert(line).second) out += line + "\n";
        pos = end + 1;
    }
}

}  // namespace

std::shared_ptr<const Grammar> tool_choice_grammar(const ChatRequest& r, ToolFormat format) {
    if (!r.tools_active() || (r.tool_choice != ToolChoice::Required && r.tool_choice != ToolChoice::Named))
        return nullptr;
    if (r.params.options.grammar)
        bad_request("tool_choice that forces a call cannot be combined with response_format or grammar", "tool_choice");

    const ToolCallSyntax& syntax = tool_call_syntax(format);
    std::string gbnf, start;
    std::set<std::string> seen;
    int n_calls = 0;
    try {
        for (const json& t : r.tools) {
            const json& fn = t["function"];
            const std::string name = fn["name"].get<std::string>();
            if (r.tool_choice == ToolChoice::Named && name != r.tool_choice_name) continue;
            const std::optional<ForcedCall> call = syntax.forced_call(name);
            if (!call)
                bad_request(std::string("tool_choice that forces a call is not supported for this model's tool-call syntax (") +
                                syntax.name() + ")",
                            "tool_choice");
            // One arguments rule per tool, named after its position in the list.
            std::string args_rule = "tool-";
            args_rule.append(std::to_string(n_calls++)).append("-args");
            const json params = fn.contains("parameters") ? fn["parameters"] : json{{"type", "object"}};
            merge_rules(gbnf, seen, json_schema_to_gbnf(params, args_rule));
            if (!start.empty()) start += " | ";
            if (!call->before.empty()) start.append(literal(call->before)).append(" ");
            start.append(args_rule);
            if (!call->after.empty()) start.append(" ").append(literal(call->after));
        }
        if (start.empty()) bad_request("tool_choice names no tool in tools", "tool_choice");
        gbnf.append(kStartRule).append(" ::= ").append(start).append("\n");
        return Grammar::parse_gbnf(gbnf, kStartRule);
    } catch (const ApiError&) {
        throw;
    } catch (const pensieve::Error& e) {
        bad_request(std::string("tools: a tool's parameters cannot be enforced for tool_choice: ") + e.what(), "tools");
    }
}

void apply_tool_choice(ChatRequest& r, ToolFormat format) {
    if (auto g = tool_choice_grammar(r, format)) r.params.options.grammar = std::move(g);
}

}  // namespace pensieve::server
