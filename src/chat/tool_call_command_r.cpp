// Cohere's Command-R family: a JSON list of {"tool_name", "parameters"} actions.
//
//   Command-R / R+ (tool_use template):  Action:\n```json\n[{"tool_name": "f", "parameters": {...}}]\n```
//   Command-R7B / Command-A (Cohere2):   <|START_ACTION|>[{"tool_call_id": "0", "tool_name": "f",
//                                        "parameters": {...}}]<|END_ACTION|>
//
// Command-R's templates offer a `directly-answer` tool for "no tool needed"; it is not a
// tool of the client's, so it is dropped from the calls (what remains is content).
// Command-R7B's tool_call_id is the call's index in the conversation, which the template
// recomputes from the messages' own ids; it is not kept (ids are generated).
// Command-R7B wraps plain answers in <|START_RESPONSE|>...<|END_RESPONSE|> (Command-A:
// <|START_TEXT|>...<|END_TEXT|>); those markers are not content.
#include "chat/tool_call_families.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

using namespace tool_call_text;

constexpr std::string_view kAction = "Action:";
constexpr std::string_view kStartAction = "<|START_ACTION|>";
constexpr std::string_view kEndAction = "<|END_ACTION|>";

bool is_directly_answer(const ToolCall& c) { return c.name == "directly-answer" || c.name == "directly_answer"; }

// `[{...}, ...]` (the list may be cut off after its last complete action) -> calls.
bool parse_actions(std::string_view list, std::vector<ToolCall>& calls) {
    const size_t end = json_value_end(list, 0);
    if (!list.starts_with('[') || end == std::string_view::npos || !trim(list.substr(end)).empty()) return false;
    const json arr = parse_json(list.substr(0, end));
    if (!arr.is_array() || arr.empty()) return false;
    for (const json& j : arr) {
        ToolCall call;
        if (!call_from_json(j, call, "tool_name")) return false;
        call.id.clear();
        if (!is_directly_answer(call)) calls.push_back(std::move(call));
    }
    return true;
}

class CommandRToolCalls final : public ToolCallSyntax {
public:
    ToolFormat format() const override { return ToolFormat::CommandR; }
    const char* name() const override { return "command-r"; }
    bool taught_by(std::string_view src) const override {
        return src.find(kAction) != std::string_view::npos && src.find("tool_name") != std::string_view::npos;
    }
    std::vector<std::string_view> markers() const override { return {kAction}; }
    std::optional<ForcedCall> forced_call(std::string_view name) const override {
        return ForcedCall{"Action:\n```json\n[\n    {\n        \"tool_name\": " + dump_json(std::string(name)) +
                              ",\n        \"parameters\": ",
                          "\n    }\n]\n```"};
    }

    ParsedReply parse(std::string_view text, const json&) const override {
        const size_t at = text.find(kAction);
        if (at == std::string_view::npos) return plain(text);
        ParsedReply r;
        r.content = std::string(trim(text.substr(0, at)));
        std::string_view rest = trim(text.substr(at + kAction.size()));
        if (rest.starts_with("```json")) rest.remove_prefix(7);
        else if (rest.starts_with("```")) rest.remove_prefix(3);
        rest = trim(rest);
        if (rest.ends_with("```")) rest.remove_suffix(3);
        if (!parse_actions(trim(rest), r.calls)) return plain(text);
        return r;
    }
};

class CommandR7BToolCalls final : public ToolCallSyntax {
public:
    ToolFormat format() const override { return ToolFormat::CommandR7B; }
    const char* name() const override { return "command-r7b"; }
    bool taught_by(std::string_view src) const override { return src.find(kStartAction) != std::string_view::npos; }
    std::vector<std::string_view> markers() const override { return {kStartAction}; }
    std::vector<std::string_view> special_texts() const override {
        std::vector<std::string_view> out = content_wrappers();
        out.insert(out.end(), {kStartAction, kEndAction});
        return out;
    }
    std::vector<std::string_view> content_wrappers() const override {
        return {"<|START_RESPONSE|>", "<|END_RESPONSE|>", "<|START_TEXT|>", "<|END_TEXT|>"};
    }
    std::optional<ForcedCall> forced_call(std::string_view name) const override {
        return ForcedCall{std::string(kStartAction) + "[\n    {\"tool_call_id\": \"0\", \"tool_name\": " +
                              dump_json(std::string(name)) + ", \"parameters\": ",
                          "}\n]" + std::string(kEndAction)};
    }

    ParsedReply parse(std::string_view text, const json&) const override {
        const size_t at = text.find(kStartAction);
        if (at == std::string_view::npos) return plain(text);
        ParsedReply r;
        r.content = std::string(trim(text.substr(0, at)));
        std::string_view rest = text.substr(at + kStartAction.size());
        const size_t end = rest.find(kEndAction);
        if (end != std::string_view::npos) {
            if (!trim(rest.substr(end + kEndAction.size())).empty()) return plain(text);
            rest = rest.substr(0, end);
        }
        if (!parse_actions(trim(rest), r.calls)) return plain(text);
        return r;
    }
};

}  // namespace

const ToolCallSyntax& command_r_tool_calls() {
    static const CommandRToolCalls syntax;
    return syntax;
}

const ToolCallSyntax& command_r7b_tool_calls() {
    static const CommandR7BToolCalls syntax;
    return syntax;
}

}  // namespace pensieve
