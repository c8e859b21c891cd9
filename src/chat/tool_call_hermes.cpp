// Hermes / Qwen 2.5 / Qwen 3 (and the built-in ChatML template): each call is a JSON
// object inside <tool_call>...</tool_call>; ordinary text may surround the calls.
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
    std::string_view forced_call_open() const override { return "<tool_call>\n"; }
    std::string_view forced_call_close() const override { return "\n</tool_call>"; }

    ParsedReply parse(std::string_view text) const override {
        ParsedReply r;
        std::string content;
        size_t pos = 0;
        for (;;) {
            const size_t open = text.find(kOpen, pos);
            if (open == std::string_view::npos) {
                content += text.substr(pos);
                break;
            }
            content += text.substr(pos, open - pos);
            const size_t body = open + kOpen.size();
            size_t close = text.find(kClose, body);
            const size_t body_end = close == std::string_view::npos ? text.size() : close;
            ToolCall call;
            if (!parse_call(trim(text.substr(body, body_end - body)), call)) return plain(text);
            r.calls.push_back(std::move(call));
            pos = close == std::string_view::npos ? text.size() : close + kClose.size();
        }
        r.content = std::string(trim(content));
        return r;
    }
};

}  // namespace

const ToolCallSyntax& hermes_tool_calls() {
    static const HermesToolCalls syntax;
    return syntax;
}

}  // namespace pensieve
