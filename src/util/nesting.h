// One nesting limit for every recursive reader of input from outside: request JSON,
// JSON values handed to chat templates, JSON schemas, regex patterns, GBNF grammars and
// chat-template syntax. Past it a reader fails with a message naming what is too deep,
// instead of recursing until the stack overflows (one 20 KB request of nested brackets
// used to kill the server).
//
// 128 levels: real requests nest a few levels (tool schemas ~10), and every reader stays
// far from the stack's end at the limit, also under AddressSanitizer (the unit tests
// render, convert and parse inputs nested exactly this deep).
#pragma once

namespace pensieve {

constexpr int kMaxNesting = 128;

// Counts one level of a recursion for as long as it lives:
//     NestingGuard guard(depth_);
//     if (guard.too_deep()) fail("pattern nests groups deeper than ", kMaxNesting, " levels");
// Each reader raises its own error (with its own position or path), so the guard only counts.
class NestingGuard {
public:
    explicit NestingGuard(int& depth) : depth_(depth) { ++depth_; }
    ~NestingGuard() { --depth_; }
    NestingGuard(const NestingGuard&) = delete;
    NestingGuard& operator=(const NestingGuard&) = delete;

    // limit: kMaxNesting, or a multiple of it for a reader whose levels nest inside
    // another's (a template's macros, each with its own bounded nesting).
    bool too_deep(int limit = kMaxNesting) const { return depth_ > limit; }

private:
    int& depth_;
};

}  // namespace pensieve
