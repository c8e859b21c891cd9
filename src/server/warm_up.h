// The first request of an agent session is the one users feel: Claude Code's system
// prompt and tools are ~11,000 tokens, all prefill before the first token. Two options
// make it a prefix-cache hit even after a deploy:
//   --record-requests FILE  appends every generation request the server answers (path
//                           and JSON body, one line each) to FILE. Off by default:
//                           bodies hold prompts, which are never logged unless asked.
//   --warm-cache FILE       at start, before the server says it is serving, sends each
//                           line of FILE (such a record, or hand-written bodies) to the
//                           server itself, cut to one output token, so the prefix cache
//                           (and with --cache-dir the disk cache) holds those prompts.
// A warm-up request goes through the same route, template and tokenizer as a client's,
// so the cached prefix is exactly the one the client's request will look up.
#pragma once

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "util/json.h"

namespace pensieve::server {

struct WarmUpRequest {
    std::string path;  // a generation route: /v1/chat/completions, /v1/messages, ...
    json body;
};

// Marks the server's own warm-up requests, which are not recorded again.
inline constexpr const char* kWarmUpHeader = "X-Pensieve-Warm-Up";

// True for the routes whose requests are recorded and may be replayed.
bool is_generation_path(const std::string& path);

// Each non-empty line: {"path": P, "body": {...}} or a bare chat-completions body.
// Throws Error naming the line for anything else.
std::vector<WarmUpRequest> read_warm_up_file(const std::string& file);

// The request's body cut to one output token, not streamed, not stored: its prompt is
// computed and cached, its reply is thrown away.
json one_token_body(const std::string& path, json body);

// Prompt tokens and, of those, tokens read from the prefix cache, from a reply's usage
// in any of the APIs' words.
struct PromptUsage {
    long long prompt = 0, cached = 0;
};
PromptUsage prompt_usage(const json& reply);

// Sends each request to the server at host:port (with the API key, if any), one after
// the other, logging one line per request. Returns how many succeeded; failures are
// logged and skipped (a stale warm-up file must not keep a server from starting). Stops
// before the next request once `stop` is set (the server is shutting down).
int warm_prefix_cache(const std::string& host, int port, const std::string& api_key,
                      const std::vector<WarmUpRequest>& requests, const std::atomic<bool>* stop = nullptr);

// --record-requests: appends {"path", "body"} lines to a file; safe from any thread.
class RequestRecorder {
public:
    explicit RequestRecorder(const std::string& file);  // throws Error if it cannot be opened
    ~RequestRecorder();
    RequestRecorder(const RequestRecorder&) = delete;
    RequestRecorder& operator=(const RequestRecorder&) = delete;
    // Bodies that are not JSON objects are skipped (the route refuses them anyway).
    void record(const std::string& path, const std::string& body);

private:
    std::mutex mutex_;
    std::FILE* out_ = nullptr;
};

}  // namespace pensieve::server
