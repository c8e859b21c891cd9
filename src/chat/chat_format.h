// Conversation -> prompt text, for the chat endpoints and `pensieve template` (which
// therefore prints exactly the prompt the server would feed the tokenizer).
//
// The model's own chat template (GGUF `tokenizer.chat_template`, or --chat-template-file)
// is rendered by the chat/ module's Jinja interpreter. A model without a template (base
// models such as stories260K) gets a built-in ChatML template that also lays out tools
// and tool calls in the Hermes style; the server logs which one is in use at start-up.
#pragma once

#include <memory>
#include <string>

#include "chat/tool_calls.h"
#include "util/json.h"

namespace pensieve {

class ChatTemplate;
class GgufFile;
class Tokenizer;

class ChatFormatter {
public:
    // template_source empty: the built-in ChatML template. Throws Error if the template
    // does not parse.
    ChatFormatter(std::string template_source, std::string bos_token, std::string eos_token);
    ~ChatFormatter();
    ChatFormatter(ChatFormatter&&) noexcept;

    // Picks the template: override text (from --chat-template-file) if given, else the
    // GGUF's, else the built-in.
    static ChatFormatter for_model(const GgufFile& file, const Tokenizer& tok, const std::string& override_source);

    // messages/tools are OpenAI-shaped (see server/request_parse.h); tools may be null;
    // extra_context: more template variables (ChatTemplate::render). Throws Error if the
    // template fails (e.g. raise_exception on an unsupported role order), which the
    // server reports as a 400.
    std::string render(const json& messages, const json& tools, bool add_generation_prompt,
                       const json& extra_context = json::object()) const;

    ToolFormat tool_format() const { return tool_format_; }
    bool is_builtin() const { return builtin_; }
    // For the start-up log: "the model's chat template" / "built-in ChatML ...".
    std::string describe() const;

    // The BOS / EOS texts a template sees: the tokenizer's tokens ("" when it has none).
    static std::string bos_text(const Tokenizer& tok);
    static std::string eos_text(const Tokenizer& tok);

private:
    bool builtin_;
    std::string source_;
    std::string bos_, eos_;
    ToolFormat tool_format_;
    std::unique_ptr<ChatTemplate> template_;
};

}  // namespace pensieve
