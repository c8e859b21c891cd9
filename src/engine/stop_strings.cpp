#include "engine/stop_strings.h"

#include <algorithm>

namespace pensieve {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop_strings) {
    for (auto& s : stop_strings) {
        if (!s.empty()) stop_strings_.push_back(std::move(s));
    }
}

size_t StopStringMatcher::find_earliest_stop(size_t* which) const {
    // Earliest start wins; at equal starts the shorter string wins, because in a stream
    // it is the one that completes first.
    size_t best_pos = std::string::npos;
    for (size_t k = 0; k < stop_strings_.size(); ++k) {
        const size_t pos = held_.find(stop_strings_[k]);
        if (pos == std::string::npos) continue;
        const bool better = best_pos == std::string::npos || pos < best_pos ||
                            (pos == best_pos && stop_strings_[k].size() < stop_strings_[*which].size());
        if (better) {
            best_pos = pos;
            *which = k;
        }
    }
    return best_pos;
}

size_t StopStringMatcher::longest_partial_stop_tail() const {
    // held_ holds no complete stop string here, so a tail of length >= len(stop) cannot be
    // a prefix of it; only lengths up to len(stop) - 1 need checking.
    const std::string_view held = held_;
    size_t longest = 0;
    for (const auto& stop : stop_strings_) {
        const size_t max_len = std::min(held.size(), stop.size() - 1);
        for (size_t len = max_len; len > longest; --len) {
            if (held.substr(held.size() - len) == std::string_view(stop).substr(0, len)) {
                longest = len;
                break;
            }
        }
    }
    return longest;
}

std::string StopStringMatcher::feed(std::string_view piece) {
    if (match_.stopped) return {};
    if (stop_strings_.empty()) return std::string(piece);  // nothing to wait for

    held_.append(piece);

    size_t which = 0;
    const size_t stop_pos = find_earliest_stop(&which);
    if (stop_pos != std::string::npos) {
        std::string out = held_.substr(0, stop_pos);
        match_.stopped = true;
        match_.stop_string = stop_strings_[which];
        held_.clear();
        return out;
    }

    const size_t keep = longest_partial_stop_tail();
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
}

std::string StopStringMatcher::flush() {
    std::string out;
    out.swap(held_);
    return out;  // empty when stopped: held_ was cleared at the match
}

}  // namespace pensieve
