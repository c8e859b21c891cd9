// OpenAI Responses request bodies (POST /v1/responses) -> ResponsesRequest. The input
// items are rewritten into OpenAI-shaped chat messages (what chat templates understand):
//   message (role user / system / developer / assistant; content a string or a list of
//     input_text / output_text / refusal parts)  -> a message with string content
//   function_call (call_id, name, arguments)      -> an assistant message's tool_calls
//     (consecutive calls join one assistant message, after its text if it has any)
//   function_call_output (call_id, output)        -> a role "tool" message
//   reasoning (summary / content texts)           -> the next assistant message's
//     reasoning_content
// Flat function tools ({type, name, parameters}) become the nested chat shape. Anything
// the engine cannot honour (images, files, hosted tools, background runs) is a 400.
#include <climits>

#include "server/json_fields.h"
#include "server/request_parse.h"

namespace pensieve::server {

namespace {

std::string at(const std::string& where, size_t i) { return where + "[" + std::to_string(i) + "]"; }

// A part's text: input_text / output_text carry `text`, refusal carries `refusal`.
std::string part_text(const json& part, const std::string& where) {
    if (!part.is_object()) bad_request(where + " must be an object, not " + json_type_name(part), "input");
    const std::string type = require_string(part, "type");
    if (type == "input_text" || type == "output_text" || type == "text") return require_string(part, "text");
    if (type == "refusal") return require_string(part, "refusal");
    if (type == "input_image" || type == "input_file" || type == "input_audio")
        bad_request(where + ": " + type + " content is not supported: this server takes text only", "input");
    bad_request(where + ": unknown content part type \"" + type + "\"", "input");
}

// A string, or a list of text parts joined by newlines.
std::string content_text(const json& content, const std::string& where) {
    if (content.is_string()) return content.get<std::string>();
    if (!content.is_array())
        bad_request(where + " must be a string or an array of content parts, not " + json_type_name(content), "input");
    std::string text;
    for (size_t i = 0; i < content.size(); ++i) {
        if (i > 0) text += "\n";
        text += part_text(content[i], at(where, i));
    }
    return text;
}

// The texts of a reasoning item (its summary parts and, when sent back, its content).
std::string reasoning_text(const json& item, const std::string& where) {
    std::string text;
    for (const char* key : {"summary", "content"}) {
        const json* parts = field(item, key);
        if (!parts) continue;
        if (!parts->is_array()) bad_request(where + "." + key + " must be an array", "input");
        for (size_t i = 0; i < parts->size(); ++i) {
            const json& p = (*parts)[i];
            if (!p.is_object()) bad_request(at(where + "." + key, i) + " must be an object", "input");
            if (!text.empty()) text += "\n";
            text += require_string(p, "text");
        }
    }
    return text;
}

// Builds the conversation item by item; `reasoning` waits for the assistant turn it
// belongs to.
struct Conversation {
    json messages = json::array();
    std::string reasoning;

    // The assistant message a function_call joins: the last one if it is still open
    // (nothing came after it), else a new empty one.
    json& assistant() {
        if (messages.empty() || messages.back()["role"] != "assistant") {
            messages.push_back({{"role", "assistant"}, {"content", nullptr}});
            take_reasoning(messages.back());
        }
        return messages.back();
    }
    void take_reasoning(json& m) {
        if (!reasoning.empty()) m["reasoning_content"] = reasoning;
        reasoning.clear();
    }
};

void add_message(Conversation& c, const json& item, const std::string& where) {
    std::string role = require_string(item, "role");
    if (role == "developer") role = "system";  // the newer name for the system role
    if (role != "system" && role != "user" && role != "assistant")
        bad_request(where + ".role \"" + role + "\" is not one of user, system, developer, assistant", "input");
    const json* content = field(item, "content");
    if (!content) bad_request(where + ".content is required", "input");
    json m = {{"role", role}, {"content", content_text(*content, where + ".content")}};
    if (role == "assistant") c.take_reasoning(m);
    c.messages.push_back(std::move(m));
}

void add_function_call(Conversation& c, const json& item, const std::string& where) {
    const std::string call_id = require_string(item, "call_id");
    const std::string name = require_string(item, "name");
    json args = json::object();
    if (const json* a = field(item, "arguments")) args = tool_call_arguments(*a, where + ".arguments", "input");
    json& m = c.assistant();
    if (!m.contains("tool_calls")) m["tool_calls"] = json::array();
    m["tool_calls"].push_back({{"id", call_id}, {"type", "function"}, {"function", {{"name", name}, {"arguments", args}}}});
}

void add_function_call_output(Conversation& c, const json& item, const std::string& where) {
    const std::string call_id = require_string(item, "call_id");
    const json* output = field(item, "output");
    if (!output) bad_request(where + ".output is required", "input");
    c.messages.push_back({{"role", "tool"}, {"tool_call_id", call_id}, {"content", content_text(*output, where + ".output")}});
}

json parse_input(const json& body) {
    const json* input = field(body, "input");
    if (!input) bad_request("input is required", "input");
    Conversation c;
    if (input->is_string()) {
        c.messages.push_back({{"role", "user"}, {"content", input->get<std::string>()}});
        return c.messages;
    }
    if (!input->is_array()) bad_request(std::string("input must be a string or an array of items, not ") + json_type_name(*input), "input");
    for (size_t i = 0; i < input->size(); ++i) {
        const json& item = (*input)[i];
        const std::string w = at("input", i);
        if (!item.is_object()) bad_request(w + " must be an object, not " + json_type_name(item), "input");
        // Messages may leave out their type ("easy" input messages).
        const std::string type = get_string(item, "type", "message");
        if (type == "message") add_message(c, item, w);
        else if (type == "function_call") add_function_call(c, item, w);
        else if (type == "function_call_output") add_function_call_output(c, item, w);
        else if (type == "reasoning") c.reasoning += reasoning_text(item, w);
        else if (type == "item_reference") bad_request(w + ": item_reference is not supported; send the item itself or use previous_response_id", "input");
        else bad_request(w + ": input item type \"" + type + "\" is not supported", "input");
    }
    if (c.messages.empty()) bad_request("input must contain at least one message or function call output", "input");
    return c.messages;
}

// One flat function tool {type: "function", name, description, parameters} -> the chat shape.
void add_function_tool(json& nested, const json& t, const std::string& w) {
    if (!t.is_object()) bad_request(w + " must be an object", "tools");
    const std::string type = require_string(t, "type");
    if (type != "function")
        bad_request(w + ": tool type \"" + type + "\" is not supported (function tools only)", "tools");
    json fn = {{"name", require_string(t, "name")}};
    for (const char* key : {"description", "parameters"})
        if (const json* v = field(t, key)) fn[key] = *v;
    nested.push_back({{"type", "function"}, {"function", fn}});
}

// Flat function tools, and namespaces of them -> the chat shape normalize_openai_tools validates.
json parse_tools(const json& tools) {
    if (!tools.is_array()) bad_request("tools must be an array", "tools");
    json nested = json::array();
    for (size_t i = 0; i < tools.size(); ++i) {
        const json& t = tools[i];
        const std::string w = at("tools", i);
        if (!t.is_object()) bad_request(w + " must be an object", "tools");
        const std::string type = require_string(t, "type");
        if (type == "namespace") {
            // A named group of function tools (Codex: multi_agent_v1): its functions
            // are offered one by one, under their own names.
            const json* group = field(t, "tools");
            if (!group || !group->is_array()) bad_request(w + ".tools must be an array", "tools");
            for (size_t j = 0; j < group->size(); ++j) add_function_tool(nested, (*group)[j], at(w + ".tools", j));
            continue;
        }
        add_function_tool(nested, t, w);
    }
    return normalize_openai_tools(nested);
}

// tool_choice: the chat strings, or a flat {type: "function", name} -> the chat shape.
void parse_tool_choice(const json& body, ChatRequest& r) {
    const json* tc = field(body, "tool_choice");
    if (!tc || !tc->is_object()) return parse_openai_tool_choice(body, r);
    if (require_string(*tc, "type") != "function")
        bad_request("tool_choice.type must be \"function\" (hosted tools are not supported)", "tool_choice");
    const json nested = {{"type", "function"}, {"function", {{"name", require_string(*tc, "name")}}}};
    parse_openai_tool_choice({{"tool_choice", nested}}, r);
}

// text.format (flat: {type: "json_schema", name, schema, strict}) -> the chat
// response_format shape, so the same grammar support applies.
void parse_text_format(const json& body, RequestParams& p) {
    const json* text = field(body, "text");
    if (!text) return;
    if (!text->is_object()) bad_request("text must be an object", "text");
    const json* format = field(*text, "format");
    if (!format) return;
    if (!format->is_object()) bad_request("text.format must be an object", "text");
    const std::string type = get_string(*format, "type", "text");
    json rf = {{"type", type}};
    if (type == "json_schema") {
        const json* schema = field(*format, "schema");
        if (!schema) bad_request("text.format.schema is required for json_schema", "text");
        rf["json_schema"] = {{"schema", *schema}};
    }
    parse_response_format({{"response_format", rf}}, p);
}

// The settings a response object repeats back (null when the request left them out).
json echo_fields(const json& body) {
    json echo = json::object();
    for (const char* key : {"instructions", "max_output_tokens", "temperature", "top_p", "tools", "tool_choice",
                            "parallel_tool_calls", "previous_response_id", "text", "reasoning", "metadata",
                            "truncation", "user"}) {
        const json* v = field(body, key);
        echo[key] = v ? *v : json(nullptr);
    }
    if (echo["tools"].is_null()) echo["tools"] = json::array();
    if (echo["tool_choice"].is_null()) echo["tool_choice"] = "auto";
    if (echo["text"].is_null()) echo["text"] = {{"format", {{"type", "text"}}}};
    if (echo["parallel_tool_calls"].is_null()) echo["parallel_tool_calls"] = true;
    if (echo["truncation"].is_null()) echo["truncation"] = "disabled";
    if (echo["metadata"].is_null()) echo["metadata"] = json::object();
    return echo;
}

}  // namespace

ResponsesRequest parse_responses_request(const json& body) {
    ResponsesRequest r;
    if (const json* m = field(body, "model"); m && !m->is_string()) bad_request("model must be a string", "model");
    r.instructions = get_string(body, "instructions", "");
    r.previous_response_id = get_string(body, "previous_response_id", "");
    r.store = get_bool(body, "store", true);
    r.input_messages = parse_input(body);
    if (get_bool(body, "background", false)) bad_request("background responses are not supported", "background");
    if (field(body, "conversation")) bad_request("conversation is not supported; use previous_response_id", "conversation");
    if (const json* reasoning = field(body, "reasoning"); reasoning && !reasoning->is_object())
        bad_request("reasoning must be an object", "reasoning");  // otherwise ignored: the model reasons as it was trained
    if (const json* md = field(body, "metadata"); md && !md->is_object()) bad_request("metadata must be an object", "metadata");

    ChatRequest& c = r.chat;
    if (const json* tools = field(body, "tools")) c.tools = parse_tools(*tools);
    parse_tool_choice(body, c);
    parse_openai_sampling(body, c.params);
    if (auto n = get_int(body, "max_output_tokens", 1, INT32_MAX)) c.params.options.n_predict = int(*n);
    parse_text_format(body, c.params);
    c.stream = get_bool(body, "stream", false);
    r.echo = echo_fields(body);
    r.echo["store"] = r.store;
    return r;
}

}  // namespace pensieve::server
