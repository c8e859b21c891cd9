// OpenAI routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,
// GET /v1/models/{id} (POST /v1/embeddings: embeddings_api.cpp).
#include <algorithm>
#include <memory>

#include "chat/reply.h"
#include "model/model.h"
#include "server/context_fit.h"
#include "server/json_fields.h"
#include "server/request_parse.h"
#include "server/routes.h"
#include "server/sse.h"
#include "server/tool_grammar.h"
#include "tokenizer/tokenizer.h"
#include "util/utf8.h"

namespace pensieve::server {

namespace {

json usage_json(const FinishEvent& f) {
    return {{"prompt_tokens", f.n_prompt},
            {"completion_tokens", f.n_generated},
            {"total_tokens", f.n_prompt + f.n_generated},
            {"prompt_tokens_details", {{"cached_tokens", f.n_cached}}},
            {"dropped_messages", f.dropped_messages}};  // --context-shift: old turns left out
}

// llama.cpp's "timings" object (same field names, so tools that read it work), plus what
// speculation did: drafted and kept tokens, and tokens per forward pass.
json timings_json(const FinishEvent& f) {
    const double prompt_ms = f.prompt_seconds * 1e3, predicted_ms = f.generate_seconds * 1e3;
    const int computed = f.n_prompt - f.n_cached;
    return {{"cache_n", f.n_cached},
            {"prompt_n", computed},
            {"prompt_ms", prompt_ms},
            {"prompt_per_second", prompt_ms > 0 ? computed * 1e3 / prompt_ms : 0.0},
            {"predicted_n", f.n_generated},
            {"predicted_ms", predicted_ms},
            {"predicted_per_second", predicted_ms > 0 ? f.n_generated * 1e3 / predicted_ms : 0.0},
            {"draft_n", f.n_drafted},
            {"draft_n_accepted", f.n_draft_accepted},
            {"tokens_per_pass", f.n_passes > 0 ? double(f.n_generated) / f.n_passes : 0.0}};
}

// n > 1: the prompt counts once (as OpenAI reports it), completions add up.
json usage_sum(const std::vector<FinishEvent>& ends) {
    FinishEvent sum = ends.front();
    sum.n_generated = 0;
    for (const FinishEvent& f : ends) sum.n_generated += f.n_generated;
    return usage_json(sum);
}

json usage_sum(const std::vector<Collected>& outs) {
    std::vector<FinishEvent> ends;
    for (const Collected& c : outs) ends.push_back(c.finish);
    return usage_sum(ends);
}

json bytes_of(const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back(int(c));
    return b;
}

// One token's entry in chat logprobs.content[].
// A non-streamed chat or text completion: its choices and the summed usage.
json whole_reply(const char* id_prefix, const char* object, const Engine& e, json choices,
                 const std::vector<Collected>& outs) {
    return {{"id", make_id(id_prefix)},          {"object", object},
            {"created", unix_time()},            {"model", e.model_id},
            {"system_fingerprint", "pensieve"},  {"choices", std::move(choices)},
            {"usage", usage_sum(outs)},          {"timings", timings_json(outs.front().finish)}};
}

json chat_logprob(const Tokenizer& tok, const TokenEvent& t) {
    const std::string piece = tok.token_to_piece(t.token);
    json top = json::array();
    for (const TopLogprob& alt : t.top) {
        const std::string p = tok.token_to_piece(alt.token);
        top.push_back({{"token", sanitize_utf8(p)}, {"logprob", alt.logprob}, {"bytes", bytes_of(p)}});
    }
    return {{"token", sanitize_utf8(piece)}, {"logprob", t.logprob}, {"bytes", bytes_of(piece)}, {"top_logprobs", top}};
}

// Legacy completions logprobs: parallel arrays.
json completion_logprobs(const Tokenizer& tok, const std::vector<TokenEvent>& tokens) {
    json out = {{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()},
                {"text_offset", json::array()}};
    size_t offset = 0;
    for (const TokenEvent& t : tokens) {
        const std::string piece = sanitize_utf8(tok.token_to_piece(t.token));
        out["tokens"].push_back(piece);
        out["token_logprobs"].push_back(t.logprob);
        json top = json::object();
        for (const TopLogprob& alt : t.top) top[sanitize_utf8(tok.token_to_piece(alt.token))] = alt.logprob;
        out["top_logprobs"].push_back(top);
        out["text_offset"].push_back(offset);
        offset += piece.size();
    }
    return out;
}

json tool_calls_json(const std::vector<ToolCall>& calls, bool with_index) {
    json out = json::array();
    for (size_t i = 0; i < calls.size(); ++i) {
        json c = {{"id", calls[i].id},
                  {"type", "function"},
                  {"function", {{"name", calls[i].name}, {"arguments", dump_json(calls[i].arguments)}}}};
        if (with_index) c["index"] = i;
        out.push_back(c);
    }
    return out;
}

// OpenAI's finish_reason ("tool_calls" is decided by the caller, which sees the calls).
const char* finish_reason(const FinishEvent& f) {
    const bool cut = f.reason == FinishReason::Length || f.reason == FinishReason::ContextFull;
    return cut ? "length" : "stop";
}

// Renders the conversation and tokenizes it into r.params.prompt; returns the prompt text.
std::string prepare_chat(ServerContext& ctx, Engine& e, ChatRequest& r) {
    std::string prompt = render_chat_prompt(e, r, ctx.options);
    apply_tool_choice(r, e.chat.tool_format());
    log_prompt(ctx, "chat", prompt);
    return prompt;
}

// The tools whose calls replies are searched for (null: none).
json active_tools(const ChatRequest& r) { return r.tools_active() ? r.tools : json(nullptr); }

// A streamed choice's delta: reasoning and content, whichever the piece has.
json reply_delta(const ReplyDelta& d) {
    json delta = json::object();
    if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
    if (!d.content.empty() || d.reasoning.empty()) delta["content"] = d.content;
    return delta;
}

// n > 1 runs n requests; with a fixed seed each gets its own (seed + i) so they differ.
std::vector<std::shared_ptr<Tracked>> submit_n(ServerContext& ctx, Engine& e, const RequestParams& params, int n,
                                               const char* endpoint) {
    std::vector<std::shared_ptr<Tracked>> out;
    for (int i = 0; i < n; ++i) {
        RequestParams p = params;
        if (p.options.sampling.seed != SamplingParams::kRandomSeed) p.options.sampling.seed += uint64_t(i);
        out.push_back(ctx.submit(e, std::move(p), endpoint));
    }
    return out;
}

struct StreamIds {
    std::string id;
    int64_t created;
    std::string model;
};

json chat_chunk(const StreamIds& s, size_t index, json delta, json finish, json logprobs, bool include_usage) {
    json c = {{"id", s.id},
              {"object", "chat.completion.chunk"},
              {"created", s.created},
              {"model", s.model},
              {"system_fingerprint", "pensieve"},
              {"choices", json::array({{{"index", index}, {"delta", std::move(delta)}, {"logprobs", std::move(logprobs)},
                                        {"finish_reason", std::move(finish)}}})}};
    if (include_usage) c["usage"] = nullptr;  // OpenAI: null on every chunk but the last
    return c;
}

// Writes to the client; on a hang-up cancels all n requests of the stream.
bool send_all(const std::vector<std::shared_ptr<Tracked>>& ts, httplib::DataSink& sink, const std::string& data) {
    if (sink.write(data.data(), data.size())) return true;
    for (const auto& t : ts) t->stream().cancel();
    return false;
}

// An error or shutdown ends the whole stream: one error event, the other choices cancelled.
bool ended_abnormally(const std::vector<std::shared_ptr<Tracked>>& ts, httplib::DataSink& sink, const FinishEvent& f) {
    if (f.reason != FinishReason::Error && f.reason != FinishReason::Cancelled) return false;
    const bool error = f.reason == FinishReason::Error;
    const std::string msg = error ? "generation failed: " + f.error : "the server is shutting down";
    send_all(ts, sink, sse_data(error_json(Dialect::OpenAI, error ? f.error_status : 503, msg)));
    for (const auto& t : ts) t->stream().cancel();
    sink.done();
    return true;
}

// The SSE body of an n-choice stream: on_token(i, token) and on_finish(i, finish) write
// the endpoint's chunks for choice i (false: the client is gone); once every choice has
// ended, on_done(ends) writes the trailer (usage) before [DONE].
template <class OnToken, class OnFinish, class OnDone>
bool stream_choices(const std::vector<std::shared_ptr<Tracked>>& tracked, httplib::DataSink& sink, OnToken on_token,
                    OnFinish on_finish, OnDone on_done) {
    const size_t n = tracked.size();
    std::vector<bool> finished(n, false);
    std::vector<FinishEvent> ends(n);
    for (size_t left = n; left > 0;) {
        auto got = next_event_any(tracked, finished, sink, kSseComment);
        if (!got) return false;
        const size_t i = got->first;
        if (auto* tk = std::get_if<TokenEvent>(&got->second)) {
            if (!on_token(i, *tk)) return false;
            continue;
        }
        const FinishEvent& f = std::get<FinishEvent>(got->second);
        if (ended_abnormally(tracked, sink, f)) return true;
        if (!on_finish(i, f)) return false;
        ends[i] = f;
        --left;
    }
    if (!on_done(ends)) return false;
    send_all(tracked, sink, kSseDone);
    sink.done();
    return true;
}

void chat_completions(ServerContext& ctx, const httplib::Request& req, httplib::Response& res, Engine& e) {
    ChatRequest r = parse_openai_chat(parse_body(req.body));
    const std::string prompt = prepare_chat(ctx, e, r);
    const bool want_lp = r.params.want_logprobs;
    const ReplyOptions reply_options = e.chat.reply_options(active_tools(r), prompt);

    if (!r.stream) {
        auto tracked = submit_n(ctx, e, r.params, r.n, "chat");
        std::vector<Collected> outs;
        for (auto& t : tracked) outs.push_back(collect(*t, want_lp));
        json choices = json::array();
        for (size_t i = 0; i < outs.size(); ++i) {
            const Collected& c = outs[i];
            check_finish(c.finish);
            const ChatReply p = parse_reply(c.text, e.chat.reply_syntax(), reply_options);
            json message = {{"role", "assistant"}, {"content", p.content}};
            if (!p.reasoning.empty()) message["reasoning_content"] = p.reasoning;
            std::string reason = finish_reason(c.finish);
            if (!p.calls.empty()) {
                if (p.content.empty()) message["content"] = nullptr;
                message["tool_calls"] = tool_calls_json(p.calls, false);
                reason = "tool_calls";
            }
            json lp = nullptr;
            if (want_lp) {
                lp = {{"content", json::array()}};
                for (const TokenEvent& t : c.tokens) lp["content"].push_back(chat_logprob(e.tokenizer, t));
            }
            choices.push_back({{"index", i}, {"message", message}, {"logprobs", lp}, {"finish_reason", reason}});
        }
        write_json(res, whole_reply("chatcmpl-", "chat.completion", e, choices, outs));
        return;
    }

    // Streaming: n choices interleave, each chunk naming its index. Submit before
    // answering so a refused request still gets its 4xx.
    const std::vector<std::shared_ptr<Tracked>> tracked = submit_n(ctx, e, r.params, r.n, "chat");
    const StreamIds ids{make_id("chatcmpl-"), unix_time(), e.model_id};
    const bool usage = r.include_usage;
    const ReplySyntax syntax = e.chat.reply_syntax();
    const Tokenizer* tok = &e.tokenizer;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(kSseContentType, [=](size_t, httplib::DataSink& sink) {
        auto emit = [&](const json& chunk) { return send_all(tracked, sink, sse_data(chunk)); };
        std::vector<std::unique_ptr<ReplyParser>> replies;
        for (size_t i = 0; i < tracked.size(); ++i) replies.push_back(make_reply_parser(syntax, reply_options));
        for (size_t i = 0; i < tracked.size(); ++i)
            if (!emit(chat_chunk(ids, i, {{"role", "assistant"}, {"content", ""}}, nullptr, nullptr, usage))) return false;
        auto on_token = [&](size_t i, const TokenEvent& tk) {
            const ReplyDelta d = replies[i]->feed(tk.text);
            if (d.empty() && !want_lp) return true;
            json lp = want_lp ? json{{"content", json::array({chat_logprob(*tok, tk)})}} : json(nullptr);
            return emit(chat_chunk(ids, i, reply_delta(d), nullptr, lp, usage));
        };
        auto on_finish = [&](size_t i, const FinishEvent& f) {
            ReplyDelta tail = replies[i]->feed(f.tail_text);
            ChatReply end = replies[i]->finish();
            tail.reasoning += end.reasoning;
            tail.content += end.content;
            std::string reason = finish_reason(f);
            const std::vector<ToolCall>& found = end.calls;
            if (!tail.empty() && !emit(chat_chunk(ids, i, reply_delta(tail), nullptr, nullptr, usage))) return false;
            if (!found.empty()) {
                reason = "tool_calls";
                if (!emit(chat_chunk(ids, i, {{"tool_calls", tool_calls_json(found, true)}}, nullptr, nullptr, usage)))
                    return false;
            }
            json last = chat_chunk(ids, i, json::object(), reason, nullptr, usage);
            last["timings"] = timings_json(f);
            return emit(last);
        };
        auto on_done = [&](const std::vector<FinishEvent>& ends) {
            if (!usage) return true;
            return emit({{"id", ids.id}, {"object", "chat.completion.chunk"}, {"created", ids.created},
                         {"model", ids.model}, {"system_fingerprint", "pensieve"},
                         {"choices", json::array()}, {"usage", usage_sum(ends)}});
        };
        return stream_choices(tracked, sink, on_token, on_finish, on_done);
    });
}

json completion_chunk(const StreamIds& s, size_t index, const std::string& text, json finish, json logprobs) {
    return {{"id", s.id},
            {"object", "text_completion"},
            {"created", s.created},
            {"model", s.model},
            {"system_fingerprint", "pensieve"},
            {"choices", json::array({{{"index", index}, {"text", text}, {"logprobs", std::move(logprobs)},
                                      {"finish_reason", std::move(finish)}}})}};
}

void completions(ServerContext& ctx, const httplib::Request& req, httplib::Response& res, Engine& e) {
    CompletionRequest r = parse_openai_completion(parse_body(req.body));
    if (r.prompt_is_tokens) {
        r.params.prompt = r.prompt_tokens;
    } else {
        log_prompt(ctx, "completion", r.prompt_text);
        r.params.prompt = e.tokenize_prompt(r.prompt_text, r.parse_special);
    }
    const bool want_lp = r.params.want_logprobs;

    if (!r.stream) {
        auto tracked = submit_n(ctx, e, r.params, r.n, "completions");
        std::vector<Collected> outs;
        for (auto& t : tracked) outs.push_back(collect(*t, want_lp));
        json choices = json::array();
        for (size_t i = 0; i < outs.size(); ++i) {
            check_finish(outs[i].finish);
            choices.push_back({{"index", i},
                               {"text", outs[i].text},
                               {"logprobs", want_lp ? completion_logprobs(e.tokenizer, outs[i].tokens) : json(nullptr)},
                               {"finish_reason", finish_reason(outs[i].finish)}});
        }
        write_json(res, whole_reply("cmpl-", "text_completion", e, choices, outs));
        return;
    }

    const std::vector<std::shared_ptr<Tracked>> tracked = submit_n(ctx, e, r.params, r.n, "completions");
    const StreamIds ids{make_id("cmpl-"), unix_time(), e.model_id};
    const bool usage = r.include_usage;
    const Tokenizer* tok = &e.tokenizer;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(kSseContentType, [=](size_t, httplib::DataSink& sink) {
        auto emit = [&](const json& chunk) { return send_all(tracked, sink, sse_data(chunk)); };
        auto on_token = [&](size_t i, const TokenEvent& tk) {
            if (tk.text.empty() && !want_lp) return true;
            json lp = want_lp ? completion_logprobs(*tok, {tk}) : json(nullptr);
            return emit(completion_chunk(ids, i, tk.text, nullptr, lp));
        };
        auto on_finish = [&](size_t i, const FinishEvent& f) {
            json last = completion_chunk(ids, i, f.tail_text, finish_reason(f), nullptr);
            last["timings"] = timings_json(f);
            return emit(last);
        };
        auto on_done = [&](const std::vector<FinishEvent>& ends) {
            if (!usage) return true;
            json u = completion_chunk(ids, 0, "", nullptr, nullptr);
            u["choices"] = json::array();
            u["usage"] = usage_sum(ends);
            return emit(u);
        };
        return stream_choices(tracked, sink, on_token, on_finish, on_done);
    });
}

// One model of GET /v1/models: OpenAI's fields, then what a local model manager shows
// (size, architecture, quantization, context length, whether and how long it is loaded).
json model_json(const ModelStatus& m) {
    const CatalogEntry& c = m.entry;
    json j = {{"id", c.name},
              {"object", "model"},
              {"created", m.engine ? m.engine->created : c.modified},
              {"owned_by", "pensieve"},
              {"aliases", c.aliases},
              {"size", c.bytes},
              {"architecture", c.architecture},
              {"quantization", c.quantization},
              {"context_length", c.context_length},
              {"loaded", m.engine != nullptr}};
    if (m.expires_in_seconds >= 0) j["expires_in"] = m.expires_in_seconds;
    if (m.engine) {
        const ModelConfig& mc = m.engine->model.config();
        j["meta"] = {{"architecture", mc.arch}, {"n_vocab", mc.n_vocab}, {"n_ctx_train", mc.n_ctx_train},
                     {"n_ctx", m.engine->n_ctx}, {"n_embd", mc.n_embd}, {"n_layer", mc.n_layer}};
    }
    return j;
}

void list_models(ServerContext& ctx, httplib::Response& res) {
    json data = json::array();
    for (const ModelStatus& m : ctx.models.list()) data.push_back(model_json(m));
    write_json(res, {{"object", "list"}, {"data", data}});
}

void show_model(ServerContext& ctx, const std::string& id, httplib::Response& res) {
    std::vector<std::string> names;
    for (const ModelStatus& m : ctx.models.list()) {
        const std::vector<std::string>& a = m.entry.aliases;
        if (m.entry.name == id || std::find(a.begin(), a.end(), id) != a.end()) return write_json(res, model_json(m));
        names.push_back("\"" + m.entry.name + "\"");
    }
    std::string known;
    for (size_t i = 0; i < names.size(); ++i) known += (i ? ", " : "") + names[i];
    throw ApiError(404, "model \"" + id + "\" does not exist; this server serves " + (known.empty() ? "none yet" : known),
                   "model");
}

}  // namespace

void register_openai_routes(Router& router, ServerContext& ctx) {
    auto bind = [&ctx](void (*fn)(ServerContext&, const httplib::Request&, httplib::Response&, Engine&)) {
        return api_route(ctx, Dialect::OpenAI,
                         [&ctx, fn](const httplib::Request& q, httplib::Response& s, Engine& e) { fn(ctx, q, s, e); });
    };
    router.post("/v1/chat/completions", bind(chat_completions));
    router.post("/chat/completions", bind(chat_completions));
    router.post("/v1/completions", bind(completions));
    router.post("/completions", bind(completions));
    // Listed while a single model still loads too (loaded: false), so a client can start.
    router.get("/v1/models", guarded_route(ctx, Dialect::OpenAI, [&ctx](const httplib::Request&, httplib::Response& res) {
        list_models(ctx, res);
    }));
    router.get(R"(/v1/models/(.+))", guarded_route(ctx, Dialect::OpenAI, [&ctx](const httplib::Request& req, httplib::Response& res) {
        show_model(ctx, req.matches[1], res);
    }));
}

}  // namespace pensieve::server
