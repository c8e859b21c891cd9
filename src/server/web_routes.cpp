// GET / (and /index.html, ...): the embedded chat page. The page is public, like /health:
// it holds no data, and the API calls it makes carry the key the user enters.
#include <httplib.h>

#include "server/routes.h"
#include "server/web_assets.h"

namespace pensieve::server {

void register_web_routes(httplib::Server& svr) {
    for (const WebAsset& a : web_assets()) {
        const std::string path = a.path;
        auto handler = [a](const httplib::Request&, httplib::Response& res) {
            res.set_content(a.data, a.size, a.content_type);
            res.set_header("Cache-Control", "no-cache");
        };
        svr.Get(path, handler);
        if (path == "/index.html") svr.Get("/", handler);
    }
}

bool is_web_path(const std::string& path) {
    if (path == "/") return true;
    for (const WebAsset& a : web_assets())
        if (path == a.path) return true;
    return false;
}

}  // namespace pensieve::server
