// tool_choice "required" / a named function (OpenAI) and {"type": "any"} / {"type":
// "tool"} (Anthropic) promise the client a tool call. A model left to itself may answer
// in prose instead, so for those choices the reply is constrained at sampling time by a
// grammar: exactly one call, in the model's own call syntax (tool_calls.h), naming one
// of the allowed tools, with arguments that satisfy that tool's JSON-schema parameters.
// The reply then always parses into a call whose arguments validate.
//
//   Hermes / Qwen:  <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
//   Llama 3.x:      {"name": "f", "parameters": {...}}
//   Mistral:        [TOOL_CALLS][{"name": "f", "arguments": {...}}]
//   ... (ToolCallSyntax::forced_call gives each syntax's text around the arguments)
//
// Syntaxes whose arguments are not one JSON object (Qwen3-Coder's XML parameters,
// GLM's key/value pairs, Gemma 4's notation) cannot be forced: a 400 says so. Markers
// that are control tokens in the model's vocabulary (harmony's <|channel|>, Kimi's
// section tokens) are spelled out of ordinary tokens under the grammar: the text the
// parser reads is the same, though the model was trained on the single tokens.
//
// "auto" stays unconstrained: the model decides whether to call.
#pragma once

#include <memory>

#include "chat/tool_calls.h"
#include "server/request_parse.h"

namespace pensieve {
class Grammar;
}

namespace pensieve::server {

// The grammar for r's tool_choice, or nullptr when the choice does not force a call
// (auto, none, no tools). Throws ApiError 400 if a tool's parameters use JSON-schema
// features the grammar cannot express, or if the request also carries its own grammar
// or response_format.
std::shared_ptr<const Grammar> tool_choice_grammar(const ChatRequest& r, ToolFormat format);

// Sets r.params.options.grammar from tool_choice_grammar (no-op when it is nullptr).
void apply_tool_choice(ChatRequest& r, ToolFormat format);

}  // namespace pensieve::server
