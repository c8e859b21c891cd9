#include "util/utf8.h"

#include <cstdint>

namespace pensieve {

namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// What a lead byte promises: the sequence length and the allowed range of the second
// byte. The narrowed second-byte ranges are what exclude overlong forms (E0, F0),
// surrogates (ED) and code points above U+10FFFF (F4); see Unicode table 3-7.
struct LeadRule {
    int length;  // 0: this byte can never start a character
    uint8_t second_min;
    uint8_t second_max;
};

LeadRule lead_rule(uint8_t b) {
    if (b < 0x80) return {1, 0, 0};
    if (b < 0xC2) return {0, 0, 0};  // continuation byte, or C0/C1 (always overlong)
    if (b < 0xE0) return {2, 0x80, 0xBF};
    if (b == 0xE0) return {3, 0xA0, 0xBF};
    if (b == 0xED) return {3, 0x80, 0x9F};
    if (b < 0xF0) return {3, 0x80, 0xBF};
    if (b == 0xF0) return {4, 0x90, 0xBF};
    if (b < 0xF4) return {4, 0x80, 0xBF};
    if (b == 0xF4) return {4, 0x80, 0x8F};
    return {0, 0, 0};  // F5..FF
}

bool is_continuation(uint8_t b) { return (b & 0xC0) == 0x80; }

enum class StepKind { Complete, Truncated, Invalid };

struct Step {
    StepKind kind;
    size_t length;  // bytes covered: the character, the valid partial tail, or the bad part
};

// Reads one character (or one maximal ill-formed subpart) starting at s[i].
Step decode_step(std::string_view s, size_t i) {
    const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
    const LeadRule rule = lead_rule(byte(i));
    if (rule.length == 0) return {StepKind::Invalid, 1};
    if (rule.length == 1) return {StepKind::Complete, 1};

    size_t got = 1;  // bytes of the sequence seen so far and found acceptable
    for (; got < static_cast<size_t>(rule.length); ++got) {
        if (i + got == s.size()) return {StepKind::Truncated, got};
        const uint8_t b = byte(i + got);
        const bool ok = got == 1 ? (b >= rule.second_min && b <= rule.second_max) : is_continuation(b);
        if (!ok) return {StepKind::Invalid, got};
    }
    return {StepKind::Complete, got};
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const Step step = decode_step(s, i);
        if (step.kind != StepKind::Complete) return false;
        i += step.length;
    }
    return true;
}

size_t utf8_complete_prefix(std::string_view s) {
    // An unfinished character starts at most 3 bytes from the end, at the last byte that
    // is not a continuation byte. Decoding from that byte is aligned with a decode from the
    // start, since no sequence ever swallows a non-continuation byte after its lead.
    const size_t n = s.size();
    for (size_t back = 1; back <= 3 && back <= n; ++back) {
        const size_t pos = n - back;
        if (is_continuation(static_cast<uint8_t>(s[pos]))) continue;
        const Step step = decode_step(s, pos);
        return step.kind == StepKind::Truncated ? pos : n;
    }
    return n;
}

std::string sanitize_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        const Step step = decode_step(s, i);
        if (step.kind == StepKind::Complete) {
            out.append(s.substr(i, step.length));
        } else {
            out.append(kReplacementChar);  // invalid, or cut off by the end of the input
        }
        i += step.length;
    }
    return out;
}

std::string Utf8Streamer::feed(std::string_view bytes) {
    pending_.append(bytes);
    const size_t ready = utf8_complete_prefix(pending_);
    std::string out = sanitize_utf8(std::string_view(pending_).substr(0, ready));
    pending_.erase(0, ready);
    return out;
}

std::string Utf8Streamer::flush() {
    std::string out = sanitize_utf8(pending_);
    pending_.clear();
    return out;
}

}  // namespace pensieve
