#include "chat/tool_calls.h"

#include <algorithm>
#include <random>

#include "chat/marker_scan.h"
#include "chat/tool_call_families.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

// Detection order matters: the first syntax a template teaches wins. Syntaxes with
// distinctive special tokens come first; the XML ones (Qwen3-Coder <function=, GLM
// <arg_key>) before Hermes, whose <tool_call> tag they share, and Qwen3-Coder's before
// Functionary v3.1's <function=...</function>; Functionary and Hermes-tuned Llama 3
// templates also have Llama 3's headers, so Llama 3 is last.
const std::vector<const ToolCallSyntax*>& registry() {
    static const std::vector<const ToolCallSyntax*> all = {
        &harmony_tool_calls(),     &kimi_tool_calls(),         &deepseek_v3_tool_calls(), &deepseek_v31_tool_calls(),
        &gemma4_tool_calls(),      &command_r7b_tool_calls(),  &command_r_tool_calls(),   &mistral_tool_calls(),
        &qwen3_xml_tool_calls(),   &seed_oss_tool_calls(),     &functionary_v31_tool_calls(),
        &functionary_v32_tool_calls(),                         &glm_tool_calls(),         &hermes_tool_calls(),
        &llama3_tool_calls(),
    };
    return all;
}

}  // namespace

std::vector<std::string_view> ToolCallSyntax::special_texts() const {
    std::vector<std::string_view> out = markers();
    for (std::string_view w : content_wrappers()) out.push_back(w);
    return out;
}

const ToolCallSyntax& tool_call_syntax(ToolFormat f) {
    for (const ToolCallSyntax* s : registry())
        if (s->format() == f) return *s;
    return hermes_tool_calls();
}

ToolFormat detect_tool_format(std::string_view src) {
    for (const ToolCallSyntax* s : registry())
        if (s->taught_by(src)) return s->format();
    // Models without a known syntax get the Hermes one: it is what the built-in prompt
    // asks for, and its tags make accidental matches on prose unlikely.
    return ToolFormat::Hermes;
}

const char* tool_format_name(ToolFormat f) { return tool_call_syntax(f).name(); }

std::vector<ToolFormat> all_tool_formats() {
    std::vector<ToolFormat> out;
    for (const ToolCallSyntax* s : registry()) out.push_back(s->format());
    return out;
}

ParsedReply parse_tool_calls(std::string_view text, ToolFormat format, const json& tools) {
    ParsedReply r = tool_call_syntax(format).parse(text, tools);
    for (ToolCall& c : r.calls)
        if (c.id.empty()) c.id = make_tool_call_id("call_");
    return r;
}

std::string make_tool_call_id(const char* prefix) {
    static const char kAlnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::string id = prefix;
    for (int i = 0; i < 24; ++i) id += kAlnum[rng() % (sizeof(kAlnum) - 1)];
    return id;
}

std::string ToolCallStreamer::feed(std::string_view text) {
    text_ += text;
    if (capturing_) return "";
    std::string_view pending = std::string_view(text_).substr(emitted_);
    const std::vector<std::string_view> markers = syntax_->markers();

    // Replies that are a bare call start with '{' (or a marker): until the first
    // non-space character we cannot tell, so leading whitespace waits too.
    if (syntax_->reply_may_be_bare_call() && emitted_ == 0) {
        std::string_view t = pending;
        while (!t.empty() && tool_call_text::is_space(t.front())) t.remove_prefix(1);
        if (t.empty()) return "";
        const bool call = t.front() == '{' || std::any_of(markers.begin(), markers.end(),
                                                          [&](std::string_view m) { return t.starts_with(m); });
        if (call) {
            capturing_ = true;
            return "";
        }
        for (std::string_view m : markers)
            if (m.starts_with(t)) return "";  // may still become the marker
    }

    size_t hold_from = pending.size() - partial_marker_suffix(pending, markers);
    if (const size_t at = find_first_marker(pending, markers).first; at != std::string_view::npos) {
        hold_from = std::min(hold_from, at);
        capturing_ = true;
    }
    std::string out(pending.substr(0, hold_from));
    emitted_ += hold_from;
    return out;
}

ParsedReply ToolCallStreamer::finish() {
    const std::string_view rest = std::string_view(text_).substr(emitted_);
    ParsedReply r = parse_tool_calls(rest, syntax_->format(), tools_);
    if (r.calls.empty()) r.content = std::string(rest);  // held-back text was content after all
    emitted_ = text_.size();
    return r;
}

}  // namespace pensieve
