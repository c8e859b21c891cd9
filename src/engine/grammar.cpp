// GBNF parser and grammar compiler (see grammar.h for the accepted syntax).

#include "engine/grammar.h"

#include <algorithm>
#include <climits>
#include <queue>
#include <unordered_map>

#include "util/error.h"
#include "util/nesting.h"

namespace pensieve {

namespace {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;

// Sorts and merges ranges; the result is what CharSet expects.
std::vector<std::pair<uint32_t, uint32_t>> normalize(std::vector<std::pair<uint32_t, uint32_t>> r) {
    std::sort(r.begin(), r.end());
    std::vector<std::pair<uint32_t, uint32_t>> out;
    for (auto [lo, hi] : r) {
        if (!out.empty() && lo <= out.back().second + 1) out.back().second = std::max(out.back().second, hi);
        else out.push_back({lo, hi});
    }
    return out;
}

std::vector<std::pair<uint32_t, uint32_t>> complement(const std::vector<std::pair<uint32_t, uint32_t>>& r) {
    std::vector<std::pair<uint32_t, uint32_t>> out;
    uint32_t next = 0;
    for (auto [lo, hi] : r) {
        if (lo > next) out.push_back({next, lo - 1});
        next = hi + 1;
    }
    if (next <= kMaxCodePoint) out.push_back({next, kMaxCodePoint});
    return out;
}

CharSet make_charset(std::vector<std::pair<uint32_t, uint32_t>> ranges) {
    CharSet cs;
    cs.ranges = normalize(std::move(ranges));
    for (auto [lo, hi] : cs.ranges)
        for (uint32_t c = lo; c <= hi && c < 128; ++c) cs.ascii[c >> 6] |= uint64_t(1) << (c & 63);
    return cs;
}

bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace

bool CharSet::contains(uint32_t c) const {
    if (c < 128) return (ascii[c >> 6] >> (c & 63)) & 1;
    // First range whose end is >= c.
    auto it = std::lower_bound(ranges.begin(), ranges.end(), c,
                               [](const std::pair<uint32_t, uint32_t>& r, uint32_t v) { return r.second < v; });
    return it != ranges.end() && it->first <= c;
}

bool CharSet::intersects(uint32_t lo, uint32_t hi) const {
    auto it = std::lower_bound(ranges.begin(), ranges.end(), lo,
                               [](const std::pair<uint32_t, uint32_t>& r, uint32_t v) { return r.second < v; });
    return it != ranges.end() && it->first <= hi;
}

// Parses GBNF into rules of symbol sequences, then checks and flattens them into a
// Grammar. Positions are byte offsets into the source; errors report them as line:col.
class GbnfCompiler {
public:
    explicit GbnfCompiler(std::string_view src) : src_(src) {}

    std::shared_ptr<const Grammar> compile(std::string_view root_name) {
        parse_grammar();
        name_helper_rules();
        auto root_it = by_name_.find(std::string(root_name));
        if (root_it == by_name_.end() || !rules_[size_t(root_it->second)].defined)
            fail("grammar: no rule named '", root_name, "' (the start rule)");
        for (const Rule& r : rules_)
            if (!r.defined) error(r.first_ref, cat("undefined rule '", r.name, "'"));
        shortest_ = shortest_lengths();
        check_left_recursion();
        check_productive();
        return flatten(root_it->second);
    }

private:
    struct Sym {
        bool is_rule;
        int32_t index;  // rule index or charset index
    };
    using Seq = std::vector<Sym>;
    struct Rule {
        std::string name;
        std::vector<Seq> alts;
        bool defined = false;
        bool helper = false;   // generated for a group or repetition
        size_t def_pos = 0;    // where it was defined (or generated)
        size_t first_ref = 0;  // where it was first referenced
    };

    // ---- errors -------------------------------------------------------------------

    [[noreturn]] void error(size_t at, const std::string& msg) const {
        size_t line = 1, col = 1;
        for (size_t i = 0; i < at && i < src_.size(); ++i) {
            if (src_[i] == '\n') { ++line; col = 1; }
            else if ((uint8_t(src_[i]) & 0xC0) != 0x80) ++col;  // count characters, not bytes
        }
        fail("grammar: line ", line, ":", col, ": ", msg);
    }

    // ---- lexing ---------------------------------------------------------------------

    bool eof() const { return pos_ >= src_.size(); }
    char cur() const { return eof() ? '\0' : src_[pos_]; }

    // Skips blanks and comments; newlines only when newline_ok (a newline ends a rule
    // outside parentheses).
    void skip_space(bool newline_ok) {
        while (!eof()) {
            char c = src_[pos_];
            if (c == ' ' || c == '\t' || c == '\r') ++pos_;
            else if (c == '#') { while (!eof() && src_[pos_] != '\n') ++pos_; }
            else if (c == '\n' && newline_ok) ++pos_;
            else break;
        }
    }

    std::string parse_name() {
        size_t start = pos_;
        while (!eof() && is_name_char(src_[pos_])) ++pos_;
        if (pos_ == start) error(pos_, eof() ? "expected a rule name, got end of text"
                                             : cat("expected a rule name, got '", src_[pos_], "'"));
        return std::string(src_.substr(start, pos_ - start));
    }

    // One UTF-8 character of the source.
    uint32_t decode_source_char() {
        const uint8_t b0 = uint8_t(src_[pos_]);
        int n = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
        if (n == 0 || pos_ + size_t(n) > src_.size()) error(pos_, "invalid UTF-8 in grammar text");
        uint32_t c = n == 1 ? b0 : n == 2 ? (b0 & 0x1F) : n == 3 ? (b0 & 0x0F) : (b0 & 0x07);
        for (int i = 1; i < n; ++i) {
            uint8_t b = uint8_t(src_[pos_ + size_t(i)]);
            if ((b & 0xC0) != 0x80) error(pos_, "invalid UTF-8 in grammar text");
            c = (c << 6) | (b & 0x3F);
        }
        pos_ += size_t(n);
        return c;
    }

    uint32_t parse_hex(int digits) {
        uint32_t v = 0;
        for (int i = 0; i < digits; ++i) {
            char c = cur();
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) error(pos_, cat("expected ", digits, " hex digits in escape"));
            v = v * 16 + uint32_t(d);
            ++pos_;
        }
        if (v > kMaxCodePoint) error(pos_, "escape is beyond U+10FFFF");
        return v;
    }

    // A character inside a literal or class, with escapes.
    uint32_t parse_char() {
        if (eof()) error(pos_, "unexpected end of text");
        if (src_[pos_] != '\\') return decode_source_char();
        const size_t at = pos_++;
        if (eof()) error(at, "unfinished escape");
        char e = src_[pos_++];
        switch (e) {
            case 'n': return '\n';
            case 'r': return '\r';
            case 't': return '\t';
            case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/': return uint32_t(e);
            case 'x': return parse_hex(2);
            case 'u': return parse_hex(4);
            case 'U': return parse_hex(8);
            default: error(at, cat("unknown escape '\\", e, "'"));
        }
    }

    // ---- rules ----------------------------------------------------------------------

    int32_t rule_ref(const std::string& name, size_t at) {
        auto it = by_name_.find(name);
        if (it != by_name_.end()) return it->second;
        Rule r;
        r.name = name;
        r.first_ref = at;
        rules_.push_back(std::move(r));
        by_name_[name] = int32_t(rules_.size() - 1);
        return int32_t(rules_.size() - 1);
    }

    // A helper rule for a group or repetition. It is named after the rule it appears in
    // ("root-3") only once the whole text is read (name_helper_rules), so that its name
    // cannot be one that the text defines further down.
    int32_t new_rule(const std::string& base, std::vector<Seq> alts, size_t at) {
        Rule r;
        r.name = base;
        r.helper = true;
        r.alts = std::move(alts);
        r.defined = true;
        r.def_pos = r.first_ref = at;
        rules_.push_back(std::move(r));
        return int32_t(rules_.size() - 1);
    }

    void name_helper_rules() {
        int n = 0;
        for (size_t i = 0; i < rules_.size(); ++i) {
            Rule& r = rules_[i];
            if (!r.helper) continue;
            std::string name;
            do name = cat(r.name, "-", ++n); while (by_name_.count(name));
            by_name_[name] = int32_t(i);
            r.name = std::move(name);
        }
    }

    int32_t add_charset(std::vector<std::pair<uint32_t, uint32_t>> ranges) {
        charsets_.push_back(make_charset(std::move(ranges)));
        return int32_t(charsets_.size() - 1);
    }

    void parse_grammar() {
        skip_space(true);
        if (eof()) error(pos_, "empty grammar");
        while (!eof()) {
            parse_rule();
            skip_space(true);
        }
    }

    void parse_rule() {
        const size_t at = pos_;
        std::string name = parse_name();
        skip_space(false);
        if (src_.substr(pos_, 3) != "::=") error(pos_, cat("expected '::=' after rule name '", name, "'"));
        pos_ += 3;
        skip_space(true);
        int32_t id = rule_ref(name, at);
        if (rules_[size_t(id)].defined) error(at, cat("rule '", name, "' is defined twice"));
        std::vector<Seq> alts = parse_alternates(name, false);
        Rule& r = rules_[size_t(id)];
        r.alts = std::move(alts);
        r.defined = true;
        r.def_pos = at;
        skip_space(false);
        if (!eof() && cur() != '\n') error(pos_, cat("unexpected '", cur(), "' (expected the end of the rule)"));
    }

    std::vector<Seq> parse_alternates(const std::string& rule, bool nested) {
        std::vector<Seq> alts;
        alts.push_back(parse_sequence(rule, nested));
        for (;;) {
            if (!nested && cur() == '\n') {
                // A rule may continue on the next line when that line starts with '|'.
                size_t save = pos_;
                skip_space(true);
                if (cur() != '|') { pos_ = save; break; }
            }
            if (cur() != '|') break;
            ++pos_;
            skip_space(true);
            alts.push_back(parse_sequence(rule, nested));
        }
        return alts;
    }

    Seq parse_sequence(const std::string& rule, bool nested) {
        Seq seq;
        size_t last_start = 0;      // where the last element's symbols begin in seq
        bool have_last = false;
        for (;;) {
            const size_t at = pos_;
            const char c = cur();
            if (c == '"') {
                ++pos_;
                last_start = seq.size();
                while (cur() != '"') {
                    if (eof()) error(at, "unterminated string literal");
                    uint32_t ch = parse_char();
                    seq.push_back({false, add_charset({{ch, ch}})});
                }
                ++pos_;
                have_last = seq.size() > last_start;  // "" is the empty sequence: nothing to repeat
            } else if (c == '[') {
                ++pos_;
                bool negated = cur() == '^';
                if (negated) ++pos_;
                std::vector<std::pair<uint32_t, uint32_t>> ranges;
                while (cur() != ']') {
                    if (eof()) error(at, "unterminated character class");
                    uint32_t lo = parse_char(), hi = lo;
                    if (cur() == '-' && pos_ + 1 < src_.size() && src_[pos_ + 1] != ']') {
                        ++pos_;
                        hi = parse_char();
                        if (hi < lo) error(at, "character range is reversed");
                    }
                    ranges.push_back({lo, hi});
                }
                ++pos_;
                ranges = normalize(std::move(ranges));
                if (negated) ranges = complement(ranges);
                if (ranges.empty()) error(at, "character class matches nothing");
                last_start = seq.size();
                seq.push_back({false, add_charset(std::move(ranges))});
                have_last = true;
            } else if (c == '.') {
                ++pos_;
                last_start = seq.size();
                seq.push_back({false, add_charset({{0, kMaxCodePoint}})});
                have_last = true;
            } else if (c == '(') {
                NestingGuard guard(depth_);
                if (guard.too_deep()) error(at, cat("parentheses are nested deeper than ", kMaxNesting, " levels"));
                ++pos_;
                skip_space(true);
                std::vector<Seq> alts = parse_alternates(rule, true);
                if (cur() != ')') error(pos_, eof() ? "missing ')'" : cat("expected ')', got '", cur(), "'"));
                ++pos_;
                last_start = seq.size();
                seq.push_back({true, new_rule(rule, std::move(alts), at)});
                have_last = true;
            } else if (is_name_char(c)) {
                std::string name = parse_name();
                last_start = seq.size();
                seq.push_back({true, rule_ref(name, at)});
                have_last = true;
            } else if (c == '*' || c == '+' || c == '?' || c == '{') {
                if (!have_last) error(at, cat("'", c, "' has nothing to repeat"));
                int min = 0, max = -1;  // max -1: unbounded
                ++pos_;
                if (c == '+') min = 1;
                else if (c == '?') max = 1;
                else if (c == '{') {
                    skip_space(nested);
                    min = parse_int();
                    skip_space(nested);
                    max = min;
                    if (cur() == ',') {
                        ++pos_;
                        skip_space(nested);
                        max = cur() == '}' ? -1 : parse_int();
                        skip_space(nested);
                    }
                    if (cur() != '}') error(pos_, "expected '}' to close the repetition");
                    ++pos_;
                    if (max >= 0 && max < min) error(at, cat("repetition {", min, ",", max, "} has max < min"));
                }
                Seq elem(seq.begin() + long(last_start), seq.end());
                seq.resize(last_start);
                repeat(seq, elem, min, max, rule, at);
                have_last = false;  // "x**" is an error, as in llama.cpp
            } else {
                break;
            }
            skip_space(nested);
        }
        return seq;
    }

    int parse_int() {
        size_t start = pos_;
        long v = 0;
        while (cur() >= '0' && cur() <= '9') {
            v = v * 10 + (cur() - '0');
            if (v > 100000) error(start, "repetition count is too large (limit 100000)");
            ++pos_;
        }
        if (pos_ == start) error(pos_, "expected a number");
        return int(v);
    }

    // Appends elem{min,max} to seq: min copies, then either a right-recursive star
    // rule (unbounded) or max-min nested optional rules (x{0,3} -> (x (x (x)?)?)?),
    // which keeps every rule right-recursive and the matcher's stacks shallow.
    void repeat(Seq& seq, const Seq& elem, int min, int max, const std::string& rule, size_t at) {
        if (size_t(min) * elem.size() > 1000000) error(at, "repetition expands to too many symbols");
        for (int i = 0; i < min; ++i) seq.insert(seq.end(), elem.begin(), elem.end());
        if (max < 0) {
            // star ::= elem star | (empty)
            int32_t star = new_rule(rule, {}, at);
            Seq loop = elem;
            loop.push_back({true, star});
            rules_[size_t(star)].alts = {loop, Seq{}};
            seq.push_back({true, star});
        } else if (max > min) {
            int32_t inner = -1;
            for (int i = 0; i < max - min; ++i) {
                Seq one = elem;
                if (inner >= 0) one.push_back({true, inner});
                inner = new_rule(rule, {one, Seq{}}, at);
            }
            seq.push_back({true, inner});
        }
    }

    // ---- checks ---------------------------------------------------------------------

    // Length of the shortest text each rule can produce (kNever: the rule never
    // finishes), capped at INT32_MAX. Knuth's generalization of Dijkstra's algorithm:
    // rules settle in order of length, each alternative waiting for the rules it uses.
    // O(size log size); a fixed-point loop over all rules would be quadratic on a long
    // chain of rules (200000 rules: minutes).
    static constexpr int64_t kNever = INT64_MAX;
    std::vector<int64_t> shortest_lengths() const {
        struct Alt {
            int32_t rule;
            int64_t length;   // characters, plus the settled rules' lengths so far
            size_t waiting;   // rule symbols not settled yet
        };
        std::vector<Alt> alts;
        std::vector<std::vector<uint32_t>> used_in(rules_.size());  // rule -> alts using it, once per use
        using Item = std::pair<int64_t, int32_t>;
        std::priority_queue<Item, std::vector<Item>, std::greater<Item>> ready;
        for (size_t r = 0; r < rules_.size(); ++r)
            for (const Seq& seq : rules_[r].alts) {
                Alt a{int32_t(r), 0, 0};
                for (const Sym& sym : seq) {
                    if (!sym.is_rule) {
                        ++a.length;
                        continue;
                    }
                    ++a.waiting;
                    used_in[size_t(sym.index)].push_back(uint32_t(alts.size()));
                }
                if (a.waiting == 0) ready.push({a.length, a.rule});
                alts.push_back(a);
            }
        std::vector<int64_t> length(rules_.size(), kNever);
        while (!ready.empty()) {
            const auto [len, r] = ready.top();
            ready.pop();
            if (length[size_t(r)] != kNever) continue;  // settled with a shorter alternative
            length[size_t(r)] = len;
            for (uint32_t i : used_in[size_t(r)]) {
                Alt& a = alts[i];
                a.length = std::min<int64_t>(a.length + len, INT32_MAX);
                if (--a.waiting == 0) ready.push({a.length, a.rule});
            }
        }
        return length;
    }

    // A rule that can reach itself without consuming a character would make the
    // matcher expand forever.
    void check_left_recursion() const {
        auto nullable = [this](int32_t r) { return shortest_[size_t(r)] == 0; };
        std::vector<std::vector<int32_t>> edges(rules_.size());
        for (size_t r = 0; r < rules_.size(); ++r)
            for (const Seq& alt : rules_[r].alts)
                for (const Sym& s : alt) {
                    if (!s.is_rule) break;
                    edges[r].push_back(s.index);
                    if (!nullable(s.index)) break;
                }
        // Depth-first search with an explicit stack: a chain of rules can be as long as
        // the grammar (x{0,N} alone makes N of them), far deeper than the C++ stack.
        std::vector<uint8_t> color(rules_.size(), 0);  // 0 new, 1 on the DFS path, 2 done
        std::vector<std::pair<int32_t, size_t>> path;  // (rule, next edge to follow)
        for (size_t start = 0; start < rules_.size(); ++start) {
            if (color[start] != 0) continue;
            color[start] = 1;
            path.push_back({int32_t(start), 0});
            while (!path.empty()) {
                auto& [r, next] = path.back();
                if (next == edges[size_t(r)].size()) {
                    color[size_t(r)] = 2;
                    path.pop_back();
                    continue;
                }
                const int32_t s = edges[size_t(r)][next++];
                if (color[size_t(s)] == 1)
                    error(rules_[size_t(s)].def_pos,
                          cat("rule '", rules_[size_t(s)].name, "' is left-recursive (it can reach itself without "
                              "consuming a character; rewrite it right-recursively, or it repeats something that can be empty)"));
                if (color[size_t(s)] == 0) {
                    color[size_t(s)] = 1;
                    path.push_back({s, 0});
                }
            }
        }
    }

    // Every rule must be able to finish; otherwise the matcher could walk into a state
    // from which no output is complete, which the token masks must never allow.
    void check_productive() const {
        auto productive = [this](size_t r) { return shortest_[r] != kNever; };
        // Blame a rule that refers to itself (the recursion without a way out) rather
        // than the rules that merely use it.
        int32_t blame = -1;
        bool blame_self = false;
        for (size_t r = 0; r < rules_.size(); ++r) {
            if (productive(r)) continue;
            bool self = false;
            for (const Seq& alt : rules_[r].alts)
                for (const Sym& s : alt) self |= s.is_rule && size_t(s.index) == r;
            if (blame < 0 || (self && !blame_self)) blame = int32_t(r), blame_self = self;
        }
        if (blame >= 0)
            error(rules_[size_t(blame)].def_pos,
                  cat("rule '", rules_[size_t(blame)].name, "' can never finish (every alternative recurses forever)"));
    }

    std::shared_ptr<const Grammar> flatten(int32_t root) {
        auto g = std::shared_ptr<Grammar>(new Grammar());
        g->charsets_ = std::move(charsets_);
        g->rule_alts_.resize(rules_.size());
        for (size_t r = 0; r < rules_.size(); ++r) {
            g->rule_names_.push_back(rules_[r].name);
            for (const Seq& alt : rules_[r].alts) {
                g->rule_alts_[r].push_back(int32_t(g->symbols_.size()));
                for (const Sym& s : alt)
                    g->symbols_.push_back({s.is_rule ? GrammarSymbol::Rule : GrammarSymbol::Chars, s.index});
                g->symbols_.push_back({GrammarSymbol::End, -1});
            }
        }
        // Shortest expansion of every alternative's suffixes (every rule is productive,
        // so shortest_ is finite).
        constexpr int64_t kInf = INT32_MAX;
        g->suffix_min_.assign(g->symbols_.size(), 0);
        for (size_t i = g->symbols_.size(); i-- > 0;) {
            const GrammarSymbol& s = g->symbols_[i];
            if (s.kind == GrammarSymbol::End) continue;
            const int64_t here = s.kind == GrammarSymbol::Chars ? 1 : shortest_[size_t(s.index)];
            g->suffix_min_[i] = int32_t(std::min(kInf, here + g->suffix_min_[i + 1]));
        }
        g->root_ = root;
        g->source_ = std::string(src_);
        return g;
    }

    std::string_view src_;
    size_t pos_ = 0;
    std::vector<Rule> rules_;
    std::vector<int64_t> shortest_;  // per rule, see shortest_lengths()
    std::unordered_map<std::string, int32_t> by_name_;
    std::vector<CharSet> charsets_;
    int depth_ = 0;  // parentheses open around pos_
};

std::shared_ptr<const Grammar> Grammar::parse_gbnf(std::string_view text, std::string_view root) {
    return GbnfCompiler(text).compile(root);
}

}  // namespace pensieve
