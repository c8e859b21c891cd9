// Finding fixed markers (<think>, <tool_call>, <|channel|>, ...) in text that arrives in
// pieces: a marker may be split across two tokens, so a streaming reader holds back a
// tail of its input that could still become one.
#pragma once

#include <string_view>
#include <vector>

namespace pensieve {

// Length of the longest suffix of text that is a proper prefix of marker (0: none).
size_t partial_marker_suffix(std::string_view text, std::string_view marker);

// The same for whichever of several markers needs the longest hold-back.
size_t partial_marker_suffix(std::string_view text, const std::vector<std::string_view>& markers);

// The earliest occurrence of any of the markers at or after pos: (position, marker), or
// (npos, "") when there is none.
std::pair<size_t, std::string_view> find_first_marker(std::string_view text, const std::vector<std::string_view>& markers,
                                                      size_t pos = 0);

}  // namespace pensieve
