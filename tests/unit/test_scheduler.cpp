// Continuous batching on a real model (stories260K): batched requests give the same
// greedy tokens as a request alone, prefixes are reused, cancellation frees the slot.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <mutex>
#include <thread>
#include <filesystem>
#include <unistd.h>
#include <cstdlib>

#include "engine/grammar.h"
#include "engine/scheduler.h"
#include "model/model.h"
#include "drain_stream.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "util/thread_pool.h"

namespace pensieve {
namespace {

using testing_support::Collected;
using testing_support::drain;

SchedulerConfig config(int slots, int ctx, int batch, int queue, bool reuse, std::string dir = "") {
    SchedulerConfig c;
    c.n_slots = slots;
    c.n_ctx = ctx;
    c.n_batch = batch;
    c.max_queue = queue;
    c.reuse_prefix = reuse;
    c.cache_dir = std::move(dir);
    return c;
}

class SchedulerTest : public ::testing::Test {
protected:
    void SetUp() override {
        model_ = load_model(shared_dir() + "/models/stories260K.gguf");
        tok_ = Tokenizer::from_gguf(model_->file());
        pool_ = std::make_unique<ThreadPool>(2);
        std::ifstream in(shared_dir() + "/reference/stories260K.json");
        ref_ = nlohmann::json::parse(in);
    }
    RequestParams greedy(const std::string& prompt, int n) {
        RequestParams p;
        p.prompt = tok_->encode(prompt, true);
        p.options.n_predict = n;
        p.options.sampling.temperature = 0.0f;
        p.options.ignore_eos = true;
        return p;
    }
    std::unique_ptr<Model> model_;
    std::unique_ptr<Tokenizer> tok_;
    std::unique_ptr<ThreadPool> pool_;
    nlohmann::json ref_;
};

TEST_F(SchedulerTest, SingleRequestMatchesReferenceGreedy) {
    Scheduler sched(*model_, *tok_, *pool_, config(1, 256, 64, 8, true));
    for (const auto& c : ref_["cases"]) {
        auto s = sched.submit(greedy(c["prompt"], 64));
        Collected out = drain(*s);
        EXPECT_EQ(out.tokens, c["greedy"].get<std::vector<int32_t>>()) << c["prompt"];
        EXPECT_EQ(out.text, c["greedy_text"].get<std::string>());
        EXPECT_EQ(out.finish.reason, "length");
        EXPECT_EQ(out.finish.n_generated, 64);
    }
}

// Four requests at once in four slots, with a small batch so prompt chunks and decode
// tokens of different requests share forward passes: every output equals the reference.
TEST_F(SchedulerTest, BatchedRequestsMatchSoloOutputs) {
    Scheduler sched(*model_, *tok_, *pool_, config(4, 256, 7, 8, true));
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (const auto& c : ref_["cases"]) streams.push_back(sched.submit(greedy(c["prompt"], 64)));
    for (size_t i = 0; i < streams.size(); ++i) {
        Collected out = drain(*streams[i]);
        EXPECT_EQ(out.tokens, ref_["cases"][i]["greedy"].get<std::vector<int32_t>>()) << i;
    }
    SchedulerStats st = sched.stats();
    EXPECT_EQ(st.requests_finished, 4u);
    EXPECT_EQ(st.active, 0);
    // 4 requests x 64 tokens in far fewer than 4 x 64 steps: they were batched.
    EXPECT_LT(st.steps, 4u * 64u);
}

TEST_F(SchedulerTest, MoreRequestsThanSlotsQueueAndAllFinish) {
    Scheduler sched(*model_, *tok_, *pool_, config(2, 256, 64, 16, true));
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (int r = 0; r < 3; ++r)
        for (const auto& c : ref_["cases"]) streams.push_back(sched.submit(greedy(c["prompt"], 16)));
    for (size_t i = 0; i < streams.size(); ++i) {
        Collected out = drain(*streams[i]);
        auto want = ref_["cases"][i % 4]["greedy"].get<std::vector<int32_t>>();
        want.resize(16);
        EXPECT_EQ(out.tokens, want) << i;
    }
}

TEST_F(SchedulerTest, SharedPrefixIsReusedAndGivesIdenticalOutput) {
    Scheduler sched(*model_, *tok_, *pool_, config(1, 256, 64, 8, true));
    const std::string first = "Once upon a time, there was a little girl named Lily.";
    Collected a = drain(*sched.submit(greedy(first, 8)));
    EXPECT_EQ(a.finish.n_cached, 0);
    // The next "turn" starts with the whole first prompt.
    const std::string second = first + " She had a big red ball";
    Collected b = drain(*sched.submit(greedy(second, 16)));
    // Reuse is in whole KV blocks: every full block of the first prompt is reused.
    const int first_len = int(tok_->encode(first, true).size());
    EXPECT_EQ(b.finish.n_cached, first_len / KvCache::kBlockSize * KvCache::kBlockSize);
    EXPECT_GT(b.finish.n_cached, 0);

    Scheduler fresh(*model_, *tok_, *pool_, config(1, 256, 64, 8, false));
    Collected c = drain(*fresh.submit(greedy(second, 16)));
    EXPECT_EQ(c.finish.n_cached, 0);
    EXPECT_EQ(b.tokens, c.tokens);
    EXPECT_EQ(sched.stats().cached_prompt_tokens, uint64_t(b.finish.n_cached));
}

TEST_F(SchedulerTest, CancelFreesTheSlot) {
    Scheduler sched(*model_, *tok_, *pool_, config(1, 2048, 64, 8, true));
    RequestParams p = greedy("Once upon a time", 1500);
    auto s = sched.submit(p);
    auto first = s->next(std::chrono::seconds(30));
    ASSERT_TRUE(first.has_value());
    s->cancel();
    Collected rest = drain(*s);
    EXPECT_EQ(rest.finish.reason, "cancelled");
    EXPECT_LT(rest.finish.n_generated, 1500);
    // The slot is free again: a new request runs to completion.
    Collected next = drain(*sched.submit(greedy("One day, a big red ball", 8)));
    EXPECT_EQ(next.finish.reason, "length");
    EXPECT_EQ(sched.stats().requests_cancelled, 1u);
}

TEST_F(SchedulerTest, StopStringEndsGeneration) {
    Scheduler sched(*model_, *tok_, *pool_, config(1, 256, 64, 8, true));
    RequestParams p = greedy("Once upon a time", 64);
    p.options.stop = {"Lily"};
    Collected out = drain(*sched.submit(p));
    EXPECT_EQ(out.text, ", there was a little girl named ");
    EXPECT_EQ(out.finish.reason, "stop");
    EXPECT_EQ(out.finish.stop_string, "Lily");
}

TEST_F(SchedulerTest, RejectsWhatCanNeverRun) {
    Scheduler sched(*model_, *tok_, *pool_, config(1, 32, 64, 1, true));
    RequestParams empty;
    EXPECT_THROW(sched.submit(empty), Error);
    RequestParams longp = greedy(std::string(400, 'a'), 4);
    EXPECT_THROW(sched.submit(longp), Error);
    RequestParams over = greedy("Once upon a time", 100);
    EXPECT_THROW(sched.submit(over), Error);
    RequestParams bad = greedy("Once", 4);
    bad.prompt.push_back(99999);
    EXPECT_THROW(sched.submit(bad), Error);
}

TEST_F(SchedulerTest, FullQueueRefuses) {
    Scheduler sched(*model_, *tok_, *pool_, config(1, 2048, 64, 1, true));
    auto busy = sched.submit(greedy("Once upon a time", 1000));
    // Wait until the first request holds the slot, then fill the one queue place.
    ASSERT_TRUE(busy->next(std::chrono::seconds(30)).has_value());
    auto queued = sched.submit(greedy("Once upon a time", 4));
    EXPECT_THROW(sched.submit(greedy("Once upon a time", 4)), QueueFullError);
    busy->cancel();
    EXPECT_EQ(drain(*queued).finish.reason, "length");
}

TEST_F(SchedulerTest, ShutdownCancelsEverything) {
    auto sched = std::make_unique<Scheduler>(*model_, *tok_, *pool_, config(1, 2048, 64, 8, true));
    auto a = sched->submit(greedy("Once upon a time", 1500));
    auto b = sched->submit(greedy("Once upon a time", 10));
    ASSERT_TRUE(a->next(std::chrono::seconds(30)).has_value());
    sched->shutdown();
    EXPECT_EQ(drain(*a).finish.reason, "cancelled");
    EXPECT_EQ(drain(*b).finish.reason, "cancelled");
}

// Two requests at once with the same long prompt prefix attach the same cached blocks:
// the pool's free-block count shows the prefix stored once.
TEST_F(SchedulerTest, SlotsSharingAPrefixUseItsBlocksOnce) {
    Scheduler sched(*model_, *tok_, *pool_, config(2, 512, 64, 8, true));
    std::string prefix;
    for (int i = 0; i < 6; ++i) prefix += "Once upon a time, there was a little girl named Lily. ";
    const int prefix_blocks = int(tok_->encode(prefix, true).size()) / KvCache::kBlockSize;
    ASSERT_GE(prefix_blocks, 4);
    drain(*sched.submit(greedy(prefix, 1)));  // caches the prefix

    auto a = sched.submit(greedy(prefix + "She saw a dog.", 300));
    auto b = sched.submit(greedy(prefix + "He had a ball.", 300));
    ASSERT_TRUE(a->next(std::chrono::seconds(30)).has_value());
    ASSERT_TRUE(b->next(std::chrono::seconds(30)).has_value());
    // Both run now: their block tables share the prefix blocks (stored once). The cache
    // statistics are refreshed at the end of each step, so give them a step or two.
    SchedulerStats mid = sched.stats();
    for (int i = 0; i < 500 && mid.kv_block_refs_active - mid.kv_blocks_active < prefix_blocks - 1; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        mid = sched.stats();
    }
    EXPECT_GE(mid.kv_block_refs_active - mid.kv_blocks_active, prefix_blocks - 1)
        << "the shared prefix must not be stored twice";
    EXPECT_EQ(mid.active, 2);
    a->cancel();
    b->cancel();
    Collected ra = drain(*a), rb = drain(*b);
    EXPECT_GE(ra.finish.n_cached, (prefix_blocks - 1) * KvCache::kBlockSize);
    EXPECT_GE(rb.finish.n_cached, (prefix_blocks - 1) * KvCache::kBlockSize);
}

// A long prompt arriving while another request streams is read in chunks of
// prefill_chunk_decoding tokens, so that stream pauses for one chunk's pass, not for a
// whole batch; both outputs stay those of each request alone.
TEST_F(SchedulerTest, ALongPromptAmongStreamsIsReadInSmallChunks) {
    std::string text;
    for (int i = 0; i < 10; ++i) text += "Once upon a time, there was a little girl named Lily. ";
    const RequestParams lone = greedy("Tom had a red ball.", 200);
    const RequestParams long_prompt = greedy(text, 4);
    ASSERT_GT(long_prompt.prompt.size(), 100u);
    Scheduler solo(*model_, *tok_, *pool_, config(1, 512, 256, 8, false));
    const Collected want_lone = drain(*solo.submit(lone));
    const Collected want_long = drain(*solo.submit(long_prompt));

    for (int chunk : {24, 0}) {
        SchedulerConfig c = config(2, 512, 256, 8, false);
        c.prefill_chunk_decoding = chunk;
        Scheduler sched(*model_, *tok_, *pool_, c);
        auto a = sched.submit(lone);
        ASSERT_TRUE(a->next(std::chrono::seconds(30)).has_value());  // a is generating now
        auto b = sched.submit(long_prompt);
        const Collected ra = drain(*a), rb = drain(*b);
        // (its first token was taken above)
        EXPECT_EQ(ra.tokens, std::vector<int32_t>(want_lone.tokens.begin() + 1, want_lone.tokens.end()));
        EXPECT_EQ(rb.tokens, want_long.tokens);
        const int largest = sched.stats().largest_prefill_beside_decode;
        if (chunk > 0)
            EXPECT_LE(largest, chunk);
        else  // the whole prompt in one pass beside the stream: the pause the chunks avoid
            EXPECT_EQ(largest, int(long_prompt.prompt.size()));
    }
}

// Two requests with the same long prompt at once (an agent's concurrent calls, a client's
// retry of a request still being read): the second follows the first block by block,
// picking each up from the prefix cache instead of computing it again.
TEST_F(SchedulerTest, RequestsReadingTheSamePromptComputeItOnce) {
    std::string text;
    for (int i = 0; i < 8; ++i) text += "Once upon a time, there was a little girl named Lily. ";
    RequestParams p = greedy(text, 8);
    const int n = int(p.prompt.size());
    ASSERT_GE(n / KvCache::kBlockSize, 6);

    Scheduler solo(*model_, *tok_, *pool_, config(1, 512, 16, 8, false));
    const Collected want = drain(*solo.submit(p));

    // A 16-token batch: the prompt takes many steps, the two requests overlap in all of them.
    Scheduler sched(*model_, *tok_, *pool_, config(2, 512, 16, 8, true));
    auto a = sched.submit(p);
    auto b = sched.submit(p);
    const Collected ra = drain(*a), rb = drain(*b);
    EXPECT_EQ(ra.tokens, want.tokens);
    EXPECT_EQ(rb.tokens, want.tokens);
    // One of them read the prompt, the other all of its full blocks but the last one that
    // holds the final token (whose logits it needs) from the cache.
    const int shared = (n - 1) / KvCache::kBlockSize * KvCache::kBlockSize;
    EXPECT_EQ(std::max(ra.finish.n_cached, rb.finish.n_cached), shared);
    EXPECT_EQ(std::min(ra.finish.n_cached, rb.finish.n_cached), 0);
    EXPECT_EQ(sched.stats().prompt_tokens, uint64_t(2 * n - shared));
}

// A request cancelled while its prompt is read (a client that timed out) leaves what it
// computed in the prefix cache: the retry resumes from there.
TEST_F(SchedulerTest, ARetryResumesFromWhatTheCancelledRequestComputed) {
    std::string text;
    for (int i = 0; i < 8; ++i) text += "Once upon a time, there was a little girl named Lily. ";
    RequestParams p = greedy(text, 8);
    const int n = int(p.prompt.size());

    SchedulerConfig c = config(1, 512, 16, 8, true);
    std::mutex mu;
    std::shared_ptr<RequestStream> first;
    int done_at_cancel = 0;
    c.progress_min_tokens = 0;
    c.progress_seconds = 0;
    c.on_prefill_progress = [&](const PrefillProgress& pp) {  // the scheduler's thread, after a step
        std::lock_guard<std::mutex> lock(mu);
        if (first && done_at_cancel == 0 && pp.done >= 3 * KvCache::kBlockSize) {
            done_at_cancel = pp.done;
            first->cancel();
        }
    };
    Scheduler sched(*model_, *tok_, *pool_, c);
    {
        std::lock_guard<std::mutex> lock(mu);
        first = sched.submit(p);
    }
    EXPECT_EQ(drain(*first).finish.reason, "cancelled");
    ASSERT_GT(done_at_cancel, 0);
    ASSERT_LT(done_at_cancel, n);

    const Collected retry = drain(*sched.submit(p));
    EXPECT_GE(retry.finish.n_cached, done_at_cancel / KvCache::kBlockSize * KvCache::kBlockSize);
    Scheduler solo(*model_, *tok_, *pool_, config(1, 512, 16, 8, false));
    EXPECT_EQ(retry.tokens, drain(*solo.submit(p)).tokens);
}

TEST_F(SchedulerTest, EvictsCachedPrefixesWhenThePoolIsFull) {
    SchedulerConfig c = config(1, 128, 64, 8, true);
    c.cache_blocks = 0;  // no room beyond the slot's own context: caching must evict
    Scheduler sched(*model_, *tok_, *pool_, c);
    const char* prompts[] = {"Once upon a time, there was a little girl named Lily. She loved",
                             "The little dog was sad because he had no friends to play with",
                             "Lily and Tom went to the park. They saw a big red ball there"};
    for (const char* p : prompts) EXPECT_EQ(drain(*sched.submit(greedy(p, 40))).finish.reason, "length");
    const SchedulerStats st = sched.stats();
    EXPECT_GT(st.prefix.evicted_blocks, 0u);
    EXPECT_LE(st.prefix.cached_blocks, size_t(c.cache_blocks) + 128 / KvCache::kBlockSize);
}

// Prompt-lookup speculation: identical greedy tokens, with drafts proposed and accepted.
TEST_F(SchedulerTest, PromptLookupSpeculationKeepsGreedyOutput) {
    // One slot: requests run one after another, so the step count does not depend on when
    // each arrives (with two slots it did, and a fixed bound failed under load).
    SchedulerConfig c = config(1, 256, 64, 8, true);
    c.lookup_draft = 6;
    Scheduler sched(*model_, *tok_, *pool_, c);
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (const auto& cs : ref_["cases"]) streams.push_back(sched.submit(greedy(cs["prompt"], 64)));
    for (size_t i = 0; i < streams.size(); ++i) {
        Collected out = drain(*streams[i]);
        EXPECT_EQ(out.tokens, ref_["cases"][i]["greedy"].get<std::vector<int32_t>>()) << i;
        EXPECT_EQ(out.text, ref_["cases"][i]["greedy_text"].get<std::string>()) << i;
    }
    const SchedulerStats st = sched.stats();
    EXPECT_GT(st.draft_tokens, 0u);
    EXPECT_GT(st.draft_accepted, 0u);
    // Without drafts one slot needs a forward pass per generated token (256) plus the
    // prompts; fewer than 256 in all means accepted drafts skipped steps.
    EXPECT_LT(st.steps, 4u * 64u);
    std::printf("[ lookup ] %llu drafted, %llu accepted (%.0f%%), %llu steps for 256 tokens\n",
                (unsigned long long)st.draft_tokens, (unsigned long long)st.draft_accepted,
                100.0 * double(st.draft_accepted) / double(st.draft_tokens), (unsigned long long)st.steps);
}

TEST_F(SchedulerTest, PromptLookupWithSamplingStaysSeeded) {
    // Same seed, with and without drafts: the same tokens (drafts never change a sample).
    auto run = [&](int lookup) {
        SchedulerConfig c = config(1, 256, 64, 8, false);
        c.lookup_draft = lookup;
        Scheduler sched(*model_, *tok_, *pool_, c);
        RequestParams p = greedy("Once upon a time", 80);
        p.options.sampling.temperature = 0.9f;
        p.options.sampling.seed = 1234;
        return drain(*sched.submit(p)).tokens;
    };
    EXPECT_EQ(run(0), run(6));
}

// A draft model proposes, the main model verifies: greedy output unchanged. With the
// model as its own draft every proposal is accepted.
TEST_F(SchedulerTest, DraftModelSpeculationKeepsGreedyOutput) {
    auto draft = load_model(shared_dir() + "/models/stories260K.gguf");
    SchedulerConfig c = config(2, 256, 64, 8, true);
    c.draft_model = draft.get();
    c.draft_max = 5;
    c.draft_adaptive = false;  // every step proposes draft_max tokens
    Scheduler sched(*model_, *tok_, *pool_, c);
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (const auto& cs : ref_["cases"]) streams.push_back(sched.submit(greedy(cs["prompt"], 64)));
    for (size_t i = 0; i < streams.size(); ++i)
        EXPECT_EQ(drain(*streams[i]).tokens, ref_["cases"][i]["greedy"].get<std::vector<int32_t>>()) << i;
    const SchedulerStats st = sched.stats();
    EXPECT_GT(st.draft_tokens, 100u);
    EXPECT_EQ(st.draft_accepted, st.draft_tokens);
    EXPECT_LT(st.steps, 4u * 64u / 3u);
}

TEST(SchedulerDraft, QuantizedDraftForItsOwnModel) {
    // synth-tiny-Q4_0 drafting for synth-tiny-F16 (same vocabulary, same random model).
    auto main_model = load_model(shared_dir() + "/models/synth-tiny-F16.gguf");
    auto draft = load_model(shared_dir() + "/models/synth-tiny-Q4_0.gguf");
    auto tok = Tokenizer::from_gguf(main_model->file());
    ThreadPool pool(2);
    uint64_t drafted[2] = {0, 0};
    uint64_t runs[2] = {0, 0};
    auto run = [&](Model* d, float p_min) {
        SchedulerConfig c = config(1, 256, 64, 8, false);
        c.draft_model = d;
        c.draft_p_min = p_min;
        c.draft_adaptive = false;  // the p_min rule alone
        Scheduler sched(*main_model, *tok, pool, c);
        RequestParams p;
        p.prompt = tok->encode("The quick brown fox jumps over the lazy dog.", true);
        p.options.n_predict = 48;
        p.options.sampling.temperature = 0.0f;
        p.options.ignore_eos = true;
        auto tokens = drain(*sched.submit(p)).tokens;
        const SchedulerStats st = sched.stats();
        if (d) std::printf("[ draft ] synth-tiny-Q4_0 for F16, p_min %.1f: %llu drafted, %llu accepted\n", p_min,
                           (unsigned long long)st.draft_tokens, (unsigned long long)st.draft_accepted);
        drafted[p_min > 0] = st.draft_tokens;
        runs[p_min > 0] = st.draft_model_runs;
        return tokens;
    };
    const auto plain = run(nullptr, 0.0f);
    EXPECT_EQ(plain, run(draft.get(), 0.0f));
    EXPECT_EQ(plain, run(draft.get(), 0.8f));
    // Random weights give flat distributions: an unsure draft proposes (almost) nothing
    // instead of tokens the main model would reject.
    EXPECT_GT(drafted[0], 100u);
    EXPECT_LT(drafted[1], drafted[0] / 4);
    // ... and, proposing nothing, the draft model backs off (2, 4, 8, 16 steps) instead
    // of running its forward pass at every one of the 48 steps.
    EXPECT_GE(runs[0], 20u);  // proposing, it runs at every step (fewer than 48: drafts are accepted)
    EXPECT_LE(runs[1], 8u) << "with p_min " << runs[1] << " runs, without " << runs[0];
}

// Constrained output end to end on a real model: sampled replies always follow the schema.
TEST_F(SchedulerTest, JsonSchemaOutputAlwaysValidates) {
    auto schema = nlohmann::ordered_json::parse(R"({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "age": {"type": "integer"},
            "pets": {"type": "array", "items": {"enum": ["dog", "cat", "ball"]}, "maxItems": 3}
        },
        "required": ["name", "age", "pets"],
        "additionalProperties": false
    })");
    auto grammar = Grammar::from_json_schema(schema);
    Scheduler sched(*model_, *tok_, *pool_, config(2, 512, 64, 32, true));
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (int i = 0; i < 20; ++i) {
        RequestParams p = greedy("Once upon a time", 300);
        p.options.sampling.temperature = 1.0f;
        p.options.sampling.top_k = 0;
        p.options.sampling.top_p = 1.0f;
        p.options.sampling.min_p = 0.0f;
        p.options.sampling.seed = 100 + uint64_t(i);
        p.options.ignore_eos = false;
        p.options.grammar = grammar;
        streams.push_back(sched.submit(p));
    }
    for (auto& st : streams) {
        Collected out = drain(*st);
        ASSERT_EQ(out.finish.reason, "stop") << out.text;
        nlohmann::json j;
        ASSERT_NO_THROW(j = nlohmann::json::parse(out.text)) << out.text;
        ASSERT_TRUE(j.is_object());
        EXPECT_EQ(j.size(), 3u) << out.text;
        EXPECT_TRUE(j["name"].is_string() && j["name"].get<std::string>().size() <= 12) << out.text;
        EXPECT_TRUE(j["age"].is_number_integer()) << out.text;
        ASSERT_TRUE(j["pets"].is_array()) << out.text;
        EXPECT_LE(j["pets"].size(), 3u);
        for (const auto& pet : j["pets"]) EXPECT_TRUE(pet == "dog" || pet == "cat" || pet == "ball") << out.text;
    }
}

// --- persistent prefix cache ---

class DiskCacheTest : public SchedulerTest {
protected:
    void SetUp() override {
        SchedulerTest::SetUp();
        dir_ = ::testing::TempDir() + "pensieve-cache-" + std::to_string(::getpid()) + "-" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name();
        std::filesystem::remove_all(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::vector<std::filesystem::path> block_files() const {
        std::vector<std::filesystem::path> out;
        for (const auto& e : std::filesystem::recursive_directory_iterator(dir_))
            if (e.path().extension() == ".kv") out.push_back(e.path());
        return out;
    }
    std::string dir_;
    const std::string prompt_ = "Once upon a time, there was a little girl named Lily. She loved to play "
                                "outside in the park. One day, she saw a big red ball.";
};

TEST_F(DiskCacheTest, RestartReusesTheDiskCache) {
    Collected first;
    {
        Scheduler sched(*model_, *tok_, *pool_, config(1, 256, 64, 8, true, dir_));
        first = drain(*sched.submit(greedy(prompt_, 16)));
        EXPECT_EQ(first.finish.n_cached, 0);
    }  // shutdown writes the cached blocks
    ASSERT_FALSE(block_files().empty());

    Scheduler again(*model_, *tok_, *pool_, config(1, 256, 64, 8, true, dir_));
    Collected second = drain(*again.submit(greedy(prompt_, 16)));
    EXPECT_GT(second.finish.n_cached, 0);
    EXPECT_GT(again.stats().prefix.disk_hit_blocks, 0u);
    EXPECT_EQ(second.tokens, first.tokens);
}

TEST_F(DiskCacheTest, CorruptFileIsRejectedAndOutputStaysRight) {
    Collected first;
    {
        Scheduler sched(*model_, *tok_, *pool_, config(1, 256, 64, 8, true, dir_));
        first = drain(*sched.submit(greedy(prompt_, 16)));
    }
    auto files = block_files();
    ASSERT_FALSE(files.empty());
    for (const auto& f : files) {  // flip one byte in the middle of every block file
        std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
        io.seekp(std::streamoff(std::filesystem::file_size(f) / 2));
        io.put(char(0x5a));
    }
    // And truncate one of them.
    std::filesystem::resize_file(files.front(), 100);

    Scheduler again(*model_, *tok_, *pool_, config(1, 256, 64, 8, true, dir_));
    Collected second = drain(*again.submit(greedy(prompt_, 16)));
    EXPECT_EQ(second.finish.n_cached, 0);
    EXPECT_GT(again.stats().prefix.disk_rejected, 0u);
    EXPECT_EQ(second.tokens, first.tokens);
}

TEST_F(DiskCacheTest, ADifferentModelNeverReusesIt) {
    // Two random models of the same shape and vocabulary: same tokens, different weights.
    auto f16 = load_model(shared_dir() + "/models/synth-tiny-F16.gguf");
    auto q8 = load_model(shared_dir() + "/models/synth-tiny-Q8_0.gguf");
    auto tok = Tokenizer::from_gguf(f16->file());
    RequestParams p;
    p.prompt = tok->encode(prompt_, true);
    p.options.n_predict = 4;
    p.options.sampling.temperature = 0.0f;
    {
        Scheduler sched(*f16, *tok, *pool_, config(1, 256, 64, 8, true, dir_));
        drain(*sched.submit(p));
    }
    ASSERT_FALSE(block_files().empty());
    Scheduler other(*q8, *tok, *pool_, config(1, 256, 64, 8, true, dir_));
    Collected out = drain(*other.submit(p));
    EXPECT_EQ(out.finish.n_cached, 0);
    EXPECT_EQ(other.stats().prefix.disk_hit_blocks, 0u);
    EXPECT_NE(model_identity(f16->file()), model_identity(q8->file()));
}

TEST_F(DiskCacheTest, LongRopeKeepsOneSetOfEntriesPerFactorChoice) {
    // phi3-longrope.gguf: original context 64. Up to 64 positions per sequence it rotates
    // with the short factors, past that with the long ones: keys cached at --ctx 64 are
    // wrong at --ctx 256, so a restart with the other context size must not reuse them.
    auto m = load_model(shared_dir() + "/models/arch/phi3-longrope.gguf");
    auto tok = Tokenizer::from_gguf(m->file());
    ASSERT_NE(m->cache_variant(64), m->cache_variant(256));
    EXPECT_EQ(load_model(shared_dir() + "/models/arch/phi3.gguf")->cache_variant(256), 0u);
    RequestParams p;
    p.prompt = tok->encode("Once upon a time, there was a little girl named Lily. She", true);
    ASSERT_GE(p.prompt.size(), size_t(KvCache::kBlockSize) + 1);
    ASSERT_LE(p.prompt.size() + 4, 64u);
    p.options.n_predict = 4;
    p.options.sampling.temperature = 0.0f;
    auto run = [&](int ctx, const std::string& dir) {
        Scheduler sched(*m, *tok, *pool_, config(1, ctx, 64, 8, true, dir));
        return drain(*sched.submit(p));
    };
    run(64, dir_);  // short factors, written to the disk cache
    const Collected long_fresh = run(256, "");
    const Collected long_after = run(256, dir_);
    EXPECT_EQ(long_after.finish.n_cached, 0) << "keys rotated with the short factors were reused";
    EXPECT_EQ(long_after.tokens, long_fresh.tokens);
    EXPECT_GT(run(64, dir_).finish.n_cached, 0);  // each context size still reuses its own
}

// Blocks reach the disk while the scheduler runs, not only at shutdown: a process killed
// after a request (no destructor, no save_all) keeps that request's prefix. Here a second
// scheduler on the same directory stands in for the next start (or a second server).
bool wait_for_disk_writes(const Scheduler& s, uint64_t at_least) {
    for (int i = 0; i < 1000; ++i) {
        if (s.stats().prefix.disk_writes >= at_least) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

TEST_F(DiskCacheTest, BlocksAreWrittenAsSoonAsTheirRequestEnds) {
    Scheduler running(*model_, *tok_, *pool_, config(1, 256, 64, 8, true, dir_));
    const Collected first = drain(*running.submit(greedy(prompt_, 16)));
    const uint64_t blocks = uint64_t(first.finish.n_prompt) / KvCache::kBlockSize;   // at least the prompt's
    ASSERT_GT(blocks, 1u);
    ASSERT_TRUE(wait_for_disk_writes(running, blocks)) << running.stats().prefix.disk_writes;
    EXPECT_GE(block_files().size(), blocks);

    Scheduler next(*model_, *tok_, *pool_, config(1, 256, 64, 8, true, dir_));   // `running` never shut down
    const Collected second = drain(*next.submit(greedy(prompt_, 16)));
    EXPECT_GT(second.finish.n_cached, 0);
    EXPECT_GT(next.stats().prefix.disk_hit_blocks, 0u);
    EXPECT_EQ(next.stats().prefix.disk_rejected, 0u);
    EXPECT_EQ(second.tokens, first.tokens);
}

// A damaged file is not rejected forever: computing its prefix again writes a good one.
TEST_F(DiskCacheTest, CorruptFileIsReplacedWhenThePrefixIsComputedAgain) {
    {
        Scheduler sched(*model_, *tok_, *pool_, config(1, 256, 64, 8, true, dir_));
        drain(*sched.submit(greedy(prompt_, 16)));
    }
    const auto files = block_files();
    ASSERT_FALSE(files.empty());
    for (const auto& f : files) std::filesystem::resize_file(f, 100);
    {
        Scheduler again(*model_, *tok_, *pool_, config(1, 256, 64, 8, true, dir_));
        const Collected out = drain(*again.submit(greedy(prompt_, 16)));
        EXPECT_EQ(out.finish.n_cached, 0);
        EXPECT_GT(again.stats().prefix.disk_rejected, 0u);
        ASSERT_TRUE(wait_for_disk_writes(again, files.size()));
    }
    Scheduler third(*model_, *tok_, *pool_, config(1, 256, 64, 8, true, dir_));
    const Collected out = drain(*third.submit(greedy(prompt_, 16)));
    EXPECT_GT(out.finish.n_cached, 0);
    EXPECT_GT(third.stats().prefix.disk_hit_blocks, 0u);
    EXPECT_EQ(third.stats().prefix.disk_rejected, 0u);
}

// Two schedulers (two servers) writing the same blocks into one directory at once: every
// file stays whole (each writer renames a complete temporary file of its own), and no
// temporary file is left behind.
TEST_F(DiskCacheTest, ConcurrentWritersNeverLeaveATornFile) {
    for (int round = 0; round < 3; ++round) {
        Scheduler a(*model_, *tok_, *pool_, config(1, 256, 64, 8, true, dir_));
        Scheduler b(*model_, *tok_, *pool_, config(1, 256, 64, 8, true, dir_));
        const std::string prompt = prompt_ + " Round " + std::to_string(round) + " of the same old story.";
        auto sa = a.submit(greedy(prompt, 8));
        auto sb = b.submit(greedy(prompt, 8));
        drain(*sa);
        drain(*sb);
        a.shutdown();
        b.shutdown();
    }
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_))
        EXPECT_NE(e.path().extension(), ".tmp") << e.path();
    Scheduler check(*model_, *tok_, *pool_, config(1, 256, 64, 8, true, dir_));
    drain(*check.submit(greedy(prompt_ + " Round 2 of the same old story.", 8)));
    EXPECT_GT(check.stats().prefix.disk_hit_blocks, 0u);
    EXPECT_EQ(check.stats().prefix.disk_rejected, 0u);
}

// Temporary files of writes that died with their process are removed at start once they
// are old; a recent one (another server may be writing it) is left alone.
TEST_F(DiskCacheTest, StaleTemporaryFilesAreRemoved) {
    { Scheduler first(*model_, *tok_, *pool_, config(1, 256, 64, 8, true, dir_)); }   // makes the model's folder
    std::filesystem::path folder;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) folder = e.path();
    ASSERT_FALSE(folder.empty());
    const auto old_tmp = folder / "0123456789abcdef.kv.999-1.tmp", new_tmp = folder / "0123456789abcdef.kv.999-2.tmp";
    std::ofstream(old_tmp) << "partial";
    std::ofstream(new_tmp) << "partial";
    std::filesystem::last_write_time(old_tmp, std::filesystem::file_time_type::clock::now() - std::chrono::hours(2));
    Scheduler second(*model_, *tok_, *pool_, config(1, 256, 64, 8, true, dir_));
    EXPECT_FALSE(std::filesystem::exists(old_tmp));
    EXPECT_TRUE(std::filesystem::exists(new_tmp));
}

}  // namespace
}  // namespace pensieve

namespace pensieve {
namespace {

// A layer-skip model (../shared/tools/synth_gguf.py --deep-from 1): its layers after the
// first write back into the residual stream scaled by 0.02, so the first layer decides
// most of the output, as in a trained model whose early exit is good. 3.2M parameters,
// ~0.5 s to write.
std::string write_layer_skip_model() {
    const std::string path =
        (std::filesystem::temp_directory_path() / ("pensieve-skip-" + std::to_string(getpid()) + ".gguf")).string();
    const std::string python = std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
    const std::string cmd = python + " " + shared_dir() + "/tools/synth_gguf.py --vocab " + shared_dir() +
                            "/models/stories260K.gguf --preset tiny --deep-from 1 --deep-scale 0.02 -o " + path +
                            " > /dev/null";
    if (std::system(cmd.c_str()) != 0) throw Error("could not run: " + cmd);
    return path;
}

// Self-speculation: the model's own first layer drafts, the whole model verifies. The
// greedy output is the plain one, and the draft (same embeddings, first layer and head)
// proposes tokens the target keeps.
TEST(SchedulerSelfDraft, FirstLayersDraftForTheirOwnModel) {
    const std::string path = write_layer_skip_model();
    auto model = load_model(path);
    std::filesystem::remove(path);  // mapped: the data stays until the model goes
    auto tok = Tokenizer::from_gguf(model->file());
    ThreadPool pool(2);
    auto run = [&](int draft_layers, SchedulerStats* stats, bool tree = false) {
        SchedulerConfig c = config(2, 256, 64, 8, false);
        c.draft_layers = draft_layers;
        c.draft_max = 4;
        c.draft_adaptive = false;  // every step drafts: the test does not depend on timings
        c.draft_tree = tree;       // (with fixed drafting, a leaf at every draft position)
        Scheduler sched(*model, *tok, pool, c);
        RequestParams p;
        p.prompt = tok->encode("The quick brown fox jumps over the lazy dog.", true);
        p.options.n_predict = 48;
        p.options.sampling.temperature = 0.0f;
        p.options.ignore_eos = true;
        auto a = sched.submit(p);
        p.prompt = tok->encode("Once upon a time", true);
        auto b = sched.submit(p);
        std::vector<std::vector<int32_t>> out = {drain(*a).tokens, drain(*b).tokens};
        if (stats) *stats = sched.stats();
        return out;
    };
    SchedulerStats st;
    const auto plain = run(0, nullptr);
    EXPECT_EQ(plain, run(1, &st));
    std::printf("[ self-draft ] 1 of %d layers: %llu drafted, %llu accepted, %llu steps for 96 tokens\n",
                model->config().n_layer, (unsigned long long)st.draft_tokens, (unsigned long long)st.draft_accepted,
                (unsigned long long)st.steps);
    EXPECT_GT(st.draft_tokens, 50u);
    EXPECT_GT(st.draft_accepted, st.draft_tokens / 2);
    EXPECT_LT(st.steps, 48u);  // 96 tokens in two slots: 48 steps without drafts
    EXPECT_EQ(st.draft_leaves, 0u);

    // Tree drafts: the draft's second choice beside each chain token. Same output; where
    // the chain is rejected and the model takes the second choice, the step keeps one
    // more token, so the same 96 tokens take fewer steps.
    SchedulerStats tree;
    EXPECT_EQ(plain, run(1, &tree, true));
    std::printf("[ self-draft ] with trees: %llu second choices, %llu kept, %llu steps\n",
                (unsigned long long)tree.draft_leaves, (unsigned long long)tree.draft_leaves_taken,
                (unsigned long long)tree.steps);
    EXPECT_GT(tree.draft_leaves, 20u);
    EXPECT_GT(tree.draft_leaves_taken, 0u);
    EXPECT_LT(tree.steps, st.steps);
}

// Sampling with speculation: the draft (the model's first layer) samples its tokens and
// the model verifies them by speculative sampling. Over 600 seeds the tokens at each
// position are distributed as without speculation: a two-sample chi-square over the
// tokens seen at least 10 times stays below its 0.001 critical value. (The exact
// distribution is SpeculativeSampling.*'s job; this checks the engine passes the right
// q and p.)
TEST(SchedulerSelfDraft, SampledOutputKeepsItsDistribution) {
    const std::string path = write_layer_skip_model();
    auto model = load_model(path);
    std::filesystem::remove(path);
    auto tok = Tokenizer::from_gguf(model->file());
    ThreadPool pool(2);
    constexpr int kSeeds = 600, kTokens = 4;
    auto run = [&](int draft_layers, SchedulerStats* stats) {
        SchedulerConfig c = config(4, 128, 64, kSeeds, false);
        c.draft_layers = draft_layers;
        c.draft_max = 3;
        c.draft_adaptive = false;
        c.draft_tree = true;  // leaves too: a kept second choice must not bias the output
        Scheduler sched(*model, *tok, pool, c);
        std::vector<std::shared_ptr<RequestStream>> streams;
        for (int i = 0; i < kSeeds; ++i) {
            RequestParams p;
            p.prompt = tok->encode("Once upon a time", true);
            p.options.n_predict = kTokens;
            p.options.ignore_eos = true;
            p.options.sampling.temperature = 0.7f;
            p.options.sampling.top_k = 8;
            p.options.sampling.top_p = 1.0f;
            p.options.sampling.min_p = 0.0f;
            p.options.sampling.seed = 1000 + uint64_t(i) + uint64_t(draft_layers) * 100000;
            streams.push_back(sched.submit(p));
        }
        std::vector<std::map<int32_t, int>> counts(kTokens);
        for (auto& st : streams) {
            const std::vector<int32_t> tokens = drain(*st).tokens;
            EXPECT_EQ(tokens.size(), size_t(kTokens));
            for (size_t k = 0; k < tokens.size() && k < size_t(kTokens); ++k) counts[k][tokens[k]]++;
        }
        if (stats) *stats = sched.stats();
        return counts;
    };
    SchedulerStats st;
    const auto plain = run(0, nullptr);
    const auto spec = run(1, &st);
    std::printf("[ self-draft sampling ] %llu drafted, %llu kept (%.0f%%); %llu second choices, %llu kept\n",
                (unsigned long long)st.draft_tokens, (unsigned long long)st.draft_accepted,
                100.0 * double(st.draft_accepted) / double(st.draft_tokens), (unsigned long long)st.draft_leaves,
                (unsigned long long)st.draft_leaves_taken);
    EXPECT_GT(st.draft_leaves_taken, 0u);
    EXPECT_GT(st.draft_tokens, 1000u);
    // Drafts drawn from q are kept with the overlap of q and p: 95% here; greedy guesses
    // (kept only when the sample equals them) were kept 11% of the time on this model.
    EXPECT_GT(st.draft_accepted, st.draft_tokens / 2);
    for (int k = 1; k < kTokens; ++k) {  // token 0 comes from the prompt's pass, never drafted
        double chi2 = 0.0;
        int cells = 0;
        std::map<int32_t, std::pair<int, int>> both;
        for (auto [t, n] : plain[size_t(k)]) both[t].first = n;
        for (auto [t, n] : spec[size_t(k)]) both[t].second = n;
        int rare_a = 0, rare_b = 0;  // tokens seen under 10 times, pooled into one cell
        for (auto [t, ab] : both) {
            if (ab.first + ab.second < 10) {
                rare_a += ab.first, rare_b += ab.second;
                continue;
            }
            chi2 += double(ab.first - ab.second) * (ab.first - ab.second) / (ab.first + ab.second);
            ++cells;
        }
        if (rare_a + rare_b > 0) chi2 += double(rare_a - rare_b) * (rare_a - rare_b) / (rare_a + rare_b), ++cells;
        // 0.001 critical value of chi-square with df = cells - 1 (Wilson-Hilferty).
        const double df = cells - 1, h = 2.0 / (9.0 * df);
        const double critical = df * std::pow(1.0 - h + 3.09 * std::sqrt(h), 3.0);
        std::printf("[ self-draft sampling ] token %d: chi2 %.1f over %d cells (critical %.1f)\n", k, chi2, cells,
                    critical);
        EXPECT_LT(chi2, critical) << "token " << k;
    }
}

TEST(SchedulerSelfDraft, AllLayersOfAnEarlyExitAreTheWholeModel) {
    auto model = load_model(shared_dir() + "/models/synth-tiny-F16.gguf");
    ThreadPool pool(2);
    const int V = model->config().n_vocab;
    Batch batch;
    for (int i = 0; i < 6; ++i) batch.add(100 + i, i, 0, true);
    std::vector<float> full(size_t(6 * V)), all(size_t(6 * V)), first(size_t(6 * V));
    KvCache c1 = model->make_cache(64);
    model->forward(batch, c1, pool, full.data());
    ForwardOutputs out;
    out.logits = all.data();
    out.n_layers = model->config().n_layer;
    KvCache c2 = model->make_cache(64);
    model->forward(batch, c2, pool, out);
    EXPECT_EQ(full, all);
    out.logits = first.data();
    out.n_layers = 1;
    KvCache c3 = model->make_cache_for_layers(1, 64);
    model->forward(batch, c3, pool, out);
    EXPECT_NE(full, first);
    EXPECT_EQ(c3.length(0), 6);
}

TEST(SchedulerSelfDraft, ArchitecturesWithoutEarlyExitAreRefusedByName) {
    auto model = load_model(shared_dir() + "/models/arch/gpt2.gguf");
    auto tok = Tokenizer::from_gguf(model->file());
    ThreadPool pool(1);
    SchedulerConfig c = config(1, 64, 16, 4, false);
    c.draft_layers = 1;
    try {
        Scheduler sched(*model, *tok, pool, c);
        FAIL() << "accepted --draft-layers on gpt2";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("gpt2"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace pensieve
