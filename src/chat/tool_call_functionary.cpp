// MeetKai Functionary (Llama 3.1 based):
//
//   v3.1:  <function=get_weather>{"city": "Paris"}</function>   (one per call)
//   v3.2:  >>>get_weather\n{"city": "Paris"}   and >>>all\nordinary text
//
// v3.2's generation prompt ends with ">>>", so a reply starts with the recipient; that
// prefix is part of the syntax (reply_prefix), and ">>>all\n" only wraps content.
#include "chat/tool_call_families.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

using namespace tool_call_text;

constexpr std::string_view kFunction = "<function=";
constexpr std::string_view kFunctionEnd = "</function>";
constexpr std::string_view kRecipient = ">>>";
constexpr std::string_view kAll = ">>>all\n";

class FunctionaryV31ToolCalls final : public ToolCallSyntax {
public:
    ToolFormat format() const override { return ToolFormat::FunctionaryV31; }
    const char* name() const override { return "functionary-v3.1"; }
    bool taught_by(std::string_view src) const override {
        return src.find(kFunction) != std::string_view::npos && src.find(kFunctionEnd) != std::string_view::npos;
    }
    std::vector<std::string_view> markers() const override { return {kFunction}; }
    std::optional<ForcedCall> forced_call(std::string_view name) const override {
        return ForcedCall{std::string(kFunction) + std::string(name) + ">", std::string(kFunctionEnd)};
    }
    ParsedReply parse(std::string_view text, const json&) const override {
        return parse_tagged_calls(text, kFunction, kFunctionEnd, [](std::string_view body, ToolCall& call) {
            const size_t gt = body.find('>');
            if (gt == std::string_view::npos) return false;
            call.name = std::string(trim(body.substr(0, gt)));
            call.arguments = parse_object(body.substr(gt + 1));
            return !call.name.empty() && !call.arguments.is_discarded();
        });
    }
};

class FunctionaryV32ToolCalls final : public ToolCallSyntax {
public:
    ToolFormat format() const override { return ToolFormat::FunctionaryV32; }
    const char* name() const override { return "functionary-v3.2"; }
    bool taught_by(std::string_view src) const override {
        return src.find(kRecipient) != std::string_view::npos && src.find("recipient") != std::string_view::npos;
    }
    std::vector<std::string_view> markers() const override { return {kRecipient}; }
    std::vector<std::string_view> content_wrappers() const override { return {kAll}; }
    std::string_view reply_prefix() const override { return kRecipient; }
    std::optional<ForcedCall> forced_call(std::string_view name) const override {
        return ForcedCall{std::string(name) + "\n", ""};  // after the prompt's ">>>"
    }
    // Segments ">>>recipient\nbody"; "all" is content (already unwrapped when streamed).
    ParsedReply parse(std::string_view text, const json&) const override {
        ParsedReply r;
        const size_t first = text.find(kRecipient);
        if (first == std::string_view::npos) return plain(text);
        std::string content(text.substr(0, first));
        std::string_view rest = text.substr(first);
        while (rest.starts_with(kRecipient)) {
            rest.remove_prefix(kRecipient.size());
            size_t next = rest.find(kRecipient);
            if (next == std::string_view::npos) next = rest.size();
            const std::string_view segment = rest.substr(0, next);
            rest.remove_prefix(next);
            const size_t nl = segment.find('\n');
            const std::string_view recipient = trim(segment.substr(0, nl));
            const std::string_view body = nl == std::string_view::npos ? std::string_view() : segment.substr(nl + 1);
            if (recipient == "all") {
                content += body;
                continue;
            }
            ToolCall call;
            call.name = std::string(recipient);
            call.arguments = parse_object(body);
            if (call.name.empty() || call.arguments.is_discarded()) return plain(text);
            r.calls.push_back(std::move(call));
        }
        r.content = std::string(trim(content));
        return r;
    }
};

}  // namespace

const ToolCallSyntax& functionary_v31_tool_calls() {
    static const FunctionaryV31ToolCalls syntax;
    return syntax;
}

const ToolCallSyntax& functionary_v32_tool_calls() {
    static const FunctionaryV32ToolCalls syntax;
    return syntax;
}

}  // namespace pensieve
