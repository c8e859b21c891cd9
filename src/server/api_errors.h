// Errors a request handler can raise, and how each API dialect spells them.
//
// Handlers throw ApiError with an HTTP status and a message for the client; the route
// wrapper catches it and writes the body in the shape the client's SDK parses:
//
//   OpenAI:    {"error": {"message", "type", "param", "code"}}
//   Anthropic: {"type": "error", "error": {"type", "message"}}
//
// The error *type* strings differ between the two, so ApiError carries only the status
// (plus an optional OpenAI param name) and each dialect derives its type from it.
#pragma once

#include <string>

#include "util/json.h"

namespace pensieve::server {

using pensieve::json;

enum class Dialect { OpenAI, Anthropic };

class ApiError : public std::exception {
public:
    ApiError(int status, std::string message, std::string param = "")
        : status_(status), message_(std::move(message)), param_(std::move(param)) {}
    const char* what() const noexcept override { return message_.c_str(); }
    int status() const { return status_; }
    const std::string& message() const { return message_; }
    const std::string& param() const { return param_; }

private:
    int status_;
    std::string message_;
    std::string param_;
};

// 400 with the offending field named, the most common case.
[[noreturn]] inline void bad_request(const std::string& message, const std::string& param = "") {
    throw ApiError(400, message, param);
}

inline const char* openai_error_type(int status) {
    switch (status) {
        case 400: case 413: case 422: return "invalid_request_error";
        case 401: return "authentication_error";
        case 403: return "permission_error";
        case 404: return "not_found_error";
        case 429: return "rate_limit_error";
        case 501: return "not_implemented_error";
        case 503: return "server_overloaded";
        default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

inline const char* anthropic_error_type(int status) {
    switch (status) {
        case 401: return "authentication_error";
        case 403: return "permission_error";
        case 404: return "not_found_error";
        case 413: return "request_too_large";
        case 429: return "rate_limit_error";
        case 503: case 529: return "overloaded_error";
        default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

inline json error_json(Dialect d, int status, const std::string& message,
                                 const std::string& param = "") {
    if (d == Dialect::Anthropic)
        return {{"type", "error"}, {"error", {{"type", anthropic_error_type(status)}, {"message", message}}}};
    json code = nullptr;
    if (status == 401) code = "invalid_api_key";
    else if (status == 404) code = "not_found";
    else if (status == 429) code = "rate_limit_exceeded";
    else if (status == 413) code = "request_too_large";
    return {{"error",
             {{"message", message},
              {"type", openai_error_type(status)},
              {"param", param.empty() ? json(nullptr) : json(param)},
              {"code", code}}}};
}

// Anthropic routes live under /v1/messages; everything else speaks OpenAI.
inline Dialect dialect_for_path(const std::string& path) {
    return path.rfind("/v1/messages", 0) == 0 ? Dialect::Anthropic : Dialect::OpenAI;
}

}  // namespace pensieve::server
