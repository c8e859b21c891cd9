#include "chat/tool_call_json.h"

namespace pensieve::tool_call_text {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

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

}  // namespace pensieve::tool_call_text
