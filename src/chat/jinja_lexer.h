// Jinja lexer: template source → tokens. Text between tags becomes Text tokens, with
// Jinja2's whitespace control already applied ({%- -%}, trim_blocks, lstrip_blocks,
// comments dropped); the inside of {{ }} and {% %} becomes expression tokens.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pensieve::jinja {

enum class Tok : uint8_t {
    Text,        // literal template text
    VarBegin,    // {{
    VarEnd,      // }}
    BlockBegin,  // {%
    BlockEnd,    // %}
    Name,        // identifiers and keywords (if, for, and, not, true, ...)
    String,      // text holds the unescaped value
    Int,
    Float,
    Op,          // operators and punctuation: + - * / // % ** ~ == != < <= > >= = ( ) [ ] { } , . : |
    Eof,
};

struct Token {
    Tok type;
    int line;
    std::string text;
    int64_t ival = 0;
    double fval = 0;
};

struct LexOptions {
    bool trim_blocks = true;        // drop the first newline after a block tag
    bool lstrip_blocks = true;      // drop spaces/tabs before a block tag at the start of a line
    bool keep_trailing_newline = false;
};

// Throws pensieve::Error ("chat template syntax error at line N: ...") on malformed input.
std::vector<Token> tokenize(std::string_view source, const LexOptions& opt);

[[noreturn]] void syntax_error(int line, const std::string& message);

}  // namespace pensieve::jinja
