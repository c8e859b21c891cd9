// The chat page's static files (web/), compiled into the binary by
// cmake/embed_files.cmake so `pensieve serve` needs nothing installed beside it.
#pragma once

#include <cstddef>
#include <vector>

namespace pensieve {

struct WebAsset {
    const char* path;          // URL path, e.g. "/index.html"
    const char* content_type;
    const char* data;
    size_t size;
};

const std::vector<WebAsset>& web_assets();

}  // namespace pensieve
