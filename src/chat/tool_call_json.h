// Pieces every tool-call syntax shares: whitespace trimming, finding where a JSON value
// ends inside model text, and reading {"name", "arguments"|"parameters"} objects.
#pragma once

#include <string_view>

#include "chat/tool_calls.h"

namespace pensieve::tool_call_text {

bool is_space(char c);
std::string_view trim(std::string_view s);

// End (one past the closing bracket) of the JSON object or array starting at s[start],
// or npos if it does not close. Only brackets and strings matter for finding the end;
// json::parse checks the rest.
size_t json_value_end(std::string_view s, size_t start);

// {"name": ..., "arguments"|"parameters": {...} or a JSON string} -> ToolCall.
bool call_from_json(const json& j, ToolCall& out);
// The same from text; false if it is not JSON.
bool parse_call(std::string_view text, ToolCall& out);

// The whole reply as content (no calls).
ParsedReply plain(std::string_view text);

}  // namespace pensieve::tool_call_text
