// Request bodies -> what the engine runs. Validation is strict: a field with the wrong
// type or out of range is a 400 naming the field, and parameters we cannot honour
// (images, logit_bias) are refused rather than ignored, so a
// client never gets output that silently differs from what it asked for. Unknown fields
// are ignored: SDKs send many (user, store, metadata, ...) that do not change output.
//
// Both dialects normalise their conversation into OpenAI-shaped `messages` (the shape
// chat templates are written for): content is a plain string, assistant tool calls are
// {id, type: "function", function: {name, arguments: <object>}}, tool results are
// {role: "tool", tool_call_id, content}.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/request.h"
#include "server/api_errors.h"

namespace pensieve::server {

enum class ToolChoice { Auto, None, Required, Named };

struct ChatRequest {
    json messages = json::array();
    json tools;                    // null, or OpenAI-shaped tool list
    ToolChoice tool_choice = ToolChoice::Auto;
    std::string tool_choice_name;  // for Named
    RequestParams params;          // prompt is filled in after the template renders
    bool stream = false;
    bool include_usage = false;    // OpenAI stream_options.include_usage
    int n = 1;                     // choices to generate

    bool tools_active() const { return tools.is_array() && !tools.empty() && tool_choice != ToolChoice::None; }
};

struct CompletionRequest {
    std::string prompt_text;       // when the prompt is text
    bool parse_special = false;    // "parse_special": special-token text in it becomes tokens
    std::vector<int32_t> prompt_tokens;  // when the prompt is token ids
    bool prompt_is_tokens = false;
    RequestParams params;
    bool stream = false;
    bool include_usage = false;
    int n = 1;
};

// POST /v1/chat/completions
ChatRequest parse_openai_chat(const json& body);
// POST /v1/completions
CompletionRequest parse_openai_completion(const json& body);
// POST /v1/messages and /v1/messages/count_tokens (the latter ignores generation fields).
ChatRequest parse_anthropic_messages(const json& body, bool for_count_tokens);

// POST /v1/responses (responses_parse.cpp). The request's own input becomes
// `input_messages` (OpenAI-shaped, as above); the handler puts the stored conversation of
// previous_response_id before it and the instructions (a system message) before all.
struct ResponsesRequest {
    ChatRequest chat;               // messages empty until the handler assembles them
    json input_messages = json::array();
    std::string instructions;       // empty: none
    std::string previous_response_id;
    bool store = true;              // keep this response for previous_response_id / GET
    json echo = json::object();     // request settings the response object repeats
};
ResponsesRequest parse_responses_request(const json& body);

// Shared pieces, exposed for tests and the other dialects' parsers.
json normalize_openai_tools(const json& tools);
std::string openai_content_text(const json& content, const std::string& where);
// temperature, top_p, top_k, ..., seed, stop and max_tokens / max_completion_tokens.
void parse_openai_sampling(const json& body, RequestParams& p);
// tool_choice: "auto" / "none" / "required" / {type: "function", function: {name}} (a
// name that must be in r.tools, which are parsed first).
void parse_openai_tool_choice(const json& body, ChatRequest& r);
// response_format / grammar -> p.options.grammar.
void parse_response_format(const json& body, RequestParams& p);
// A tool call's arguments as a client sends them back (a JSON string, or an object) ->
// the object chat templates expect; text that is not JSON is kept as the string. Errors
// say `where` and name `param`.
json tool_call_arguments(const json& arguments, const std::string& where, const std::string& param);

}  // namespace pensieve::server
