#include "chat/tool_calls.h"

#include <algorithm>
#include <random>

namespace pensieve {

namespace {

constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr std::string_view kMistralCalls = "[TOOL_CALLS]";
constexpr std::string_view kMistralArgs = "[ARGS]";

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

// End (one past the closing bracket) of the JSON object or array starting at s[start],
// or npos if it does not close. Only brackets and strings matter for finding the end;
// json::parse checks the rest.
size_t json_value_end(std::string_view s, size_t start) {
    int depth = 0;
    bool in_string = false;
    for (size_t i = start; i < s.size(); ++i) {
        const char c = s[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            ++depth;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) return i + 1;
        }
    }
    return std::string_view::npos;
}

// {"name": ..., "arguments"|"parameters": {...} or a JSON string} -> ToolCall.
bool call_from_json(const json& j, ToolCall& out) {
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return false;
    out.name = j["name"].get<std::string>();
    if (out.name.empty()) return false;
    json args = json::object();
    for (const char* key : {"arguments", "parameters"}) {
        if (!j.contains(key)) continue;
        args = j[key];
        if (args.is_string()) args = json::parse(args.get<std::string>(), nullptr, false);
        break;
    }
    if (!args.is_object()) return false;
    out.arguments = std::move(args);
    if (j.contains("id") && j["id"].is_string()) out.id = j["id"].get<std::string>();
    return true;
}

bool parse_call(std::string_view text, ToolCall& out) {
    json j = json::parse(text, nullptr, false);
    return !j.is_discarded() && call_from_json(j, out);
}

ParsedReply plain(std::string_view text) { return {std::string(trim(text)), {}}; }

ParsedReply parse_hermes(std::string_view text) {
    ParsedReply r;
    std::string content;
    size_t pos = 0;
    for (;;) {
        const size_t open = text.find(kHermesOpen, pos);
        if (open == std::string_view::npos) {
            content += text.substr(pos);
            break;
        }
        content += text.substr(pos, open - pos);
        const size_t body = open + kHermesOpen.size();
        size_t close = text.find(kHermesClose, body);
        const size_t body_end = close == std::string_view::npos ? text.size() : close;
        ToolCall call;
        if (!parse_call(trim(text.substr(body, body_end - body)), call)) return plain(text);
        r.calls.push_back(std::move(call));
        pos = close == std::string_view::npos ? text.size() : close + kHermesClose.size();
    }
    r.content = std::string(trim(content));
    return r;
}

ParsedReply parse_llama3(std::string_view text) {
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

ParsedReply parse_mistral(std::string_view text) {
    const size_t at = text.find(kMistralCalls);
    if (at == std::string_view::npos) return plain(text);
    ParsedReply r;
    r.content = std::string(trim(text.substr(0, at)));
    std::string_view rest = trim(text.substr(at + kMistralCalls.size()));
    if (!rest.empty() && rest.front() == '[') {
        // [TOOL_CALLS][{...}, {...}]
        const size_t end = json_value_end(rest, 0);
        if (end == std::string_view::npos || !trim(rest.substr(end)).empty()) return plain(text);
        json arr = json::parse(rest.substr(0, end), nullptr, false);
        if (!arr.is_array() || arr.empty()) return plain(text);
        for (const json& j : arr) {
            ToolCall call;
            if (!call_from_json(j, call)) return plain(text);
            r.calls.push_back(std::move(call));
        }
        return r;
    }
    // [TOOL_CALLS]name[ARGS]{...}[TOOL_CALLS]name2[ARGS]{...}
    while (!rest.empty()) {
        const size_t args = rest.find(kMistralArgs);
        if (args == std::string_view::npos) return plain(text);
        ToolCall call;
        call.name = std::string(trim(rest.substr(0, args)));
        std::string_view after = trim(rest.substr(args + kMistralArgs.size()));
        const size_t end = after.empty() || after.front() != '{' ? std::string_view::npos : json_value_end(after, 0);
        if (call.name.empty() || end == std::string_view::npos) return plain(text);
        call.arguments = json::parse(after.substr(0, end), nullptr, false);
        if (!call.arguments.is_object()) return plain(text);
        r.calls.push_back(std::move(call));
        rest = trim(after.substr(end));
        if (rest.substr(0, kMistralCalls.size()) == kMistralCalls) rest = trim(rest.substr(kMistralCalls.size()));
        else if (!rest.empty()) return plain(text);
    }
    return r;
}

std::vector<std::string_view> markers(ToolFormat f) {
    switch (f) {
        case ToolFormat::Hermes: return {kHermesOpen};
        case ToolFormat::Llama3: return {kPythonTag};
        case ToolFormat::Mistral: return {kMistralCalls};
    }
    return {};
}

}  // namespace

ToolFormat detect_tool_format(std::string_view src) {
    if (src.find("[TOOL_CALLS]") != std::string_view::npos) return ToolFormat::Mistral;
    if (src.find("<tool_call>") != std::string_view::npos) return ToolFormat::Hermes;
    if (src.find("<|python_tag|>") != std::string_view::npos ||
        (src.find("<|start_header_id|>") != std::string_view::npos && src.find("parameters") != std::string_view::npos))
        return ToolFormat::Llama3;
    // Models without a known syntax get the Hermes one: it is what the built-in prompt
    // asks for, and its tags make accidental matches on prose unlikely.
    return ToolFormat::Hermes;
}

const char* tool_format_name(ToolFormat f) {
    switch (f) {
        case ToolFormat::Hermes: return "hermes";
        case ToolFormat::Llama3: return "llama3";
        case ToolFormat::Mistral: return "mistral";
    }
    return "?";
}

ParsedReply parse_tool_calls(std::string_view text, ToolFormat format) {
    ParsedReply r;
    switch (format) {
        case ToolFormat::Hermes: r = parse_hermes(text); break;
        case ToolFormat::Llama3: r = parse_llama3(text); break;
        case ToolFormat::Mistral: r = parse_mistral(text); break;
    }
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

    // Llama 3 replies that are a call start with '{' (or <|python_tag|>): until the
    // first non-space character we cannot tell, so leading whitespace waits too.
    if (format_ == ToolFormat::Llama3 && emitted_ == 0) {
        std::string_view t = pending;
        while (!t.empty() && is_space(t.front())) t.remove_prefix(1);
        if (t.empty()) return "";
        if (t.front() == '{' || t.starts_with(kPythonTag)) {
            capturing_ = true;
            return "";
        }
        if (kPythonTag.starts_with(t)) return "";  // may still become the tag
    }

    size_t hold_from = pending.size();
    for (std::string_view m : markers(format_)) {
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
    ParsedReply r = parse_tool_calls(rest, format_);
    if (r.calls.empty()) r.content = std::string(rest);  // held-back text was content after all
    emitted_ = text_.size();
    return r;
}

}  // namespace pensieve
