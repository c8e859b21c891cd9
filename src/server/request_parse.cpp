// OpenAI request bodies (chat completions and legacy completions) -> ChatRequest /
// CompletionRequest. See request_parse.h for the rules.
#include "server/request_parse.h"

#include <climits>

#include "engine/grammar.h"
#include "server/json_fields.h"
#include "util/error.h"
#include "util/json_text.h"

namespace pensieve::server {

namespace {

constexpr size_t kMaxStop = 16;
constexpr int kMaxTopLogprobs = 20;
constexpr int kMaxChoices = 8;

std::string at(const std::string& where, size_t i) { return where + "[" + std::to_string(i) + "]"; }

// seed: any integer; negative means "random" (llama.cpp's -1 convention).
uint64_t parse_seed(const json& body) {
    const json* v = field(body, "seed");
    if (!v) return SamplingParams::kRandomSeed;
    if (v->is_number_unsigned()) return v->get<uint64_t>();
    if (v->is_number_integer()) {
        const int64_t s = v->get<int64_t>();
        return s < 0 ? SamplingParams::kRandomSeed : uint64_t(s);
    }
    const int64_t s = *get_int(body, "seed", INT64_MIN, INT64_MAX);  // floats like 42.0; else a 400
    return s < 0 ? SamplingParams::kRandomSeed : uint64_t(s);
}

// The sampling fields OpenAI's two generation endpoints share (plus llama.cpp-style
// extensions top_k, min_p, repeat_penalty, repeat_last_n, ignore_eos).
}  // namespace

void parse_openai_sampling(const json& body, RequestParams& p) {
    SamplingParams& s = p.options.sampling;
    if (auto v = get_number(body, "temperature", 0.0, 2.0)) s.temperature = float(*v);
    if (auto v = get_number(body, "top_p", 0.0, 1.0)) s.top_p = float(*v);
    if (auto v = get_int(body, "top_k", 0, INT32_MAX)) s.top_k = int32_t(*v);
    if (auto v = get_number(body, "min_p", 0.0, 1.0)) s.min_p = float(*v);
    if (auto v = get_number(body, "presence_penalty", -2.0, 2.0)) s.presence_penalty = float(*v);
    if (auto v = get_number(body, "frequency_penalty", -2.0, 2.0)) s.frequency_penalty = float(*v);
    if (auto v = get_number(body, "repeat_penalty", 0.01, 10.0)) s.repeat_penalty = float(*v);
    if (auto v = get_int(body, "repeat_last_n", -1, INT32_MAX)) s.repeat_last_n = int32_t(*v);
    s.seed = parse_seed(body);
    p.options.stop = get_string_list(body, "stop", kMaxStop);
    p.options.ignore_eos = get_bool(body, "ignore_eos", false);

    // max_completion_tokens is the newer name; clients may send either.
    auto max_tokens = get_int(body, "max_completion_tokens", 1, INT32_MAX);
    if (!max_tokens) max_tokens = get_int(body, "max_tokens", 1, INT32_MAX);
    p.options.n_predict = max_tokens ? int(*max_tokens) : -1;

    if (const json* bias = field(body, "logit_bias")) {
        if (!bias->is_object()) bad_request("logit_bias must be an object", "logit_bias");
        if (!bias->empty()) bad_request("logit_bias is not supported", "logit_bias");
    }
}

namespace {

int parse_n(const json& body) {
    return int(get_int(body, "n", 1, kMaxChoices).value_or(1));
}

bool parse_include_usage(const json& body) {
    const json* so = field(body, "stream_options");
    if (!so) return false;
    if (!so->is_object()) bad_request("stream_options must be an object", "stream_options");
    return get_bool(*so, "include_usage", false);
}

}  // namespace

json tool_call_arguments(const json& a, const std::string& where, const std::string& param) {
    if (a.is_object()) return a;
    if (!a.is_string()) bad_request(where + " must be a JSON string", param);
    try {
        return parse_json_text(a.get_ref<const std::string&>());
    } catch (const JsonTextError& e) {
        // Not JSON: the model's own text, kept. Too deep to pass on: refused.
        if (e.too_deep()) bad_request(where + ": " + e.what(), param);
        return a;
    }
}

namespace {

// Assistant tool calls as clients send them back: arguments is a JSON *string*. Chat
// templates expect an object (they `tojson` it), so parse it; keep the string if it is
// not JSON, as the model may have produced that.
json normalize_tool_calls(const json& calls, const std::string& where) {
    if (!calls.is_array()) bad_request(where + " must be an array", where);
    json out = json::array();
    for (size_t i = 0; i < calls.size(); ++i) {
        const json& c = calls[i];
        const std::string w = at(where, i);
        if (!c.is_object()) bad_request(w + " must be an object", w);
        const std::string type = get_string(c, "type", "function");
        if (type != "function") bad_request(w + ".type must be \"function\"", w);
        const json* fn = field(c, "function");
        if (!fn || !fn->is_object()) bad_request(w + ".function must be an object", w);
        const std::string name = require_string(*fn, "name");
        json args = json::object();
        if (const json* a = field(*fn, "arguments")) args = tool_call_arguments(*a, w + ".function.arguments", w);
        out.push_back({{"id", get_string(c, "id", "call_" + std::to_string(i))},
                       {"type", "function"},
                       {"function", {{"name", name}, {"arguments", args}}}});
    }
    return out;
}

json normalize_message(const json& m, const std::string& where) {
    if (!m.is_object()) bad_request(where + " must be an object, not " + json_type_name(m), where);
    const json* role_v = field(m, "role");
    if (!role_v) bad_request(where + ".role is required", where);
    if (!role_v->is_string()) bad_request(where + ".role must be a string", where);
    std::string role = role_v->get<std::string>();
    if (role == "developer") role = "system";  // OpenAI's newer name for the system role
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
        bad_request(where + ".role \"" + role + "\" is not one of system, developer, user, assistant, tool", where);

    json out = {{"role", role}};
    const json* content = field(m, "content");
    const json* calls = field(m, "tool_calls");
    if (!content && !(role == "assistant"))
        bad_request(where + ".content is required for role " + role, where);
    out["content"] = content ? json(openai_content_text(*content, where + ".content")) : json(nullptr);
    if (const json* name = field(m, "name")) {
        if (!name->is_string()) bad_request(where + ".name must be a string", where);
        out["name"] = *name;
    }
    if (role == "assistant" && calls) out["tool_calls"] = normalize_tool_calls(*calls, where + ".tool_calls");
    // An earlier turn's reasoning, as this API returns it; the chat template decides
    // whether the model sees it again.
    if (const json* rc = field(m, "reasoning_content"); rc && role == "assistant" && !rc->is_null()) {
        if (!rc->is_string()) bad_request(where + ".reasoning_content must be a string", where);
        out["reasoning_content"] = *rc;
    }
    if (role == "tool") out["tool_call_id"] = get_string(m, "tool_call_id", "");
    return out;
}

json parse_messages(const json& body) {
    const json* msgs = field(body, "messages");
    if (!msgs) bad_request("messages is required", "messages");
    if (!msgs->is_array()) bad_request(std::string("messages must be an array, not ") + json_type_name(*msgs), "messages");
    if (msgs->empty()) bad_request("messages must contain at least one message", "messages");
    json out = json::array();
    for (size_t i = 0; i < msgs->size(); ++i) out.push_back(normalize_message((*msgs)[i], at("messages", i)));
    return out;
}

}  // namespace

void parse_openai_tool_choice(const json& body, ChatRequest& r) {
    const json* tc = field(body, "tool_choice");
    if (!tc) return;
    if (tc->is_string()) {
        const std::string s = tc->get<std::string>();
        if (s == "auto") r.tool_choice = ToolChoice::Auto;
        else if (s == "none") r.tool_choice = ToolChoice::None;
        else if (s == "required") r.tool_choice = ToolChoice::Required;
        else bad_request("tool_choice must be \"auto\", \"none\", \"required\" or a function", "tool_choice");
        return;
    }
    if (!tc->is_object()) bad_request("tool_choice must be a string or an object", "tool_choice");
    const json* fn = field(*tc, "function");
    if (!fn || !fn->is_object()) bad_request("tool_choice.function must be an object", "tool_choice");
    r.tool_choice = ToolChoice::Named;
    r.tool_choice_name = require_string(*fn, "name");
    bool known = false;
    if (r.tools.is_array())
        for (const json& t : r.tools) known = known || t["function"]["name"] == r.tool_choice_name;
    if (!known) bad_request("tool_choice names function \"" + r.tool_choice_name + "\", which is not in tools", "tool_choice");
}

// response_format (OpenAI) and grammar (llama.cpp extension) -> a grammar the sampler
// enforces, so the reply always parses.
void parse_response_format(const json& body, RequestParams& p) {
    if (const json* g = field(body, "grammar")) {
        if (!g->is_string()) bad_request("grammar must be a string (GBNF)", "grammar");
        try {
            if (!g->get_ref<const std::string&>().empty()) p.options.grammar = Grammar::parse_gbnf(g->get<std::string>());
        } catch (const pensieve::Error& e) {
            bad_request(e.what(), "grammar");
        }
    }
    try {
        const json* rf = field(body, "response_format");
        if (!rf) return;
        if (!rf->is_object()) bad_request("response_format must be an object", "response_format");
        const std::string type = get_string(*rf, "type", "text");
        if (type == "text") return;
        if (p.options.grammar) bad_request("give either grammar or response_format, not both", "response_format");
        if (type == "json_object") {
            p.options.grammar = Grammar::any_json();
            return;
        }
        if (type == "json_schema") {
            const json* js = field(*rf, "json_schema");
            if (!js || !js->is_object()) bad_request("response_format.json_schema must be an object", "response_format");
            const json* schema = field(*js, "schema");
            if (!schema || !(schema->is_object() || schema->is_boolean()))
                bad_request("response_format.json_schema.schema must be a JSON schema object", "response_format");
            p.options.grammar = Grammar::from_json_schema(*schema);
            return;
        }
    } catch (const ApiError&) {
        throw;
    } catch (const pensieve::Error& e) {
        bad_request(std::string("response_format: ") + e.what(), "response_format");
    }
    bad_request("response_format.type must be text, json_object or json_schema", "response_format");
}

std::string openai_content_text(const json& content, const std::string& where) {
    if (content.is_string()) return content.get<std::string>();
    if (!content.is_array())
        bad_request(where + " must be a string or an array of content parts, not " + json_type_name(content), where);
    std::string text;
    for (size_t i = 0; i < content.size(); ++i) {
        const json& part = content[i];
        const std::string w = at(where, i);
        if (!part.is_object()) bad_request(w + " must be an object", w);
        const std::string type = require_string(part, "type");
        if (type != "text")
            bad_request(w + ".type \"" + type + "\" is not supported: this server takes text content only", w);
        if (!text.empty()) text += "\n";
        text += require_string(part, "text");
    }
    return text;
}

json normalize_openai_tools(const json& tools) {
    if (!tools.is_array()) bad_request("tools must be an array", "tools");
    json out = json::array();
    for (size_t i = 0; i < tools.size(); ++i) {
        const json& t = tools[i];
        const std::string w = at("tools", i);
        if (!t.is_object()) bad_request(w + " must be an object", "tools");
        if (get_string(t, "type", "function") != "function") bad_request(w + ".type must be \"function\"", "tools");
        const json* fn = field(t, "function");
        if (!fn || !fn->is_object()) bad_request(w + ".function must be an object", "tools");
        const std::string name = require_string(*fn, "name");
        if (name.empty()) bad_request(w + ".function.name must not be empty", "tools");
        json f = {{"name", name}};
        if (const json* d = field(*fn, "description")) {
            if (!d->is_string()) bad_request(w + ".function.description must be a string", "tools");
            f["description"] = *d;
        }
        json params = {{"type", "object"}, {"properties", json::object()}};
        if (const json* p = field(*fn, "parameters")) {
            if (!p->is_object()) bad_request(w + ".function.parameters must be an object (a JSON schema)", "tools");
            params = *p;
        }
        f["parameters"] = params;
        out.push_back({{"type", "function"}, {"function", f}});
    }
    return out;
}

ChatRequest parse_openai_chat(const json& body) {
    ChatRequest r;
    r.messages = parse_messages(body);
    if (const json* tools = field(body, "tools")) r.tools = normalize_openai_tools(*tools);
    parse_openai_tool_choice(body, r);
    parse_openai_sampling(body, r.params);
    parse_response_format(body, r.params);
    r.n = parse_n(body);
    r.stream = get_bool(body, "stream", false);
    r.include_usage = parse_include_usage(body);
    r.params.want_logprobs = get_bool(body, "logprobs", false);
    if (auto k = get_int(body, "top_logprobs", 0, kMaxTopLogprobs)) {
        if (!r.params.want_logprobs && *k > 0) bad_request("top_logprobs requires logprobs to be true", "top_logprobs");
        r.params.n_top_logprobs = int(*k);
    }
    return r;
}

CompletionRequest parse_openai_completion(const json& body) {
    CompletionRequest r;
    const json* prompt = field(body, "prompt");
    if (!prompt) bad_request("prompt is required", "prompt");
    // A batch of one prompt is the same as the prompt itself.
    const json* p = prompt;
    if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
    if (p->is_string()) {
        r.prompt_text = p->get<std::string>();
        if (r.prompt_text.empty()) bad_request("prompt must not be empty", "prompt");
        r.parse_special = get_bool(body, "parse_special", false);
    } else if (p->is_array()) {
        if (p->empty()) bad_request("prompt must not be empty", "prompt");
        r.prompt_is_tokens = true;
        for (const json& t : *p) {
            if (t.is_string() || t.is_array())
                bad_request("batched prompts (several prompts in one request) are not supported", "prompt");
            if (!t.is_number_integer()) bad_request("prompt token ids must be integers", "prompt");
            const int64_t id = t.get<int64_t>();
            if (id < 0 || id > INT32_MAX) bad_request("prompt token id " + t.dump() + " is out of range", "prompt");
            r.prompt_tokens.push_back(int32_t(id));
        }
    } else {
        bad_request(std::string("prompt must be a string or an array of token ids, not ") + json_type_name(*p), "prompt");
    }
    if (get_bool(body, "echo", false)) bad_request("echo is not supported", "echo");
    if (const json* s = field(body, "suffix"))
        if (!s->is_string() || !s->get_ref<const std::string&>().empty()) bad_request("suffix is not supported", "suffix");
    if (get_int(body, "best_of", 1, 1).value_or(1) != 1) bad_request("best_of is not supported", "best_of");
    parse_openai_sampling(body, r.params);
    parse_response_format(body, r.params);
    // Legacy completions default to 16 tokens when max_tokens is absent.
    if (!field(body, "max_tokens") && !field(body, "max_completion_tokens")) r.params.options.n_predict = 16;
    r.n = parse_n(body);
    r.stream = get_bool(body, "stream", false);
    r.include_usage = parse_include_usage(body);
    // Here logprobs is a count of alternatives (0..5 in OpenAI's API; we allow up to 20).
    if (auto k = get_int(body, "logprobs", 0, kMaxTopLogprobs)) {
        r.params.want_logprobs = true;
        r.params.n_top_logprobs = int(*k);
    }
    return r;
}

}  // namespace pensieve::server
