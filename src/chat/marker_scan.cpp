#include "chat/marker_scan.h"

#include <algorithm>

namespace pensieve {

size_t partial_marker_suffix(std::string_view text, std::string_view marker) {
    if (marker.empty()) return 0;
    for (size_t len = std::min(marker.size() - 1, text.size()); len > 0; --len)
        if (text.substr(text.size() - len) == marker.substr(0, len)) return len;
    return 0;
}

size_t partial_marker_suffix(std::string_view text, const std::vector<std::string_view>& markers) {
    size_t hold = 0;
    for (std::string_view m : markers) hold = std::max(hold, partial_marker_suffix(text, m));
    return hold;
}

std::pair<size_t, std::string_view> find_first_marker(std::string_view text, const std::vector<std::string_view>& markers,
                                                      size_t pos) {
    std::pair<size_t, std::string_view> best{std::string_view::npos, {}};
    for (std::string_view m : markers) {
        const size_t at = text.find(m, pos);
        if (at < best.first || (at == best.first && at != std::string_view::npos && m.size() > best.second.size()))
            best = {at, m};
    }
    return best;
}

}  // namespace pensieve
