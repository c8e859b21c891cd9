// The server's routes: registers handlers with cpp-httplib and remembers which methods
// each path allows, so a known path asked with another method gets 405 and an Allow
// header (httplib would say 404), and an unknown path is refused before its body is read.
//
// POST handlers see the request with its body already read under the body limit. The
// limit counts decoded bytes, whatever the transfer encoding (Content-Length or chunked)
// or content encoding (gzip, br): httplib checks only a Content-Length against it and
// would buffer any amount of chunked or decompressed data.
#pragma once

#include <cstddef>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <httplib.h>

namespace pensieve::server {

class Router {
public:
    Router(httplib::Server& svr, size_t max_body_bytes) : svr_(svr), max_body_bytes_(max_body_bytes) {}

    void get(const std::string& pattern, httplib::Server::Handler handler);
    void post(const std::string& pattern, httplib::Server::Handler handler);

    // "GET, HEAD" / "POST" for a known path (what an Allow header lists), "" for an
    // unknown one.
    std::string allowed_methods(const std::string& path) const;

private:
    httplib::Server& svr_;
    size_t max_body_bytes_;
    std::vector<std::pair<std::regex, std::string>> routes_;  // pattern, method
};

}  // namespace pensieve::server
