// Jinja lexer, following Jinja2's rules for where whitespace goes:
//   {%- / {{- / {#-   strip all whitespace before the tag
//   -%} / -}} / -#}   strip all whitespace after the tag
//   trim_blocks       remove one newline right after %} or #}
//   lstrip_blocks     remove spaces/tabs between the line start and {% or {# (unless {%+)
//   keep_trailing_newline=false: a single trailing newline of the template is dropped
#include "chat/jinja_lexer.h"

#include <cstring>

#include "chat/jinja_value.h"
#include "util/error.h"

namespace pensieve::jinja {

void syntax_error(int line, const std::string& message) {
    fail("chat template syntax error at line ", line, ": ", message);
}

namespace {

bool is_space_at(std::string_view s, size_t i, size_t* next) {
    size_t j = i;
    const uint32_t cp = decode_utf8(s, j);
    if (!is_py_space(cp)) return false;
    *next = j;
    return true;
}

// Python's str.rstrip() / the lexer's `\s*` on a view.
std::string_view rstrip_ws(std::string_view s) { return py_strip(s, false, true); }

size_t skip_ws(std::string_view s, size_t i) {
    size_t next;
    while (i < s.size() && is_space_at(s, i, &next)) i = next;
    return i;
}

int count_newlines(std::string_view s) {
    int n = 0;
    for (char c : s) n += c == '\n';
    return n;
}

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
public:
    Lexer(std::string src, const LexOptions& opt) : src_(std::move(src)), opt_(opt) {}

    std::vector<Token> run() {
        while (pos_ < src_.size()) {
            const size_t start = find_tag(pos_);
            if (start == std::string::npos) {
                emit_text(std::string_view(src_).substr(pos_), pos_);
                break;
            }
            const char kind = src_[start + 1];
            char sign = src_[start + 2 < src_.size() ? start + 2 : start];
            if (sign != '-' && sign != '+') sign = 0;
            std::string_view text = std::string_view(src_).substr(pos_, start - pos_);
            const size_t text_pos = pos_;
            text = strip_before_tag(text, kind, sign);
            emit_text(text, text_pos);
            line_ += count_newlines(std::string_view(src_).substr(text_pos, start - text_pos));
            pos_ = start + 2 + (sign ? 1 : 0);
            if (kind == '#')
                comment();
            else if (kind == '%' && raw_block())
                ;
            else
                tag(kind == '{');
        }
        out_.push_back({Tok::Eof, line_, ""});
        return std::move(out_);
    }

private:
    std::string src_;
    LexOptions opt_;
    size_t pos_ = 0;
    int line_ = 1;
    bool line_starting_ = true;  // the last thing consumed ended with a newline
    std::vector<Token> out_;

    size_t find_tag(size_t from) const {
        for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1))
            if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
        return std::string::npos;
    }

    std::string_view strip_before_tag(std::string_view text, char kind, char sign) const {
        if (sign == '-') return rstrip_ws(text);
        if (sign == '+' || !opt_.lstrip_blocks || kind == '{') return text;
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
        if (l_pos == 0 && !line_starting_) return text;
        const std::string_view tail = text.substr(l_pos);
        if (!tail.empty() && rstrip_ws(tail).empty()) return text.substr(0, l_pos);
        return text;
    }

    void emit_text(std::string_view text, size_t) {
        if (text.empty()) return;
        if (!out_.empty() && out_.back().type == Tok::Text)
            out_.back().text.append(text);
        else
            out_.push_back({Tok::Text, line_, std::string(text)});
        line_starting_ = text.back() == '\n';
    }

    // After a tag end at pos_ (just past "%}"/"}}"/"#}"): apply -, + and trim_blocks.
    void after_tag_end(char end_sign, bool is_block) {
        const size_t before = pos_;
        if (end_sign == '-') {
            pos_ = skip_ws(src_, pos_);
        } else if (end_sign != '+' && is_block && opt_.trim_blocks && pos_ < src_.size() && src_[pos_] == '\n') {
            ++pos_;
        }
        line_ += count_newlines(std::string_view(src_).substr(before, pos_ - before));
        line_starting_ = pos_ > before && src_[pos_ - 1] == '\n';
    }

    void comment() {
        const size_t end = src_.find("#}", pos_);
        if (end == std::string::npos) syntax_error(line_, "missing end of comment tag");
        char end_sign = end > pos_ ? src_[end - 1] : 0;
        if (end_sign != '-' && end_sign != '+') end_sign = 0;
        line_ += count_newlines(std::string_view(src_).substr(pos_, end - pos_));
        pos_ = end + 2;
        line_starting_ = false;
        after_tag_end(end_sign, true);
    }

    // {% raw %}...{% endraw %}: the content is text, verbatim.
    bool raw_block() {
        size_t p = skip_ws(src_, pos_);
        if (src_.compare(p, 3, "raw") != 0) return false;
        p = skip_ws(src_, p + 3);
        char sign = 0;
        if (p < src_.size() && src_[p] == '-') sign = src_[p++];
        if (src_.compare(p, 2, "%}") != 0) return false;
        line_ += count_newlines(std::string_view(src_).substr(pos_, p - pos_));
        pos_ = p + 2;
        if (sign == '-') after_tag_end('-', true);
        // find {% endraw %}
        for (size_t s = src_.find("{%", pos_); s != std::string::npos; s = src_.find("{%", s + 2)) {
            size_t q = s + 2;
            char open_sign = 0;
            if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) open_sign = src_[q++];
            q = skip_ws(src_, q);
            if (src_.compare(q, 6, "endraw") != 0) continue;
            q = skip_ws(src_, q + 6);
            char close_sign = 0;
            if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) close_sign = src_[q++];
            if (src_.compare(q, 2, "%}") != 0) continue;
            std::string_view body = std::string_view(src_).substr(pos_, s - pos_);
            const size_t body_pos = pos_;
            body = strip_before_tag(body, '%', open_sign);
            emit_text(body, body_pos);
            line_ += count_newlines(std::string_view(src_).substr(body_pos, q - body_pos));
            pos_ = q + 2;
            after_tag_end(close_sign, true);
            return true;
        }
        syntax_error(line_, "missing end of raw directive");
    }

    void tag(bool is_var) {
        out_.push_back({is_var ? Tok::VarBegin : Tok::BlockBegin, line_, ""});
        std::vector<char> balance;
        for (;;) {
            const size_t p = skip_ws(src_, pos_);
            line_ += count_newlines(std::string_view(src_).substr(pos_, p - pos_));
            pos_ = p;
            if (pos_ >= src_.size()) syntax_error(line_, std::string("unexpected end of template, expected '") +
                                                             (is_var ? "}}" : "%}") + "'");
            if (balance.empty() && tag_end(is_var)) return;
            lex_token(balance);
        }
    }

    bool tag_end(bool is_var) {
        const char* end = is_var ? "}}" : "%}";
        char sign = 0;
        size_t p = pos_;
        if ((src_[p] == '-' || (src_[p] == '+' && !is_var)) && src_.compare(p + 1, 2, end) == 0) sign = src_[p++];
        if (src_.compare(p, 2, end) != 0) return false;
        out_.push_back({is_var ? Tok::VarEnd : Tok::BlockEnd, line_, ""});
        pos_ = p + 2;
        line_starting_ = false;
        after_tag_end(sign, !is_var);
        return true;
    }

    void lex_token(std::vector<char>& balance) {
        const char c = src_[pos_];
        if (is_name_start(c)) {
            size_t e = pos_ + 1;
            while (e < src_.size() && (is_name_start(src_[e]) || is_digit(src_[e]))) ++e;
            out_.push_back({Tok::Name, line_, src_.substr(pos_, e - pos_)});
            pos_ = e;
            return;
        }
        if (is_digit(c)) return number();
        if (c == '\'' || c == '"') return string_literal(c);
        static const char* two[] = {"//", "**", "==", "!=", "<=", ">="};
        for (const char* op : two) {
            if (src_.compare(pos_, 2, op) == 0) {
                out_.push_back({Tok::Op, line_, op});
                pos_ += 2;
                return;
            }
        }
        if (std::strchr("+-*/%~<>=()[]{},.:|", c) == nullptr || c == 0)
            syntax_error(line_, std::string("unexpected character '") + c + "'");
        if (c == '(' || c == '[' || c == '{') balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
        if (c == ')' || c == ']' || c == '}') {
            if (balance.empty()) syntax_error(line_, std::string("unexpected '") + c + "'");
            if (balance.back() != c)
                syntax_error(line_, std::string("unexpected '") + c + "', expected '" + balance.back() + "'");
            balance.pop_back();
        }
        out_.push_back({Tok::Op, line_, std::string(1, c)});
        ++pos_;
    }

    void number() {
        size_t e = pos_;
        auto digits = [&] {
            while (e < src_.size() && (is_digit(src_[e]) || (src_[e] == '_' && e + 1 < src_.size() && is_digit(src_[e + 1]))))
                ++e;
        };
        digits();
        bool is_float = false;
        if (e + 1 < src_.size() && src_[e] == '.' && is_digit(src_[e + 1])) {
            is_float = true;
            ++e;
            digits();
        }
        if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
            size_t k = e + 1;
            if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
            if (k < src_.size() && is_digit(src_[k])) {
                is_float = true;
                e = k;
                digits();
            }
        }
        std::string text;
        for (size_t k = pos_; k < e; ++k)
            if (src_[k] != '_') text += src_[k];
        Token t{is_float ? Tok::Float : Tok::Int, line_, text};
        try {
            if (is_float)
                t.fval = std::stod(text);
            else
                t.ival = std::stoll(text);
        } catch (const std::exception&) {
            syntax_error(line_, "number out of range: " + text);
        }
        out_.push_back(std::move(t));
        pos_ = e;
    }

    // Python string literal semantics (unicode-escape): \n \t \\ \' \" \uXXXX \xXX ...;
    // unknown escapes stay as written.
    void string_literal(char quote) {
        const int start_line = line_;
        std::string val;
        size_t p = pos_ + 1;
        for (;;) {
            if (p >= src_.size()) syntax_error(start_line, "unterminated string");
            const char c = src_[p];
            if (c == quote) break;
            if (c == '\n') ++line_;
            if (c != '\\' || p + 1 >= src_.size()) {
                val += c;
                ++p;
                continue;
            }
            const char e = src_[p + 1];
            p += 2;
            switch (e) {
                case 'n': val += '\n'; break;
                case 't': val += '\t'; break;
                case 'r': val += '\r'; break;
                case '\\': val += '\\'; break;
                case '\'': val += '\''; break;
                case '"': val += '"'; break;
                case 'a': val += '\a'; break;
                case 'b': val += '\b'; break;
                case 'f': val += '\f'; break;
                case 'v': val += '\v'; break;
                case '\n': ++line_; break;  // line continuation
                case 'x':
                case 'u':
                case 'U': {
                    const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                    if (p + n > src_.size()) syntax_error(line_, "truncated \\" + std::string(1, e) + " escape");
                    uint32_t cp = 0;
                    for (int k = 0; k < n; ++k) {
                        const char h = src_[p + k];
                        const int d = is_digit(h) ? h - '0' : (h | 32) >= 'a' && (h | 32) <= 'f' ? (h | 32) - 'a' + 10 : -1;
                        if (d < 0) syntax_error(line_, "truncated \\" + std::string(1, e) + " escape");
                        cp = cp * 16 + d;
                    }
                    p += n;
                    append_utf8(val, cp);
                    break;
                }
                default:
                    if (e >= '0' && e <= '7') {  // octal, up to 3 digits
                        uint32_t cp = e - '0';
                        for (int k = 0; k < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++k)
                            cp = cp * 8 + (src_[p++] - '0');
                        append_utf8(val, cp);
                    } else {
                        val += '\\';
                        val += e;
                    }
            }
        }
        out_.push_back({Tok::String, start_line, std::move(val)});
        pos_ = p + 1;
    }
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const LexOptions& opt) {
    // Newlines are \n inside the template (Jinja2 normalizes \r\n and \r).
    std::string src;
    src.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
        if (source[i] == '\r') {
            src += '\n';
            if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
        } else {
            src += source[i];
        }
    }
    if (!opt.keep_trailing_newline && !src.empty() && src.back() == '\n') src.pop_back();
    return Lexer(std::move(src), opt).run();
}

}  // namespace pensieve::jinja
