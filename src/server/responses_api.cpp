// OpenAI Responses routes: POST /v1/responses (whole or streamed) and
// GET /v1/responses/{id} (a stored response).
//
// A response's output is a list of items in the order the model writes them: its
// reasoning (a `reasoning` item with reasoning_text content), its text (a `message` item
// with one output_text part), then its tool calls (`function_call` items).
//
// The streamed event sequence (every event named and numbered by sequence_number; no
// [DONE] at the end):
//   response.created, response.in_progress, then per item: response.output_item.added,
//   for text items response.content_part.added, *.delta..., *.done (output_text or
//   reasoning_text), response.content_part.done; for calls
//   response.function_call_arguments.delta / .done; then response.output_item.done;
//   finally response.completed (or response.incomplete when max_output_tokens cut the
//   reply). An error ends the stream with an `error` event.
//
// Responses are stored (unless store: false) so previous_response_id can continue the
// conversation: ResponseStore keeps the conversation each one ended.
#include <memory>

#include "chat/reply.h"
#include "server/context_fit.h"
#include "server/json_fields.h"
#include "server/request_parse.h"
#include "server/response_store.h"
#include "server/routes.h"
#include "server/sse.h"
#include "server/tool_grammar.h"

namespace pensieve::server {

namespace {

constexpr size_t kStoredResponses = 256;
constexpr size_t kStoredBytes = size_t(256) << 20;

bool cut_short(const FinishEvent& f) {
    return f.reason == FinishReason::Length || f.reason == FinishReason::ContextFull;
}

json usage_json(const FinishEvent& f) {
    return {{"input_tokens", f.n_prompt},
            {"input_tokens_details", {{"cached_tokens", f.n_cached}}},
            {"output_tokens", f.n_generated},
            {"output_tokens_details", {{"reasoning_tokens", 0}}},
            {"total_tokens", f.n_prompt + f.n_generated}};
}

// The response object with no output yet: its identity and the request's settings.
json response_shell(const std::string& id, int64_t created, const std::string& model, const json& echo) {
    json r = {{"id", id},     {"object", "response"}, {"created_at", created}, {"status", "in_progress"},
              {"error", nullptr}, {"incomplete_details", nullptr}, {"model", model}, {"output", json::array()},
              {"usage", nullptr}};
    for (const auto& [key, value] : echo.items()) r[key] = value;
    return r;
}

// The finished response: its output items, status and usage.
json finished_response(json r, json output, const FinishEvent& f) {
    r["output"] = std::move(output);
    r["status"] = cut_short(f) ? "incomplete" : "completed";
    if (cut_short(f)) r["incomplete_details"] = {{"reason", "max_output_tokens"}};
    r["usage"] = usage_json(f);
    return r;
}

json text_part(const char* type, const std::string& text) {
    json p = {{"type", type}, {"text", text}};
    if (std::string_view(type) == "output_text") p["annotations"] = json::array();
    return p;
}

json message_item(const std::string& id, const char* status, json content) {
    return {{"id", id}, {"type", "message"}, {"status", status}, {"role", "assistant"}, {"content", std::move(content)}};
}

json reasoning_item(const std::string& id, json content) {
    return {{"id", id}, {"type", "reasoning"}, {"summary", json::array()}, {"content", std::move(content)}};
}

json function_call_item(const std::string& id, const ToolCall& call, const char* status, const std::string& arguments) {
    return {{"id", id},         {"type", "function_call"}, {"status", status},
            {"call_id", call.id}, {"name", call.name},        {"arguments", arguments}};
}

// A message cut short by max_output_tokens is "incomplete", like its response.
const char* message_status(const FinishEvent& f) { return cut_short(f) ? "incomplete" : "completed"; }

// A whole reply's output items.
json output_items(const ChatReply& p, const char* message_status) {
    json out = json::array();
    if (!p.reasoning.empty()) out.push_back(reasoning_item(make_id("rs_"), {text_part("reasoning_text", p.reasoning)}));
    if (!p.content.empty() || p.calls.empty())
        out.push_back(message_item(make_id("msg_"), message_status, {text_part("output_text", p.content)}));
    for (const ToolCall& call : p.calls)
        out.push_back(function_call_item(make_id("fc_"), call, "completed", dump_json(call.arguments)));
    return out;
}

// The reply as the assistant message a follow-up's conversation continues from.
json assistant_message(const ChatReply& p) {
    json m = {{"role", "assistant"}, {"content", p.content.empty() && !p.calls.empty() ? json(nullptr) : json(p.content)}};
    if (!p.reasoning.empty()) m["reasoning_content"] = p.reasoning;
    if (p.calls.empty()) return m;
    m["tool_calls"] = json::array();
    for (const ToolCall& c : p.calls)
        m["tool_calls"].push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
    return m;
}

void keep(ResponseStore& store, json conversation, const ChatReply& p, const json& response) {
    conversation.push_back(assistant_message(p));
    const size_t bytes = dump_json(conversation).size() + dump_json(response).size();
    store.put(response["id"].get<std::string>(), {std::move(conversation), response}, bytes);
}

// The conversation this request continues: the stored one of previous_response_id (404
// if unknown), then the request's input.
json conversation_of(ResponseStore& store, const ResponsesRequest& r) {
    json conversation = json::array();
    if (!r.previous_response_id.empty()) {
        auto prev = store.get(r.previous_response_id);
        if (!prev)
            throw ApiError(404, "previous response \"" + r.previous_response_id +
                                    "\" not found (this server keeps the last " + std::to_string(kStoredResponses) +
                                    " stored responses in memory, until it restarts)",
                           "previous_response_id");
        conversation = std::move(prev->conversation);
    }
    for (const json& m : r.input_messages) conversation.push_back(m);
    return conversation;
}

void create_response(ServerContext& ctx, ResponseStore& store, const httplib::Request& req, httplib::Response& res,
                     Engine& e) {
    ResponsesRequest r = parse_responses_request(parse_body(req.body));
    const json conversation = conversation_of(store, r);
    ChatRequest& c = r.chat;
    // Instructions are this request's own: a follow-up does not inherit them.
    if (!r.instructions.empty()) c.messages.push_back({{"role", "system"}, {"content", r.instructions}});
    for (const json& m : conversation) c.messages.push_back(m);
    const std::string prompt = render_chat_prompt(e, c, ctx.options);
    apply_tool_choice(c, e.chat.tool_format());
    log_prompt(ctx, "responses", prompt);
    const ReplyOptions reply_options = e.chat.reply_options(c.tools_active() ? c.tools : json(nullptr), prompt);
    const json shell = response_shell(make_id("resp_"), unix_time(), e.model_id, r.echo);
    const bool stored = r.store;

    if (!c.stream) {
        auto tracked = ctx.submit(e, c.params, "responses");
        Collected col = collect(*tracked, false);
        check_finish(col.finish);
        const ChatReply p = parse_reply(col.text, e.chat.reply_syntax(), reply_options);
        const json response = finished_response(shell, output_items(p, message_status(col.finish)), col.finish);
        if (stored) keep(store, conversation, p, response);
        write_json(res, response);
        return;
    }

    std::shared_ptr<Tracked> tracked = ctx.submit(e, c.params, "responses");
    const ReplySyntax syntax = e.chat.reply_syntax();
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(kSseContentType, [=, &store](size_t, httplib::DataSink& sink) {
        Tracked& t = *tracked;
        int64_t sequence = 0;
        auto emit = [&](const char* type, json data) {
            data["type"] = type;
            data["sequence_number"] = sequence++;
            return send(t, sink, sse_event(type, data));
        };
        if (!emit("response.created", {{"response", shell}})) return false;
        if (!emit("response.in_progress", {{"response", shell}})) return false;

        // Text items (reasoning, then the message) open lazily, one at a time.
        json output = json::array();
        struct OpenItem {
            const char* part = nullptr;  // "reasoning_text" / "output_text"; null: none open
            std::string id;
            std::string text;
        } open;
        const char* closing_status = "completed";  // a message's status once closed
        auto index = [&] { return int64_t(output.size()); };
        auto item_for = [&](const char* status) {
            json content = open.part ? json::array({text_part(open.part, open.text)}) : json::array();
            if (std::string_view(open.part) == "reasoning_text") return reasoning_item(open.id, content);
            return message_item(open.id, status, content);
        };
        auto close_item = [&] {
            if (!open.part) return true;
            const std::string_view part = open.part;
            const char* done = part == "output_text" ? "response.output_text.done" : "response.reasoning_text.done";
            json where = {{"item_id", open.id}, {"output_index", index()}, {"content_index", 0}};
            json text_done = where;
            text_done["text"] = open.text;
            if (part == "output_text") text_done["logprobs"] = json::array();
            json part_done = where;
            part_done["part"] = text_part(open.part, open.text);
            const json item = item_for(closing_status);
            if (!emit(done, text_done) || !emit("response.content_part.done", part_done) ||
                !emit("response.output_item.done", {{"output_index", index()}, {"item", item}}))
                return false;
            output.push_back(item);
            open = {};
            return true;
        };
        auto open_item = [&](const char* part) {
            if (!close_item()) return false;
            const bool message = std::string_view(part) == "output_text";
            open = {part, make_id(message ? "msg_" : "rs_"), ""};
            json item = message ? message_item(open.id, "in_progress", json::array()) : reasoning_item(open.id, json::array());
            return emit("response.output_item.added", {{"output_index", index()}, {"item", item}}) &&
                   emit("response.content_part.added", {{"item_id", open.id}, {"output_index", index()},
                                                         {"content_index", 0}, {"part", text_part(part, "")}});
        };
        auto text_delta = [&](const char* part, const std::string& text) {
            if (text.empty()) return true;
            if ((!open.part || std::string_view(open.part) != part) && !open_item(part)) return false;
            open.text += text;
            const bool message = std::string_view(part) == "output_text";
            json d = {{"item_id", open.id}, {"output_index", index()}, {"content_index", 0}, {"delta", text}};
            if (message) d["logprobs"] = json::array();
            return emit(message ? "response.output_text.delta" : "response.reasoning_text.delta", d);
        };
        auto reply_delta = [&](const ReplyDelta& d) {
            return text_delta("reasoning_text", d.reasoning) && text_delta("output_text", d.content);
        };
        auto function_call = [&](const ToolCall& call) {
            const std::string id = make_id("fc_");
            const std::string arguments = dump_json(call.arguments);
            json where = {{"item_id", id}, {"output_index", index()}};
            json delta = where, done = where;
            delta["delta"] = arguments;
            done["arguments"] = arguments;
            done["name"] = call.name;
            const json item = function_call_item(id, call, "completed", arguments);
            if (!emit("response.output_item.added",
                      {{"output_index", index()}, {"item", function_call_item(id, call, "in_progress", "")}}) ||
                !emit("response.function_call_arguments.delta", delta) ||
                !emit("response.function_call_arguments.done", done) ||
                !emit("response.output_item.done", {{"output_index", index()}, {"item", item}}))
                return false;
            output.push_back(item);
            return true;
        };

        std::unique_ptr<ReplyParser> reply = make_reply_parser(syntax, reply_options);
        std::string reasoning, content;  // the whole reply, for the stored conversation
        for (;;) {
            auto ev = next_event(t, sink, kSseComment);
            if (!ev) return false;
            if (auto* tk = std::get_if<TokenEvent>(&*ev)) {
                const ReplyDelta d = reply->feed(tk->text);
                reasoning += d.reasoning;
                content += d.content;
                if (!reply_delta(d)) return false;
                continue;
            }
            const FinishEvent& f = std::get<FinishEvent>(*ev);
            if (f.reason == FinishReason::Error || f.reason == FinishReason::Cancelled) {
                const bool error = f.reason == FinishReason::Error;
                const int status = error ? f.error_status : 503;
                emit("error", {{"code", openai_error_type(status)},
                               {"message", error ? "generation failed: " + f.error : "the server is shutting down"},
                               {"param", nullptr}});
                sink.done();
                return true;
            }
            ReplyDelta tail = reply->feed(f.tail_text);
            ChatReply end = reply->finish();
            tail.reasoning += end.reasoning;
            tail.content += end.content;
            reasoning += tail.reasoning;
            content += tail.content;
            if (!reply_delta(tail)) return false;
            closing_status = message_status(f);
            // A reply without calls always has a message, empty if the model said nothing.
            const bool message_open = open.part && std::string_view(open.part) == "output_text";
            if (end.calls.empty() && !message_open && !open_item("output_text")) return false;
            if (!close_item()) return false;
            for (const ToolCall& call : end.calls)
                if (!function_call(call)) return false;
            const json response = finished_response(shell, output, f);
            if (stored) keep(store, conversation, {reasoning, content, end.calls}, response);
            emit(cut_short(f) ? "response.incomplete" : "response.completed", {{"response", response}});
            sink.done();
            return true;
        }
    });
}

void get_response(ResponseStore& store, const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    auto entry = store.get(id);
    if (!entry) throw ApiError(404, "response \"" + id + "\" not found (stored responses live in memory until the server restarts)");
    write_json(res, entry->response);
}

}  // namespace

void register_responses_routes(Router& router, ServerContext& ctx) {
    auto store = std::make_shared<ResponseStore>(kStoredResponses, kStoredBytes);
    auto create = api_route(ctx, Dialect::OpenAI, [&ctx, store](const httplib::Request& q, httplib::Response& s, Engine& e) {
        create_response(ctx, *store, q, s, e);
    });
    router.post("/v1/responses", create);
    router.post("/responses", create);
    router.get(R"(/v1/responses/([^/]+))", guarded_route(ctx, Dialect::OpenAI, [store](const httplib::Request& q, httplib::Response& s) {
        get_response(*store, q, s);
    }));
}

}  // namespace pensieve::server
