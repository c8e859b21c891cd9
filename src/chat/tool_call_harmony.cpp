// gpt-oss (harmony): a call is a message on the commentary channel addressed to
// functions.<name>, its body the JSON arguments. harmony.h reads the whole reply
// (reasoning, content and calls); this is the ToolCallSyntax face of it.
//
// The template renders a past call as "<|start|>assistant to=functions.f<|channel|>commentary
// json<|message|>{...}<|call|>"; the model writes the recipient after the channel, as
// "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{...}<|call|>".
// The parser reads both; a forced call is written the model's way. <|call|> ends
// generation (it is an end-of-generation token), so the forced text stops at the body.
#include "chat/harmony.h"
#include "chat/tool_call_families.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

class HarmonyToolCalls final : public ToolCallSyntax {
public:
    ToolFormat format() const override { return ToolFormat::Harmony; }
    const char* name() const override { return "harmony"; }
    bool taught_by(std::string_view src) const override {
        return src.find("<|channel|>") != std::string_view::npos && src.find("<|message|>") != std::string_view::npos;
    }
    std::vector<std::string_view> markers() const override { return {"<|channel|>", "<|start|>"}; }
    std::vector<std::string_view> special_texts() const override {
        return {"<|channel|>", "<|start|>", "<|message|>", "<|constrain|>", "<|end|>", "<|call|>", "<|return|>"};
    }
    std::optional<ForcedCall> forced_call(std::string_view name) const override {
        return ForcedCall{"<|channel|>commentary to=functions." + std::string(name) + " <|constrain|>json<|message|>", ""};
    }
    ParsedReply parse(std::string_view text, const json&) const override {
        HarmonyParser parser(true);
        ReplyDelta d = parser.feed(text);
        ChatReply r = parser.finish();
        return {std::string(tool_call_text::trim(d.content + r.content)), std::move(r.calls)};
    }
};

}  // namespace

const ToolCallSyntax& harmony_tool_calls() {
    static const HarmonyToolCalls syntax;
    return syntax;
}

}  // namespace pensieve
