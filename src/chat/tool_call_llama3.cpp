// Llama 3.x: the whole reply is the call, {"name": "f", "parameters": {...}}, optionally
// after <|python_tag|>; several calls are separated by ';'.
#include "chat/tool_call_families.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

using namespace tool_call_text;

constexpr std::string_view kPythonTag = "<|python_tag|>";

class Llama3ToolCalls final : public ToolCallSyntax {
public:
    ToolFormat format() const override { return ToolFormat::Llama3; }
    const char* name() const override { return "llama3"; }
    bool taught_by(std::string_view src) const override {
        return src.find(kPythonTag) != std::string_view::npos ||
               (src.find("<|start_header_id|>") != std::string_view::npos &&
                src.find("parameters") != std::string_view::npos);
    }
    std::vector<std::string_view> markers() const override { return {kPythonTag}; }
    bool reply_may_be_bare_call() const override { return true; }
    std::optional<ForcedCall> forced_call(std::string_view name) const override {  // the whole reply is the call
        return ForcedCall{"{\"name\": " + dump_json(std::string(name)) + ", \"parameters\": ", "}"};
    }

    ParsedReply parse(std::string_view text, const json&) const override {
        std::string_view t = trim(text);
        if (t.substr(0, kPythonTag.size()) == kPythonTag) t = trim(t.substr(kPythonTag.size()));
        if (t.empty() || t.front() != '{') return plain(text);
        ParsedReply r;
        size_t pos = 0;
        while (pos < t.size()) {
            const size_t end = json_value_end(t, pos);
            if (end == std::string_view::npos) return plain(text);
            ToolCall call;
            if (!parse_call(t.substr(pos, end - pos), call)) return plain(text);
            r.calls.push_back(std::move(call));
            pos = end;
            while (pos < t.size() && (is_space(t[pos]) || t[pos] == ';')) ++pos;
            if (pos < t.size() && t[pos] != '{') return plain(text);
        }
        return r;
    }
};

}  // namespace

const ToolCallSyntax& llama3_tool_calls() {
    static const Llama3ToolCalls syntax;
    return syntax;
}

}  // namespace pensieve
