// POST /v1/rerank (also /rerank): the relevance of each document to a query, from a
// cross-encoder reranker (engine/rerank.h), in the shape other local servers and the
// hosted rerank APIs accept:
//   {"query": "...", "documents": ["...", {"text": "..."}], "top_n": 3, "return_documents": true}
//   -> {"object": "list", "model": ..., "results": [{"index": 2, "relevance_score": 4.1,
//       "document": {"text": "..."}}, ...], "usage": {"prompt_tokens": N, "total_tokens": N}}
// Results are sorted by relevance_score, highest first (a raw logit, as the reference
// engine's server gives it); top_n keeps the first n. A model without a classification
// head answers 400.
#include <algorithm>
#include <climits>
#include <numeric>

#include "engine/rerank.h"
#include "model/model.h"
#include "server/json_fields.h"
#include "server/routes.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pensieve::server {

namespace {

// The hosted APIs' own limit on documents per request.
constexpr size_t kMaxDocuments = 1000;

std::vector<std::string> parse_documents(const json& body) {
    const json* docs = field(body, "documents");
    if (!docs) bad_request("documents is required", "documents");
    if (!docs->is_array() || docs->empty()) bad_request("documents must be a non-empty array", "documents");
    if (docs->size() > kMaxDocuments)
        bad_request("documents has " + std::to_string(docs->size()) + " items; at most " +
                        std::to_string(kMaxDocuments), "documents");
    std::vector<std::string> out;
    for (size_t i = 0; i < docs->size(); ++i) {
        const json& d = (*docs)[i];
        const std::string where = "documents[" + std::to_string(i) + "]";
        if (d.is_string()) out.push_back(d.get<std::string>());
        else if (d.is_object() && field(d, "text") && (*field(d, "text")).is_string()) out.push_back(d["text"].get<std::string>());
        else bad_request(where + " must be a string or an object with a \"text\" string, not " + json_type_name(d), "documents");
    }
    return out;
}

void rerank(const httplib::Request& req, httplib::Response& res, Engine& e) {
    if (!can_rerank(e.model))
        throw ApiError(400, "this model is not a reranker (it has no classification head, pooling_type rank)", "model");
    const json body = parse_body(req.body);
    const std::string query = require_string(body, "query");
    const std::vector<std::string> documents = parse_documents(body);
    const int64_t top_n = get_int(body, "top_n", 1, INT32_MAX).value_or(int64_t(documents.size()));
    const bool return_documents = get_bool(body, "return_documents", false);

    std::vector<RerankPair> pairs;
    int64_t n_tokens = 0;
    for (size_t i = 0; i < documents.size(); ++i) {
        try {
            pairs.push_back(make_rerank_pair(e.tokenizer, e.model, query, documents[i]));
        } catch (const Error& err) {
            bad_request(err.what(), "query");
        }
        n_tokens += int64_t(pairs.back().tokens.size());
    }
    const std::vector<float> scores = e.encoder.rerank(pairs);  // shared passes with other requests

    std::vector<size_t> order(documents.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
    order.resize(std::min(order.size(), size_t(top_n)));
    json results = json::array();
    for (size_t i : order) {
        json r = {{"index", i}, {"relevance_score", scores[i]}};
        if (return_documents) r["document"] = {{"text", documents[i]}};
        results.push_back(std::move(r));
    }
    write_json(res, {{"object", "list"},
                     {"model", e.model_id},
                     {"results", std::move(results)},
                     {"usage", {{"prompt_tokens", n_tokens}, {"total_tokens", n_tokens}}}});
}

}  // namespace

void register_rerank_routes(Router& router, ServerContext& ctx) {
    router.post("/v1/rerank", api_route(ctx, Dialect::OpenAI, rerank));
    router.post("/rerank", api_route(ctx, Dialect::OpenAI, rerank));
}

}  // namespace pensieve::server
