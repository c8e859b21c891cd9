// Gemma 4: calls in the template's own object notation, one per <|tool_call>:
//
//   <|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:3,opts:{deep:true},tags:[<|"|>a<|"|>]}<tool_call|>
//
// Keys are bare (or <|"|>-quoted, as the tool declarations print them), strings are
// delimited by <|"|>, everything else is written as JSON would (booleans lowercase).
// The template sorts keys; the parser keeps the order written.
#include "chat/tool_call_families.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

using namespace tool_call_text;

constexpr std::string_view kOpen = "<|tool_call>";
constexpr std::string_view kClose = "<tool_call|>";
constexpr std::string_view kCall = "call:";
constexpr std::string_view kQuote = "<|\"|>";

// Recursive-descent reader of the notation; every method returns false on bad input.
class Reader {
public:
    explicit Reader(std::string_view s) : s_(s) {}
    size_t pos() const { return pos_; }

    bool value(json& out, int depth = 0) {
        skip_space();
        if (depth > 64 || pos_ >= s_.size()) return false;
        if (s_[pos_] == '{') return object(out, depth);
        if (s_[pos_] == '[') return array(out, depth);
        if (starts_with_at(s_, pos_, kQuote)) {
            std::string str;
            if (!quoted(str)) return false;
            out = std::move(str);
            return true;
        }
        return scalar(out);
    }

    bool object(json& out, int depth) {
        out = json::object();
        ++pos_;  // '{'
        skip_space();
        if (pos_ < s_.size() && s_[pos_] == '}') return ++pos_, true;
        for (;;) {
            std::string key;
            if (!object_key(key)) return false;
            json v;
            if (!value(v, depth + 1)) return false;
            out[key] = std::move(v);
            skip_space();
            if (pos_ >= s_.size()) return false;
            if (s_[pos_] == '}') return ++pos_, true;
            if (s_[pos_] != ',') return false;
            ++pos_;
        }
    }

private:
    void skip_space() {
        while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
    }

    bool quoted(std::string& out) {
        pos_ += kQuote.size();
        const size_t end = s_.find(kQuote, pos_);
        if (end == std::string_view::npos) return false;
        out = std::string(s_.substr(pos_, end - pos_));
        pos_ = end + kQuote.size();
        return true;
    }

    // key: (bare text up to ':' | <|"|>text<|"|>) then ':'
    bool object_key(std::string& key) {
        skip_space();
        if (starts_with_at(s_, pos_, kQuote)) {
            if (!quoted(key)) return false;
        } else {
            const size_t colon = s_.find(':', pos_);
            if (colon == std::string_view::npos) return false;
            key = std::string(trim(s_.substr(pos_, colon - pos_)));
            if (key.empty() || key.find_first_of("{}[],") != std::string::npos) return false;
            pos_ = colon;
        }
        skip_space();
        if (pos_ >= s_.size() || s_[pos_] != ':') return false;
        ++pos_;
        return true;
    }

    bool array(json& out, int depth) {
        out = json::array();
        ++pos_;  // '['
        skip_space();
        if (pos_ < s_.size() && s_[pos_] == ']') return ++pos_, true;
        for (;;) {
            json v;
            if (!value(v, depth + 1)) return false;
            out.push_back(std::move(v));
            skip_space();
            if (pos_ >= s_.size()) return false;
            if (s_[pos_] == ']') return ++pos_, true;
            if (s_[pos_] != ',') return false;
            ++pos_;
        }
    }

    // A number or literal, up to the next delimiter.
    bool scalar(json& out) {
        size_t end = pos_;
        while (end < s_.size() && s_[end] != ',' && s_[end] != '}' && s_[end] != ']') ++end;
        const std::string_view t = trim(s_.substr(pos_, end - pos_));
        if (t.empty()) return false;
        pos_ = end;
        if (t == "true" || t == "True") out = true;
        else if (t == "false" || t == "False") out = false;
        else if (t == "null" || t == "None") out = nullptr;
        else {
            out = parse_json(t);
            if (out.is_discarded() || !out.is_number()) out = std::string(t);
        }
        return true;
    }

    std::string_view s_;
    size_t pos_ = 0;
};

// "call:name{...}" -> call.
bool parse_body(std::string_view body, ToolCall& call) {
    body = trim(body);
    if (!body.starts_with(kCall)) return false;
    body.remove_prefix(kCall.size());
    const size_t brace = body.find('{');
    if (brace == std::string_view::npos) return false;
    call.name = std::string(trim(body.substr(0, brace)));
    Reader reader(body.substr(brace));
    json args;
    if (call.name.empty() || !reader.object(args, 0) || !trim(body.substr(brace + reader.pos())).empty()) return false;
    call.arguments = std::move(args);
    return true;
}

class Gemma4ToolCalls final : public ToolCallSyntax {
public:
    ToolFormat format() const override { return ToolFormat::Gemma4; }
    const char* name() const override { return "gemma4"; }
    bool taught_by(std::string_view src) const override { return src.find(kOpen) != std::string_view::npos; }
    std::vector<std::string_view> markers() const override { return {kOpen}; }
    std::vector<std::string_view> special_texts() const override { return {kOpen, kClose, kQuote}; }
    std::optional<ForcedCall> forced_call(std::string_view) const override { return std::nullopt; }

    ParsedReply parse(std::string_view text, const json&) const override {
        return parse_tagged_calls(text, kOpen, kClose, parse_body);
    }
};

}  // namespace

const ToolCallSyntax& gemma4_tool_calls() {
    static const Gemma4ToolCalls syntax;
    return syntax;
}

}  // namespace pensieve
