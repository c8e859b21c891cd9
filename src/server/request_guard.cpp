#include "server/request_guard.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "server/server_context.h"
#include "util/error.h"

namespace pensieve::server {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return s;
}

bool all_digits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

bool is_ip_literal(const std::string& name) {
    unsigned char addr[16];
    return inet_pton(AF_INET, name.c_str(), addr) == 1 || inet_pton(AF_INET6, name.c_str(), addr) == 1;
}

const std::string& machine_host_name() {
    static const std::string name = [] {
        char buf[256] = {};
        return gethostname(buf, sizeof(buf) - 1) == 0 ? lower(buf) : std::string();
    }();
    return name;
}

// "http://host:port" -> "host:port" (lowercased); "" when it is not of that form.
std::string origin_authority(const std::string& origin) {
    const size_t sep = origin.find("://");
    if (sep == std::string::npos) return "";
    std::string rest = lower(origin.substr(sep + 3));
    if (!rest.empty() && rest.back() == '/') rest.pop_back();
    return rest.find('/') == std::string::npos ? rest : "";
}

}  // namespace

std::optional<Refusal> check_framing(const httplib::Request& req, size_t max_body_bytes) {
    const size_t n_length = req.get_header_value_count("Content-Length");
    const size_t n_encoding = req.get_header_value_count("Transfer-Encoding");
    if (n_encoding > 0) {
        if (n_encoding > 1 || lower(req.get_header_value("Transfer-Encoding")) != "chunked")
            return Refusal{501, "only 'Transfer-Encoding: chunked' is supported"};
        if (n_length > 0) return Refusal{400, "a request cannot have both Content-Length and Transfer-Encoding"};
    }
    const std::string length = req.get_header_value("Content-Length");
    for (size_t i = 0; i < n_length; ++i) {
        const std::string v = req.get_header_value("Content-Length", i);
        if (!all_digits(v)) return Refusal{400, "Content-Length '" + v + "' is not a number of bytes"};
        if (v != length) return Refusal{400, "the request has conflicting Content-Length headers"};
    }
    // 18 digits cannot overflow 64 bits; anything longer is over every limit anyway.
    const bool too_long = n_length > 0 && (length.size() > 18 || std::stoull(length) > max_body_bytes);
    if (too_long)
        return Refusal{413, "the request body is too large (the limit is " + std::to_string(max_body_bytes) + " bytes)"};
    const bool body = n_encoding > 0 || (n_length > 0 && std::stoull(length) > 0);
    if (req.method == "POST") {
        if (n_length == 0 && n_encoding == 0)
            return Refusal{411, "a POST request needs a Content-Length (or chunked Transfer-Encoding)"};
    } else if (body) {
        return Refusal{400, "a " + req.method + " request cannot have a body"};
    }
    return std::nullopt;
}

bool is_chunked(const httplib::Request& req) { return req.has_header("Transfer-Encoding"); }

size_t content_length(const httplib::Request& req) {
    const std::string v = req.get_header_value("Content-Length");
    return all_digits(v) && v.size() <= 18 ? size_t(std::stoull(v)) : 0;
}

std::string host_name(const std::string& host_header) {
    std::string h = lower(host_header);
    if (!h.empty() && h.front() == '[') {
        const size_t close = h.find(']');
        return close == std::string::npos ? h : h.substr(1, close - 1);
    }
    const size_t colon = h.find(':');
    const bool bare_ipv6 = colon != std::string::npos && h.find(':', colon + 1) != std::string::npos;
    if (colon != std::string::npos && !bare_ipv6) h.resize(colon);
    if (!h.empty() && h.back() == '.') h.pop_back();
    return h;
}

bool is_loopback_address(const std::string& host) {
    const std::string h = host_name(host);
    if (h == "localhost" || h == "::1") return true;
    in_addr a{};
    return inet_pton(AF_INET, h.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

bool is_trusted_host(const std::string& host_header, const std::string& configured_host) {
    const std::string h = host_name(host_header);
    if (h.empty()) return false;
    const std::string suffix = ".localhost";
    if (h == "localhost" || (h.size() > suffix.size() && h.compare(h.size() - suffix.size(), suffix.size(), suffix) == 0))
        return true;
    return is_ip_literal(h) || h == host_name(configured_host) || h == machine_host_name();
}

bool is_same_origin(const std::string& origin, const std::string& host_header) {
    const std::string authority = origin_authority(origin);
    return !authority.empty() && authority == lower(host_header);
}

std::string normalize_origin(const std::string& origin) {
    if (origin == "*") return origin;
    std::string o = lower(origin);
    if (!o.empty() && o.back() == '/') o.pop_back();
    const size_t sep = o.find("://");
    if (sep == std::string::npos || sep == 0 || origin_authority(o).empty())
        fail("--cors: '", origin, "' is not an origin (scheme://host[:port], e.g. http://localhost:3000, or *)");
    return o;
}

bool is_listed_origin(const std::string& origin, const std::vector<std::string>& allowed) {
    const std::string o = lower(origin);
    return std::any_of(allowed.begin(), allowed.end(), [&](const std::string& a) { return a == "*" || a == o; });
}

std::vector<std::string> exposure_warnings(const ServerOptions& o) {
    std::vector<std::string> out;
    if (!o.api_key.empty()) return out;
    if (!is_loopback_address(o.host))
        out.push_back("listening on " + o.host + " without an API key: anyone who can reach this address can use " +
                      "the model (set --api-key or $PENSIEVE_API_KEY, or listen on 127.0.0.1)");
    if (std::find(o.cors_origins.begin(), o.cors_origins.end(), "*") != o.cors_origins.end())
        out.push_back("--cors * without an API key: any web page you visit can use the model");
    return out;
}

}  // namespace pensieve::server
