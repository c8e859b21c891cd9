#include "chat/harmony.h"

#include "chat/marker_scan.h"
#include "chat/tool_call_json.h"

namespace pensieve {

namespace {

using namespace tool_call_text;

constexpr std::string_view kStart = "<|start|>";
constexpr std::string_view kChannel = "<|channel|>";
constexpr std::string_view kMessage = "<|message|>";
constexpr std::string_view kConstrain = "<|constrain|>";
constexpr std::string_view kTo = "to=";
constexpr std::string_view kFunctions = "functions.";
constexpr size_t kMaxHeader = 512;  // a header longer than this is not one

// What ends a body: the end of the message, or the next message's header.
const std::vector<std::string_view> kBodyEnds = {"<|end|>", "<|call|>", "<|return|>", kStart, kChannel};

// Can text (the start of the reply) begin a header?
bool may_open_header(std::string_view t) {
    for (std::string_view m : {kChannel, kStart, kTo, kConstrain})
        if (t.starts_with(m) || m.starts_with(t)) return true;
    return false;
}

// The word after `key` in a header ("analysis", "functions.get_weather"), or "".
std::string_view header_word(std::string_view header, std::string_view key) {
    size_t at = header.find(key);
    if (at == std::string_view::npos) return {};
    at += key.size();
    size_t end = at;
    while (end < header.size() && !is_space(header[end]) && header[end] != '<') ++end;
    return header.substr(at, end - at);
}

}  // namespace

ReplyDelta HarmonyParser::feed(std::string_view text) {
    pending_ += text;
    return step(false);
}

ChatReply HarmonyParser::finish() {
    ReplyDelta d = step(true);
    if (state_ == State::Call) end_call(d);
    ChatReply r{std::move(d.reasoning), std::move(d.content), std::move(calls_)};
    for (ToolCall& c : r.calls) c.id = make_tool_call_id("call_");
    return r;
}

void HarmonyParser::begin_body(std::string_view header) {
    const std::string_view channel = header_word(header, kChannel);
    const std::string_view recipient = header_word(header, kTo);
    if (recipient.starts_with(kFunctions)) {
        state_ = State::Call;
        call_name_ = std::string(recipient.substr(kFunctions.size()));
        call_body_.clear();
    } else if (!recipient.empty()) {
        state_ = State::Ignored;
    } else if (channel == "analysis") {
        state_ = State::Reasoning;
    } else {
        state_ = State::Content;  // final, or a commentary preamble
    }
}

// A call's body is its arguments; one that is not a JSON object stays content.
void HarmonyParser::end_call(ReplyDelta& out) {
    ToolCall call;
    call.name = call_name_;
    call.arguments = parse_object(call_body_);
    if (call.arguments.is_discarded() && trim(call_body_).empty()) call.arguments = json::object();
    if (!parse_calls_ || call.name.empty() || call.arguments.is_discarded()) out.content += call_body_;
    else calls_.push_back(std::move(call));
    call_body_.clear();
}

ReplyDelta HarmonyParser::step(bool at_end) {
    ReplyDelta out;
    for (;;) {
        const std::string_view p = pending_;
        if (state_ == State::Plain) {
            out.content += pending_;
            pending_.clear();
            return out;
        }
        if (state_ == State::Header) {
            if (first_header_) {  // the reply must start with a header, else it is plain text
                const size_t lead = p.find_first_not_of(" \t\r\n");
                if (lead == std::string_view::npos) {
                    if (at_end) state_ = State::Plain;
                    else return out;
                    continue;
                }
                if (!may_open_header(p.substr(lead)) || (at_end && p.find(kMessage) == std::string_view::npos)) {
                    state_ = State::Plain;
                    continue;
                }
            }
            const size_t msg = p.find(kMessage);
            if (msg == std::string_view::npos) {
                if (at_end) {  // a header cut off at the end: nothing to show
                    pending_.clear();
                    return out;
                }
                if (p.size() > kMaxHeader) state_ = State::Plain;
                else return out;
                continue;
            }
            first_header_ = false;
            begin_body(p.substr(0, msg));
            pending_.erase(0, msg + kMessage.size());
            continue;
        }
        // A body: up to the next end marker, holding back a possible partial one.
        const auto [end, marker] = find_first_marker(p, kBodyEnds);
        const size_t n = end != std::string_view::npos ? end : at_end ? p.size() : p.size() - partial_marker_suffix(p, kBodyEnds);
        const std::string_view body = p.substr(0, n);
        if (state_ == State::Reasoning) out.reasoning += body;
        else if (state_ == State::Content) out.content += body;
        else if (state_ == State::Call) call_body_ += body;
        if (end == std::string_view::npos) {
            pending_.erase(0, n);
            return out;
        }
        if (state_ == State::Call) end_call(out);
        // <|start|> and <|channel|> begin the next header; the others end a message.
        const bool opens_header = marker == kStart || marker == kChannel;
        pending_.erase(0, end + (opens_header ? 0 : marker.size()));
        state_ = State::Header;
    }
}

}  // namespace pensieve
