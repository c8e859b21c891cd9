// Pieces every tool-call syntax shares: whitespace trimming, finding where a JSON value
// ends inside model text, reading {"name", "arguments"|"parameters"} objects, and typing
// the untyped argument text of XML-style syntaxes by the tool's schema.
#pragma once

#include <functional>
#include <string_view>

#include "chat/tool_calls.h"

namespace pensieve::tool_call_text {

bool is_space(char c);
std::string_view trim(std::string_view s);
bool starts_with_at(std::string_view s, size_t pos, std::string_view prefix);

// End (one past the closing bracket) of the JSON object or array starting at s[start],
// or npos if it does not close. Only brackets and strings matter for finding the end;
// parse_json checks the rest.
size_t json_value_end(std::string_view s, size_t start);

// Model text as JSON; text that is not JSON, or nests deeper than kMaxNesting
// (util/nesting.h), is a discarded json (so it stays content, never a call).
json parse_json(std::string_view text);

// A JSON object from text (after trimming); a discarded json when it is not one.
json parse_object(std::string_view text);

// {"name": ..., "arguments"|"parameters": {...} or a JSON string} -> ToolCall.
bool call_from_json(const json& j, ToolCall& out, const char* name_key = "name");
// The same from text; false if it is not JSON.
bool parse_call(std::string_view text, ToolCall& out);

// Calls written as open BODY close, any number of them, with ordinary text around them;
// the close tag may be cut off at the end of the reply. parse_body reads one body. If a
// body does not parse, the whole reply is content.
ParsedReply parse_tagged_calls(std::string_view text, std::string_view open, std::string_view close,
                               const std::function<bool(std::string_view body, ToolCall& call)>& parse_body);

// The whole reply as content (no calls).
ParsedReply plain(std::string_view text);

// The JSON schema of parameter `param` of function `function` in an OpenAI-shaped tool
// list, or nullptr.
const json* parameter_schema(const json& tools, std::string_view function, std::string_view param);

// An argument written as bare text (XML-style syntaxes print strings as they are and
// other values as JSON, or with Python's str(): True, False, None, ['a']). A parameter whose
// schema says string stays text; otherwise the text becomes the JSON value it spells,
// and stays text when it spells none.
json typed_argument(std::string_view text, const json* schema);

}  // namespace pensieve::tool_call_text
