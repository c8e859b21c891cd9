// Several inputs of an embedding model share forward passes (engine/embed.h): how they
// are grouped, and that each input's vector is the one it gets alone, bit for bit, for
// every pooling (../shared/models/arch/bert.gguf).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "engine/embed.h"
#include "engine/encoder_queue.h"
#include "model/model.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace pensieve {
namespace {

using Groups = std::vector<std::pair<size_t, size_t>>;

TEST(EncoderPasses, GroupsFillTheTokenBudgetInOrder) {
    EXPECT_EQ(pass_groups({}, 10), Groups{});
    EXPECT_EQ(pass_groups({3, 3, 3, 3}, 10), (Groups{{0, 3}, {3, 4}}));
    EXPECT_EQ(pass_groups({10, 1}, 10), (Groups{{0, 1}, {1, 2}}));
    EXPECT_EQ(pass_groups({12, 2, 2}, 10), (Groups{{0, 1}, {1, 3}}));  // too long: a pass of its own
    EXPECT_EQ(pass_groups({4, 4, 2}, 10), (Groups{{0, 3}}));
}

TEST(EncoderPasses, InputsSharingAPassEmbedAsAlone) {
    const auto model = load_model(shared_dir() + "/models/arch/bert.gguf");
    const auto tok = Tokenizer::from_gguf(model->file());
    ThreadPool pool(2);
    std::vector<std::vector<int32_t>> inputs;
    for (const char* text : {"a cat", "the old man and the sea went out to fish on a cold morning", "x",
                             "dogs and cats and birds"})
        inputs.push_back(tok->encode(text, true));
    for (Pooling pooling : {Pooling::Mean, Pooling::Cls, Pooling::Last}) {
        const std::vector<std::vector<float>> together = embed_inputs(*model, pool, inputs, pooling);
        ASSERT_EQ(together.size(), inputs.size());
        for (size_t i = 0; i < inputs.size(); ++i)
            EXPECT_EQ(together[i], embed_tokens(*model, pool, inputs[i], pooling)) << pooling_name(pooling) << " " << i;
    }
    // A bad input is named by its index.
    inputs[2].clear();
    try {
        embed_inputs(*model, pool, inputs, Pooling::Mean);
        FAIL() << "an empty input was embedded";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("input[2]: the input is empty"), std::string::npos) << e.what();
    }
}

// Requests that arrive while a round runs are taken together in the next one: three
// requests in two rounds, each getting exactly its own vectors (as alone).
TEST(EncoderQueue, RequestsArrivingTogetherShareARound) {
    const auto model = load_model(shared_dir() + "/models/arch/bert.gguf");
    const auto tok = Tokenizer::from_gguf(model->file());
    ThreadPool pool(2);
    EncoderQueue queue(*model, pool);
    const std::vector<std::vector<std::vector<int32_t>>> requests = {
        {tok->encode("a cat", true)},
        {tok->encode("the old man and the sea", true), tok->encode("x", true)},
        {tok->encode("dogs and birds", true)}};
    std::vector<std::vector<std::vector<float>>> got(requests.size());
    std::vector<std::thread> threads;
    {
        // Hold the model: the first request's round waits in its pass while the others queue.
        std::unique_lock<std::mutex> hold(model->forward_mutex());
        threads.emplace_back([&] { got[0] = queue.embed(requests[0], Pooling::Mean); });
        while (queue.stats().rounds < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        for (size_t r = 1; r < requests.size(); ++r)
            threads.emplace_back([&, r] { got[r] = queue.embed(requests[r], r == 2 ? Pooling::Cls : Pooling::Mean); });
        while (queue.waiting() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(queue.stats().requests, 3u);
    EXPECT_EQ(queue.stats().rounds, 2u);
    for (size_t r = 0; r < requests.size(); ++r) {
        ASSERT_EQ(got[r].size(), requests[r].size());
        for (size_t i = 0; i < requests[r].size(); ++i)
            EXPECT_EQ(got[r][i], embed_tokens(*model, pool, requests[r][i], r == 2 ? Pooling::Cls : Pooling::Mean)) << r;
    }
    // A bad input is refused before it joins the queue.
    EXPECT_THROW(queue.embed({{}}, Pooling::Mean), Error);
    EXPECT_EQ(queue.stats().requests, 3u);
}

}  // namespace
}  // namespace pensieve
