// ChatTemplate: the Jinja interpreter applied to a conversation, plus where templates come
// from (the GGUF's metadata, or a few built-ins for models that ship none).
#include "chat/chat_template.h"

#include <map>

#include "chat/jinja_interp.h"
#include "gguf/gguf.h"
#include "util/error.h"

namespace pensieve {

ChatTemplate::ChatTemplate(std::string_view source, std::string bos_token, std::string eos_token,
                           ChatTemplateOptions options)
    : source_(source), bos_(std::move(bos_token)), eos_(std::move(eos_token)) {
    jinja::LexOptions lex;
    lex.trim_blocks = options.trim_blocks;
    lex.lstrip_blocks = options.lstrip_blocks;
    lex.keep_trailing_newline = options.keep_trailing_newline;
    jinja::RenderOptions ro;
    ro.hf_tojson = options.hf_tojson;
    ro.now = std::move(options.now);
    tmpl_ = std::make_unique<jinja::Template>(source_, lex, std::move(ro));
}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                 bool add_generation_prompt, const nlohmann::ordered_json& extra_context) const {
    if (!messages.is_array()) fail("chat template: messages must be a JSON array");
    if (!tools.is_null() && !tools.is_array()) fail("chat template: tools must be a JSON array or null");
    if (!extra_context.is_null() && !extra_context.is_object())
        fail("chat template: the extra context must be a JSON object");
    std::vector<std::pair<std::string, jinja::Value>> ctx;
    try {
        ctx.emplace_back("messages", jinja::from_json(messages));
        ctx.emplace_back("tools", jinja::from_json(tools));
        ctx.emplace_back("documents", jinja::none());
        ctx.emplace_back("add_generation_prompt", jinja::boolean(add_generation_prompt));
        ctx.emplace_back("bos_token", jinja::string(bos_));
        ctx.emplace_back("eos_token", jinja::string(eos_));
        if (extra_context.is_object())
            for (const auto& [k, v] : extra_context.items()) ctx.emplace_back(k, jinja::from_json(v));
    } catch (const jinja::RuntimeError& e) {
        fail("chat template: the conversation cannot be passed to the template: ", e.what());
    }
    return tmpl_->render(ctx);
}

// ---------------------------------------------------------------------------------------------
// GGUF

std::optional<std::string> gguf_chat_template(const GgufFile& gguf, const std::string& name) {
    const std::string key = name.empty() ? "tokenizer.chat_template" : "tokenizer.chat_template." + name;
    const GgufValue* v = gguf.find(key);
    if (!v) return std::nullopt;
    if (v->type != GgufType::STRING) fail(gguf.path(), ": ", key, " is not a string");
    return v->str;
}

std::vector<std::string> gguf_chat_template_names(const GgufFile& gguf) {
    static const std::string prefix = "tokenizer.chat_template.";
    std::vector<std::string> names;
    for (const auto& [k, v] : gguf.metadata())
        if (k.size() > prefix.size() && k.compare(0, prefix.size(), prefix) == 0 && v.type == GgufType::STRING)
            names.push_back(k.substr(prefix.size()));
    return names;
}

static std::string token_text(const GgufFile& gguf, const char* id_key) {
    const GgufValue* id = gguf.find(id_key);
    const GgufValue* tokens = gguf.find("tokenizer.ggml.tokens");
    if (!id || !id->is_integer() || !tokens || tokens->type != GgufType::ARRAY) return "";
    const int64_t i = id->as_int();
    if (i < 0 || size_t(i) >= tokens->array.size()) return "";
    return tokens->array[size_t(i)].str;
}

std::string gguf_bos_token(const GgufFile& gguf) { return token_text(gguf, "tokenizer.ggml.bos_token_id"); }
std::string gguf_eos_token(const GgufFile& gguf) { return token_text(gguf, "tokenizer.ggml.eos_token_id"); }

// ---------------------------------------------------------------------------------------------
// Built-in templates (plain-text conversations; tool calls are left to models' own templates).

static const std::map<std::string, std::string, std::less<>>& builtins() {
    static const std::map<std::string, std::string, std::less<>> t = {
        {"chatml", R"({%- for message in messages %}
{{- '<|im_start|>' ~ message.role ~ '\n' ~ (message.content if message.content is string else '') ~ '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- endif %})"},
        {"llama3", R"({{- bos_token }}
{%- for message in messages %}
{{- '<|start_header_id|>' ~ message.role ~ '<|end_header_id|>\n\n' ~ (message.content if message.content is string else '') | trim ~ '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %})"},
        {"llama2", R"({%- if messages and messages[0].role == 'system' %}
{%- set system = messages[0].content %}
{%- set loop_messages = messages[1:] %}
{%- else %}
{%- set system = '' %}
{%- set loop_messages = messages %}
{%- endif %}
{%- for message in loop_messages %}
{%- if message.role == 'user' %}
{{- bos_token ~ '[INST] ' }}
{%- if loop.first and system %}
{{- '<<SYS>>\n' ~ system ~ '\n<</SYS>>\n\n' }}
{%- endif %}
{{- message.content | trim ~ ' [/INST]' }}
{%- elif message.role == 'assistant' %}
{{- ' ' ~ message.content | trim ~ ' ' ~ eos_token }}
{%- endif %}
{%- endfor %})"},
        {"mistral", R"({%- if messages and messages[0].role == 'system' %}
{%- set system = messages[0].content ~ '\n\n' %}
{%- set loop_messages = messages[1:] %}
{%- else %}
{%- set system = '' %}
{%- set loop_messages = messages %}
{%- endif %}
{{- bos_token }}
{%- for message in loop_messages %}
{%- if message.role == 'user' %}
{{- '[INST] ' ~ (system if loop.first else '') ~ message.content ~ ' [/INST]' }}
{%- elif message.role == 'assistant' %}
{{- message.content ~ eos_token }}
{%- endif %}
{%- endfor %})"},
        {"phi3", R"({%- for message in messages %}
{{- '<|' ~ message.role ~ '|>\n' ~ (message.content if message.content is string else '') ~ '<|end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|assistant|>\n' }}
{%- else %}
{{- eos_token }}
{%- endif %})"},
        {"gemma", R"({{- bos_token }}
{%- set ns = namespace(system='') %}
{%- for message in messages %}
{%- if message.role == 'system' %}
{%- set ns.system = ns.system ~ message.content ~ '\n\n' %}
{%- else %}
{{- '<start_of_turn>' ~ ('model' if message.role == 'assistant' else 'user') ~ '\n' }}
{%- if message.role == 'user' %}
{{- ns.system }}
{%- set ns.system = '' %}
{%- endif %}
{{- (message.content if message.content is string else '') | trim ~ '<end_of_turn>\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<start_of_turn>model\n' }}
{%- endif %})"},
        {"zephyr", R"({%- for message in messages %}
{{- '<|' ~ message.role ~ '|>\n' ~ (message.content if message.content is string else '') ~ eos_token ~ '\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|assistant|>\n' }}
{%- endif %})"},
    };
    return t;
}

std::optional<std::string> builtin_chat_template(std::string_view name) {
    const auto& t = builtins();
    const auto it = t.find(name);
    if (it == t.end()) return std::nullopt;
    return it->second;
}

std::vector<std::string> builtin_chat_template_names() {
    std::vector<std::string> names;
    for (const auto& [k, v] : builtins()) names.push_back(k);
    return names;
}

}  // namespace pensieve
