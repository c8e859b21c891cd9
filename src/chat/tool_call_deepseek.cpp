// DeepSeek: calls in a section of special tokens after any text,
//
//   V3 / R1:  <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather
//             ```json
//             {"city": "Paris"}
//             ```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>...<｜tool▁calls▁end｜>
//   V3.1:     <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Paris"}<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
//
// One parser reads both (after the separator comes either the arguments object or the
// name and a fenced object); the two syntaxes differ in how templates teach them and so
// in what a forced call writes.
#include "chat/tool_call_families.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

using namespace tool_call_text;

constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kSep = "<｜tool▁sep｜>";

// "get_weather\n```json\n{...}\n```" (V3) -> name and arguments.
bool parse_fenced(std::string_view body, ToolCall& call) {
    const size_t nl = body.find('\n');
    if (nl == std::string_view::npos) return false;
    call.name = std::string(trim(body.substr(0, nl)));
    std::string_view rest = trim(body.substr(nl + 1));
    if (rest.starts_with("```json")) rest.remove_prefix(7);
    else if (rest.starts_with("```")) rest.remove_prefix(3);
    if (rest.ends_with("```")) rest.remove_suffix(3);
    call.arguments = parse_object(rest);
    return !call.name.empty() && !call.arguments.is_discarded();
}

// One <｜tool▁call▁begin｜>head<｜tool▁sep｜>body<｜tool▁call▁end｜> (the end may be cut off).
bool parse_one(std::string_view call_text, ToolCall& call) {
    const size_t sep = call_text.find(kSep);
    if (sep == std::string_view::npos) return false;
    const std::string_view head = trim(call_text.substr(0, sep));
    const std::string_view body = trim(call_text.substr(sep + kSep.size()));
    if (body.starts_with('{')) {  // V3.1: head is the name
        call.name = std::string(head);
        call.arguments = parse_object(body);
        return !call.name.empty() && !call.arguments.is_discarded();
    }
    return parse_fenced(body, call);  // V3: head is the call type ("function")
}

ParsedReply parse_deepseek(std::string_view text) {
    size_t at = text.find(kCallsBegin);
    size_t first = at == std::string_view::npos ? text.find(kCallBegin) : at;
    if (first == std::string_view::npos) return plain(text);
    ParsedReply r;
    r.content = std::string(trim(text.substr(0, first)));
    std::string_view rest = text.substr(at == std::string_view::npos ? first : at + kCallsBegin.size());
    for (;;) {
        rest = trim(rest);
        if (rest.empty() || rest.starts_with(kCallsEnd)) break;
        if (!rest.starts_with(kCallBegin)) return plain(text);
        rest.remove_prefix(kCallBegin.size());
        size_t end = rest.find(kCallEnd);
        const bool closed = end != std::string_view::npos;
        if (!closed) end = rest.size();
        ToolCall call;
        if (!parse_one(rest.substr(0, end), call)) return plain(text);
        r.calls.push_back(std::move(call));
        rest = rest.substr(closed ? end + kCallEnd.size() : end);
    }
    if (rest.starts_with(kCallsEnd) && !trim(rest.substr(kCallsEnd.size())).empty()) return plain(text);
    return r;
}

class DeepSeekToolCalls final : public ToolCallSyntax {
public:
    explicit DeepSeekToolCalls(bool fenced) : fenced_(fenced) {}
    ToolFormat format() const override { return fenced_ ? ToolFormat::DeepSeekV3 : ToolFormat::DeepSeekV31; }
    const char* name() const override { return fenced_ ? "deepseek-v3" : "deepseek-v3.1"; }
    bool taught_by(std::string_view src) const override {
        if (src.find(kSep) == std::string_view::npos) return false;
        // V3 / R1 templates write the arguments inside a ```json fence after the name.
        return (src.find("```json") != std::string_view::npos) == fenced_;
    }
    std::vector<std::string_view> markers() const override { return {kCallsBegin, kCallBegin}; }
    std::vector<std::string_view> special_texts() const override {
        return {kCallsBegin, kCallsEnd, kCallBegin, kCallEnd, kSep};
    }
    std::optional<ForcedCall> forced_call(std::string_view name) const override {
        const std::string open = std::string(kCallsBegin) + std::string(kCallBegin);
        const std::string close = std::string(kCallEnd) + std::string(kCallsEnd);
        if (fenced_) return ForcedCall{open + "function" + std::string(kSep) + std::string(name) + "\n```json\n", "\n```" + close};
        return ForcedCall{open + std::string(name) + std::string(kSep), close};
    }
    ParsedReply parse(std::string_view text, const json&) const override { return parse_deepseek(text); }

private:
    bool fenced_;
};

}  // namespace

const ToolCallSyntax& deepseek_v3_tool_calls() {
    static const DeepSeekToolCalls syntax(true);
    return syntax;
}

const ToolCallSyntax& deepseek_v31_tool_calls() {
    static const DeepSeekToolCalls syntax(false);
    return syntax;
}

}  // namespace pensieve
