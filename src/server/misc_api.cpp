// Routes that are not one vendor's API: GET /health, GET /metrics, POST /tokenize,
// POST /detokenize.
#include "server/json_fields.h"
#include "server/request_guard.h"
#include "server/routes.h"
#include "tokenizer/tokenizer.h"
#include "util/utf8.h"

namespace pensieve::server {

namespace {

// What one /tokenize or /detokenize call may hold: about the largest context the server
// accepts (2^20 tokens). Each text byte costs ~10 bytes of transient memory on the way
// (token ids, their JSON array, the reply), so a 32 MB body would take hundreds of MB.
constexpr size_t kMaxTokenizeBytes = 4u << 20;
constexpr size_t kMaxDetokenizeTokens = 1u << 20;

}  // namespace

void register_misc_routes(Router& router, ServerContext& ctx) {
    // Load balancers and scripts poll this before the model is ready; no auth.
    router.get("/health", [&ctx](const httplib::Request&, httplib::Response& res) {
        json body;
        if (ctx.draining) body = {{"status", "shutting_down"}};
        else if (!ctx.models.ready()) body = {{"status", "loading"}};
        else body = {{"status", "ok"}};
        const std::vector<std::string> warnings = exposure_warnings(ctx.options);
        if (!warnings.empty()) body["warnings"] = warnings;
        write_json(res, body, body["status"] == "ok" ? 200 : 503);
    });

    router.get("/metrics", [&ctx](const httplib::Request&, httplib::Response& res) {
        SchedulerStats stats;
        const bool any = ctx.models.stats(stats);  // every model's, summed
        const size_t connections = ctx.open_connections ? ctx.open_connections() : 0;
        std::string text = ctx.metrics.render(any ? &stats : nullptr, connections);
        text += render_model_metrics(ctx.models.loaded_count(), ctx.models.loads(), ctx.models.unloads());
        res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
    });

    router.post("/tokenize", api_route(ctx, Dialect::OpenAI, [](const httplib::Request& req, httplib::Response& res, Engine& e) {
        const json body = parse_body(req.body);
        const std::string content = require_string(body, "content");
        if (content.size() > kMaxTokenizeBytes)
            throw ApiError(413, "content is too long to tokenize in one call (" + std::to_string(content.size()) +
                                    " bytes; the limit is " + std::to_string(kMaxTokenizeBytes) + ")", "content");
        const bool add_special = get_bool(body, "add_special", false);
        // As in /v1/completions: special-token text is plain text unless asked for.
        const bool parse_special = get_bool(body, "parse_special", false);
        const bool with_pieces = get_bool(body, "with_pieces", false);
        const std::vector<int32_t> ids = e.tokenizer.encode(content, add_special, parse_special);
        json tokens = json::array();
        for (int32_t id : ids) {
            if (!with_pieces) {
                tokens.push_back(id);
                continue;
            }
            // A piece may be part of a UTF-8 character: then give its bytes instead.
            const std::string piece = e.tokenizer.token_to_piece(id, true);
            json p = is_valid_utf8(piece) ? json(piece) : json::array();
            if (p.is_array())
                for (unsigned char c : piece) p.push_back(int(c));
            tokens.push_back({{"id", id}, {"piece", p}});
        }
        write_json(res, {{"tokens", tokens}});
    }));

    router.post("/detokenize", api_route(ctx, Dialect::OpenAI, [](const httplib::Request& req, httplib::Response& res, Engine& e) {
        const json body = parse_body(req.body);
        const json* tokens = field(body, "tokens");
        if (!tokens) bad_request("tokens is required", "tokens");
        if (!tokens->is_array()) bad_request("tokens must be an array of token ids", "tokens");
        if (tokens->size() > kMaxDetokenizeTokens)
            throw ApiError(413, "too many tokens to detokenize in one call (" + std::to_string(tokens->size()) +
                                    "; the limit is " + std::to_string(kMaxDetokenizeTokens) + ")", "tokens");
        std::vector<int32_t> ids;
        for (const json& t : *tokens) {
            if (!t.is_number_integer()) bad_request("tokens must be an array of token ids", "tokens");
            const int64_t id = t.get<int64_t>();
            if (id < 0 || id >= e.tokenizer.n_vocab())
                bad_request("token id " + t.dump() + " is outside the vocabulary (0.." +
                                std::to_string(e.tokenizer.n_vocab() - 1) + ")",
                            "tokens");
            ids.push_back(int32_t(id));
        }
        write_json(res, {{"content", sanitize_utf8(e.tokenizer.decode(ids))}});
    }));
}

}  // namespace pensieve::server
