#include "server/router.h"

#include "server/connection.h"
#include "server/routes.h"

namespace pensieve::server {

namespace {

// Why reading a body stopped early, as the status and message the client gets.
std::pair<int, std::string> body_failure(bool over_limit, size_t max_body_bytes) {
    const Connection* c = current_connection();
    if (over_limit || (c && c->failure() == Connection::Failure::TooLarge))
        return {413, "the request body is too large (the limit is " + std::to_string(max_body_bytes) + " bytes)"};
    if (c && c->failure() == Connection::Failure::Timeout) return {408, "the request body arrived too slowly"};
    return {400, "the request body is malformed (bad chunked encoding, content encoding, or cut short)"};
}

}  // namespace

void Router::get(const std::string& pattern, httplib::Server::Handler handler) {
    routes_.emplace_back(std::regex(pattern), "GET");
    svr_.Get(pattern, std::move(handler));
}

void Router::post(const std::string& pattern, httplib::Server::Handler handler) {
    routes_.emplace_back(std::regex(pattern), "POST");
    const size_t limit = max_body_bytes_;
    svr_.Post(pattern, [handler = std::move(handler), limit](const httplib::Request& req, httplib::Response& res,
                                                              const httplib::ContentReader& read_body) {
        std::string body;
        bool over_limit = false;
        const bool complete = read_body([&](const char* data, size_t n) {
            if (body.size() + n > limit) {
                over_limit = true;
                return false;
            }
            body.append(data, n);
            return true;
        });
        Connection* c = current_connection();
        if (c) {
            c->begin_handler();
            c->note_buffer(body.size());
        }
        if (!complete) {
            if (c) c->close_after_response();  // the rest of the body is still on the wire
            const auto [status, message] = body_failure(over_limit, limit);
            write_error(res, dialect_for_path(req.path), status, message);
            res.set_header("Connection", "close");
            return;
        }
        // httplib owns the request as a non-const object; handlers read the body from it
        // as they would had httplib read it.
        const_cast<httplib::Request&>(req).body = std::move(body);
        handler(req, res);
    });
}

std::string Router::allowed_methods(const std::string& path) const {
    bool get = false, post = false;
    for (const auto& [pattern, method] : routes_) {
        if (!std::regex_match(path, pattern)) continue;
        (method == "GET" ? get : post) = true;
    }
    std::string allow = get ? "GET, HEAD" : "";
    if (post) allow += allow.empty() ? "POST" : ", POST";
    return allow;
}

}  // namespace pensieve::server
