#include "chat/reasoning.h"

#include <string>

#include "chat/marker_scan.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

using tool_call_text::is_space;

// Detection order: the more specific markers first (every table entry after the first
// that a template shows would also match a less specific test).
const ReasoningSyntax kSyntaxes[] = {
    {"seed-think", "<seed:think>", "</seed:think>"},
    {"mistral-think", "[THINK]", "[/THINK]"},
    {"cohere-thinking", "<|START_THINKING|>", "<|END_THINKING|>"},
    {"gemma4-channel", "<|channel>", "<channel|>", "thought"},
    {"think", "<think>", "</think>"},
};

size_t leading_space(std::string_view s) {
    size_t i = 0;
    while (i < s.size() && is_space(s[i])) ++i;
    return i;
}

// Length of s without its trailing whitespace.
size_t without_trailing_space(std::string_view s) {
    size_t n = s.size();
    while (n > 0 && is_space(s[n - 1])) --n;
    return n;
}

}  // namespace

const ReasoningSyntax* detect_reasoning(std::string_view src) {
    for (const ReasoningSyntax& s : kSyntaxes)
        if (src.find(s.open) != std::string_view::npos && src.find(s.close) != std::string_view::npos) return &s;
    // Templates that only strip reasoning from history show the close marker alone
    // (DeepSeek R1's: content.split('</think>')).
    for (const ReasoningSyntax& s : kSyntaxes)
        if (src.find(s.close) != std::string_view::npos) return &s;
    return nullptr;
}

bool prompt_opens_reasoning(const ReasoningSyntax& syntax, std::string_view prompt) {
    const std::string_view t = prompt.substr(0, without_trailing_space(prompt));
    if (t.ends_with(syntax.open)) return true;
    return !syntax.label.empty() && t.ends_with(std::string(syntax.open) + std::string(syntax.label));
}

ReasoningSplitter::ReasoningSplitter(const ReasoningSyntax* syntax, bool starts_inside)
    : syntax_(syntax),
      state_(!syntax ? State::Content : !starts_inside ? State::Start
                                    : syntax->label.empty() ? State::Reasoning : State::Label) {}

ReplyDelta ReasoningSplitter::feed(std::string_view text) {
    pending_ += text;
    return step(false);
}

ReplyDelta ReasoningSplitter::finish() { return step(true); }

ReplyDelta ReasoningSplitter::step(bool at_end) {
    ReplyDelta out;
    for (;;) {
        const std::string_view p = pending_;
        switch (state_) {
        case State::Start: {  // is there an open marker before the first word?
            const std::string_view t = p.substr(leading_space(p));
            if (t.starts_with(syntax_->open)) {
                pending_.erase(0, p.size() - t.size() + syntax_->open.size());
                state_ = syntax_->label.empty() ? State::Reasoning : State::Label;
                continue;
            }
            if (!at_end && syntax_->open.starts_with(t)) return out;  // may still become the marker
            state_ = State::Content;
            continue;
        }
        case State::Label: {
            const std::string_view t = p.substr(leading_space(p));
            if (!at_end && syntax_->label.starts_with(t)) return out;
            if (t.starts_with(syntax_->label)) pending_.erase(0, p.size() - t.size() + syntax_->label.size());
            state_ = State::Reasoning;
            continue;
        }
        case State::Reasoning: {
            if (!started_reasoning_) {  // drop the whitespace after the open marker
                pending_.erase(0, leading_space(p));
                if (pending_.empty()) return out;
                started_reasoning_ = true;
                continue;
            }
            const size_t close = p.find(syntax_->close);
            if (close != std::string_view::npos) {
                out.reasoning += p.substr(0, without_trailing_space(p.substr(0, close)));
                pending_.erase(0, close + syntax_->close.size());
                state_ = State::AfterClose;
                continue;
            }
            // Hold back what may be the start of the close marker, and trailing
            // whitespace (which is dropped if the close marker follows).
            const size_t keep = at_end ? 0 : partial_marker_suffix(p, syntax_->close);
            const size_t n = without_trailing_space(p.substr(0, p.size() - keep));
            out.reasoning += p.substr(0, n);
            pending_.erase(0, at_end ? p.size() : n);
            return out;
        }
        case State::AfterClose:
            pending_.erase(0, leading_space(p));
            if (pending_.empty()) return out;
            state_ = State::Content;
            continue;
        case State::Content:
            out.content += pending_;
            pending_.clear();
            return out;
        }
    }
}

}  // namespace pensieve
