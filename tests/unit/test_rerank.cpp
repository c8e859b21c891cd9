// Reranking with a cross-encoder: a reranker file is made from ../shared/models/arch/
// bert.gguf by adding a classification head (cls, cls.output) with seeded random weights
// and pooling_type rank. Its scores are checked against the definition (the head applied
// by hand to the model's first-token vector), pairs scored together against each alone,
// the pair layout, and POST /v1/rerank (shape, order, top_n, documents, the 400s).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <thread>
#include <unistd.h>

#include "engine/embed.h"
#include "engine/encoder_queue.h"
#include "engine/rerank.h"
#include "util/error.h"
#include "server_harness.h"

namespace pensieve {
namespace {

using nlohmann::json;

// Seeded weights of the classification head, kept for the by-hand check.
struct Head {
    int64_t E = 0;
    std::vector<float> dense_w, dense_b, out_w, out_b;  // {E, E}, {E}, {E, 1}, {1}
};

struct Reranker {
    std::string path;
    Head head;
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<ThreadPool> pool;

    static Reranker& get() {
        static Reranker r = [] {
            Reranker x;
            const auto bert = GgufFile::open(shared_dir() + "/models/arch/bert.gguf");
            GgufWriter w;
            w.copy_metadata(*bert);
            w.set_u32("bert.pooling_type", 4);  // rank
            for (const GgufTensor& t : bert->tensors()) w.add_tensor(t.name, t.dims, t.type, t.data, t.nbytes);
            const int64_t E = bert->get_int("bert.embedding_length");
            Head& h = x.head;
            h.E = E;
            std::mt19937 rng(11);
            std::normal_distribution<float> d(0.0f, 1.0f / std::sqrt(float(E)));
            for (auto* v : {&h.dense_w, &h.dense_b, &h.out_w, &h.out_b}) {
                const size_t n = v == &h.dense_w ? size_t(E * E) : v == &h.out_b ? 1 : size_t(E);
                for (size_t i = 0; i < n; ++i) v->push_back(d(rng));
            }
            w.add_tensor("cls.weight", {E, E}, GgmlType::F32, h.dense_w.data(), h.dense_w.size() * 4);
            w.add_tensor("cls.bias", {E}, GgmlType::F32, h.dense_b.data(), h.dense_b.size() * 4);
            w.add_tensor("cls.output.weight", {E, 1}, GgmlType::F32, h.out_w.data(), h.out_w.size() * 4);
            w.add_tensor("cls.output.bias", {1}, GgmlType::F32, h.out_b.data(), 4);
            x.path = ::testing::TempDir() + "pensieve-reranker-" + std::to_string(getpid()) + ".gguf";
            w.write(x.path);
            x.model = load_model(x.path);
            x.tokenizer = Tokenizer::from_gguf(x.model->file());
            std::remove(x.path.c_str());  // the mapping stays valid
            x.pool = std::make_unique<ThreadPool>(2);
            return x;
        }();
        return r;
    }
};

// The first-token vector of the pair, from a forward pass of its own (pooling rank = cls).
std::vector<float> first_token_vector(Reranker& r, const RerankPair& pair) {
    Batch b;
    for (size_t t = 0; t < pair.tokens.size(); ++t) b.add(pair.tokens[t], int32_t(t), 0, true);
    b.token_types = pair.types;
    std::vector<float> pooled(size_t(r.model->config().n_embd));
    ForwardOutputs out;
    out.pooled = pooled.data();
    KvCache cache = r.model->make_cache(int(pair.tokens.size()), 1);
    r.model->forward(b, cache, *r.pool, out);
    return pooled;
}

// s = out_b + out_w . tanh(dense_w h + dense_b), in double.
double score_by_hand(const Head& h, const std::vector<float>& v) {
    double s = h.out_b[0];
    for (int64_t j = 0; j < h.E; ++j) {
        double a = h.dense_b[size_t(j)];
        for (int64_t k = 0; k < h.E; ++k) a += double(h.dense_w[size_t(j * h.E + k)]) * v[size_t(k)];
        s += double(h.out_w[size_t(j)]) * std::tanh(a);
    }
    return s;
}

const char* kQuery = "what does a cat like to eat";
const std::vector<std::string> kDocs = {
    "Cats like fish and milk.", "The train leaves at noon from the north station.",
    "A small cat ate the fish that the old man left on the table, then it slept in the sun.", "Blue."};

TEST(Rerank, LoadsTheHeadAndSaysSo) {
    Reranker& r = Reranker::get();
    EXPECT_EQ(r.model->config().pooling, Pooling::Rank);
    EXPECT_EQ(r.model->config().n_cls_out, 1);
    EXPECT_TRUE(can_rerank(*r.model));
    const auto plain = load_model(shared_dir() + "/models/arch/bert.gguf");
    EXPECT_FALSE(can_rerank(*plain));
    EXPECT_THROW(rerank_scores(*plain, *r.pool, {make_rerank_pair(*r.tokenizer, *plain, "q", "d")}), Error);
}

// BERT's pair layout: [CLS] query [SEP] document [SEP], the document in segment 1.
TEST(Rerank, PairIsClsQuerySepDocumentSepWithSegments) {
    Reranker& r = Reranker::get();
    const Tokenizer& tok = *r.tokenizer;
    const RerankPair p = make_rerank_pair(tok, *r.model, kQuery, kDocs[0]);
    std::vector<int32_t> want = tok.encode(kQuery, true);
    const size_t query_part = want.size();
    for (int32_t id : tok.encode(kDocs[0], false)) want.push_back(id);
    want.push_back(tok.sep_id());
    EXPECT_EQ(p.tokens, want);
    EXPECT_EQ(p.tokens.front(), tok.bos_id());
    EXPECT_EQ(p.tokens[query_part - 1], tok.sep_id());
    ASSERT_EQ(p.types.size(), p.tokens.size());
    const int32_t second = r.model->config().n_token_types > 1 ? 1 : 0;
    for (size_t i = 0; i < p.types.size(); ++i) EXPECT_EQ(p.types[i], i < query_part ? 0 : second) << i;
    EXPECT_FALSE(p.truncated);

    // A document past the model's positions is cut, and still ends with [SEP].
    std::string long_doc;
    for (int i = 0; i < 400; ++i) long_doc += "fish and milk ";
    const RerankPair cut = make_rerank_pair(tok, *r.model, kQuery, long_doc);
    EXPECT_TRUE(cut.truncated);
    EXPECT_EQ(int(cut.tokens.size()), embedding_max_tokens(*r.model));
    EXPECT_EQ(cut.tokens.back(), tok.sep_id());
    std::string long_query;
    for (int i = 0; i < 600; ++i) long_query += "cat ";
    EXPECT_THROW(make_rerank_pair(tok, *r.model, long_query, "d"), Error);
}

TEST(Rerank, ScoreIsTheHeadOnTheFirstTokenVector) {
    Reranker& r = Reranker::get();
    for (const std::string& doc : kDocs) {
        const RerankPair p = make_rerank_pair(*r.tokenizer, *r.model, kQuery, doc);
        const std::vector<float> s = rerank_scores(*r.model, *r.pool, {p});
        ASSERT_EQ(s.size(), 1u);
        const double want = score_by_hand(r.head, first_token_vector(r, p));
        EXPECT_NEAR(s[0], want, 1e-4 * (1.0 + std::fabs(want))) << doc;
    }
}

// Segment 1 changes what the model reads: the same tokens all in segment 0 score otherwise.
TEST(Rerank, SegmentsReachTheModel) {
    Reranker& r = Reranker::get();
    if (r.model->config().n_token_types < 2) GTEST_SKIP() << "the model has one token type";
    RerankPair p = make_rerank_pair(*r.tokenizer, *r.model, kQuery, kDocs[0]);
    RerankPair flat = p;
    std::fill(flat.types.begin(), flat.types.end(), 0);
    const std::vector<float> s = rerank_scores(*r.model, *r.pool, {p, flat});
    EXPECT_GT(std::fabs(s[0] - s[1]), 1e-6);
}

// Pairs of different lengths share passes (one sequence each): every score is its own
// pair's, as scored alone.
TEST(Rerank, PairsScoredTogetherScoreAsAlone) {
    Reranker& r = Reranker::get();
    std::vector<RerankPair> pairs;
    for (const std::string& d : kDocs) pairs.push_back(make_rerank_pair(*r.tokenizer, *r.model, kQuery, d));
    const std::vector<float> together = rerank_scores(*r.model, *r.pool, pairs);
    ASSERT_EQ(together.size(), pairs.size());
    for (size_t i = 0; i < pairs.size(); ++i) {
        const float alone = rerank_scores(*r.model, *r.pool, {pairs[i]})[0];
        EXPECT_NEAR(together[i], alone, 1e-5 * (1.0 + std::fabs(alone))) << i;
    }
}

// Rerank requests arriving together share a round of the server's encoder queue, with
// the scores of each request its own.
TEST(Rerank, RequestsSharingARoundGetTheirOwnScores) {
    Reranker& r = Reranker::get();
    EncoderQueue queue(*r.model, *r.pool);
    std::vector<std::vector<RerankPair>> requests(3);
    for (size_t i = 0; i < kDocs.size(); ++i)
        requests[i % 3].push_back(make_rerank_pair(*r.tokenizer, *r.model, kQuery, kDocs[i]));
    std::vector<std::vector<float>> got(requests.size());
    std::vector<std::thread> threads;
    {
        std::unique_lock<std::mutex> hold(r.model->forward_mutex());
        threads.emplace_back([&] { got[0] = queue.rerank(requests[0]); });
        while (queue.stats().rounds < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        for (size_t q = 1; q < requests.size(); ++q) threads.emplace_back([&, q] { got[q] = queue.rerank(requests[q]); });
        while (queue.waiting() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(queue.stats().rounds, 2u);
    for (size_t q = 0; q < requests.size(); ++q) {
        ASSERT_EQ(got[q].size(), requests[q].size());
        for (size_t i = 0; i < requests[q].size(); ++i) {
            const float alone = rerank_scores(*r.model, *r.pool, {requests[q][i]})[0];
            EXPECT_NEAR(got[q][i], alone, 1e-5 * (1.0 + std::fabs(alone))) << q << " " << i;
        }
    }
    const auto plain = load_model(shared_dir() + "/models/arch/bert.gguf");
    EncoderQueue plain_queue(*plain, *r.pool);
    EXPECT_THROW(plain_queue.rerank(requests[0]), Error);
}

// ---- POST /v1/rerank ----

using namespace pensieve::server;
using namespace pensieve::test_server;

struct RerankServer {
    std::unique_ptr<TestServer> server;
    static TestServer& get() {
        static RerankServer s = [] {
            RerankServer x;
            Reranker& r = Reranker::get();
            ServerOptions o;
            o.n_ctx = 512;
            x.server = std::make_unique<TestServer>(o, /*load=*/false);
            x.server->http->set_model(*r.model, *r.tokenizer, *r.pool, "reranker.gguf");
            return x;
        }();
        return *s.server;
    }
};

TEST(ServerRerank, ResultsAreSortedScoresOfEachDocument) {
    Reranker& r = Reranker::get();
    json docs = json::array();
    for (size_t i = 0; i < kDocs.size(); ++i) docs.push_back(i == 1 ? json{{"text", kDocs[i]}} : json(kDocs[i]));
    const Reply rep = post(RerankServer::get(), "/v1/rerank",
                           json{{"model", "reranker"}, {"query", kQuery}, {"documents", docs}});
    ASSERT_EQ(rep.status, 200) << rep.raw;
    EXPECT_EQ(rep.body["object"], "list");
    EXPECT_EQ(rep.body["model"], "reranker.gguf");
    const json& res = rep.body["results"];
    ASSERT_EQ(res.size(), kDocs.size());
    int64_t tokens = 0;
    std::vector<bool> seen(kDocs.size(), false);
    for (size_t k = 0; k < res.size(); ++k) {
        const size_t i = res[k]["index"].get<size_t>();
        ASSERT_LT(i, kDocs.size());
        EXPECT_FALSE(seen[i]);
        seen[i] = true;
        const RerankPair p = make_rerank_pair(*r.tokenizer, *r.model, kQuery, kDocs[i]);
        tokens += int64_t(p.tokens.size());
        EXPECT_NEAR(res[k]["relevance_score"].get<double>(), rerank_scores(*r.model, *r.pool, {p})[0], 1e-5);
        EXPECT_FALSE(res[k].contains("document"));
        if (k > 0) EXPECT_GE(res[k - 1]["relevance_score"].get<double>(), res[k]["relevance_score"].get<double>());
    }
    EXPECT_EQ(rep.body["usage"]["prompt_tokens"], tokens);
    EXPECT_EQ(rep.body["usage"]["total_tokens"], tokens);
}

TEST(ServerRerank, TopNAndReturnDocuments) {
    const json body = {{"query", kQuery}, {"documents", kDocs}};
    const Reply all = post(RerankServer::get(), "/rerank", body);
    ASSERT_EQ(all.status, 200) << all.raw;
    json b = body;
    b["top_n"] = 2;
    b["return_documents"] = true;
    const Reply top = post(RerankServer::get(), "/v1/rerank", b);
    ASSERT_EQ(top.status, 200) << top.raw;
    ASSERT_EQ(top.body["results"].size(), 2u);
    for (size_t k = 0; k < 2; ++k) {
        EXPECT_EQ(top.body["results"][k]["index"], all.body["results"][k]["index"]);
        const size_t i = top.body["results"][k]["index"].get<size_t>();
        EXPECT_EQ(top.body["results"][k]["document"]["text"], kDocs[i]);
    }
}

TEST(ServerRerank, BadRequestsAndModelsThatCannotRerankAre400) {
    TestServer& s = RerankServer::get();
    expect_openai_error(post(s, "/v1/rerank", json{{"documents", kDocs}}), 400, "query");
    expect_openai_error(post(s, "/v1/rerank", json{{"query", "q"}}), 400, "documents");
    expect_openai_error(post(s, "/v1/rerank", json{{"query", "q"}, {"documents", json::array()}}), 400, "documents");
    expect_openai_error(post(s, "/v1/rerank", json{{"query", "q"}, {"documents", {"a", 5}}}), 400, "documents[1]");
    expect_openai_error(post(s, "/v1/rerank", json{{"query", "q"}, {"documents", kDocs}, {"top_n", 0}}), 400, "top_n");
    std::string long_query;
    for (int i = 0; i < 600; ++i) long_query += "cat ";
    expect_openai_error(post(s, "/v1/rerank", json{{"query", long_query}, {"documents", kDocs}}), 400, "query");
    // A reranker does not generate text.
    expect_openai_error(post(s, "/v1/chat/completions", json{{"messages", {{{"role", "user"}, {"content", "hi"}}}}}),
                        400);
    // A model that generates text has no classification head.
    TestServer plain;
    expect_openai_error(post(plain, "/v1/rerank", json{{"query", "q"}, {"documents", kDocs}}), 400, "not a reranker");
}

}  // namespace
}  // namespace pensieve
