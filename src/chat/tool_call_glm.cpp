// GLM 4.5 / 4.6: the name right after <tool_call>, then key/value pairs:
//
//   <tool_call>get_weather
//   <arg_key>city</arg_key>
//   <arg_value>Paris</arg_value>
//   </tool_call>
//
// Values are bare text (strings as they are, other values as JSON), typed by the tool's
// schema (typed_argument).
#include "chat/tool_call_families.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

using namespace tool_call_text;

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";
constexpr std::string_view kKey = "<arg_key>";
constexpr std::string_view kKeyEnd = "</arg_key>";
constexpr std::string_view kValue = "<arg_value>";
constexpr std::string_view kValueEnd = "</arg_value>";

// The body between <tool_call> and </tool_call> -> call.
bool parse_body(std::string_view body, const json& tools, ToolCall& call) {
    size_t key = body.find(kKey);
    call.name = std::string(trim(body.substr(0, key)));
    if (call.name.empty() || call.name.find_first_of("\n<>{}") != std::string::npos) return false;
    call.arguments = json::object();
    while (key != std::string_view::npos) {
        if (!trim(body.substr(0, key)).empty() && call.arguments.size() > 0) return false;  // junk between pairs
        const size_t key_end = body.find(kKeyEnd, key);
        if (key_end == std::string_view::npos) return false;
        const std::string k(trim(body.substr(key + kKey.size(), key_end - key - kKey.size())));
        std::string_view after = trim(body.substr(key_end + kKeyEnd.size()));
        if (k.empty() || !after.starts_with(kValue)) return false;
        after.remove_prefix(kValue.size());
        size_t value_end = after.find(kValueEnd);
        const bool closed = value_end != std::string_view::npos;
        if (!closed) value_end = after.size();
        call.arguments[k] = typed_argument(after.substr(0, value_end), parameter_schema(tools, call.name, k));
        body = closed ? after.substr(value_end + kValueEnd.size()) : std::string_view();
        key = body.find(kKey);
        if (key == std::string_view::npos && !trim(body).empty()) return false;
    }
    return true;
}

class GlmToolCalls final : public ToolCallSyntax {
public:
    ToolFormat format() const override { return ToolFormat::Glm45; }
    const char* name() const override { return "glm-4.5"; }
    bool taught_by(std::string_view src) const override {
        return src.find(kOpen) != std::string_view::npos && src.find(kKey) != std::string_view::npos;
    }
    std::vector<std::string_view> markers() const override { return {kOpen}; }
    std::vector<std::string_view> special_texts() const override {
        return {kOpen, kClose, kKey, kKeyEnd, kValue, kValueEnd};
    }
    std::optional<ForcedCall> forced_call(std::string_view) const override { return std::nullopt; }

    ParsedReply parse(std::string_view text, const json& tools) const override {
        return parse_tagged_calls(text, kOpen, kClose,
                                  [&](std::string_view body, ToolCall& call) { return parse_body(body, tools, call); });
    }
};

}  // namespace

const ToolCallSyntax& glm_tool_calls() {
    static const GlmToolCalls syntax;
    return syntax;
}

}  // namespace pensieve
