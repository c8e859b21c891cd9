// Error handling: every failure a user can cause (bad file, bad flag, bad request)
// is reported by throwing pensieve::Error with a message meant for that user.
// The CLI and the server catch it at their boundary and turn it into a one-line
// message or an HTTP 4xx; nothing below them prints or exits.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace pensieve {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Concatenate any streamable values into a string: cat("tensor ", name, " has ", n, " dims").
template <typename... Args>
std::string cat(const Args&... args) {
    std::ostringstream out;
    (out << ... << args);
    return out.str();
}

// Throw an Error whose message is the concatenation of the arguments.
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
    throw Error(cat(args...));
}

}  // namespace pensieve
