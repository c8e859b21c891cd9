// Strict readers for request JSON fields. Each returns the field's value if present with
// the right type and range, the default if absent (or null), and otherwise throws a 400
// ApiError naming the field — "temperature must be a number", never a silent default
// and never nlohmann's own type_error text.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/api_errors.h"

namespace pensieve::server {

// Parses a request body; malformed JSON (including invalid UTF-8 inside strings, which
// nlohmann rejects), numbers beyond a double (1e400) and nesting deeper than kMaxNesting
// (util/nesting.h) become a 400 naming the field.
json parse_body(const std::string& body);

const json* field(const json& obj, const char* name);  // nullptr when absent or null

bool get_bool(const json& obj, const char* name, bool def);
std::string get_string(const json& obj, const char* name, const std::string& def);
std::string require_string(const json& obj, const char* name);
// Finite number in [lo, hi].
std::optional<double> get_number(const json& obj, const char* name, double lo, double hi);
// Integer (a float with no fraction is accepted, as JSON clients send 1.0) in [lo, hi].
std::optional<int64_t> get_int(const json& obj, const char* name, int64_t lo, int64_t hi);
// A string or an array of strings (stop sequences); empty strings are refused.
std::vector<std::string> get_string_list(const json& obj, const char* name, size_t max_items);

const char* json_type_name(const json& j);

}  // namespace pensieve::server
