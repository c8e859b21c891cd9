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

#include "chat/reply.h"
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
    // server reports as a 400. An assistant message's `reasoning_content` also reaches
    // templates that read it under another name (gpt-oss: `thinking`, Command-R7B:
    // `tool_plan`, Ministral: a {"type": "thinking"} content block).
    std::string render(const json& messages, const json& tools, bool add_generation_prompt,
                       const json& extra_context = json::object()) const;

    ToolFormat tool_format() const { return syntax_.tool_format; }
    // How replies lay out reasoning and tool calls (reply.h).
    const ReplySyntax& reply_syntax() const { return syntax_; }
    // A parser for the reply to `prompt` (this formatter's rendering): tools null or
    // empty means tool calls are not looked for.
    std::unique_ptr<ReplyParser> reply_parser(const json& tools, std::string_view prompt) const;
    ReplyOptions reply_options(const json& tools, std::string_view prompt) const;
    // The fixed texts replies are parsed by (tool-call syntax and reasoning markers),
    // which must reach the parser even where they are control tokens.
    std::vector<std::string_view> reply_special_texts() const;
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
    ReplySyntax syntax_;
    unsigned reasoning_fields_;  // where the template reads reasoning (chat_format.cpp)
    std::unique_ptr<ChatTemplate> template_;
};

}  // namespace pensieve
