// The model's chat template: OpenAI-style messages (+ tools) → the prompt text the model
// was trained on, rendered by our Jinja interpreter exactly as Hugging Face transformers'
// apply_chat_template renders it with Python's Jinja2:
//
//   template.render(messages=..., tools=<list or None>, documents=None,
//                   add_generation_prompt=..., bos_token=..., eos_token=..., **extra)
//
// Keep JSON key order: tools' schemas are printed by |tojson in their given order, so parse
// requests with nlohmann::ordered_json (a plain nlohmann::json converts, but sorts keys).
#pragma once

#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace pensieve {

class GgufFile;
namespace jinja {
class Template;
}

struct ChatTemplateOptions {
    // Jinja2 environment options; the defaults are transformers' (trim_blocks=True,
    // lstrip_blocks=True); Jinja2's own defaults are both false.
    bool trim_blocks = true;
    bool lstrip_blocks = true;
    bool keep_trailing_newline = false;
    // |tojson as transformers defines it (true) or Jinja2's HTML-safe, key-sorted one (false).
    bool hf_tojson = true;
    // Clock for strftime_now() (Llama 3.x templates print today's date); unset: local time.
    std::function<std::tm()> now;
};

class ChatTemplate {
public:
    // Parses the template; throws pensieve::Error with the line of a syntax error.
    ChatTemplate(std::string_view source, std::string bos_token, std::string eos_token,
                 ChatTemplateOptions options = {});
    ~ChatTemplate();
    ChatTemplate(ChatTemplate&&) noexcept;
    ChatTemplate& operator=(ChatTemplate&&) noexcept;

    // messages: array of {"role", "content", ["tool_calls"], ["tool_call_id"], ...}.
    // tools: array of tool definitions, or null (the template then sees tools=None).
    // extra_context: object whose keys become template variables (e.g. "date_string",
    // "builtin_tools", "documents", "enable_thinking"); they override the defaults above.
    // Throws pensieve::Error for template errors, including raise_exception() messages.
    std::string render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                       bool add_generation_prompt,
                       const nlohmann::ordered_json& extra_context = nlohmann::ordered_json::object()) const;

    const std::string& source() const { return source_; }
    const std::string& bos_token() const { return bos_; }
    const std::string& eos_token() const { return eos_; }

private:
    std::string source_, bos_, eos_;
    std::unique_ptr<jinja::Template> tmpl_;
};

// The GGUF's chat template: `tokenizer.chat_template`, or `tokenizer.chat_template.<name>`
// when name is given. nullopt if the file has none.
std::optional<std::string> gguf_chat_template(const GgufFile& gguf, const std::string& name = "");
// Names of the named templates in the GGUF (`tokenizer.chat_template.<name>`).
std::vector<std::string> gguf_chat_template_names(const GgufFile& gguf);
// The text of the BOS / EOS token per the GGUF's tokenizer metadata ("" if not set).
std::string gguf_bos_token(const GgufFile& gguf);
std::string gguf_eos_token(const GgufFile& gguf);

// Built-in templates for models without one: chatml, llama2, llama3, mistral, phi3, gemma,
// zephyr. nullopt for an unknown name.
std::optional<std::string> builtin_chat_template(std::string_view name);
std::vector<std::string> builtin_chat_template_names();

}  // namespace pensieve
