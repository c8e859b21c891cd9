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

// Shared pieces, exposed for tests.
json normalize_openai_tools(const json& tools);
std::string openai_content_text(const json& content, const std::string& where);

}  // namespace pensieve::server
