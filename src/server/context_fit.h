// Fitting a conversation into the context. By default a conversation that does not fit
// (prompt + max_tokens > context) is refused with a clear 400 by the scheduler: never a
// silent truncation. With `--context-shift` the oldest turns after the system prompt are
// dropped, as few as needed, and the number dropped is reported in the response usage.
#pragma once

#include <string>

#include "server/server_context.h"

namespace pensieve::server {

struct ChatRequest;

// Renders r.messages (+ tools) with the chat template and tokenizes the result into
// r.params.prompt, dropping old turns first if context shift is on and it would not fit.
// A request without a token limit gets the server's (--n-predict). Returns the rendered
// prompt text.
std::string render_chat_prompt(Engine& e, ChatRequest& r, const ServerOptions& o);

}  // namespace pensieve::server
