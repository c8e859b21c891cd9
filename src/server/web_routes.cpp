// GET / (and /index.html, ...): the embedded chat page. The page is public, like /health:
// it holds no data, and the API calls it makes carry the key the user enters.
// GET /favicon.ico, which browsers ask for on their own: 204, so logs show no 404s.
#include <httplib.h>

#include "server/routes.h"
#include "server/web_assets.h"

namespace pensieve::server {

namespace {
const char* const kFaviconPath = "/favicon.ico";
}

void register_web_routes(Router& router) {
    for (const WebAsset& a : web_assets()) {
        const std::string path = a.path;
        auto handler = [a](const httplib::Request&, httplib::Response& res) {
            res.set_content(a.data, a.size, a.content_type);
            res.set_header("Cache-Control", "no-cache");
        };
        router.get(path, handler);
        if (path == "/index.html") router.get("/", handler);
    }
    router.get(kFaviconPath, [](const httplib::Request&, httplib::Response& res) {
        res.status = 204;
        res.set_header("Cache-Control", "max-age=86400");
    });
}

bool is_web_path(const std::string& path) {
    if (path == "/" || path == kFaviconPath) return true;
    for (const WebAsset& a : web_assets())
        if (path == a.path) return true;
    return false;
}

}  // namespace pensieve::server
