// Mistral: [TOOL_CALLS] then either a JSON list of calls (with 9-character ids) or, in
// the newer templates, name[ARGS]{...} per call (Mistral Small 3.2: name[CALL_ID]id[ARGS]{...}).
#include "chat/tool_call_families.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

using namespace tool_call_text;

constexpr std::string_view kCalls = "[TOOL_CALLS]";
constexpr std::string_view kArgs = "[ARGS]";
constexpr std::string_view kCallId = "[CALL_ID]";

// [TOOL_CALLS][{...}, {...}]
ParsedReply parse_list(std::string_view text, std::string_view rest, ParsedReply r) {
    const size_t end = json_value_end(rest, 0);
    if (end == std::string_view::npos || !trim(rest.substr(end)).empty()) return plain(text);
    json arr = parse_json(rest.substr(0, end));
    if (!arr.is_array() || arr.empty()) return plain(text);
    for (const json& j : arr) {
        ToolCall call;
        if (!call_from_json(j, call)) return plain(text);
        r.calls.push_back(std::move(call));
    }
    return r;
}

// [TOOL_CALLS]name[ARGS]{...}[TOOL_CALLS]name2[CALL_ID]id[ARGS]{...}
ParsedReply parse_named(std::string_view text, std::string_view rest, ParsedReply r) {
    while (!rest.empty()) {
        const size_t args = rest.find(kArgs);
        if (args == std::string_view::npos) return plain(text);
        ToolCall call;
        std::string_view head = rest.substr(0, args);
        if (const size_t id = head.find(kCallId); id != std::string_view::npos) {
            call.id = std::string(trim(head.substr(id + kCallId.size())));
            head = head.substr(0, id);
        }
        call.name = std::string(trim(head));
        std::string_view after = trim(rest.substr(args + kArgs.size()));
        const size_t end = after.empty() || after.front() != '{' ? std::string_view::npos : json_value_end(after, 0);
        if (call.name.empty() || end == std::string_view::npos) return plain(text);
        call.arguments = parse_json(after.substr(0, end));
        if (!call.arguments.is_object()) return plain(text);
        r.calls.push_back(std::move(call));
        rest = trim(after.substr(end));
        if (rest.substr(0, kCalls.size()) == kCalls) rest = trim(rest.substr(kCalls.size()));
        else if (!rest.empty()) return plain(text);
    }
    return r;
}

class MistralToolCalls final : public ToolCallSyntax {
public:
    ToolFormat format() const override { return ToolFormat::Mistral; }
    const char* name() const override { return "mistral"; }
    bool taught_by(std::string_view src) const override { return src.find(kCalls) != std::string_view::npos; }
    std::vector<std::string_view> markers() const override { return {kCalls}; }
    std::vector<std::string_view> special_texts() const override { return {kCalls, kArgs, kCallId}; }
    std::optional<ForcedCall> forced_call(std::string_view name) const override {
        return ForcedCall{"[TOOL_CALLS][{\"name\": " + dump_json(std::string(name)) + ", \"arguments\": ", "}]"};
    }

    ParsedReply parse(std::string_view text, const json&) const override {
        const size_t at = text.find(kCalls);
        if (at == std::string_view::npos) return plain(text);
        ParsedReply r;
        r.content = std::string(trim(text.substr(0, at)));
        std::string_view rest = trim(text.substr(at + kCalls.size()));
        if (!rest.empty() && rest.front() == '[') return parse_list(text, rest, std::move(r));
        return parse_named(text, rest, std::move(r));
    }
};

}  // namespace

const ToolCallSyntax& mistral_tool_calls() {
    static const MistralToolCalls syntax;
    return syntax;
}

}  // namespace pensieve
