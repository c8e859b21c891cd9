#include "chat/chat_format.h"

#include <cctype>
#include <optional>

#include "chat/chat_template.h"
#include "chat/reasoning.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pensieve {

namespace {

// For models that ship no template: ChatML turns, with tools described in the system
// turn and calls / results in the Hermes tags that detect_tool_format() assigns to
// models without a known syntax (so the parser reads back what this asks for).
constexpr const char* kBuiltinTemplate = R"({%- if messages[0].role == 'system' or tools %}
{{- '<|im_start|>system\n' }}
{%- if messages[0].role == 'system' %}
{{- messages[0].content }}
{%- if tools %}{{- '\n\n' }}{%- endif %}
{%- endif %}
{%- if tools %}
{{- '# Tools\n\nYou can call these functions (JSON schemas inside <tools></tools>):\n<tools>\n' }}
{%- for tool in tools %}
{{- tool | tojson }}{{- '\n' }}
{%- endfor %}
{{- '</tools>\n\nTo call one, reply with a JSON object with the function name and its arguments inside <tool_call></tool_call> tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>' }}
{%- endif %}
{{- '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'system' and loop.first %}
{%- elif message.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\n<tool_response>\n' ~ message.content ~ '\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}
{%- elif message.role == 'assistant' and message.tool_calls %}
{{- '<|im_start|>assistant\n' }}
{%- if message.content %}{{- message.content ~ '\n' }}{%- endif %}
{%- for call in message.tool_calls %}
{%- if not loop.first %}{{- '\n' }}{%- endif %}
{{- '<tool_call>\n{"name": "' ~ call.function.name ~ '", "arguments": ' ~ (call.function.arguments | tojson) ~ '}\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\n' }}
{%- else %}
{{- '<|im_start|>' ~ message.role ~ '\n' ~ (message.content if message.content is string else '') ~ '<|im_end|>\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- endif %})";

// Where a template reads an assistant message's reasoning, besides reasoning_content
// (which most read, and which is always passed).
enum ReasoningField : unsigned {
    kThinkingField = 1,   // message.thinking (gpt-oss)
    kToolPlanField = 2,   // message.tool_plan (Command-R7B: the plan before its actions)
    kThinkingBlock = 4,   // a {"type": "thinking", "thinking": ...} content block (Ministral)
};

unsigned reasoning_fields(std::string_view src) {
    auto has = [&](std::string_view s) { return src.find(s) != std::string_view::npos; };
    unsigned f = 0;
    if (has("message.thinking") || has("\"thinking\" in message") || has("'thinking' in message") ||
        has("message['thinking']"))
        f |= kThinkingField;
    if (has("tool_plan")) f |= kToolPlanField;
    if (has("block['thinking']") || has("block.thinking")) f |= kThinkingBlock;
    return f;
}

// Copies each assistant message's reasoning_content to the fields the template reads.
json with_reasoning_fields(const json& messages, unsigned fields) {
    json out = messages;
    for (json& m : out) {
        if (!m.is_object() || m.value("role", "") != "assistant" || !m.contains("reasoning_content") ||
            !m["reasoning_content"].is_string())
            continue;
        const json r = m["reasoning_content"];  // a copy: adding keys moves the object's items
        if (fields & kThinkingField) m["thinking"] = r;
        if ((fields & kToolPlanField) && !m.contains("tool_plan")) m["tool_plan"] = r;
        if ((fields & kThinkingBlock) && (m["content"].is_string() || m["content"].is_null())) {
            json blocks = json::array({{{"type", "thinking"}, {"thinking", r}}});
            if (m["content"].is_string() && !m["content"].get_ref<const std::string&>().empty())
                blocks.push_back({{"type", "text"}, {"text", m["content"]}});
            m["content"] = blocks;
        }
    }
    return out;
}

}  // namespace

ChatFormatter::ChatFormatter(std::string template_source, std::string bos_token, std::string eos_token)
    : builtin_(template_source.empty()),
      source_(builtin_ ? kBuiltinTemplate : std::move(template_source)),
      bos_(std::move(bos_token)),
      eos_(std::move(eos_token)),
      syntax_{detect_tool_format(source_), detect_reasoning(source_)},
      reasoning_fields_(reasoning_fields(source_)),
      template_(std::make_unique<ChatTemplate>(source_, bos_, eos_)) {}

ChatFormatter::~ChatFormatter() = default;
ChatFormatter::ChatFormatter(ChatFormatter&&) noexcept = default;

ChatFormatter ChatFormatter::for_model(const GgufFile& file, const Tokenizer& tok, const std::string& override_source) {
    std::string src = override_source;
    if (src.empty()) src = gguf_chat_template(file).value_or("");
    return ChatFormatter(src, bos_text(tok), eos_text(tok));
}

std::string ChatFormatter::bos_text(const Tokenizer& tok) { return tok.bos_id() >= 0 ? tok.token_text(tok.bos_id()) : ""; }
std::string ChatFormatter::eos_text(const Tokenizer& tok) { return tok.eos_id() >= 0 ? tok.token_text(tok.eos_id()) : ""; }

std::string ChatFormatter::describe() const {
    if (builtin_) return "built-in ChatML (the model has no chat template)";
    return std::string("the model's chat template (tool calls: ") + tool_format_name(syntax_.tool_format) +
           ", reasoning: " + (syntax_.tool_format == ToolFormat::Harmony ? "harmony channels"
                              : syntax_.reasoning                        ? syntax_.reasoning->name
                                                                         : "none") +
           ")";
}

ReplyOptions ChatFormatter::reply_options(const json& tools, std::string_view prompt) const {
    ReplyOptions o;
    o.parse_tool_calls = tools.is_array() && !tools.empty();
    if (o.parse_tool_calls) o.tools = tools;
    o.starts_in_reasoning = syntax_.reasoning && prompt_opens_reasoning(*syntax_.reasoning, prompt);
    const std::string_view prefix = tool_call_syntax(syntax_.tool_format).reply_prefix();
    o.prompt_ends_with_reply_prefix = !prefix.empty() && prompt.ends_with(prefix);
    return o;
}

std::vector<std::string_view> ChatFormatter::reply_special_texts() const {
    std::vector<std::string_view> out = tool_call_syntax(syntax_.tool_format).special_texts();
    if (syntax_.reasoning) out.insert(out.end(), {syntax_.reasoning->open, syntax_.reasoning->close});
    return out;
}

std::unique_ptr<ReplyParser> ChatFormatter::reply_parser(const json& tools, std::string_view prompt) const {
    return make_reply_parser(syntax_, reply_options(tools, prompt));
}

namespace {

// Templates disagree on the message shape they accept, and fail (rather than degrade)
// on the wrong one: Qwen / Hermes / Llama 3 print tool-call arguments with tojson and
// need an object, DeepSeek and Functionary concatenate them as a string; Phi-3 cannot
// add a null content to a string; Gemma refuses a system role. Each step adapts the
// conversation a little further; render() tries them in turn (as llama.cpp's template
// layer does), so a conversation only changes shape for templates that need it. Mistral
// templates insist on 9-character tool-call ids, which OpenAI / Anthropic ids are not.
// Last resort: without the reasoning of earlier turns (gpt-oss refuses a message with
// both content and thinking next to tool calls).
// A 9-character alphanumeric id derived from any id (a hash, so the call and its result
// still match). Returns false if the id already has that form.
bool mistral_id(json& id) {
    const std::string s = id.get<std::string>();
    bool ok = s.size() == 9;
    for (char c : s) ok = ok && std::isalnum(static_cast<unsigned char>(c));
    if (ok) return false;
    static const char kAlnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    std::string out;
    for (int i = 0; i < 9; ++i, h /= 62) out += kAlnum[h % 62];
    id = out;
    return true;
}

constexpr int kAdaptSteps = 5;  // steps 0..4 below

bool adapt(json& messages, int step) {
    bool changed = false;
    if (step == 0) {  // null content -> ""
        for (json& m : messages)
            if (m.contains("content") && m["content"].is_null()) {
                m["content"] = "";
                changed = true;
            }
    } else if (step == 1) {  // tool-call arguments as a JSON string
        for (json& m : messages)
            if (m.contains("tool_calls"))
                for (json& c : m["tool_calls"]) {
                    json& args = c["function"]["arguments"];
                    if (!args.is_string()) {
                        args = dump_json(args);
                        changed = true;
                    }
                }
    } else if (step == 2) {  // the system prompt as the start of the first user turn
        if (messages.size() >= 2 && messages[0]["role"] == "system" && messages[1]["role"] == "user" &&
            messages[1]["content"].is_string()) {
            messages[1]["content"] = messages[0]["content"].get<std::string>() + "\n\n" +
                                     messages[1]["content"].get<std::string>();
            messages.erase(messages.begin());
            changed = true;
        }
    } else if (step == 3) {  // Mistral: tool-call ids of exactly 9 alphanumerics
        for (json& m : messages) {
            if (m.contains("tool_calls"))
                for (json& c : m["tool_calls"])
                    if (c.contains("id") && c["id"].is_string()) changed |= mistral_id(c["id"]);
            if (m.contains("tool_call_id") && m["tool_call_id"].is_string()) changed |= mistral_id(m["tool_call_id"]);
        }
    } else if (step == 4) {  // no reasoning
        for (json& m : messages) {
            for (const char* key : {"reasoning_content", "thinking", "tool_plan"}) changed |= m.erase(key) > 0;
            if (m.value("role", "") == "assistant" && m.contains("content") && m["content"].is_array()) {
                std::string text;
                for (const json& b : m["content"])
                    if (b.value("type", "") == "text") text += b.value("text", "");
                m["content"] = text;
                changed = true;
            }
        }
    }
    return changed;
}

}  // namespace

std::string ChatFormatter::render(const json& messages, const json& tools, bool add_generation_prompt,
                                  const json& extra_context) const {
    const json prepared = reasoning_fields_ ? with_reasoning_fields(messages, reasoning_fields_) : messages;
    try {
        return template_->render(prepared, tools, add_generation_prompt, extra_context);
    } catch (const Error&) {
        auto try_render = [&](const json& m) -> std::optional<std::string> {
            try {
                return template_->render(m, tools, add_generation_prompt, extra_context);
            } catch (const Error&) {
                return std::nullopt;
            }
        };
        // Each step alone first, then together. Null content -> "" comes late: DeepSeek
        // R1's template needs string arguments but tells a call turn by its null content.
        for (int step : {1, 2, 3, 0, 4}) {
            json alone = prepared;
            if (adapt(alone, step))
                if (auto p = try_render(alone)) return *p;
        }
        json together = prepared;
        for (int step = 0; step < kAdaptSteps; ++step)
            if (adapt(together, step))
                if (auto p = try_render(together)) return *p;
        throw;  // the template's own message about the original conversation
    }
}

}  // namespace pensieve
