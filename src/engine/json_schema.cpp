// JSON Schema -> GBNF (see json_schema.h for the supported subset and the bounds).

#include "engine/json_schema.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/grammar.h"
#include "engine/json_schema_numbers.h"
#include "util/error.h"
#include "util/nesting.h"

namespace pensieve {

namespace {

using json = nlohmann::ordered_json;
using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

constexpr int kAnyDepth = 12;  // nesting limit of untyped JSON values

// Shared rules, emitted once when used. JSON string characters: anything but '"', '\'
// and control characters, or an escape; \u escapes are valid Unicode (a high surrogate
// only with its low surrogate), so every output parses with strict JSON parsers.
const std::pair<const char*, const char*> kPrimitives[] = {
    {"ws", R"(| " " | "\n" "\n"? [ \t]{0,20})"},
    {"hex", R"([0-9a-fA-F])"},
    {"esc-u", R"([0-9a-cA-Ce-fE-F] hex hex hex | [dD] [0-7] hex hex | [dD] [89abAB] hex hex "\\u" [dD] [c-fC-F] hex hex)"},
    {"char", R"([^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" esc-u ))"},
    {"string", R"("\"" char* "\"")"},
    {"integer", R"("-"? ( "0" | [1-9] [0-9]{0,15} ))"},
    {"number", R"("-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?)"},
    {"boolean", R"("true" | "false")"},
    {"null", R"("null")"},
    {"date", R"([0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ))"},
    {"time", R"(( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,6} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))"},
    {"uuid", R"(hex{8} "-" hex{4} "-" hex{4} "-" hex{4} "-" hex{12})"},
};
// Which shared rules each one uses (so emitting one emits its dependencies).
const std::map<std::string, std::vector<std::string>> kPrimitiveDeps = {
    {"esc-u", {"hex"}}, {"char", {"esc-u"}}, {"string", {"char"}}, {"uuid", {"hex"}},
};

// A GBNF string literal for UTF-8 text.
std::string gbnf_literal(const std::string& text) {
    std::string out = "\"";
    for (unsigned char c : text) {
        if (c == '"') out += "\\\"";
        else if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7F) out += cat("\\x", "0123456789ABCDEF"[c >> 4], "0123456789ABCDEF"[c & 15]);
        else out += char(c);
    }
    return out + "\"";
}

std::string encode_utf8(uint32_t c) {
    std::string s;
    if (c < 0x80) s += char(c);
    else if (c < 0x800) { s += char(0xC0 | (c >> 6)); s += char(0x80 | (c & 0x3F)); }
    else if (c < 0x10000) { s += char(0xE0 | (c >> 12)); s += char(0x80 | ((c >> 6) & 0x3F)); s += char(0x80 | (c & 0x3F)); }
    else { s += char(0xF0 | (c >> 18)); s += char(0x80 | ((c >> 12) & 0x3F)); s += char(0x80 | ((c >> 6) & 0x3F)); s += char(0x80 | (c & 0x3F)); }
    return s;
}

// How character c appears inside a JSON string.
std::string json_escaped(uint32_t c) {
    if (c == '"') return "\\\"";
    if (c == '\\') return "\\\\";
    if (c == '\n') return "\\n";
    if (c == '\r') return "\\r";
    if (c == '\t') return "\\t";
    if (c == '\b') return "\\b";
    if (c == '\f') return "\\f";
    if (c < 0x20) return cat("\\u00", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
    return encode_utf8(c);
}

std::string class_char(uint32_t c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return std::string(1, char(c));
    const char* hex = "0123456789ABCDEF";
    std::string s;
    int digits = c < 0x100 ? 2 : c < 0x10000 ? 4 : 8;
    s = c < 0x100 ? "\\x" : c < 0x10000 ? "\\u" : "\\U";
    for (int i = digits - 1; i >= 0; --i) s += hex[(c >> (4 * i)) & 15];
    return s;
}

Ranges normalize(Ranges r) {
    std::sort(r.begin(), r.end());
    Ranges out;
    for (auto [lo, hi] : r) {
        if (!out.empty() && lo <= out.back().second + 1) out.back().second = std::max(out.back().second, hi);
        else out.push_back({lo, hi});
    }
    return out;
}

Ranges complement(const Ranges& r) {
    Ranges out;
    uint32_t next = 0;
    for (auto [lo, hi] : normalize(r)) {
        if (lo > next) out.push_back({next, lo - 1});
        next = hi + 1;
    }
    if (next <= 0x10FFFF) out.push_back({next, 0x10FFFF});
    return out;
}

Ranges intersect(const Ranges& a, const Ranges& b) {
    Ranges out;
    for (auto [alo, ahi] : a)
        for (auto [blo, bhi] : b) {
            uint32_t lo = std::max(alo, blo), hi = std::min(ahi, bhi);
            if (lo <= hi) out.push_back({lo, hi});
        }
    return normalize(out);
}

// GBNF for "one character of this class, as it appears inside a JSON string": the
// characters JSON leaves alone as a class, the others as their escapes.
std::string json_class_expr(const Ranges& ranges) {
    const Ranges special = {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}};
    std::vector<std::string> alts;
    Ranges safe = intersect(ranges, complement(special));
    if (!safe.empty()) {
        std::string cls = "[";
        for (auto [lo, hi] : safe) cls += lo == hi ? class_char(lo) : class_char(lo) + "-" + class_char(hi);
        alts.push_back(cls + "]");
    }
    for (auto [lo, hi] : intersect(ranges, special))
        for (uint32_t c = lo; c <= hi; ++c) alts.push_back(gbnf_literal(json_escaped(c)));
    if (alts.empty()) fail("pattern: a character class matches nothing");
    if (alts.size() == 1) return alts[0];
    std::string out = "(";
    for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : " ") + alts[i];
    return out + " )";
}

// ECMAScript-style regex subset -> GBNF expression over JSON string content.
class RegexConverter {
public:
    explicit RegexConverter(const std::string& re) : re_(re) {}

    // Returns the expression (alternatives at its top level: give it a rule of its own);
    // `anchored_start/end` say whether ^ / $ were present.
    std::string convert(bool* anchored_start, bool* anchored_end) {
        std::string_view body = re_;
        *anchored_start = !body.empty() && body.front() == '^';
        if (*anchored_start) body.remove_prefix(1);
        *anchored_end = !body.empty() && body.back() == '$' && (body.size() < 2 || body[body.size() - 2] != '\\');
        if (*anchored_end) body.remove_suffix(1);
        src_ = body;
        const Expr e = parse_alt();
        if (pos_ < src_.size()) error(cat("unexpected '", src_[pos_], "'"));
        return e.text;
    }

private:
    [[noreturn]] void error(const std::string& msg) const {
        fail("pattern \"", re_, "\": ", msg, " (at offset ", pos_, "); supported: literals, ., [...], \\d \\w \\s, "
             "groups, |, * + ? {m,n}, ^ and $ at the ends");
    }
    bool eof() const { return pos_ >= src_.size(); }
    char cur() const { return eof() ? '\0' : src_[pos_]; }

    // GBNF text, and whether it is one unit (a literal, class or group) that a
    // quantifier can follow. Only groups that need them get parentheses, so the GBNF
    // nests no deeper than the pattern's own groups.
    struct Expr {
        std::string text;
        bool unit;
    };

    Expr parse_alt() {
        Expr e = parse_seq();
        while (cur() == '|') {
            ++pos_;
            e = {e.text + " | " + parse_seq().text, false};
        }
        return e;
    }

    Expr parse_seq() {
        std::string out;
        int atoms = 0;
        bool quantified = false;
        while (!eof() && cur() != '|' && cur() != ')') {
            std::string atom = parse_atom();
            const std::string q = parse_quantifier();
            quantified = !q.empty();
            out += (out.empty() ? "" : " ") + atom + q;
            ++atoms;
        }
        if (atoms == 0) return {"\"\"", true};
        return {out, atoms == 1 && !quantified};
    }

    std::string parse_quantifier() {
        std::string q;
        char c = cur();
        if (c == '*' || c == '+' || c == '?') {
            ++pos_;
            q = std::string(1, c);
        } else if (c == '{') {
            size_t close = src_.find('}', pos_);
            if (close == std::string_view::npos) error("unterminated {m,n}");
            std::string inner(src_.substr(pos_ + 1, close - pos_ - 1));
            bool ok = !inner.empty() && std::all_of(inner.begin(), inner.end(), [](char x) { return (x >= '0' && x <= '9') || x == ','; });
            if (!ok || inner.front() == ',') error("bad {m,n} quantifier");
            pos_ = close + 1;
            q = "{" + inner + "}";
        } else {
            return "";
        }
        if (cur() == '?') ++pos_;  // lazy: same language
        if (cur() == '*' || cur() == '+' || cur() == '{') error("possessive/double quantifiers are not supported");
        return q;
    }

    uint32_t hex(int digits) {
        uint32_t v = 0;
        for (int i = 0; i < digits; ++i, ++pos_) {
            char c = cur();
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) error("bad hex escape");
            v = v * 16 + uint32_t(d);
        }
        return v;
    }

    uint32_t utf8_char() {
        const uint8_t b0 = uint8_t(src_[pos_]);
        int n = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
        if (n == 0 || pos_ + size_t(n) > src_.size()) error("invalid UTF-8");
        uint32_t c = n == 1 ? b0 : n == 2 ? (b0 & 0x1F) : n == 3 ? (b0 & 0x0F) : (b0 & 0x07);
        for (int i = 1; i < n; ++i) c = (c << 6) | (uint8_t(src_[pos_ + size_t(i)]) & 0x3F);
        pos_ += size_t(n);
        return c;
    }

    // After a backslash: a class escape (sets *is_class) or one character.
    Ranges escape(bool in_class) {
        if (eof()) error("trailing backslash");
        char e = src_[pos_++];
        const Ranges digit = {{'0', '9'}}, word = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}},
                     space = {{'\t', '\r'}, {' ', ' '}, {0xA0, 0xA0}, {0x2028, 0x2029}, {0xFEFF, 0xFEFF}};
        switch (e) {
            case 'd': return digit;
            case 'D': return complement(digit);
            case 'w': return word;
            case 'W': return complement(word);
            case 's': return space;
            case 'S': return complement(space);
            case 'n': return {{'\n', '\n'}};
            case 't': return {{'\t', '\t'}};
            case 'r': return {{'\r', '\r'}};
            case 'f': return {{'\f', '\f'}};
            case 'v': return {{'\v', '\v'}};
            case '0': return {{0, 0}};
            case 'x': { uint32_t c = hex(2); return {{c, c}}; }
            case 'u': { uint32_t c = hex(4); return {{c, c}}; }
            case 'b': if (in_class) return {{'\b', '\b'}}; error("\\b (word boundary) is not supported");
            case 'B': error("\\B is not supported");
            case 'p': case 'P': error("Unicode property escapes are not supported");
            case 'k': error("named backreferences are not supported");
            default:
                if (e >= '1' && e <= '9') error("backreferences are not supported");
                if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) error(cat("unknown escape \\", e));
                --pos_;
                { uint32_t c = utf8_char(); return {{c, c}}; }
        }
    }

    std::string parse_atom() {
        char c = cur();
        if (c == '(') {
            NestingGuard guard(depth_);
            if (guard.too_deep()) error(cat("groups are nested deeper than ", kMaxNesting, " levels"));
            ++pos_;
            if (cur() == '?') {
                if (src_.substr(pos_, 2) != "?:") error("lookaround and named groups are not supported");
                pos_ += 2;
            }
            const Expr inner = parse_alt();
            if (cur() != ')') error("missing ')'");
            ++pos_;
            return inner.unit ? inner.text : "( " + inner.text + " )";
        }
        if (c == '[') {
            ++pos_;
            bool negated = cur() == '^';
            if (negated) ++pos_;
            Ranges ranges;
            bool first = true;
            while (eof() || cur() != ']' || first) {
                if (eof()) error("unterminated [...]");
                first = false;
                Ranges lo_r;
                if (cur() == '\\') { ++pos_; lo_r = escape(true); }
                else { uint32_t ch = utf8_char(); lo_r = {{ch, ch}}; }
                if (lo_r.size() == 1 && lo_r[0].first == lo_r[0].second && cur() == '-' && pos_ + 1 < src_.size() && src_[pos_ + 1] != ']') {
                    ++pos_;
                    Ranges hi_r;
                    if (cur() == '\\') { ++pos_; hi_r = escape(true); }
                    else { uint32_t ch = utf8_char(); hi_r = {{ch, ch}}; }
                    if (hi_r.size() != 1 || hi_r[0].first != hi_r[0].second || hi_r[0].first < lo_r[0].first) error("bad range in [...]");
                    ranges.push_back({lo_r[0].first, hi_r[0].first});
                } else {
                    ranges.insert(ranges.end(), lo_r.begin(), lo_r.end());
                }
            }
            ++pos_;
            ranges = normalize(ranges);
            return json_class_expr(negated ? complement(ranges) : ranges);
        }
        if (c == '.') {
            ++pos_;
            return json_class_expr(complement({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}}));
        }
        if (c == '\\') {
            ++pos_;
            Ranges r = escape(false);
            if (r.size() == 1 && r[0].first == r[0].second) return gbnf_literal(json_escaped(r[0].first));
            return json_class_expr(r);
        }
        if (c == '^' || c == '$') error("anchors are only supported at the very start and end");
        if (c == '*' || c == '+' || c == '?' || c == '{') error(cat("'", c, "' has nothing to repeat"));
        return gbnf_literal(json_escaped(utf8_char()));
    }

    std::string re_;
    std::string_view src_;
    size_t pos_ = 0;
    int depth_ = 0;  // groups open around pos_
};

class SchemaConverter {
public:
    // root_name other than "root": every rule but the shared primitives (string, ws, ...)
    // is named "<root_name>-...", so grammars of several schemas can be concatenated.
    explicit SchemaConverter(const json& root, const std::string& root_name = "root")
        : root_(root), root_name_(root_name), prefix_(root_name == "root" ? "" : root_name + "-") {}

    std::string convert() {
        std::string value = visit(root_, root_name_, "#");
        add_named(root_name_, "ws " + value + " ws");
        use("ws");
        return text();
    }

    std::string convert_any_object() {
        std::string obj = any_object(kAnyDepth);
        add_named("root", "ws " + obj + " ws");
        use("ws");
        return text();
    }

private:
    std::string text() const {
        std::string out;
        for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
        return out;
    }

    // Emits a shared rule (and what it needs); returns its name.
    std::string use(const std::string& name) {
        if (used_.count(name)) return name;
        used_.insert(name);
        auto deps = kPrimitiveDeps.find(name);
        if (deps != kPrimitiveDeps.end())
            for (const std::string& d : deps->second) use(d);
        for (const auto& [n, body] : kPrimitives)
            if (name == n) rules_.push_back({name, body});
        return name;
    }

    static std::string sanitize(const std::string& hint) {
        std::string s;
        for (char c : hint) s += ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) ? c : '-';
        if (s.size() > 48) s = s.substr(0, 48);
        return s.empty() ? "r" : s;
    }

    // A fresh rule name based on hint (never one of the shared names).
    std::string fresh(const std::string& hint) {
        std::string base = hint.starts_with(root_name_) ? sanitize(hint) : prefix_ + sanitize(hint), name = base;
        for (int i = 2; taken_.count(name) || used_.count(name) || is_primitive(name); ++i) name = cat(base, "-", i);
        taken_.insert(name);
        return name;
    }
    bool is_primitive(const std::string& n) {
        for (const auto& p : kPrimitives) if (n == p.first) return true;
        return n == "root" || n == root_name_;
    }

    // Adds a rule with this body; identical bodies share one rule.
    std::string add(const std::string& hint, const std::string& body) {
        auto it = by_body_.find(body);
        if (it != by_body_.end()) return it->second;
        std::string name = fresh(hint);
        rules_.push_back({name, body});
        by_body_[body] = name;
        return name;
    }
    void add_named(const std::string& name, const std::string& body) { rules_.push_back({name, body}); }

    static std::string alternatives(const std::vector<std::string>& alts) {
        if (alts.size() == 1) return alts[0];
        std::string out = "(";
        for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : " ") + alts[i];
        return out + " )";
    }

    [[noreturn]] static void unsupported(const std::string& path, const std::string& what) {
        fail("JSON schema at ", path, ": ", what, " is not supported");
    }

    // ---- untyped values, depth-limited ----------------------------------------------

    std::string any_value(int depth) {
        if (depth <= 0) return add("json-value-0", use("string") + " | " + use("number") + " | " + use("boolean") + " | " + use("null"));
        std::string name = cat(prefix_, "json-value-", depth);
        if (taken_.count(name)) return name;
        std::string obj = any_object(depth), arr = any_array(depth);
        taken_.insert(name);
        rules_.push_back({name, obj + " | " + arr + " | " + any_value(0)});
        return name;
    }
    std::string any_object(int depth) {
        std::string name = cat(prefix_, "json-object-", depth);
        if (taken_.count(name)) return name;
        taken_.insert(name);
        std::string inner = any_value(depth - 1);
        std::string member = use("string") + " ws \":\" ws " + inner + " ws";
        use("ws");
        rules_.push_back({name, "\"{\" ws ( " + member + " ( \",\" ws " + member + " )* )? \"}\""});
        return name;
    }
    std::string any_array(int depth) {
        std::string name = cat(prefix_, "json-array-", depth);
        if (taken_.count(name)) return name;
        taken_.insert(name);
        std::string inner = any_value(depth - 1);
        use("ws");
        rules_.push_back({name, "\"[\" ws ( " + inner + " ws ( \",\" ws " + inner + " ws )* )? \"]\""});
        return name;
    }

    // ---- schemas --------------------------------------------------------------------

    std::string visit(const json& s, const std::string& name, const std::string& path) {
        // Counts subschemas and $ref hops alike: a chain of references recurses as
        // deeply as nesting does.
        NestingGuard guard(depth_);
        if (guard.too_deep()) fail("JSON schema at ", path, ": nested deeper than ", kMaxNesting, " levels");
        if (s.is_boolean()) {
            if (!s.get<bool>()) unsupported(path, "the schema false (matches nothing)");
            return any_value(kAnyDepth);
        }
        if (!s.is_object()) fail("JSON schema at ", path, ": expected an object, got ", text_of(s));

        static const char* const kUnsupported[] = {
            "not", "if", "then", "else", "patternProperties", "propertyNames", "dependentRequired",
            "dependentSchemas", "dependencies", "unevaluatedProperties", "unevaluatedItems", "minProperties",
            "maxProperties", "prefixItems", "additionalItems", "contains", "minContains", "maxContains",
            "multipleOf", "$dynamicRef", "$recursiveRef"};
        for (const char* k : kUnsupported)
            if (s.contains(k)) unsupported(path, cat("\"", k, "\""));
        if (const json* u = member(s, "uniqueItems")) {
            if (!u->is_boolean()) fail(at(path, "uniqueItems"), " must be a boolean");
            if (u->get<bool>()) unsupported(path, "\"uniqueItems\": true");
        }
        if (const json* n = member(s, "nullable")) {  // OpenAPI: the schema, or null
            if (!n->is_boolean()) fail(at(path, "nullable"), " must be a boolean");
            if (n->get<bool>()) {
                json copy = s;
                copy.erase("nullable");
                return add(name, alternatives({visit(copy, name, path), use("null")}));
            }
        }

        // Each of these decides the whole schema here, so any other constraint beside it
        // would be ignored: refused instead (const and enum may say their type).
        if (const json* r = member(s, "$ref")) {
            only(s, path, "$ref");
            return ref(*r, path);
        }
        for (const char* k : {"const", "enum"}) {
            const json* v = member(s, k);
            if (!v) continue;
            only(s, path, k, "type");
            const json values = std::string(k) == "const" ? json::array({*v}) : *v;
            if (!values.is_array() || values.empty()) fail(at(path, k), " must be a non-empty array");
            std::vector<std::string> alts;
            for (const json& value : values) {
                if (const json* t = member(s, "type"); t && !has_type(value, *t, path))
                    fail(at(path, k), ": the value ", text_of(value), " does not have the schema's \"type\"");
                alts.push_back(gbnf_literal(text_of(value)));
            }
            return add(name + "-" + k, alternatives(alts));
        }
        for (const char* k : {"anyOf", "oneOf"}) {  // oneOf: as anyOf (alternatives are usually disjoint)
            const json* v = member(s, k);
            if (!v) continue;
            only(s, path, k);
            if (!v->is_array() || v->empty()) fail(at(path, k), " must be a non-empty array");
            std::vector<std::string> alts;
            for (size_t i = 0; i < v->size(); ++i) alts.push_back(visit((*v)[i], cat(name, "-", i), cat(path, "/", k, "/", i)));
            return add(name, alternatives(alts));
        }
        if (const json* v = member(s, "allOf")) {
            only(s, path, "allOf");
            if (!v->is_array() || v->size() != 1) unsupported(path, "\"allOf\" with more than one schema");
            return visit((*v)[0], name, path + "/allOf/0");
        }

        std::string type;
        if (const json* t = member(s, "type")) {
            if (t->is_array()) {
                if (t->empty()) fail(at(path, "type"), " must not be an empty array");
                std::vector<std::string> alts;
                for (const json& one : *t) {
                    if (!one.is_string()) fail(at(path, "type"), " must hold type names, got ", text_of(one));
                    json copy = s;
                    copy["type"] = one;
                    alts.push_back(visit(copy, name + "-" + one.get<std::string>(), path));
                }
                return add(name, alternatives(alts));
            }
            if (!t->is_string()) fail(at(path, "type"), " must be a string or an array");
            type = t->get<std::string>();
        } else if (s.contains("properties") || s.contains("additionalProperties") || s.contains("required")) {
            type = "object";
        } else if (s.contains("items") || s.contains("minItems") || s.contains("maxItems")) {
            type = "array";
        } else if (s.contains("pattern") || s.contains("minLength") || s.contains("maxLength") || s.contains("format")) {
            type = "string";
        } else if (s.contains("minimum") || s.contains("maximum") || s.contains("exclusiveMinimum") ||
                   s.contains("exclusiveMaximum")) {
            type = "number";
        } else {
            return any_value(kAnyDepth);
        }

        // Keywords of the other types do not apply to this one (JSON Schema ignores them).
        if (type == "object") return object(s, name, path);
        if (type == "array") return array(s, name, path);
        if (type == "string") return string(s, name, path);
        if (type == "integer" || type == "number") return number(s, type == "integer", name, path);
        if (type == "boolean") return use("boolean");
        if (type == "null") return use("null");
        fail("JSON schema at ", path, ": unknown type \"", type, "\"");
    }

    // ---- keywords -------------------------------------------------------------------

    static const json* member(const json& s, const char* k) {
        auto it = s.find(k);
        return it == s.end() ? nullptr : &*it;
    }
    static std::string at(const std::string& path, const char* keyword) {
        return cat("JSON schema at ", path, ": \"", keyword, "\"");
    }
    // A value for messages and literals (never throws on odd UTF-8).
    static std::string text_of(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

    // Every keyword that constrains an instance and that this converter reads.
    static constexpr const char* kConstraints[] = {
        "type", "$ref", "const", "enum", "anyOf", "oneOf", "allOf", "properties", "required",
        "additionalProperties", "items", "minItems", "maxItems", "minLength", "maxLength", "pattern",
        "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
    static void only(const json& s, const std::string& path, const char* keyword, const char* also = "") {
        for (const char* k : kConstraints)
            if (s.contains(k) && std::string_view(k) != keyword && std::string_view(k) != also)
                unsupported(path, cat("\"", k, "\" alongside \"", keyword, "\""));
    }

    static bool has_type(const json& v, const json& type, const std::string& path) {
        if (type.is_array()) {
            for (const json& t : type)
                if (has_type(v, t, path)) return true;
            return false;
        }
        if (!type.is_string()) fail(at(path, "type"), " must be a string or an array");
        const std::string& t = type.get_ref<const std::string&>();
        if (t == "integer") return v.is_number_integer() || (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()));
        return (t == "number" && v.is_number()) || (t == "string" && v.is_string()) || (t == "boolean" && v.is_boolean()) ||
               (t == "null" && v.is_null()) || (t == "object" && v.is_object()) || (t == "array" && v.is_array());
    }

    // minLength, maxItems, ...: a non-negative integer (3.0 too) no larger than what a
    // grammar can repeat.
    static std::optional<int64_t> count(const json& s, const char* k, const std::string& path) {
        const json* v = member(s, k);
        if (!v) return std::nullopt;
        const bool integral = v->is_number_integer() || (v->is_number_float() && v->get<double>() == std::floor(v->get<double>()));
        if (!integral || v->get<double>() < 0) fail(at(path, k), " must be a non-negative integer, got ", text_of(*v));
        if (v->get<double>() > kMaxCount)
            fail(at(path, k), " is ", text_of(*v), "; at most ", kMaxCount, " is supported");
        return v->get<int64_t>();
    }
    static constexpr int64_t kMaxCount = 100000;  // the grammar's largest repetition

    // minimum, maximum, exclusiveMinimum, exclusiveMaximum (a number; or, as in draft 4,
    // exclusiveMinimum/Maximum true making minimum/maximum exclusive).
    struct Bounds {
        const json *min = nullptr, *max = nullptr;
        bool min_exclusive = false, max_exclusive = false;
        const json *xmin = nullptr, *xmax = nullptr;  // exclusive bounds as numbers
    };
    static Bounds bounds(const json& s, const std::string& path) {
        Bounds b;
        auto number = [&](const char* k) {
            const json* v = member(s, k);
            if (v && !v->is_number()) fail(at(path, k), " must be a number, got ", text_of(*v));
            if (v && !std::isfinite(v->get<double>())) fail(at(path, k), " must be a finite number");
            return v;
        };
        b.min = number("minimum");
        b.max = number("maximum");
        for (const char* k : {"exclusiveMinimum", "exclusiveMaximum"}) {
            const json* v = member(s, k);
            if (!v) continue;
            const bool lower = std::string_view(k) == "exclusiveMinimum";
            if (v->is_boolean()) (lower ? b.min_exclusive : b.max_exclusive) = v->get<bool>();
            else (lower ? b.xmin : b.xmax) = number(k);
        }
        return b;
    }

    // A bound on integers: JSON integers exactly, other numbers rounded inwards; clamped
    // just past what is generated.
    static int64_t integer_bound(const json& v, bool lower, bool exclusive) {
        constexpr int64_t kBig = kMaxGeneratedInteger + 1;
        int64_t b;
        if (v.is_number_unsigned()) {
            b = v.get<uint64_t>() > uint64_t(kBig) ? kBig : int64_t(v.get<uint64_t>());
        } else if (v.is_number_integer()) {
            b = std::clamp<int64_t>(v.get<int64_t>(), -kBig, kBig);
        } else {
            const double d = std::clamp(v.get<double>(), -1e17, 1e17);
            const double r = lower ? std::ceil(d) : std::floor(d);
            return std::clamp<int64_t>(int64_t(r) + (exclusive && r == d ? (lower ? 1 : -1) : 0), -kBig, kBig);
        }
        return b + (exclusive ? (lower ? 1 : -1) : 0);
    }

    std::string number(const json& s, bool integer, const std::string& name, const std::string& path) {
        const Bounds b = bounds(s, path);
        if (!b.min && !b.max && !b.xmin && !b.xmax) return use(integer ? "integer" : "number");
        try {
            if (integer) {
                std::optional<int64_t> lo, hi;
                auto tighten = [](std::optional<int64_t>& x, int64_t v, bool lower) {
                    x = !x ? v : lower ? std::max(*x, v) : std::min(*x, v);
                };
                if (b.min) tighten(lo, integer_bound(*b.min, true, b.min_exclusive), true);
                if (b.xmin) tighten(lo, integer_bound(*b.xmin, true, true), true);
                if (b.max) tighten(hi, integer_bound(*b.max, false, b.max_exclusive), false);
                if (b.xmax) tighten(hi, integer_bound(*b.xmax, false, true), false);
                return add(name + "-range", integer_range_gbnf(lo, hi));
            }
            // Exclusive bounds become inclusive ones on the next double (what a validator
            // comparing doubles accepts).
            std::optional<double> lo, hi;
            auto bound = [](const json& v, bool lower, bool exclusive) {
                const double d = v.get<double>();
                return exclusive ? std::nextafter(d, lower ? INFINITY : -INFINITY) : d;
            };
            if (b.min) lo = bound(*b.min, true, b.min_exclusive);
            if (b.xmin) lo = std::max(lo.value_or(-INFINITY), bound(*b.xmin, true, true));
            if (b.max) hi = bound(*b.max, false, b.max_exclusive);
            if (b.xmax) hi = std::min(hi.value_or(INFINITY), bound(*b.xmax, false, true));
            return add(name + "-range", number_range_gbnf(lo, hi));
        } catch (const Error& e) {
            fail("JSON schema at ", path, ": minimum/maximum: ", e.what());
        }
    }

    std::string ref(const json& r, const std::string& path) {
        if (!r.is_string()) fail("JSON schema at ", path, ": \"$ref\" must be a string");
        const std::string target = r.get<std::string>();
        auto it = refs_.find(target);
        if (it != refs_.end()) return it->second;
        if (target.empty() || target[0] != '#') unsupported(path, cat("$ref \"", target, "\" (only local references \"#/...\")"));
        const json* node = &root_;
        try {
            if (target.size() > 1) node = &root_.at(json::json_pointer(target.substr(1)));
        } catch (const std::exception&) {
            fail("JSON schema at ", path, ": $ref \"", target, "\" points nowhere");
        }
        // Name the rule before visiting, so recursive references find it.
        std::string name = fresh(target == "#" ? "root-ref" : "ref-" + target.substr(target.rfind('/') + 1));
        refs_[target] = name;
        size_t slot = rules_.size();
        rules_.push_back({name, ""});
        std::string body = visit(*node, name + "-v", target);
        rules_[slot].second = body;
        return name;
    }

    std::string object(const json& s, const std::string& name, const std::string& path) {
        struct Prop { std::string key; json schema; bool required; };
        std::vector<Prop> props;
        std::set<std::string> required;
        if (const json* req = member(s, "required")) {
            if (!req->is_array()) fail(at(path, "required"), " must be an array");
            for (const json& r : *req) {
                if (!r.is_string()) fail(at(path, "required"), " must hold property names, got ", text_of(r));
                required.insert(r.get<std::string>());
            }
        }
        if (s.contains("properties")) {
            if (!s["properties"].is_object()) fail("JSON schema at ", path, ": \"properties\" must be an object");
            for (auto it = s["properties"].begin(); it != s["properties"].end(); ++it)
                props.push_back({it.key(), it.value(), required.count(it.key()) > 0});
        }
        for (const std::string& r : required)  // required but not described: any value
            if (std::none_of(props.begin(), props.end(), [&](const Prop& p) { return p.key == r; }))
                props.push_back({r, json(true), true});

        // Extra keys: only when additionalProperties says so (or nothing is described).
        std::string extra;
        json ap = s.contains("additionalProperties") ? s["additionalProperties"] : json(!s.contains("properties"));
        if (!(ap.is_boolean() && !ap.get<bool>())) {
            std::string v = ap.is_boolean() ? any_value(kAnyDepth - 1) : visit(ap, name + "-extra", path + "/additionalProperties");
            extra = add(name + "-extra-kv", use("string") + " ws \":\" ws " + v + " ws");
        }
        use("ws");

        std::vector<std::string> kv;
        for (const Prop& p : props) {
            std::string v = visit(p.schema, name + "-" + p.key, path + "/properties/" + p.key);
            kv.push_back(add(name + "-" + p.key + "-kv", gbnf_literal(text_of(json(p.key))) + " ws \":\" ws " + v + " ws"));
        }

        // rest[i][first]: properties i.. in order, each optional one skippable; `first`
        // when nothing was written yet (so no comma before the next one). Built from the
        // back so every rule refers to already-named ones.
        const size_t n = props.size();
        std::vector<std::array<std::string, 2>> rest(n + 1);
        for (int first = 0; first < 2; ++first) {
            std::string body;
            if (extra.empty()) body = "\"\"";
            else if (first) body = "( " + extra + " ( \",\" ws " + extra + " )* )?";
            else body = "( \",\" ws " + extra + " )*";
            rest[n][size_t(first)] = body == "\"\"" ? body : add(name + "-rest", body);
        }
        for (size_t i = n; i-- > 0;) {
            for (int first = 0; first < 2; ++first) {
                std::string take = (first ? "" : "\",\" ws ") + kv[i] + " " + rest[i + 1][0];
                std::string body = props[i].required ? take : take + " | " + rest[i + 1][size_t(first)];
                rest[i][size_t(first)] = add(cat(name, "-p", i, first ? "-first" : ""), body);
            }
        }
        return add(name, "\"{\" ws " + rest[0][1] + " \"}\"");
    }

    std::string array(const json& s, const std::string& name, const std::string& path) {
        if (s.contains("items") && s["items"].is_array()) unsupported(path, "\"items\" as an array (tuple validation)");
        std::string item = s.contains("items") ? visit(s["items"], name + "-item", path + "/items") : any_value(kAnyDepth - 1);
        const long min = long(count(s, "minItems", path).value_or(0));
        const long max = long(count(s, "maxItems", path).value_or(-1));
        if (max >= 0 && max < min) fail("JSON schema at ", path, ": \"maxItems\" is less than \"minItems\"");
        use("ws");
        if (max == 0) return add(name, "\"[\" ws \"]\"");
        std::string more = "( \",\" ws " + item + " ws )";
        more += max < 0 ? cat("{", std::max(min - 1, 0L), ",}") : cat("{", std::max(min - 1, 0L), ",", max - 1, "}");
        std::string list = item + " ws " + more;
        return add(name, "\"[\" ws " + (min == 0 ? "( " + list + " )?" : list) + " \"]\"");
    }

    std::string string(const json& s, const std::string& name, const std::string& path) {
        const json* format_v = member(s, "format");
        if (format_v && !format_v->is_string()) fail(at(path, "format"), " must be a string");
        const std::string format = format_v ? format_v->get<std::string>() : "";
        const bool known_format = format == "date" || format == "time" || format == "uuid" || format == "date-time";
        // pattern and the formats fix the string's shape; lengths on top would need an
        // intersection of the two grammars.
        for (const char* shape : {"pattern", "format"}) {
            if (!s.contains(shape) || (std::string_view(shape) == "format" && !known_format)) continue;
            for (const char* k : {"minLength", "maxLength", "pattern"})
                if (s.contains(k) && std::string_view(k) != shape)
                    unsupported(path, cat("\"", k, "\" together with \"", shape, "\""));
        }
        if (const json* pattern = member(s, "pattern")) {
            if (!pattern->is_string()) fail(at(path, "pattern"), " must be a string");
            bool a0 = false, a1 = false;
            const std::string e = add(name + "-pattern", RegexConverter(pattern->get<std::string>()).convert(&a0, &a1));
            use("char");
            return add(name, "\"\\\"\" " + std::string(a0 ? "" : "char* ") + e + (a1 ? "" : " char*") + " \"\\\"\"");
        }
        if (format == "date" || format == "time" || format == "uuid")
            return add(name, "\"\\\"\" " + use(format) + " \"\\\"\"");
        if (format == "date-time")
            return add(name, "\"\\\"\" " + use("date") + " \"T\" " + use("time") + " \"\\\"\"");
        const long min = long(count(s, "minLength", path).value_or(0));
        const long max = long(count(s, "maxLength", path).value_or(-1));
        if (max >= 0 && max < min) fail("JSON schema at ", path, ": \"maxLength\" is less than \"minLength\"");
        if (min == 0 && max < 0) return use("string");
        use("char");
        std::string count = max < 0 ? cat("{", min, ",}") : cat("{", min, ",", max, "}");
        return add(name, "\"\\\"\" char" + count + " \"\\\"\"");
    }

    const json& root_;
    const std::string root_name_, prefix_;
    int depth_ = 0;  // visit() calls in progress
    std::vector<std::pair<std::string, std::string>> rules_;
    std::set<std::string> used_, taken_;
    std::map<std::string, std::string> by_body_, refs_;
};

}  // namespace

std::string json_schema_to_gbnf(const json& schema, const std::string& root_name) {
    return SchemaConverter(schema, root_name).convert();
}

std::string any_json_object_gbnf() { return SchemaConverter(json::object()).convert_any_object(); }

std::shared_ptr<const Grammar> Grammar::from_json_schema(const json& schema) {
    return parse_gbnf(json_schema_to_gbnf(schema));
}

std::shared_ptr<const Grammar> Grammar::any_json() {
    // Compiled once: the grammar is immutable and shared by every request that asks.
    static const std::shared_ptr<const Grammar> g = parse_gbnf(any_json_object_gbnf());
    return g;
}

}  // namespace pensieve
