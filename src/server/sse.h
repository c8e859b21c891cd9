// Server-sent events framing. OpenAI streams bare `data:` lines ending with
// `data: [DONE]`; Anthropic names every event (`event: message_start` ...).
// Lines starting with ':' are comments: SSE parsers skip them, so they serve as
// keep-alives that also reveal a disconnected client.
#pragma once

#include <string>

#include "server/json_fields.h"

namespace pensieve::server {

inline std::string sse_data(const json& j) { return "data: " + dump_json(j) + "\n\n"; }

inline std::string sse_event(const std::string& event, const json& j) {
    return "event: " + event + "\ndata: " + dump_json(j) + "\n\n";
}

inline const std::string kSseDone = "data: [DONE]\n\n";
inline const std::string kSseComment = ": keep-alive\n\n";

inline constexpr const char* kSseContentType = "text/event-stream";

}  // namespace pensieve::server
