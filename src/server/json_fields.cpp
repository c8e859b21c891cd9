#include "server/json_fields.h"

#include "util/json_text.h"

namespace pensieve::server {

json parse_body(const std::string& body) {
    if (body.empty()) bad_request("the request body is empty; expected a JSON object");
    json j;
    try {
        j = parse_json_text(body);
    } catch (const JsonTextError& e) {
        // The field a number overflow or a too-deep nesting is in, as the OpenAI param.
        const bool syntax = e.path().empty() && !e.too_deep();
        bad_request(std::string(syntax ? "the request body is not valid JSON: " : "the request body: ") + e.what(),
                    e.top_key());
    }
    if (!j.is_object()) bad_request(std::string("the request body must be a JSON object, not ") + json_type_name(j));
    return j;
}

const char* json_type_name(const json& j) {
    switch (j.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "a boolean";
        case json::value_t::string: return "a string";
        case json::value_t::array: return "an array";
        case json::value_t::object: return "an object";
        case json::value_t::binary: return "binary";
        case json::value_t::discarded: return "nothing";
        default: return "a number";
    }
}

const json* field(const json& obj, const char* name) {
    auto it = obj.find(name);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

bool get_bool(const json& obj, const char* name, bool def) {
    const json* v = field(obj, name);
    if (!v) return def;
    if (!v->is_boolean()) bad_request(std::string(name) + " must be a boolean, not " + json_type_name(*v), name);
    return v->get<bool>();
}

std::string get_string(const json& obj, const char* name, const std::string& def) {
    const json* v = field(obj, name);
    if (!v) return def;
    if (!v->is_string()) bad_request(std::string(name) + " must be a string, not " + json_type_name(*v), name);
    return v->get<std::string>();
}

std::string require_string(const json& obj, const char* name) {
    const json* v = field(obj, name);
    if (!v) bad_request(std::string(name) + " is required", name);
    return get_string(obj, name, "");
}

std::optional<double> get_number(const json& obj, const char* name, double lo, double hi) {
    const json* v = field(obj, name);
    if (!v) return std::nullopt;
    if (!v->is_number()) bad_request(std::string(name) + " must be a number, not " + json_type_name(*v), name);
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi)
        bad_request(std::string(name) + " must be between " + json(lo).dump() + " and " + json(hi).dump() +
                        ", got " + v->dump(),
                    name);
    return x;
}

std::optional<int64_t> get_int(const json& obj, const char* name, int64_t lo, int64_t hi) {
    const json* v = field(obj, name);
    if (!v) return std::nullopt;
    auto out_of_range = [&] {
        bad_request(std::string(name) + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                        ", got " + v->dump(),
                    name);
    };
    int64_t x = 0;
    if (v->is_number_unsigned()) {
        // Past INT64_MAX (seeds read them themselves): out of every range here.
        if (v->get<uint64_t>() > uint64_t(INT64_MAX)) out_of_range();
        x = int64_t(v->get<uint64_t>());
    } else if (v->is_number_integer()) {
        x = v->get<int64_t>();
    } else if (v->is_number_float()) {
        const double d = v->get<double>();
        if (!std::isfinite(d) || d != std::floor(d))
            bad_request(std::string(name) + " must be an integer, got " + v->dump(), name);
        if (std::fabs(d) >= 9.2e18) out_of_range();  // converting would be undefined
        x = int64_t(d);
    } else {
        bad_request(std::string(name) + " must be an integer, not " + json_type_name(*v), name);
    }
    if (x < lo || x > hi) out_of_range();
    return x;
}

std::vector<std::string> get_string_list(const json& obj, const char* name, size_t max_items) {
    const json* v = field(obj, name);
    std::vector<std::string> out;
    if (!v) return out;
    auto add = [&](const json& s) {
        if (!s.is_string())
            bad_request(std::string(name) + " must be a string or an array of strings", name);
        if (s.get_ref<const std::string&>().empty()) bad_request(std::string(name) + " must not contain empty strings", name);
        out.push_back(s.get<std::string>());
    };
    if (v->is_array()) {
        if (v->size() > max_items)
            bad_request(std::string(name) + " has " + std::to_string(v->size()) + " entries; at most " +
                            std::to_string(max_items) + " are allowed",
                        name);
        for (const json& s : *v) add(s);
    } else {
        add(*v);
    }
    return out;
}

}  // namespace pensieve::server
