// Routes that are not one vendor's API: GET /health, GET /metrics, POST /tokenize,
// POST /detokenize.
#include "server/json_fields.h"
#include "server/routes.h"
#include "tokenizer/tokenizer.h"
#include "util/utf8.h"

namespace pensieve::server {

void register_misc_routes(httplib::Server& svr, ServerContext& ctx) {
    // Load balancers and scripts poll this before the model is ready; no auth.
    svr.Get("/health", [&ctx](const httplib::Request&, httplib::Response& res) {
        if (ctx.draining) write_json(res, {{"status", "shutting_down"}}, 503);
        else if (!ctx.engine()) write_json(res, {{"status", "loading"}}, 503);
        else write_json(res, {{"status", "ok"}});
    });

    svr.Get("/metrics", [&ctx](const httplib::Request&, httplib::Response& res) {
        Engine* e = ctx.engine();
        SchedulerStats stats;
        if (e) stats = e->scheduler.stats();
        res.set_content(ctx.metrics.render(e ? &stats : nullptr), "text/plain; version=0.0.4; charset=utf-8");
    });

    svr.Post("/tokenize", api_route(ctx, Dialect::OpenAI, [](const httplib::Request& req, httplib::Response& res, Engine& e) {
        const json body = parse_body(req.body);
        const std::string content = require_string(body, "content");
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

    svr.Post("/detokenize", api_route(ctx, Dialect::OpenAI, [](const httplib::Request& req, httplib::Response& res, Engine& e) {
        const json body = parse_body(req.body);
        const json* tokens = field(body, "tokens");
        if (!tokens) bad_request("tokens is required", "tokens");
        if (!tokens->is_array()) bad_request("tokens must be an array of token ids", "tokens");
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
