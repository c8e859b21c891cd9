// Anthropic routes: POST /v1/messages (whole or streamed) and
// POST /v1/messages/count_tokens.
//
// The streamed event sequence (what the SDK's MessageStream expects):
//   message_start, then per content block: content_block_start, content_block_delta*
//   (text_delta or input_json_delta), content_block_stop; then message_delta (stop_reason,
//   usage.output_tokens) and message_stop. `ping` events may come anywhere; we send one
//   after the first block starts and whenever the model is silent for a second.
#include <memory>

#include "chat/tool_calls.h"
#include "server/context_fit.h"
#include "server/json_fields.h"
#include "server/request_parse.h"
#include "server/routes.h"
#include "server/sse.h"
#include "server/tool_grammar.h"

namespace pensieve::server {

namespace {

std::string prepare(ServerContext& ctx, Engine& e, ChatRequest& r) {
    const std::string prompt = render_chat_prompt(e, r, ctx.options.context_shift);
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
    prepare(ctx, e, r);
    const bool tools = r.tools_active();
    const std::string model = e.model_id;

    if (!r.stream) {
        auto tracked = ctx.submit(e, r.params, "messages");
        Collected c = collect(*tracked, false);
        check_finish(c.finish);
        json content = json::array();
        std::string reason = stop_reason(c.finish);
        ParsedReply p{c.text, {}};
        if (tools) p = parse_tool_calls(c.text, e.chat.tool_format());
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
    const ToolFormat format = e.chat.tool_format();
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

        // The text block opens lazily: a reply that is only tool calls has no text block.
        int index = -1;
        bool text_open = false;
        auto open_text = [&] {
            text_open = true;
            ++index;
            return emit("content_block_start", {{"index", index}, {"content_block", {{"type", "text"}, {"text", ""}}}}) &&
                   send(t, sink, ping);
        };
        auto text_delta = [&](const std::string& text) {
            if (text.empty()) return true;
            if (!text_open && !open_text()) return false;
            return emit("content_block_delta", {{"index", index}, {"delta", {{"type", "text_delta"}, {"text", text}}}});
        };

        ToolCallStreamer calls(format);
        for (;;) {
            auto ev = next_event(t, sink, ping);
            if (!ev) return false;
            if (auto* tk = std::get_if<TokenEvent>(&*ev)) {
                if (!text_delta(tools ? calls.feed(tk->text) : tk->text)) return false;
                continue;
            }
            const FinishEvent& f = std::get<FinishEvent>(*ev);
            if (f.reason == FinishReason::Error || f.reason == FinishReason::Cancelled) {
                const bool error = f.reason == FinishReason::Error;
                const int status = error ? 500 : 503;
                const std::string msg = error ? "generation failed: " + f.error : "the server is shutting down";
                send(t, sink, sse_event("error", error_json(Dialect::Anthropic, status, msg)));
                sink.done();
                return true;
            }
            std::string tail = tools ? calls.feed(f.tail_text) : f.tail_text;
            std::vector<ToolCall> found;
            if (tools) {
                ParsedReply p = calls.finish();
                tail += p.content;
                found = with_anthropic_ids(std::move(p.calls));
            }
            if (!text_delta(tail)) return false;
            // Clients expect at least one block; an empty reply is an empty text block.
            if (!text_open && found.empty() && !open_text()) return false;
            if (text_open && !emit("content_block_stop", {{"index", index}})) return false;
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

void register_anthropic_routes(httplib::Server& svr, ServerContext& ctx) {
    auto bind = [&ctx](void (*fn)(ServerContext&, const httplib::Request&, httplib::Response&, Engine&)) {
        return api_route(ctx, Dialect::Anthropic,
                         [&ctx, fn](const httplib::Request& q, httplib::Response& s, Engine& e) { fn(ctx, q, s, e); });
    };
    svr.Post("/v1/messages", bind(messages));
    svr.Post("/v1/messages/count_tokens", bind(count_tokens));
}

}  // namespace pensieve::server
