// JSON text from outside (request bodies, tool-call arguments, model output) -> a value.
//
// nlohmann's parser itself is iterative, but copying, dumping and comparing a value
// recurse, as does everything downstream (templates, schema conversion), so the nesting
// limit (util/nesting.h) is enforced while parsing. Numbers too large for a double
// (1e400) are an error that names where they are, not nlohmann's out_of_range.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace pensieve {

class JsonTextError : public Error {
public:
    JsonTextError(const std::string& message, std::string path, bool too_deep = false)
        : Error(message), path_(std::move(path)), too_deep_(too_deep) {}
    // Where the problem is, as keys from the top: "response_format.json_schema" ("" at
    // the top level or for syntax errors, whose message carries the byte position).
    const std::string& path() const { return path_; }
    // The first key of path(): the request field the problem is in.
    std::string top_key() const { return path_.substr(0, path_.find('.')); }
    // Valid JSON, but nested deeper than kMaxNesting.
    bool too_deep() const { return too_deep_; }

private:
    std::string path_;
    bool too_deep_;
};

// Throws JsonTextError for invalid JSON (message as nlohmann words it, with the byte
// position), nesting deeper than kMaxNesting arrays/objects, or a number out of range.
nlohmann::ordered_json parse_json_text(std::string_view text);

// The same, nullopt instead of an exception (text that may or may not be JSON).
std::optional<nlohmann::ordered_json> try_parse_json_text(std::string_view text);

}  // namespace pensieve
