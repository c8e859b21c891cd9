// Tree rows (Batch::kv_slots): a row that stands at a position of its sequence but keeps
// its keys and values in a spare slot past the chain, so one pass can verify a draft's
// chain and a second choice at the same position (tree drafts, engine/scheduler.cpp).
// Its logits must be exactly those of a plain pass in which that token stands at that
// position (memcmp), the chain beside it must not notice it, and once its keys and values
// are moved to their place (KvCache::copy_position) decoding goes on as if it had been
// fed plainly.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "model/kv_cache.h"
#include "model/model.h"
#include "test_paths.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace pensieve {
namespace {

bool same_bits(const std::vector<float>& a, size_t a_row, const std::vector<float>& b, size_t b_row, size_t n) {
    return std::memcmp(&a[a_row * n], &b[b_row * n], n * sizeof(float)) == 0;
}

class TreeRows : public ::testing::Test {
protected:
    void SetUp() override {
        model_ = load_model(shared_dir() + "/models/synth-tiny-F16.gguf");
        V_ = size_t(model_->config().n_vocab);
        for (int i = 0; i < 21; ++i) prompt_.push_back(200 + 37 * i % 900);
    }
    // A cache holding the prompt (one pass), with sequence 1 given the same prompt too
    // so that two sequences share the tree pass.
    KvCache prefilled(KvType type = KvType::F16) {
        KvCache cache = model_->make_cache(128, 2, 0, type);
        Batch b;
        for (int seq = 0; seq < 2; ++seq)
            for (size_t i = 0; i < prompt_.size(); ++i) b.add(prompt_[i], int(i), seq, false);
        std::vector<float> none;
        model_->forward(b, cache, pool_, none.data());
        return cache;
    }
    // Logits of `tokens` fed plainly after the prompt in sequence 0.
    std::vector<float> plain(const std::vector<int32_t>& tokens) {
        KvCache cache = prefilled();
        Batch b;
        for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], int(prompt_.size() + i), 0, true);
        std::vector<float> logits(tokens.size() * V_);
        model_->forward(b, cache, pool_, logits.data());
        return logits;
    }

    std::unique_ptr<Model> model_;
    ThreadPool pool_{2};
    size_t V_ = 0;
    std::vector<int32_t> prompt_;
};

TEST_F(TreeRows, LeavesGiveThePlainLogitsOfTheirPositionAndTheChainIgnoresThem) {
    ASSERT_TRUE(model_->tree_rows());
    const int P = int(prompt_.size());
    const int32_t t0 = 311, d1 = 512, d2 = 77, a1 = 900, a2 = 45;
    // Sequence 0: the pending token, a chain of two drafts and a second choice at each
    // draft position (slots P+3, P+4); sequence 1 decodes one token in the same pass.
    KvCache cache = prefilled();
    Batch b;
    b.add(t0, P, 0, true);
    b.add(d1, P + 1, 0, true);
    b.add(d2, P + 2, 0, true);
    b.add(a1, P + 1, 0, true);
    b.add(a2, P + 2, 0, true);
    b.add(t0, P, 1, true);
    b.kv_slots = {P, P + 1, P + 2, P + 3, P + 4, P};
    std::vector<float> tree(6 * V_);
    model_->forward(b, cache, pool_, tree.data());
    EXPECT_EQ(cache.length(0), P + 5);
    EXPECT_EQ(cache.length(1), P + 1);

    const std::vector<float> chain = plain({t0, d1, d2}), first = plain({t0, a1}), second = plain({t0, d1, a2});
    for (size_t r = 0; r < 3; ++r) EXPECT_TRUE(same_bits(tree, r, chain, r, V_)) << "chain row " << r;
    EXPECT_TRUE(same_bits(tree, 3, first, 1, V_)) << "the leaf at P+1";
    EXPECT_TRUE(same_bits(tree, 4, second, 2, V_)) << "the leaf at P+2 (after d1)";
    EXPECT_TRUE(same_bits(tree, 5, chain, 0, V_)) << "the other sequence";
    EXPECT_FALSE(same_bits(tree, 3, tree, 1, V_));  // a1 and d1 differ: the test can tell

    // The first leaf is kept: its keys and values move to P+1; decoding on from there is
    // the plain decode of t0 a1 x.
    cache.copy_position(0, P + 3, P + 1);
    cache.truncate(0, P + 2);
    Batch next;
    next.add(600, P + 2, 0, true);
    std::vector<float> after(V_);
    model_->forward(next, cache, pool_, after.data());
    const std::vector<float> want = plain({t0, a1, 600});
    EXPECT_TRUE(same_bits(after, 0, want, 2, V_));
}

TEST_F(TreeRows, MalformedTreesAreErrors) {
    const int P = int(prompt_.size());
    std::vector<float> logits(4 * V_);
    {
        KvCache cache = prefilled();
        Batch b;
        b.add(311, P, 0, true);
        b.add(900, P + 1, 0, true);
        b.kv_slots = {P, P};  // a slot already taken
        EXPECT_THROW(model_->forward(b, cache, pool_, logits.data()), Error);
    }
    {
        KvCache cache = prefilled();
        Batch b;
        b.add(311, P, 0, true);
        b.add(900, P + 3, 0, true);
        b.kv_slots = {P, P + 1};  // a row standing past its slot
        EXPECT_THROW(model_->forward(b, cache, pool_, logits.data()), Error);
    }
    {
        KvCache cache = prefilled(KvType::Q8_0);  // the q8_0 kernels have no tree rows
        Batch b;
        b.add(311, P, 0, true);
        b.add(900, P, 0, true);
        b.kv_slots = {P, P + 1};
        EXPECT_THROW(model_->forward(b, cache, pool_, logits.data()), Error);
    }
}

}  // namespace
}  // namespace pensieve
