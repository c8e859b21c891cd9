#include "util/json_text.h"

#include <vector>

#include "util/nesting.h"

namespace pensieve {

namespace {

using json = nlohmann::ordered_json;

// Keys of the objects enclosing the parser's position ("[]" entries are arrays).
std::string path_of(const std::vector<std::string>& open) {
    std::string path;
    for (const std::string& k : open) {
        if (k == "[]") continue;
        if (!path.empty()) path += '.';
        path += k;
    }
    return path;
}

// For messages: the first few keys of a path.
std::string shown(const std::string& path) {
    size_t end = 0;
    for (int i = 0; i < 6 && end != std::string::npos; ++i) end = path.find('.', end + 1);
    return end == std::string::npos ? path : path.substr(0, end) + "...";
}

// nlohmann's message without its "[json.exception.xxx.nnn] " prefix.
std::string plain_message(const std::exception& e) {
    const std::string what = e.what();
    const size_t end = what.find("] ");
    return end == std::string::npos ? what : what.substr(end + 2);
}

}  // namespace

json parse_json_text(std::string_view text) {
    std::vector<std::string> open;  // one entry per enclosing array/object
    auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
        switch (event) {
            case json::parse_event_t::object_start:
            case json::parse_event_t::array_start:
                // depth: containers already open around this one.
                if (depth >= kMaxNesting) {
                    const std::string path = path_of(open);
                    throw JsonTextError(cat("arrays and objects are nested deeper than ", kMaxNesting, " levels",
                                            path.empty() ? "" : " (in " + shown(path) + ")"),
                                        path, true);
                }
                open.push_back(event == json::parse_event_t::array_start ? "[]" : "");
                break;
            case json::parse_event_t::object_end:
            case json::parse_event_t::array_end:
                if (!open.empty()) open.pop_back();
                break;
            case json::parse_event_t::key:
                if (!open.empty()) open.back() = parsed.get<std::string>();
                break;
            case json::parse_event_t::value: break;
        }
        return true;
    };
    try {
        return json::parse(text.begin(), text.end(), on_event);
    } catch (const json::parse_error& e) {
        throw JsonTextError(plain_message(e), "");
    } catch (const json::exception& e) {
        // out_of_range 406: "number overflow parsing '1e400'".
        const std::string path = path_of(open);
        throw JsonTextError(plain_message(e) + (path.empty() ? "" : " (in " + shown(path) + ")"), path);
    }
}

std::optional<json> try_parse_json_text(std::string_view text) {
    try {
        return parse_json_text(text);
    } catch (const JsonTextError&) {
        return std::nullopt;
    }
}

}  // namespace pensieve
