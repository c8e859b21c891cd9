// Number bounds as GBNF over digits (see json_schema_numbers.h).

#include "engine/json_schema_numbers.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <vector>

#include "util/error.h"

namespace pensieve {

namespace {

constexpr size_t kMaxDigits = 16;  // integer digits, and fraction digits of numbers

// ---- GBNF pieces ------------------------------------------------------------------------

std::string quoted(const std::string& digits) { return "\"" + digits + "\""; }
std::string quoted(char digit) { return quoted(std::string(1, digit)); }

std::string digit_class(char lo, char hi) { return lo == hi ? quoted(lo) : cat("[", lo, "-", hi, "]"); }

// Any n digits / between lo and hi digits.
std::string any_digits(size_t n) { return n == 0 ? "" : n == 1 ? "[0-9]" : cat("[0-9]{", n, "}"); }
std::string any_digits(size_t lo, size_t hi) {
    if (hi == 0) return "";
    return lo == hi ? any_digits(lo) : cat("[0-9]{", lo, ",", hi, "}");
}

// Parts in sequence (empty parts dropped).
std::string seq(std::initializer_list<std::string> parts) {
    std::string out;
    for (const std::string& p : parts)
        if (!p.empty()) out += (out.empty() ? "" : " ") + p;
    return out;
}

// Alternatives as one unit.
std::string group(const std::vector<std::string>& alts) {
    if (alts.size() == 1) return alts[0].find(' ') == std::string::npos ? alts[0] : "( " + alts[0] + " )";
    std::string out = "(";
    for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : " ") + alts[i];
    return out + " )";
}

// ---- integers ---------------------------------------------------------------------------

// Digit strings of X's length from X to Y (X <= Y, leading zeros allowed: these are the
// tails of longer numbers).
std::string fixed_range(const std::string& x, const std::string& y) {
    size_t i = 0;
    while (i < x.size() && x[i] == y[i]) ++i;
    const std::string prefix = i ? quoted(x.substr(0, i)) : "";
    if (i == x.size()) return prefix;
    const size_t n = x.size() - i - 1;
    const std::string rx = x.substr(i + 1), ry = y.substr(i + 1);
    char lo = x[i], hi = y[i];
    std::vector<std::string> alts;
    std::string high;
    if (rx != std::string(n, '0')) alts.push_back(seq({quoted(lo++), fixed_range(rx, std::string(n, '9'))}));
    if (ry != std::string(n, '9')) high = seq({quoted(hi--), fixed_range(std::string(n, '0'), ry)});
    if (lo <= hi) alts.push_back(seq({digit_class(lo, hi), any_digits(n)}));
    if (!high.empty()) alts.push_back(high);
    return seq({prefix, group(alts)});
}

int64_t power10(size_t n) {
    int64_t p = 1;
    while (n-- > 0) p *= 10;
    return p;
}

// Canonical decimal integers (no leading zeros) from a to b, 0 <= a <= b <= kMaxGeneratedInteger.
std::string uint_range(int64_t a, int64_t b) {
    std::vector<std::string> alts;
    for (size_t len = std::to_string(a).size(); len <= std::to_string(b).size(); ++len) {
        const int64_t lo = std::max(a, len == 1 ? 0 : power10(len - 1));
        const int64_t hi = std::min(b, power10(len) - 1);
        if (lo <= hi) alts.push_back(fixed_range(std::to_string(lo), std::to_string(hi)));
    }
    return group(alts);
}

// ---- decimals ---------------------------------------------------------------------------

// A non-negative decimal: canonical integer digits, fraction digits without trailing zeros.
struct Decimal {
    std::string ip = "0", fp;
    bool too_large() const { return ip.size() > kMaxDigits; }
};

std::string strip_trailing_zeros(std::string s) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    return s;
}

// The shortest decimal that reads back as m (m >= 0, finite).
Decimal decimal_of(double m) {
    char buf[1200];
    const auto res = std::to_chars(buf, buf + sizeof buf, m, std::chars_format::fixed);
    const std::string s(buf, res.ptr);
    const size_t dot = s.find('.');
    Decimal d;
    d.ip = s.substr(0, dot);
    if (dot != std::string::npos) d.fp = strip_trailing_zeros(s.substr(dot + 1));
    return d;
}

// digits + 1; "999" -> "1000".
std::string plus_one(std::string digits) {
    for (size_t i = digits.size(); i-- > 0;) {
        if (digits[i] != '9') {
            ++digits[i];
            return digits;
        }
        digits[i] = '0';
    }
    return "1" + digits;
}

// Rounded down / up to kMaxDigits fraction digits.
Decimal floor_digits(Decimal d) {
    if (d.fp.size() > kMaxDigits) d.fp = strip_trailing_zeros(d.fp.substr(0, kMaxDigits));
    return d;
}
Decimal ceil_digits(Decimal d) {
    if (d.fp.size() <= kMaxDigits) return d;
    d.fp = d.fp.substr(0, kMaxDigits);  // the dropped digits are not all zero (no trailing zeros)
    const std::string up = plus_one(d.fp);
    if (up.size() > kMaxDigits) {
        d.ip = plus_one(d.ip);
        d.fp.clear();
    } else {
        d.fp = strip_trailing_zeros(up);
    }
    return d;
}

int compare(const Decimal& a, const Decimal& b) {
    if (a.ip.size() != b.ip.size()) return a.ip.size() < b.ip.size() ? -1 : 1;
    if (int c = a.ip.compare(b.ip)) return c < 0 ? -1 : 1;
    const std::string fa = a.fp + std::string(kMaxDigits + 1 - a.fp.size(), '0');
    const std::string fb = b.fp + std::string(kMaxDigits + 1 - b.fp.size(), '0');
    const int c = fa.compare(fb);
    return c < 0 ? -1 : c > 0 ? 1 : 0;
}

// Fraction digit strings whose value (zero-padded to 16 digits) lies between lo and hi,
// digit by digit: `lo_tight` while the digits so far equal lo's, `hi_tight` while they
// equal hi's. nonempty: the strings of at least one digit ("" if none); can_stop: the
// empty string qualifies (the remaining digits read as zeros).
class FractionRange {
public:
    FractionRange(const std::string& lo, const std::string& hi)
        : lo_(lo + std::string(kMaxDigits - lo.size(), '0')), hi_(hi + std::string(kMaxDigits - hi.size(), '0')) {}

    // "( "." digits )?" after the integer part.
    std::string gbnf(bool lo_tight, bool hi_tight) const {
        const Part p = part(0, lo_tight, hi_tight);
        if (p.nonempty.empty()) return "";
        const std::string frac = seq({"\".\"", p.nonempty});
        return p.can_stop ? "( " + frac + " )?" : frac;
    }

private:
    struct Part {
        std::string nonempty;
        bool can_stop;
    };

    static bool zeros_from(const std::string& s, size_t i) {
        return std::all_of(s.begin() + long(i), s.end(), [](char c) { return c == '0'; });
    }

    // Digits at positions i.. (each position level adds one group: at most 16 deep).
    Part part(size_t i, bool lt, bool ht) const {
        const size_t rem = kMaxDigits - i;
        if (lt && zeros_from(lo_, i)) lt = false;  // any continuation is >= lo now
        if (rem == 0) return {"", true};
        if (!lt && !ht) return {any_digits(1, rem), true};
        if (!lt && zeros_from(hi_, i)) return {cat("\"0\"{1,", rem, "}"), true};
        char lo = lt ? lo_[i] : '0', hi = ht ? hi_[i] : '9';
        std::vector<std::string> alts;
        std::string high;
        if (lt && ht && lo == hi) {
            alts.push_back(seq({quoted(lo), optional(part(i + 1, true, true))}));
        } else {
            if (lt) alts.push_back(seq({quoted(lo++), optional(part(i + 1, true, false))}));
            if (ht) high = seq({quoted(hi--), optional(part(i + 1, false, true))});
            if (lo <= hi) alts.push_back(seq({digit_class(lo, hi), any_digits(0, rem - 1)}));
            if (!high.empty()) alts.push_back(high);
        }
        return {group(alts), !lt};
    }

    // A continuation: its strings, plus nothing when stopping is allowed.
    static std::string optional(const Part& p) {
        if (p.nonempty.empty()) return "";
        return p.can_stop ? (p.nonempty.find(' ') == std::string::npos && p.nonempty.back() != '}'
                                 ? p.nonempty + "?"
                                 : "( " + p.nonempty + " )?")
                          : p.nonempty;
    }

    std::string lo_, hi_;
};

// Magnitudes in [a, b] (b absent: up to 16 integer digits), a <= b.
std::string magnitude_range(const Decimal& a, const std::optional<Decimal>& b) {
    const std::string any_fraction = cat("( \".\" ", any_digits(1, kMaxDigits), " )?");
    const int64_t a_int = std::stoll(a.ip);
    if (b && a.ip == b->ip) return seq({quoted(a.ip), FractionRange(a.fp, b->fp).gbnf(true, true)});
    std::vector<std::string> alts = {seq({quoted(a.ip), FractionRange(a.fp, "").gbnf(true, false)})};
    const int64_t b_int = b ? std::stoll(b->ip) : kMaxGeneratedInteger + 1;
    if (a_int + 1 <= b_int - 1) alts.push_back(seq({uint_range(a_int + 1, b_int - 1), any_fraction}));
    if (b) alts.push_back(seq({quoted(b->ip), FractionRange("", b->fp).gbnf(false, true)}));
    return group(alts);
}

}  // namespace

std::string integer_range_gbnf(std::optional<int64_t> lo, std::optional<int64_t> hi) {
    const int64_t l = std::max(lo.value_or(-kMaxGeneratedInteger), -kMaxGeneratedInteger);
    const int64_t h = std::min(hi.value_or(kMaxGeneratedInteger), kMaxGeneratedInteger);
    if (l > h) fail("no integer of up to 16 digits lies between the bounds");
    std::vector<std::string> alts;
    if (h >= 0) alts.push_back(uint_range(std::max<int64_t>(l, 0), h));
    if (l < 0) alts.push_back(seq({"\"-\"", uint_range(std::max<int64_t>(1, -h), -l)}));
    return group(alts);
}

std::string number_range_gbnf(std::optional<double> lo, std::optional<double> hi) {
    // Infinite ends are open ones (nextafter of the largest double is one); -0 is 0 (the
    // grammar writes no "-0").
    if ((lo && std::isnan(*lo)) || (hi && std::isnan(*hi))) fail("a bound is not a number");
    if (lo && *lo == -INFINITY) lo.reset();
    if (hi && *hi == INFINITY) hi.reset();
    if ((lo && std::isinf(*lo)) || (hi && std::isinf(*hi))) fail("no number lies between the bounds");
    if (lo) *lo += 0.0;
    if (hi) *hi += 0.0;
    std::vector<std::string> alts;
    // x >= 0: magnitudes from max(lo, 0) up to hi.
    if (!hi || *hi >= 0) {
        const Decimal a = lo && *lo > 0 ? ceil_digits(decimal_of(*lo)) : Decimal{};
        std::optional<Decimal> b;
        if (hi) b = floor_digits(decimal_of(*hi));
        if (b && b->too_large()) b.reset();
        if (!a.too_large() && (!b || compare(a, *b) <= 0)) alts.push_back(magnitude_range(a, b));
    }
    // x < 0: magnitudes from max(-hi, the smallest positive one) up to -lo.
    if (!lo || *lo < 0) {
        Decimal a{"0", "0000000000000001"};
        if (hi && *hi < 0) a = ceil_digits(decimal_of(-*hi));
        std::optional<Decimal> b;
        if (lo) b = floor_digits(decimal_of(-*lo));
        if (b && b->too_large()) b.reset();
        if (!a.too_large() && (!b || compare(a, *b) <= 0)) alts.push_back(seq({"\"-\"", magnitude_range(a, b)}));
    }
    if (alts.empty()) fail("no number of up to 16 integer and 16 fraction digits lies between the bounds");
    return group(alts);
}

}  // namespace pensieve
