// Anthropic Messages request bodies -> ChatRequest. The conversation is rewritten into
// OpenAI-shaped messages (what chat templates understand): text blocks become string
// content, tool_use blocks become assistant tool_calls, tool_result blocks become
// role "tool" messages, thinking blocks become the assistant's reasoning_content.
#include <climits>

#include "server/json_fields.h"
#include "server/request_parse.h"

namespace pensieve::server {

namespace {

std::string at(const std::string& where, size_t i) { return where + "[" + std::to_string(i) + "]"; }

// A string, or an array of {type: "text", text} blocks (system prompts, tool results).
std::string text_blocks(const json& v, const std::string& where) {
    if (v.is_string()) return v.get<std::string>();
    if (!v.is_array()) bad_request(where + " must be a string or an array of text blocks");
    std::string text;
    for (size_t i = 0; i < v.size(); ++i) {
        const json& b = v[i];
        if (!b.is_object()) bad_request(at(where, i) + " must be an object");
        const std::string type = require_string(b, "type");
        if (type != "text") bad_request(at(where, i) + ": content type \"" + type + "\" is not supported here (text only)");
        if (!text.empty()) text += "\n";
        text += require_string(b, "text");
    }
    return text;
}

void append_message(json& out, const json& m, const std::string& where) {
    if (!m.is_object()) bad_request(where + " must be an object, not " + json_type_name(m));
    const std::string role = require_string(m, "role");
    if (role != "user" && role != "assistant" && role != "system")
        bad_request(where + ".role \"" + role + "\" must be \"user\", \"assistant\" or \"system\"");
    const json* content = field(m, "content");
    if (!content) bad_request(where + ".content is required");
    if (role == "system") {
        // Instructions in the middle of the conversation (Claude Code 2.1.33x sends its
        // environment this way, after the first user turn): text only, kept in place
        // as a system message, as the OpenAI dialect keeps them.
        out.push_back({{"role", "system"}, {"content", text_blocks(*content, where + ".content")}});
        return;
    }
    if (content->is_string()) {
        out.push_back({{"role", role}, {"content", content->get<std::string>()}});
        return;
    }
    if (!content->is_array()) bad_request(where + ".content must be a string or an array of content blocks");

    std::string text, reasoning;
    json tool_calls = json::array();
    for (size_t i = 0; i < content->size(); ++i) {
        const json& b = (*content)[i];
        const std::string w = at(where + ".content", i);
        if (!b.is_object()) bad_request(w + " must be an object");
        const std::string type = require_string(b, "type");
        if (type == "text") {
            if (!text.empty()) text += "\n";
            text += require_string(b, "text");
        } else if (type == "tool_use") {
            if (role != "assistant") bad_request(w + ": tool_use blocks belong in assistant messages");
            const json* input = field(b, "input");
            if (input && !input->is_object()) bad_request(w + ".input must be an object");
            tool_calls.push_back({{"id", require_string(b, "id")},
                                  {"type", "function"},
                                  {"function", {{"name", require_string(b, "name")},
                                                {"arguments", input ? *input : json::object()}}}});
        } else if (type == "tool_result") {
            if (role != "user") bad_request(w + ": tool_result blocks belong in user messages");
            std::string result;
            if (const json* c = field(b, "content")) result = text_blocks(*c, w + ".content");
            if (get_bool(b, "is_error", false)) result = "Error: " + result;
            out.push_back({{"role", "tool"}, {"tool_call_id", require_string(b, "tool_use_id")}, {"content", result}});
        } else if (type == "thinking") {
            // An earlier turn's reasoning: passed on as reasoning_content, which the
            // chat template shows the model again or not.
            if (role != "assistant") bad_request(w + ": thinking blocks belong in assistant messages");
            if (!reasoning.empty()) reasoning += "\n";
            reasoning += require_string(b, "thinking");
        } else if (type == "redacted_thinking") {
            // Encrypted reasoning from another model: nothing this one can read.
        } else if (type == "image" || type == "document") {
            bad_request(w + ": " + type + " content is not supported: this server takes text only");
        } else {
            bad_request(w + ": unknown content block type \"" + type + "\"");
        }
    }
    if (role == "assistant") {
        json msg = {{"role", "assistant"}, {"content", text.empty() && !tool_calls.empty() ? json(nullptr) : json(text)}};
        if (!tool_calls.empty()) msg["tool_calls"] = tool_calls;
        if (!reasoning.empty()) msg["reasoning_content"] = reasoning;
        out.push_back(msg);
    } else if (!text.empty() || content->empty()) {
        out.push_back({{"role", "user"}, {"content", text}});
    }
}

json convert_tools(const json& tools) {
    if (!tools.is_array()) bad_request("tools must be an array");
    json out = json::array();
    for (size_t i = 0; i < tools.size(); ++i) {
        const json& t = tools[i];
        const std::string w = at("tools", i);
        if (!t.is_object()) bad_request(w + " must be an object");
        const std::string type = get_string(t, "type", "custom");
        const json* schema = field(t, "input_schema");
        if (type != "custom" && !schema)
            bad_request(w + ": server tool type \"" + type + "\" is not supported");
        if (!schema || !schema->is_object()) bad_request(w + ".input_schema is required and must be an object");
        const std::string name = require_string(t, "name");
        if (name.empty()) bad_request(w + ".name must not be empty");
        json f = {{"name", name}, {"parameters", *schema}};
        if (const json* d = field(t, "description")) {
            if (!d->is_string()) bad_request(w + ".description must be a string");
            f["description"] = *d;
        }
        out.push_back({{"type", "function"}, {"function", f}});
    }
    return out;
}

void parse_tool_choice(const json& body, ChatRequest& r) {
    const json* tc = field(body, "tool_choice");
    if (!tc) return;
    if (!tc->is_object()) bad_request("tool_choice must be an object");
    const std::string type = require_string(*tc, "type");
    if (type == "auto") r.tool_choice = ToolChoice::Auto;
    else if (type == "any") r.tool_choice = ToolChoice::Required;
    else if (type == "none") r.tool_choice = ToolChoice::None;
    else if (type == "tool") {
        r.tool_choice = ToolChoice::Named;
        r.tool_choice_name = require_string(*tc, "name");
    } else {
        bad_request("tool_choice.type must be auto, any, tool or none");
    }
}

}  // namespace

ChatRequest parse_anthropic_messages(const json& body, bool for_count_tokens) {
    ChatRequest r;
    require_string(body, "model");
    if (const json* system = field(body, "system"))
        r.messages.push_back({{"role", "system"}, {"content", text_blocks(*system, "system")}});

    const json* msgs = field(body, "messages");
    if (!msgs) bad_request("messages is required");
    if (!msgs->is_array()) bad_request(std::string("messages must be an array, not ") + json_type_name(*msgs));
    if (msgs->empty()) bad_request("messages must contain at least one message");
    for (size_t i = 0; i < msgs->size(); ++i) append_message(r.messages, (*msgs)[i], at("messages", i));

    if (const json* tools = field(body, "tools")) r.tools = convert_tools(*tools);
    parse_tool_choice(body, r);
    if (for_count_tokens) return r;

    const auto max_tokens = get_int(body, "max_tokens", 1, INT32_MAX);
    if (!max_tokens) bad_request("max_tokens is required");
    GenerateOptions& o = r.params.options;
    o.n_predict = int(*max_tokens);
    if (auto v = get_number(body, "temperature", 0.0, 1.0)) o.sampling.temperature = float(*v);
    if (auto v = get_number(body, "top_p", 0.0, 1.0)) o.sampling.top_p = float(*v);
    if (auto v = get_int(body, "top_k", 0, INT32_MAX)) o.sampling.top_k = int32_t(*v);
    o.stop = get_string_list(body, "stop_sequences", 16);
    if (const json* md = field(body, "metadata"))
        if (!md->is_object()) bad_request("metadata must be an object");
    r.stream = get_bool(body, "stream", false);
    return r;
}

}  // namespace pensieve::server
