// Checks made on a request's head, before its body is read or any handler runs:
//   - framing: the body's length must be unambiguous (one Content-Length of digits, or
//     chunked alone), else the connection could be read two ways (request smuggling) or
//     the server would wait for bytes that never come;
//   - exposure: without an API key, only clients of this machine may drive the server.
//     A web page the user visits can send requests to 127.0.0.1 (cross-site form posts,
//     fetch) or reach it under its own domain name (DNS rebinding). The first carry an
//     Origin of another site, the second a Host header naming that site; both are refused.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <httplib.h>

namespace pensieve::server {

struct ServerOptions;

struct Refusal {
    int status;
    std::string message;
};

// Content-Length: digits only, repeated values equal, at most max_body_bytes (413).
// Transfer-Encoding: "chunked" only (501 otherwise), never with Content-Length. Bodies
// only on POST; a POST says how long its body is (411).
std::optional<Refusal> check_framing(const httplib::Request& req, size_t max_body_bytes);

// Whether the request has a body to read (its length, or that it is chunked).
bool is_chunked(const httplib::Request& req);
size_t content_length(const httplib::Request& req);  // 0 when absent (after check_framing)

// "Example.COM:8080" -> "example.com", "[::1]:80" -> "::1", "host." -> "host".
std::string host_name(const std::string& host_header);
bool is_loopback_address(const std::string& host);  // "127.0.0.1", "::1", "localhost"

// A Host header a browser can only send when the page's own address is this machine:
// loopback names (localhost, *.localhost), IP literals (DNS rebinding needs a name), the
// configured --host and this machine's host name.
bool is_trusted_host(const std::string& host_header, const std::string& configured_host);

// The page that sent the request is served from this server (Origin's host:port is the
// request's Host).
bool is_same_origin(const std::string& origin, const std::string& host_header);

// --cors entries: "*" or scheme://host[:port] (no path), lowercased, trailing '/'
// dropped. Throws Error for anything else.
std::string normalize_origin(const std::string& origin);
bool is_listed_origin(const std::string& origin, const std::vector<std::string>& allowed);

// Start-up warnings (also in /health) when the server can be used without a key from
// other machines or by any web page; empty when it cannot.
std::vector<std::string> exposure_warnings(const ServerOptions& o);

}  // namespace pensieve::server
