#include "engine/rerank.h"

#include <algorithm>
#include <mutex>

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

namespace {

// Scores of pairs[first, last) in one pass, one sequence each.
void score_pass(Model& model, ThreadPool& pool, const std::vector<RerankPair>& pairs, size_t first, size_t last,
                float* scores) {
    const int n_out = model.config().n_cls_out;
    Batch batch;
    size_t longest = 0;
    for (size_t i = first; i < last; ++i) {
        const RerankPair& p = pairs[i];
        if (p.tokens.empty()) fail("pair ", i, " is empty");
        for (size_t t = 0; t < p.tokens.size(); ++t) {
            batch.add(p.tokens[t], int32_t(t), int32_t(i - first), true);
            batch.token_types.push_back(p.types.empty() ? 0 : p.types[t]);
        }
        longest = std::max(longest, p.tokens.size());
    }
    std::vector<float> out(size_t(last - first) * size_t(n_out));
    ForwardOutputs fo;
    fo.scores = out.data();
    {
        std::lock_guard<std::mutex> turn(model.forward_mutex());
        KvCache cache = model.make_cache(int(longest), int(last - first));
        model.forward(batch, cache, pool, fo);
    }
    for (size_t i = first; i < last; ++i) scores[i] = out[(i - first) * size_t(n_out)];
}

}  // namespace

std::vector<float> rerank_scores(Model& model, ThreadPool& pool, const std::vector<RerankPair>& pairs) {
    if (!can_rerank(model))
        fail("this model (", model.config().arch, ") has no classification head: it cannot rerank");
    std::vector<float> scores(pairs.size());
    size_t first = 0;
    while (first < pairs.size()) {
        size_t last = first, tokens = 0;
        while (last < pairs.size() && (last == first || tokens + pairs[last].tokens.size() <= size_t(kRerankPassTokens)))
            tokens += pairs[last++].tokens.size();
        score_pass(model, pool, pairs, first, last, scores.data());
        first = last;
    }
    return scores;
}

}  // namespace pensieve
