// Reranking with a cross-encoder (a BERT with a classification head, GGUF pooling_type
// rank): the query and one document are read together as one sequence, and the head's
// first output is how relevant the document is to the query (a raw logit: higher is more
// relevant; the reference engine's server returns the same number).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pensieve {

class Model;
class ThreadPool;
class Tokenizer;

// One (query, document) pair as the model reads it: the tokens and their segments.
struct RerankPair {
    std::vector<int32_t> tokens;
    std::vector<int32_t> types;  // 0: the query's part, 1: the document's (when the model has segments)
    bool truncated = false;      // the document was cut to fit the model's positions
};

// The pair as the model was trained to read it. WordPiece (BERT) vocabularies:
// [CLS] query [SEP] document [SEP], the document in segment 1 when the model has token
// types; others (RoBERTa, XLM-R): <s> query </s></s> document </s>. A document that does
// not fit the model's positions is cut; a query that leaves no room is an Error.
RerankPair make_rerank_pair(const Tokenizer& tok, const Model& model, const std::string& query,
                            const std::string& document);

// True when the model can rerank (it has a classification head).
bool can_rerank(const Model& model);

// Throws Error when the model cannot rerank or a pair is one forward() would refuse.
void check_rerank_pairs(const Model& model, const std::vector<RerankPair>& pairs);

// The relevance score of each pair, in order. Pairs share forward passes (one sequence
// each, up to kEncoderPassTokens tokens a pass: engine/embed.h); each pass holds the
// model's forward_mutex. Throws Error when the model cannot rerank.
std::vector<float> rerank_scores(Model& model, ThreadPool& pool, const std::vector<RerankPair>& pairs);

}  // namespace pensieve
