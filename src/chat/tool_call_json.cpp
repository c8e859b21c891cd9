#include "chat/tool_call_json.h"

#include <cctype>

#include "util/json_text.h"

namespace pensieve::tool_call_text {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

bool starts_with_at(std::string_view s, size_t pos, std::string_view prefix) {
    return pos <= s.size() && s.substr(pos).starts_with(prefix);
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

json parse_json(std::string_view text) {
    return try_parse_json_text(text).value_or(json(json::value_t::discarded));
}

json parse_object(std::string_view text) {
    json j = parse_json(trim(text));
    return j.is_object() ? j : json(json::value_t::discarded);
}

bool call_from_json(const json& j, ToolCall& out, const char* name_key) {
    if (!j.is_object() || !j.contains(name_key) || !j[name_key].is_string()) return false;
    out.name = j[name_key].get<std::string>();
    if (out.name.empty()) return false;
    json args = json::object();
    for (const char* key : {"arguments", "parameters"}) {
        if (!j.contains(key)) continue;
        args = j[key];
        if (args.is_string()) args = parse_json(args.get<std::string>());
        break;
    }
    if (!args.is_object()) return false;
    out.arguments = std::move(args);
    if (j.contains("id") && j["id"].is_string()) out.id = j["id"].get<std::string>();
    return true;
}

bool parse_call(std::string_view text, ToolCall& out) {
    json j = parse_json(text);
    return !j.is_discarded() && call_from_json(j, out);
}

ParsedReply parse_tagged_calls(std::string_view text, std::string_view open, std::string_view close,
                               const std::function<bool(std::string_view body, ToolCall& call)>& parse_body) {
    ParsedReply r;
    std::string content;
    size_t pos = 0;
    for (;;) {
        const size_t at = text.find(open, pos);
        if (at == std::string_view::npos) {
            content += text.substr(pos);
            break;
        }
        content += text.substr(pos, at - pos);
        const size_t body = at + open.size();
        const size_t end = text.find(close, body);
        const size_t body_end = end == std::string_view::npos ? text.size() : end;
        ToolCall call;
        if (!parse_body(text.substr(body, body_end - body), call)) return plain(text);
        r.calls.push_back(std::move(call));
        pos = end == std::string_view::npos ? text.size() : end + close.size();
    }
    r.content = std::string(trim(content));
    return r;
}

ParsedReply plain(std::string_view text) { return {std::string(trim(text)), {}}; }

const json* parameter_schema(const json& tools, std::string_view function, std::string_view param) {
    if (!tools.is_array()) return nullptr;
    for (const json& t : tools) {
        if (!t.is_object() || !t.contains("function")) continue;
        const json& fn = t["function"];
        if (!fn.is_object() || fn.value("name", "") != function) continue;
        if (!fn.contains("parameters") || !fn["parameters"].is_object()) return nullptr;
        const json& params = fn["parameters"];
        if (!params.contains("properties") || !params["properties"].is_object()) return nullptr;
        const json& props = params["properties"];
        auto it = props.find(std::string(param));
        return it == props.end() ? nullptr : &*it;
    }
    return nullptr;
}

namespace {

// The schema's "type" as a list of names ("string", ["integer", "null"], absent -> {}).
std::vector<std::string> schema_types(const json* schema) {
    std::vector<std::string> out;
    if (!schema || !schema->is_object() || !schema->contains("type")) return out;
    const json& t = (*schema)["type"];
    if (t.is_string()) out.push_back(t.get<std::string>());
    if (t.is_array())
        for (const json& x : t)
            if (x.is_string()) out.push_back(x.get<std::string>());
    return out;
}

bool has_type(const std::vector<std::string>& types, std::string_view t) {
    for (const std::string& x : types)
        if (x == t) return true;
    return false;
}

// A literal as Python's repr() prints lists and dicts ({'a': [1, True, None]})
// -> JSON text, or "" when it has something JSON does not (tuples, sets, ...).
std::string python_literal_as_json(std::string_view t) {
    std::string out;
    for (size_t i = 0; i < t.size();) {
        const char c = t[i];
        if (c == '\'' || c == '"') {  // a Python string in either quote -> a JSON string
            std::string s;
            size_t j = i + 1;
            for (; j < t.size() && t[j] != c; ++j) {
                if (t[j] == '\\' && j + 1 < t.size()) {
                    ++j;
                    s += t[j] == 'n' ? '\n' : t[j] == 't' ? '\t' : t[j];
                } else {
                    s += t[j];
                }
            }
            if (j >= t.size()) return "";
            out += dump_json(s);
            i = j + 1;
        } else if (std::isalpha(static_cast<unsigned char>(c))) {
            size_t j = i;
            while (j < t.size() && std::isalnum(static_cast<unsigned char>(t[j]))) ++j;
            const std::string_view word = t.substr(i, j - i);
            if (word == "True") out += "true";
            else if (word == "False") out += "false";
            else if (word == "None") out += "null";
            else return "";
            i = j;
        } else if (c == '(' || c == ')') {
            return "";
        } else {
            out += c;
            ++i;
        }
    }
    return out;
}

}  // namespace

json typed_argument(std::string_view text, const json* schema) {
    const std::vector<std::string> types = schema_types(schema);
    if (types.size() == 1 && types[0] == "string") return std::string(text);
    const std::string_view t = trim(text);
    json v = parse_json(t);
    if (!v.is_discarded() && !v.is_string()) return v;
    if (t.starts_with('[') || t.starts_with('{')) {  // Python's repr of a list / dict
        v = parse_json(python_literal_as_json(t));
        if (v.is_array() || v.is_object()) return v;
    }
    // Python's spelling of booleans and None, as templates print them with |string.
    if (has_type(types, "boolean") && (t == "True" || t == "False")) return t == "True";
    if (has_type(types, "null") && t == "None") return nullptr;
    return std::string(text);
}

}  // namespace pensieve::tool_call_text
