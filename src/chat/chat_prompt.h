// A conversation as the model reads it: the chat template's rendering, tokenized so that
// special tokens come only from the template's own text, never from what users wrote.
//
// Every string of the conversation and of the tool definitions is shielded first
// (Tokenizer::shield_specials): "<|im_start|>" typed in a message cannot open a turn.
// Assistant messages keep user-defined tokens (e.g. "</think>", "<tool_call>" in the
// model's own earlier replies, which templates look for and the model wrote as tokens);
// everything else loses all special-token kinds. The server and `pensieve template`
// both go through make_chat_prompt, so they produce the same tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pensieve {

class Tokenizer;

struct ChatPrompt {
    std::string text;              // the rendering (shield marks removed)
    std::vector<int32_t> tokens;   // with BOS first when the model wants one
};

// Renders (messages, tools) with a chat template; throws Error when the template does.
using ChatRenderFn =
    std::function<std::string(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools)>;

// Shields the conversation, renders it with `render` and tokenizes the result. A template
// error's message is passed on without shield marks.
ChatPrompt make_chat_prompt(const Tokenizer& tok, const nlohmann::ordered_json& messages,
                            const nlohmann::ordered_json& tools, const ChatRenderFn& render);

// The conversation with every special token's text in its strings (keys too) shielded.
nlohmann::ordered_json shield_messages(const Tokenizer& tok, const nlohmann::ordered_json& messages);

// Prompt text the template did not make (a completion prompt, `pensieve run -p`) ->
// ids: special-token text is plain text unless parse_special; BOS added when the model
// wants it and the text did not already produce it.
std::vector<int32_t> tokenize_prompt_text(const Tokenizer& tok, const std::string& text, bool parse_special);

}  // namespace pensieve
