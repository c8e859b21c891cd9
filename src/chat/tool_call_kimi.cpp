// Kimi K2: a section of calls after any text; each call's id is "functions.<name>:<index>"
// and is the id the tool result refers to (the template prints "## Return of <id>"), so
// it is kept as the call id:
//
//   <|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{"city": "Paris"}<|tool_call_end|>...<|tool_calls_section_end|>
#include "chat/tool_call_families.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

using namespace tool_call_text;

constexpr std::string_view kSectionBegin = "<|tool_calls_section_begin|>";
constexpr std::string_view kSectionEnd = "<|tool_calls_section_end|>";
constexpr std::string_view kCallBegin = "<|tool_call_begin|>";
constexpr std::string_view kArgsBegin = "<|tool_call_argument_begin|>";
constexpr std::string_view kCallEnd = "<|tool_call_end|>";

// "functions.get_weather:0" -> "get_weather"; "" if the id has no name.
std::string name_from_id(std::string_view id) {
    if (id.starts_with("functions.")) id.remove_prefix(10);
    const size_t colon = id.rfind(':');
    if (colon != std::string_view::npos) id = id.substr(0, colon);
    return std::string(trim(id));
}

class KimiToolCalls final : public ToolCallSyntax {
public:
    ToolFormat format() const override { return ToolFormat::KimiK2; }
    const char* name() const override { return "kimi-k2"; }
    bool taught_by(std::string_view src) const override { return src.find(kSectionBegin) != std::string_view::npos; }
    std::vector<std::string_view> markers() const override { return {kSectionBegin}; }
    std::vector<std::string_view> special_texts() const override {
        return {kSectionBegin, kSectionEnd, kCallBegin, kArgsBegin, kCallEnd};
    }
    std::optional<ForcedCall> forced_call(std::string_view name) const override {
        return ForcedCall{std::string(kSectionBegin) + std::string(kCallBegin) + "functions." + std::string(name) + ":0" +
                              std::string(kArgsBegin),
                          std::string(kCallEnd) + std::string(kSectionEnd)};
    }

    ParsedReply parse(std::string_view text, const json&) const override {
        const size_t at = text.find(kSectionBegin);
        if (at == std::string_view::npos) return plain(text);
        ParsedReply r;
        r.content = std::string(trim(text.substr(0, at)));
        std::string_view rest = text.substr(at + kSectionBegin.size());
        for (;;) {
            rest = trim(rest);
            if (rest.empty() || rest.starts_with(kSectionEnd)) break;
            if (!rest.starts_with(kCallBegin)) return plain(text);
            rest.remove_prefix(kCallBegin.size());
            const size_t args = rest.find(kArgsBegin);
            if (args == std::string_view::npos) return plain(text);
            ToolCall call;
            call.id = std::string(trim(rest.substr(0, args)));
            call.name = name_from_id(call.id);
            rest.remove_prefix(args + kArgsBegin.size());
            size_t end = rest.find(kCallEnd);
            const bool closed = end != std::string_view::npos;
            if (!closed) end = rest.size();
            call.arguments = parse_object(rest.substr(0, end));
            if (call.name.empty() || call.arguments.is_discarded()) return plain(text);
            r.calls.push_back(std::move(call));
            rest.remove_prefix(closed ? end + kCallEnd.size() : end);
        }
        return r;
    }
};

}  // namespace

const ToolCallSyntax& kimi_tool_calls() {
    static const KimiToolCalls syntax;
    return syntax;
}

}  // namespace pensieve
