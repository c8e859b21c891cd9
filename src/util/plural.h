// "1 token", "2 tokens": a count with its noun, singular only for exactly one.
#pragma once

#include <string>
#include <string_view>

namespace pensieve {

inline std::string count_of(long long n, std::string_view noun) {
    std::string s = std::to_string(n);
    s += ' ';
    s += noun;
    if (n != 1) s += 's';
    return s;
}

}  // namespace pensieve
