// POST /v1/embeddings on an embedding model (../shared/models/arch/bert.gguf) in-process:
// the OpenAI response shape, vectors that match the reference (../shared/reference/arch/
// bert.json) once normalised, batches, token-id inputs, base64, the 400s for bad input,
// and generation routes refused with a clear 400. About 0.3 s.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "server_harness.h"

namespace pensieve::server {
namespace {

using nlohmann::json;
using namespace pensieve::test_server;

struct BertServer {
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<ThreadPool> pool;
    std::unique_ptr<TestServer> server;
    json ref;
    static BertServer& get() {
        static BertServer b = [] {
            BertServer s;
            s.model = load_model(shared_dir() + "/models/arch/bert.gguf");
            s.tokenizer = Tokenizer::from_gguf(s.model->file());
            s.pool = std::make_unique<ThreadPool>(1);
            ServerOptions o;
            o.n_ctx = 512;  // the model's learned positions
            s.server = std::make_unique<TestServer>(o, /*load=*/false);
            s.server->http->set_model(*s.model, *s.tokenizer, *s.pool, "bert.gguf");
            std::ifstream in(shared_dir() + "/reference/arch/bert.json");
            s.ref = json::parse(in);
            return s;
        }();
        return b;
    }
};

Reply embed(const json& body) { return post(*BertServer::get().server, "/v1/embeddings", body); }

std::vector<float> unit(std::vector<float> v) {
    double sum = 0;
    for (float x : v) sum += double(x) * x;
    for (float& x : v) x = float(x / std::sqrt(sum));
    return v;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < a.size(); ++i) dot += double(a[i]) * b[i], na += double(a[i]) * a[i], nb += double(b[i]) * b[i];
    return dot / std::sqrt(na * nb);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
    return worst;
}

std::vector<float> from_base64(const std::string& s) {
    auto value = [](char c) -> uint32_t {
        if (c >= 'A' && c <= 'Z') return uint32_t(c - 'A');
        if (c >= 'a' && c <= 'z') return uint32_t(c - 'a' + 26);
        if (c >= '0' && c <= '9') return uint32_t(c - '0' + 52);
        return c == '+' ? 62u : 63u;
    };
    std::string bytes;
    for (size_t i = 0; i + 3 < s.size(); i += 4) {
        uint32_t w = 0;
        for (int j = 0; j < 4; ++j) w = (w << 6) | (s[i + j] == '=' ? 0u : value(s[i + j]));
        for (int j = 0; j < 3; ++j)
            if (s[i + 1 + j] != '=') bytes += char((w >> (16 - 8 * j)) & 0xff);
    }
    std::vector<float> v(bytes.size() / sizeof(float));
    std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
    return v;
}

TEST(ServerEmbeddings, OneTextInOpenAIShapeMatchesTheReference) {
    const json& c = BertServer::get().ref["cases"][0];
    Reply r = embed({{"model", "bert"}, {"input", c["prompt"]}});
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["object"], "list");
    EXPECT_EQ(r.body["model"], "bert.gguf");
    ASSERT_EQ(r.body["data"].size(), 1u);
    const json& d = r.body["data"][0];
    EXPECT_EQ(d["object"], "embedding");
    EXPECT_EQ(d["index"], 0);
    const auto v = d["embedding"].get<std::vector<float>>();
    ASSERT_EQ(v.size(), 64u);
    const auto want = unit(c["embedding"].get<std::vector<float>>());
    EXPECT_NEAR(cosine(v, unit(v)), 1.0, 1e-6);  // L2-normalised by default
    EXPECT_GE(cosine(v, want), 0.9999);
    EXPECT_LE(max_abs_diff(v, want), 1e-3);
    const int n = int(c["prompt_tokens"].size());
    EXPECT_EQ(r.body["usage"]["prompt_tokens"], n);
    EXPECT_EQ(r.body["usage"]["total_tokens"], n);
}

TEST(ServerEmbeddings, BatchesTokenIdsRawAndBase64AgreeWithSingleTexts) {
    const json& cases = BertServer::get().ref["cases"];
    json texts = json::array();
    for (const json& c : cases) texts.push_back(c["prompt"]);
    Reply batch = embed({{"input", texts}});
    ASSERT_EQ(batch.status, 200) << batch.raw;
    ASSERT_EQ(batch.body["data"].size(), cases.size());
    int total = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
        EXPECT_EQ(batch.body["data"][i]["index"], i);
        Reply one = embed({{"input", cases[i]["prompt"]}});
        EXPECT_EQ(batch.body["data"][i]["embedding"], one.body["data"][0]["embedding"]) << i;
        total += int(cases[i]["prompt_tokens"].size());
    }
    EXPECT_EQ(batch.body["usage"]["prompt_tokens"], total);

    const json& c = cases[1];
    const json floats = embed({{"input", c["prompt"]}}).body["data"][0]["embedding"];
    // Token ids (one list, or a list of lists) instead of text.
    EXPECT_EQ(embed({{"input", c["prompt_tokens"]}}).body["data"][0]["embedding"], floats);
    EXPECT_EQ(embed({{"input", json::array({c["prompt_tokens"]})}}).body["data"][0]["embedding"], floats);
    // Raw (our extension): the reference's pooled vector itself.
    Reply raw = embed({{"input", c["prompt"]}, {"normalize", false}});
    ASSERT_EQ(raw.status, 200) << raw.raw;
    EXPECT_LE(max_abs_diff(raw.body["data"][0]["embedding"].get<std::vector<float>>(),
                           c["embedding"].get<std::vector<float>>()), 1e-3);
    // base64 of little-endian float32: the same values bit for bit.
    Reply b64 = embed({{"input", c["prompt"]}, {"encoding_format", "base64"}});
    ASSERT_EQ(b64.status, 200) << b64.raw;
    EXPECT_EQ(from_base64(b64.body["data"][0]["embedding"].get<std::string>()), floats.get<std::vector<float>>());
}

TEST(ServerEmbeddings, BadInputIsA400) {
    expect_openai_error(embed(json::object()), 400, "input");
    expect_openai_error(embed({{"input", json::array()}}), 400, "input");
    expect_openai_error(embed({{"input", 7}}), 400, "input");
    expect_openai_error(embed({{"input", json::array({"a", 3})}}), 400, "input[1]");
    expect_openai_error(embed({{"input", json::array({1, -2})}}), 400, "token ids");
    expect_openai_error(embed({{"input", json::array({101, 999999, 102})}}), 400, "vocabulary");
    expect_openai_error(embed({{"input", json::array({json::array()})}}), 400, "empty");
    std::string long_text;
    for (int i = 0; i < 600; ++i) long_text += "word ";
    expect_openai_error(embed({{"input", long_text}}), 400, "at most 512");
    expect_openai_error(embed({{"input", "x"}, {"encoding_format", "hex"}}), 400, "encoding_format");
    expect_openai_error(embed({{"input", "x"}, {"dimensions", 32}}), 400, "dimensions");
    EXPECT_EQ(embed({{"input", "x"}, {"dimensions", 64}}).status, 200);
    expect_openai_error(post(*BertServer::get().server, "/v1/embeddings", std::string("{\"input\":")), 400);
}

TEST(ServerEmbeddings, GenerationOnAnEmbeddingModelIsA400) {
    const TestServer& s = *BertServer::get().server;
    expect_openai_error(post(s, "/v1/chat/completions", chat_body("Hi", 4)), 400, "embeddings only");
    expect_openai_error(post(s, "/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 4}}), 400, "embeddings only");
    const json messages = {{"model", "m"}, {"max_tokens", 4}, {"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})}};
    expect_anthropic_error(post(s, "/v1/messages", messages), 400, "invalid_request_error");
    // The server is still up and embedding.
    EXPECT_EQ(embed({{"input", "still here"}}).status, 200);
    EXPECT_EQ(get(s, "/health").status, 200);
}

}  // namespace
}  // namespace pensieve::server
