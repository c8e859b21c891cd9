// Anthropic routes: POST /v1/messages (whole or streamed) and
// POST /v1/messages/count_tokens.
//
// The streamed event sequence (what the SDK's MessageStream expects):
//   message_start, then per content block: content_block_start, content_block_delta*
//   (thinking_delta, text_delta or input_json_delta), content_block_stop; then
//   message_delta (stop_reason, usage.output_tokens) and message_stop. `ping` events may
//   come anywhere; we send one after the first block starts and whenever the model is
//   silent for a second. Blocks come in the order the model writes them: its reasoning
//   (a `thinking` block, with an empty signature: there is nothing to sign locally),
//   the text, then the tool calls.
#include <memory>

#include "chat/reply.h"
#include "server/context_fit.h"
#include "server/json_fields.h"
#include "server/request_parse.h"
#include "server/routes.h"
#include "server/sse.h"
#include "server/tool_grammar.h"

namespace pensieve::server {

namespace {

std::string prepare(ServerContext& ctx, Engine& e, ChatRequest& r) {
    const std::string prompt = render_chat_prompt(e, r, ctx.options);
    apply_tool_choice(r, e.chat.tool_format());
    log_prompt(ctx, "messages", prompt);
    return prompt;
}

// Anthropic ids look like toolu_01A09q90qw90lq917835lq9; ours keep the prefix.
std::vector<ToolCall> with_anthropic_ids(std::vector<ToolCall> calls) {
    for (ToolCall& c : calls)
        if (c.id.rfind("toolu_", 0) != 0) c.id = make_tool_call_id("toolu_");
    return calls;
}

// Anthropic's stop_reason ("tool_use" is decided by the caller, which sees the calls).
const char* stop_reason(const FinishEvent& f) {
    switch (f.reason) {
        case FinishReason::Length:
        case FinishReason::ContextFull: return "max_tokens";
        case FinishReason::StopString: return "stop_sequence";
        default: return "end_turn";
    }
}

json stop_sequence(const FinishEvent& f) { return f.stop_string.empty() ? json(nullptr) : json(f.stop_string); }

// Anthropic's usage splits the prompt in three parts that add up to all of it:
// input_tokens (computed now, not read from a cache) + cache_read_input_tokens (reused from
// the prefix cache) + cache_creation_input_tokens (0: caching is automatic here, nothing is
// billed for writing it). Counting cached tokens in input_tokens too would make clients
// count them twice.
json usage_json(const FinishEvent& f) {
    return {{"input_tokens", f.n_prompt - f.n_cached},
            {"output_tokens", f.n_generated},
            {"cache_read_input_tokens", f.n_cached},
            {"cache_creation_input_tokens", 0},
            {"dropped_messages", f.dropped_messages}};  // --context-shift: old turns left out
}

void messages(ServerContext& ctx, const httplib::Request& req, httplib::Response& res, Engine& e) {
    ChatRequest r = parse_anthropic_messages(parse_body(req.body), false);
    const std::string prompt = prepare(ctx, e, r);
    const ReplyOptions reply_options = e.chat.reply_options(r.tools_active() ? r.tools : json(nullptr), prompt);
    const std::string model = e.model_id;

    if (!r.stream) {
        auto tracked = ctx.submit(e, r.params, "messages");
        Collected c = collect(*tracked, false);
        check_finish(c.finish);
        json content = json::array();
        std::string reason = stop_reason(c.finish);
        const ChatReply p = parse_reply(c.text, e.chat.reply_syntax(), reply_options);
        if (!p.reasoning.empty()) content.push_back({{"type", "thinking"}, {"thinking", p.reasoning}, {"signature", ""}});
        if (!p.content.empty() || p.calls.empty()) content.push_back({{"type", "text"}, {"text", p.content}});
        for (const ToolCall& call : with_anthropic_ids(p.calls))
            content.push_back({{"type", "tool_use"}, {"id", call.id}, {"name", call.name}, {"input", call.arguments}});
        if (!p.calls.empty()) reason = "tool_use";
        write_json(res, {{"id", make_id("msg_")},
                         {"type", "message"},
                         {"role", "assistant"},
                         {"model", model},
                         {"content", content},
                         {"stop_reason", reason},
                         {"stop_sequence", p.calls.empty() ? stop_sequence(c.finish) : json(nullptr)},
                         {"usage", usage_json(c.finish)}});
        return;
    }

    std::shared_ptr<Tracked> tracked = ctx.submit(e, r.params, "messages");
    const int n_prompt = int(r.params.prompt.size());
    const ReplySyntax syntax = e.chat.reply_syntax();
    const std::string id = make_id("msg_");
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(kSseContentType, [=](size_t, httplib::DataSink& sink) {
        Tracked& t = *tracked;
        const std::string ping = sse_event("ping", {{"type", "ping"}});
        auto emit = [&](const char* type, json data) {
            data["type"] = type;
            return send(t, sink, sse_event(type, data));
        };
        // The prompt's cache split is known only once the scheduler has looked it up:
        // message_start counts the whole prompt as input (the three parts still add up to
        // the prompt), and message_delta carries the final split (cumulative totals, which
        // the SDKs copy over message_start's).
        json start = {{"id", id}, {"type", "message"}, {"role", "assistant"}, {"model", model},
                      {"content", json::array()}, {"stop_reason", nullptr}, {"stop_sequence", nullptr},
                      {"usage", {{"input_tokens", n_prompt}, {"output_tokens", 0}, {"cache_read_input_tokens", 0},
                                 {"cache_creation_input_tokens", 0}}}};
        if (!emit("message_start", {{"message", start}})) return false;

        // Blocks open lazily, one at a time: a reply without reasoning has no thinking
        // block, one that is only tool calls no text block.
        int index = -1;
        const char* open = nullptr;  // the open block's type
        auto close_block = [&] {
            if (!open) return true;
            open = nullptr;
            return emit("content_block_stop", {{"index", index}});
        };
        auto open_block = [&](const char* type) {
            if (!close_block()) return false;
            open = type;
            ++index;
            json block = {{"type", type}, {type, ""}};
            if (std::string_view(type) == "thinking") block["signature"] = "";
            return emit("content_block_start", {{"index", index}, {"content_block", block}}) && send(t, sink, ping);
        };
        auto block_delta = [&](const char* type, const std::string& text) {
            if (text.empty()) return true;
            if ((!open || std::string_view(open) != type) && !open_block(type)) return false;
            const char* delta = std::string_view(type) == "thinking" ? "thinking_delta" : "text_delta";
            return emit("content_block_delta", {{"index", index}, {"delta", {{"type", delta}, {type, text}}}});
        };
        auto reply_delta = [&](const ReplyDelta& d) {
            return block_delta("thinking", d.reasoning) && block_delta("text", d.content);
        };

        std::unique_ptr<ReplyParser> reply = make_reply_parser(syntax, reply_options);
        for (;;) {
            auto ev = next_event(t, sink, ping);
            if (!ev) return false;
            if (auto* tk = std::get_if<TokenEvent>(&*ev)) {
                if (!reply_delta(reply->feed(tk->text))) return false;
                continue;
            }
            const FinishEvent& f = std::get<FinishEvent>(*ev);
            if (f.reason == FinishReason::Error || f.reason == FinishReason::Cancelled) {
                const bool error = f.reason == FinishReason::Error;
                const int status = error ? f.error_status : 503;
                const std::string msg = error ? "generation failed: " + f.error : "the server is shutting down";
                send(t, sink, sse_event("error", error_json(Dialect::Anthropic, status, msg)));
                sink.done();
                return true;
            }
            if (!reply_delta(reply->feed(f.tail_text))) return false;
            ChatReply end = reply->finish();
            if (!reply_delta({end.reasoning, end.content})) return false;
            const std::vector<ToolCall> found = with_anthropic_ids(std::move(end.calls));
            // Clients expect a text block unless there are calls; an empty reply is an
            // empty text block.
            if (found.empty() && (!open || std::string_view(open) != "text") && !open_block("text")) return false;
            if (!close_block()) return false;
            for (const ToolCall& call : found) {
                ++index;
                json block = {{"type", "tool_use"}, {"id", call.id}, {"name", call.name}, {"input", json::object()}};
                if (!emit("content_block_start", {{"index", index}, {"content_block", block}})) return false;
                json delta = {{"type", "input_json_delta"}, {"partial_json", dump_json(call.arguments)}};
                if (!emit("content_block_delta", {{"index", index}, {"delta", delta}})) return false;
                if (!emit("content_block_stop", {{"index", index}})) return false;
            }
            const bool tool_use = !found.empty();
            json delta = {{"stop_reason", tool_use ? "tool_use" : stop_reason(f)},
                          {"stop_sequence", tool_use ? json(nullptr) : stop_sequence(f)}};
            if (!emit("message_delta", {{"delta", delta}, {"usage", usage_json(f)}})) return false;
            emit("message_stop", json::object());
            sink.done();
            return true;
        }
    });
}

void count_tokens(ServerContext& ctx, const httplib::Request& req, httplib::Response& res, Engine& e) {
    ChatRequest r = parse_anthropic_messages(parse_body(req.body), true);
    const ChatPrompt prompt = e.chat_prompt(r.messages, r.tools_active() ? r.tools : json(nullptr));
    write_json(res, {{"input_tokens", prompt.tokens.size()}});
}

}  // namespace

void register_anthropic_routes(Router& router, ServerContext& ctx) {
    auto bind = [&ctx](void (*fn)(ServerContext&, const httplib::Request&, httplib::Response&, Engine&)) {
        return api_route(ctx, Dialect::Anthropic,
                         [&ctx, fn](const httplib::Request& q, httplib::Response& s, Engine& e) { fn(ctx, q, s, e); });
    };
    router.post("/v1/messages", bind(messages));
    router.post("/v1/messages/count_tokens", bind(count_tokens));
}

}  // namespace pensieve::server
