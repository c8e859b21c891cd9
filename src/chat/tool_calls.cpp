#include "chat/tool_calls.h"

#include <algorithm>
#include <random>

#include "chat/tool_call_families.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

// Detection order matters: a Hermes-tuned Llama 3 template teaches <tool_call> and also
// has Llama 3's headers, and Mistral's templates are the only ones with [TOOL_CALLS].
const std::vector<const ToolCallSyntax*>& registry() {
    static const std::vector<const ToolCallSyntax*> all = {&mistral_tool_calls(), &hermes_tool_calls(),
                                                           &llama3_tool_calls()};
    return all;
}

}  // namespace

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

ParsedReply parse_tool_calls(std::string_view text, ToolFormat format) {
    ParsedReply r = tool_call_syntax(format).parse(text);
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
    const std::vector<std::string_view> markers = syntax_.markers();

    // Replies that are a bare call start with '{' (or a marker): until the first
    // non-space character we cannot tell, so leading whitespace waits too.
    if (syntax_.reply_may_be_bare_call() && emitted_ == 0) {
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

    size_t hold_from = pending.size();
    for (std::string_view m : markers) {
        const size_t at = pending.find(m);
        if (at != std::string_view::npos) {
            hold_from = std::min(hold_from, at);
            capturing_ = true;
            continue;
        }
        // Longest suffix of pending that is a proper prefix of the marker.
        for (size_t len = std::min(m.size() - 1, pending.size()); len > 0; --len) {
            if (pending.substr(pending.size() - len) == m.substr(0, len)) {
                hold_from = std::min(hold_from, pending.size() - len);
                break;
            }
        }
    }
    std::string out(pending.substr(0, hold_from));
    emitted_ += hold_from;
    return out;
}

ParsedReply ToolCallStreamer::finish() {
    const std::string_view rest = std::string_view(text_).substr(emitted_);
    ParsedReply r = parse_tool_calls(rest, syntax_.format());
    if (r.calls.empty()) r.content = std::string(rest);  // held-back text was content after all
    emitted_ = text_.size();
    return r;
}

}  // namespace pensieve
