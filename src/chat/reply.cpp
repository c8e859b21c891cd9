#include "chat/reply.h"

#include "chat/harmony.h"
#include "chat/marker_scan.h"
#include "chat/reasoning.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

// Drops fixed markers from a stream (Command-R7B's <|START_RESPONSE|> around answers).
class MarkerRemover {
public:
    explicit MarkerRemover(std::vector<std::string_view> markers) : markers_(std::move(markers)) {}
    std::string feed(std::string_view text, bool at_end) {
        pending_ += text;
        if (markers_.empty()) return std::exchange(pending_, {});
        std::string out;
        size_t pos = 0;
        for (auto [at, m] = find_first_marker(pending_, markers_); at != std::string::npos;
             std::tie(at, m) = find_first_marker(pending_, markers_, pos)) {
            out.append(pending_, pos, at - pos);
            pos = at + m.size();
        }
        const std::string_view rest = std::string_view(pending_).substr(pos);
        const size_t keep = at_end ? 0 : partial_marker_suffix(rest, markers_);
        out += rest.substr(0, rest.size() - keep);
        pending_ = std::string(rest.substr(rest.size() - keep));
        return out;
    }

private:
    std::vector<std::string_view> markers_;
    std::string pending_;
};

// Marker-delimited reasoning, then content in which tool calls are found: the reply goes
// through the reasoning splitter, then the content through the wrapper remover and the
// tool-call streamer.
class TaggedReplyParser final : public ReplyParser {
public:
    TaggedReplyParser(const ReplySyntax& syntax, ReplyOptions options)
        : reasoning_(syntax.reasoning, options.starts_in_reasoning),
          wrappers_(tool_call_syntax(syntax.tool_format).content_wrappers()),
          parse_calls_(options.parse_tool_calls),
          calls_(syntax.tool_format, std::move(options.tools)) {
        if (options.prompt_ends_with_reply_prefix) content(wrappers_.feed(tool_call_syntax(syntax.tool_format).reply_prefix(), false));
    }

    ReplyDelta feed(std::string_view text) override {
        ReplyDelta d = reasoning_.feed(text);
        d.content = content(wrappers_.feed(d.content, false));
        return d;
    }

    ChatReply finish() override {
        ReplyDelta d = reasoning_.finish();
        ChatReply r{std::move(d.reasoning), content(wrappers_.feed(d.content, true)), {}};
        if (parse_calls_) {
            ParsedReply p = calls_.finish();
            r.content += p.content;
            r.calls = std::move(p.calls);
        }
        return r;
    }

private:
    std::string content(const std::string& text) { return parse_calls_ ? calls_.feed(text) : text; }

    ReasoningSplitter reasoning_;
    MarkerRemover wrappers_;
    bool parse_calls_;
    ToolCallStreamer calls_;
};

}  // namespace

std::unique_ptr<ReplyParser> make_reply_parser(const ReplySyntax& syntax, ReplyOptions options) {
    if (syntax.tool_format == ToolFormat::Harmony) return std::make_unique<HarmonyParser>(options.parse_tool_calls);
    return std::make_unique<TaggedReplyParser>(syntax, std::move(options));
}

ChatReply parse_reply(std::string_view text, const ReplySyntax& syntax, ReplyOptions options) {
    std::unique_ptr<ReplyParser> parser = make_reply_parser(syntax, std::move(options));
    ReplyDelta d = parser->feed(text);
    ChatReply end = parser->finish();
    return {std::string(tool_call_text::trim(d.reasoning + end.reasoning)),
            std::string(tool_call_text::trim(d.content + end.content)), std::move(end.calls)};
}

}  // namespace pensieve
