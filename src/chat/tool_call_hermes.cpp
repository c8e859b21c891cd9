// Hermes / Qwen 2.5 / Qwen 3 / Granite 4 (and the built-in ChatML template): each call is
// a JSON object inside <tool_call>...</tool_call>; ordinary text may surround the calls.
#include "chat/tool_call_families.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

using namespace tool_call_text;

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";

class HermesToolCalls final : public ToolCallSyntax {
public:
    ToolFormat format() const override { return ToolFormat::Hermes; }
    const char* name() const override { return "hermes"; }
    bool taught_by(std::string_view src) const override { return src.find(kOpen) != std::string_view::npos; }
    std::vector<std::string_view> markers() const override { return {kOpen}; }
    std::vector<std::string_view> special_texts() const override { return {kOpen, kClose}; }
    std::optional<ForcedCall> forced_call(std::string_view name) const override {
        return ForcedCall{"<tool_call>\n{\"name\": " + dump_json(std::string(name)) + ", \"arguments\": ", "}\n</tool_call>"};
    }

    ParsedReply parse(std::string_view text, const json&) const override {
        return parse_tagged_calls(text, kOpen, kClose,
                                  [](std::string_view body, ToolCall& call) { return parse_call(trim(body), call); });
    }
};

}  // namespace

const ToolCallSyntax& hermes_tool_calls() {
    static const HermesToolCalls syntax;
    return syntax;
}

}  // namespace pensieve
