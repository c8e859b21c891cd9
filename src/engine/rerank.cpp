#include "engine/rerank.h"

#include <algorithm>

#include "engine/embed.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pensieve {

bool can_rerank(const Model& model) { return model.config().n_cls_out > 0; }

RerankPair make_rerank_pair(const Tokenizer& tok, const Model& model, const std::string& query,
                            const std::string& document) {
    const bool wordpiece = tok.model_name() == "bert";
    const int32_t sep = tok.sep_id() >= 0 ? tok.sep_id() : tok.eos_id();
    RerankPair p;
    p.tokens = tok.encode(query, true);  // [CLS] query [SEP] / <s> query </s>
    if (!wordpiece && sep >= 0) p.tokens.push_back(sep);
    const size_t query_part = p.tokens.size();
    std::vector<int32_t> doc = tok.encode(document, false);
    const size_t limit = size_t(embedding_max_tokens(model));
    const size_t tail = sep >= 0 ? 1 : 0;
    if (query_part + tail + 1 > limit)
        fail("the query is ", query_part, " tokens: with a document it does not fit this model's ", limit,
             " positions");
    if (query_part + doc.size() + tail > limit) {
        doc.resize(limit - query_part - tail);
        p.truncated = true;
    }
    p.tokens.insert(p.tokens.end(), doc.begin(), doc.end());
    if (sep >= 0) p.tokens.push_back(sep);
    const int32_t second = wordpiece && model.config().n_token_types > 1 ? 1 : 0;
    p.types.assign(p.tokens.size(), 0);
    std::fill(p.types.begin() + long(query_part), p.types.end(), second);
    return p;
}

void check_rerank_pairs(const Model& model, const std::vector<RerankPair>& pairs) {
    if (!can_rerank(model))
        fail("this model (", model.config().arch, ") has no classification head: it cannot rerank");
    for (const RerankPair& p : pairs) {
        check_embedding_input(model, p.tokens);
        if (p.types.size() != p.tokens.size()) fail("a pair's segments do not match its tokens");
    }
}

std::vector<float> rerank_scores(Model& model, ThreadPool& pool, const std::vector<RerankPair>& pairs) {
    check_rerank_pairs(model, pairs);
    std::vector<std::vector<int32_t>> tokens, types;
    std::vector<size_t> lengths;
    for (const RerankPair& p : pairs) {
        tokens.push_back(p.tokens);
        types.push_back(p.types);
        lengths.push_back(p.tokens.size());
    }
    const size_t n_out = size_t(model.config().n_cls_out);
    std::vector<float> scores;
    for (const auto& [first, last] : pass_groups(lengths, kEncoderPassTokens)) {
        std::vector<float> out((last - first) * n_out);
        ForwardOutputs fo;
        fo.scores = out.data();
        encode_pass(model, pool, tokens, types, first, last, fo);
        for (size_t i = 0; i < last - first; ++i) scores.push_back(out[i * n_out]);  // the first output
    }
    return scores;
}

}  // namespace pensieve
