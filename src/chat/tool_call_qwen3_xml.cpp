// Qwen3-Coder / Qwen 3.5: each call is XML inside <tool_call>...</tool_call>:
//
//   <tool_call>
//   <function=get_weather>
//   <parameter=city>
//   Paris
//   </parameter>
//   </function>
//   </tool_call>
//
// Values are bare text: the templates print strings as they are, objects and lists with
// tojson and other values with |string (so booleans read True/False); the tool's schema
// says which parameters are strings (typed_argument). The templates put one newline
// after <parameter=x> and one before </parameter>; those are not part of the value.
// The models sometimes leave out the <tool_call> wrapper, so a bare <function=...> opens
// a call too. Seed-OSS writes the same inside <seed:tool_call>, without the newlines
// around values, and prints non-string values with |string (Python's repr: objects and
// lists then read as Python literals: typed_argument).
#include "chat/tool_call_families.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

using namespace tool_call_text;

constexpr std::string_view kFunction = "<function=";
constexpr std::string_view kFunctionEnd = "</function>";
constexpr std::string_view kParameter = "<parameter=";
constexpr std::string_view kParameterEnd = "</parameter>";

// Without one newline at each end (the template's layout around a value).
std::string_view strip_layout_newlines(std::string_view v) {
    if (v.starts_with("\r\n")) v.remove_prefix(2);
    else if (v.starts_with('\n')) v.remove_prefix(1);
    if (v.ends_with("\r\n")) v.remove_suffix(2);
    else if (v.ends_with('\n')) v.remove_suffix(1);
    return v;
}

// One <function=name>...</function> body starting at text[pos] (at "<function=").
// Returns the position after it, or npos if it is not a well-formed call.
size_t parse_function(std::string_view text, size_t pos, const json& tools, ToolCall& call) {
    pos += kFunction.size();
    const size_t name_end = text.find('>', pos);
    if (name_end == std::string_view::npos) return std::string_view::npos;
    call.name = std::string(trim(text.substr(pos, name_end - pos)));
    if (call.name.empty() || call.name.find('\n') != std::string::npos) return std::string_view::npos;
    call.arguments = json::object();
    pos = name_end + 1;
    for (;;) {
        while (pos < text.size() && is_space(text[pos])) ++pos;
        if (pos >= text.size()) return pos;  // cut off at the end of the reply
        if (starts_with_at(text, pos, kFunctionEnd)) return pos + kFunctionEnd.size();
        if (!starts_with_at(text, pos, kParameter)) {
            // Anything else ends the call (</tool_call> without </function>, or junk).
            return text.substr(pos).starts_with("</") ? pos : std::string_view::npos;
        }
        pos += kParameter.size();
        const size_t key_end = text.find('>', pos);
        if (key_end == std::string_view::npos) return std::string_view::npos;
        const std::string key(trim(text.substr(pos, key_end - pos)));
        if (key.empty()) return std::string_view::npos;
        size_t value_end = text.find(kParameterEnd, key_end + 1);
        const bool closed = value_end != std::string_view::npos;
        if (!closed) value_end = text.size();
        const std::string_view raw = strip_layout_newlines(text.substr(key_end + 1, value_end - key_end - 1));
        call.arguments[key] = typed_argument(raw, parameter_schema(tools, call.name, key));
        pos = closed ? value_end + kParameterEnd.size() : text.size();
    }
}

class Qwen3XmlToolCalls final : public ToolCallSyntax {
public:
    Qwen3XmlToolCalls(ToolFormat format, const char* name, std::string_view open, std::string_view close)
        : format_(format), name_(name), open_(open), close_(close) {}
    ToolFormat format() const override { return format_; }
    const char* name() const override { return name_; }
    bool taught_by(std::string_view src) const override {
        return src.find(open_) != std::string_view::npos && src.find(kFunction) != std::string_view::npos &&
               src.find(kParameter) != std::string_view::npos;
    }
    std::vector<std::string_view> markers() const override { return {open_, kFunction}; }
    std::vector<std::string_view> special_texts() const override { return {open_, close_}; }
    std::optional<ForcedCall> forced_call(std::string_view) const override { return std::nullopt; }

    ParsedReply parse(std::string_view text, const json& tools) const override {
        ParsedReply r;
        std::string content;
        size_t pos = 0;
        for (;;) {
            const size_t open = std::min(text.find(open_, pos), text.find(kFunction, pos));
            if (open == std::string_view::npos) {
                content += text.substr(pos);
                break;
            }
            content += text.substr(pos, open - pos);
            const bool wrapped = starts_with_at(text, open, open_);
            size_t at = wrapped ? open + open_.size() : open;
            while (at < text.size() && is_space(text[at])) ++at;
            if (!starts_with_at(text, at, kFunction)) return plain(text);
            ToolCall call;
            at = parse_function(text, at, tools, call);
            if (at == std::string_view::npos) return plain(text);
            r.calls.push_back(std::move(call));
            while (at < text.size() && is_space(text[at])) ++at;
            if (wrapped && starts_with_at(text, at, close_)) at += close_.size();
            pos = at;
        }
        r.content = std::string(trim(content));
        return r;
    }

private:
    ToolFormat format_;
    const char* name_;
    std::string_view open_, close_;
};

}  // namespace

const ToolCallSyntax& qwen3_xml_tool_calls() {
    static const Qwen3XmlToolCalls syntax(ToolFormat::Qwen3Xml, "qwen3-xml", "<tool_call>", "</tool_call>");
    return syntax;
}

const ToolCallSyntax& seed_oss_tool_calls() {
    static const Qwen3XmlToolCalls syntax(ToolFormat::SeedOss, "seed-oss", "<seed:tool_call>", "</seed:tool_call>");
    return syntax;
}

}  // namespace pensieve
