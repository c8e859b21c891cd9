// The command-line contract (DESIGN.md): runs the built `pensieve` binary.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <filesystem>

#include "gguf/gguf.h"
#include "run_pensieve.h"
#include "test_paths.h"

namespace {

using Result = CommandResult;

Result run(const std::string& args, bool merge_stderr = false) { return run_pensieve(args, merge_stderr); }

const std::string kStories = shared_dir() + "/models/stories260K.gguf";

TEST(Cli, HelpOnEveryCommand) {
    for (const char* cmd : {"", "run ", "info ", "tokenize ", "perplexity ", "bench ", "template ", "quantize ", "cache "}) {
        Result r = run(std::string(cmd) + "--help");
        EXPECT_EQ(r.status, 0) << cmd;
        EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd;
    }
}

TEST(Cli, BadFlagIsOneLineError) {
    Result r = run("run --no-such-flag", true);
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_NE(r.out.find("error"), std::string::npos);
}

TEST(Cli, MissingFileIsOneLineError) {
    Result r = run("run -m /nonexistent/model.gguf -p hi", true);
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

TEST(Cli, CorruptModelIsOneLineError) {
    // A text file is not a GGUF file.
    Result r = run("info " + shared_dir() + "/text/tinystories-gen.txt", true);
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

// Paper cuts: mistakes get a one-line error instead of a surprise.
TEST(Cli, RunWithoutPromptIsAnError) {
    Result r = run("run -m " + kStories + " -n 4", true);   // not 2048 tokens of free generation
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_NE(r.out.find("no prompt"), std::string::npos) << r.out;
}

TEST(Cli, SamplingValuesOutsideTheApiRangesAreRejected) {
    for (const char* bad : {"--temp -1", "--temp 2.5", "--top-p 1.5", "--min-p -0.1", "--repeat-penalty 0",
                            "--presence-penalty 3", "--top-k -1", "--repeat-last-n -2"}) {
        Result r = run("run -m " + kStories + " -p hi -n 1 " + bad, true);
        EXPECT_NE(r.status, 0) << bad << ": " << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << bad << ": " << r.out;
    }
    EXPECT_EQ(run("run -m " + kStories + " -p hi -n 1 --temp 0 --top-p 1 --repeat-last-n -1").status, 0);
}

TEST(Cli, OneTokenIsSingular) {
    Result r = run("run -m " + kStories + " -p hi -n 1 --temp 0", true);
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("generation: 1 token,"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find(" 1 tokens"), std::string::npos) << r.out;
}

TEST(Cli, BenchWithNothingToMeasureIsAnError) {
    Result r = run("bench -m " + kStories + " -p 0 -n 0", true);
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_NE(r.out.find("nothing to measure"), std::string::npos) << r.out;
}

// CLI11's negated flags ("!--no-x") show their default as "{false}" in --help.
TEST(Cli, HelpShowsNoFlagDefaultsInBraces) {
    for (const char* cmd : {"serve", "run", "bench", "template", "tokenize", "perplexity"}) {
        Result r = run(std::string(cmd) + " --help");
        EXPECT_EQ(r.out.find("{false}"), std::string::npos) << cmd << ":\n" << r.out;
        EXPECT_EQ(r.out.find("{true}"), std::string::npos) << cmd << ":\n" << r.out;
    }
}

TEST(Cli, TokenizeMatchesReference) {
    // ../shared/reference/stories260K.json: "Once upon a time" -> [1, 403, 407, 261, 378]
    Result r = run("tokenize -m " + kStories + " 'Once upon a time'");
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "1 403 407 261 378\n");
    r = run("tokenize --no-bos -m " + kStories + " 'Once upon a time'");
    EXPECT_EQ(r.out, "403 407 261 378\n");
}

TEST(Cli, RunGreedyStreamsTheReferenceContinuation) {
    // Reference greedy text for "Once upon a time" begins like this (stories260K.json).
    Result r = run("run -m " + kStories + " -p 'Once upon a time' -n 16 --temp 0 -t 2");
    EXPECT_EQ(r.status, 0);
    const std::string reference =
        ", there was a little girl named Lily. She loved to play outside in the park. One";
    ASSERT_GT(r.out.size(), 20u);
    const std::string text = r.out.substr(0, r.out.size() - 1);  // run ends with a newline
    EXPECT_EQ(reference.rfind(text, 0), 0u) << "got: " << r.out;
}

TEST(Cli, RunStopsAtStopString) {
    Result r = run("run -m " + kStories + " -p 'Once upon a time' -n 64 --temp 0 --stop Lily");
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, ", there was a little girl named \n");
}

TEST(Cli, RunReusesThePersistentCacheAcrossProcesses) {
    const std::string dir = ::testing::TempDir() + "pensieve-cli-cache";
    std::filesystem::remove_all(dir);
    const std::string cmd = "run -m " + kStories +
                            " -p 'Once upon a time, there was a little girl named Lily. She loved to play' "
                            "-n 8 --temp 0 --cache-dir " + dir;
    Result first = run(cmd, true);
    Result second = run(cmd, true);
    EXPECT_NE(first.out.find("(0 from cache)"), std::string::npos) << first.out;
    EXPECT_EQ(second.out.find("(0 from cache)"), std::string::npos) << second.out;
    // Same continuation either way: the first line after the "pensieve: loaded" line.
    auto continuation = [](const std::string& out) {
        const size_t start = out.find('\n') + 1;
        return out.substr(start, out.find('\n', start) - start);
    };
    EXPECT_EQ(continuation(first.out), continuation(second.out));
    EXPECT_FALSE(continuation(first.out).empty());
    Result ls = run("cache ls --cache-dir " + dir);
    EXPECT_EQ(ls.status, 0);
    EXPECT_EQ(ls.out.find("total 0 blocks"), std::string::npos) << ls.out;
    Result clear = run("cache clear --cache-dir " + dir);
    EXPECT_EQ(clear.status, 0);
    EXPECT_NE(run("cache ls --cache-dir " + dir).out.find("total 0 blocks"), std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST(Cli, CacheClearOfOneModelFindsEveryFolderOfItsEntries) {
    // A LongRoPE model keys its entries by the factors its context chose (64 here: short).
    const std::string dir = ::testing::TempDir() + "pensieve-cli-cache-longrope";
    std::filesystem::remove_all(dir);
    const std::string model = shared_dir() + "/models/arch/phi3-longrope.gguf";
    ASSERT_EQ(run("run -m " + model + " -p 'Once upon a time, there was a little girl named Lily. She' -n 4 --temp 0 -c 64 "
                  "--cache-dir " + dir).status, 0);
    Result other = run("cache clear --cache-dir " + dir + " --model " + shared_dir() + "/models/arch/phi3.gguf");
    EXPECT_NE(other.out.find("removed 0 blocks"), std::string::npos) << other.out;
    Result clear = run("cache clear --cache-dir " + dir + " --model " + model);
    EXPECT_EQ(clear.status, 0);
    EXPECT_EQ(clear.out.find("removed 0 blocks"), std::string::npos) << clear.out;
    EXPECT_NE(run("cache ls --cache-dir " + dir).out.find("total 0 blocks"), std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST(Cli, RunWithPromptLookupGivesTheSameText) {
    Result plain = run("run -m " + kStories + " -p 'Once upon a time' -n 64 --temp 0");
    Result spec = run("run -m " + kStories + " -p 'Once upon a time' -n 64 --temp 0 --lookup 8");
    EXPECT_EQ(plain.status, 0);
    EXPECT_EQ(plain.out, spec.out);
}

TEST(Cli, InfoShowsArchitectureAndTensors) {
    Result r = run("info " + kStories);
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("architecture: llama"), std::string::npos);
    EXPECT_NE(r.out.find("llama.embedding_length"), std::string::npos);
    EXPECT_NE(r.out.find("token_embd.weight"), std::string::npos);
}

TEST(Cli, PerplexityPrintsLastLine) {
    Result r = run("perplexity -m " + kStories + " -f " + shared_dir() + "/text/tinystories-gen.txt -c 128");
    EXPECT_EQ(r.status, 0);
    const size_t at = r.out.rfind("PPL = ");
    ASSERT_NE(at, std::string::npos) << r.out;
    const double ppl = std::atof(r.out.c_str() + at + 6);
    EXPECT_NEAR(ppl, 2.7694, 0.005 * 2.7694);  // reference value, stories260K.json
}

TEST(Cli, BenchJson) {
    Result r = run("bench -m " + kStories + " -p 32 -n 8 -r 1 --json");
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("\"pp_tps\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"tg_tps\""), std::string::npos) << r.out;
}

TEST(Cli, BenchBandwidthJson) {
    Result r = run("bench --bandwidth --bandwidth-mib 16 -t 2 --json");
    EXPECT_EQ(r.status, 0);
    const size_t at = r.out.find("\"read_gbs\": ");
    ASSERT_NE(at, std::string::npos) << r.out;
    EXPECT_GT(std::atof(r.out.c_str() + at + 12), 0.0) << r.out;
    EXPECT_NE(r.out.find("\"threads\": 2"), std::string::npos) << r.out;
}

TEST(Cli, BenchWithoutModelIsOneLineError) {
    Result r = run("bench -p 8", true);
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_NE(r.out.find("--bandwidth"), std::string::npos) << r.out;
}

// A tiny F32 file: token_embd 4x10 (160 bytes), a norm of 4 (16), a 4x4 matrix (64), and
// with `output` a 4x10 head (160). Decode reads one embedding row, so the embedding counts
// only when it is also the head.
std::string bytes_per_token_of(bool with_output) {
    pensieve::GgufWriter w;
    w.set_string("general.architecture", "llama");
    std::vector<float> zeros(40, 0.0f);
    w.add_tensor("token_embd.weight", {4, 10}, pensieve::GgmlType::F32, zeros.data(), 160);
    w.add_tensor("blk.0.attn_norm.weight", {4}, pensieve::GgmlType::F32, zeros.data(), 16);
    w.add_tensor("blk.0.attn_q.weight", {4, 4}, pensieve::GgmlType::F32, zeros.data(), 64);
    if (with_output) w.add_tensor("output.weight", {4, 10}, pensieve::GgmlType::F32, zeros.data(), 160);
    const std::string path = std::filesystem::temp_directory_path() /
                             ("pensieve_bpt_" + std::to_string(with_output) + ".gguf");
    w.write(path);
    Result r = run("info " + path);
    std::filesystem::remove(path);
    EXPECT_EQ(r.status, 0) << r.out;
    const std::string key = "weights read per generated token: ";
    const size_t at = r.out.find(key);
    if (at == std::string::npos) return "missing: " + r.out;
    return r.out.substr(at + key.size(), r.out.find(' ', at + key.size()) - at - key.size());
}

TEST(Cli, InfoShowsWeightBytesPerToken) {
    EXPECT_EQ(bytes_per_token_of(true), "240");    // norm + matrix + head, not the embedding
    EXPECT_EQ(bytes_per_token_of(false), "240");   // tied: the embedding is the head
}

}  // namespace

namespace pensieve {
namespace {

TEST(Cli, RunIdsPrintsTheReferenceGreedyIds) {
    std::ifstream in(shared_dir() + "/reference/arch/qwen3.json");
    const auto ref = nlohmann::json::parse(in);
    const auto& c = ref["cases"][0];
    const auto greedy = c["greedy"].get<std::vector<int>>();
    const auto gap = c["greedy_gap"].get<std::vector<float>>();
    Result r = run("run -m " + shared_dir() + "/models/arch/qwen3.gguf -p '" + c["prompt"].get<std::string>() +
                   "' -n 12 --temp 0 -t 2 --ids");
    ASSERT_EQ(r.status, 0);
    std::istringstream ids(r.out);
    for (size_t i = 0; i < 12 && gap[i] >= 0.02f; ++i) {  // equal up to the first near-tie
        int id = -1;
        ids >> id;
        EXPECT_EQ(id, greedy[i]) << "step " << i << " of: " << r.out;
    }
}

// T5 through the scheduler: the prompt (with its EOS) goes to the encoder, the greedy ids
// are the decoder's from its start token.
TEST(Cli, RunT5PrintsTheReferenceGreedyIds) {
    std::ifstream in(shared_dir() + "/reference/arch/t5.json");
    const auto ref = nlohmann::json::parse(in);
    const auto& c = ref["cases"][0];
    const auto greedy = c["greedy"].get<std::vector<int>>();
    const auto gap = c["greedy_gap"].get<std::vector<float>>();
    Result r = run("run -m " + shared_dir() + "/models/arch/t5.gguf -p '" + c["prompt"].get<std::string>() +
                   "' -n 8 --temp 0 -t 2 --ids");
    ASSERT_EQ(r.status, 0);
    std::istringstream ids(r.out);
    for (size_t i = 0; i < 8 && gap[i] >= 0.02f; ++i) {
        int id = -1;
        ids >> id;
        EXPECT_EQ(id, greedy[i]) << "step " << i << " of: " << r.out;
    }
}

TEST(Cli, InfoNamesTheSeamFeatures) {
    Result r = run("info " + shared_dir() + "/models/arch/qwen3.gguf");
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("memory:     paged KV on 2 layers"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("pooling:    none"), std::string::npos);
    // A recurrent model states its constant state size instead of KV bytes per position.
    r = run("info " + shared_dir() + "/models/arch/mamba2.gguf");
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("per sequence, whatever its length"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("--cache-type"), std::string::npos) << r.out;
}

// A copy of `from` with every "<old>" in its bytes (architecture name and key prefixes)
// replaced by "<now>" of the same length: a file of another architecture's name.
std::string relabeled(const std::string& from, const std::string& old, const std::string& now) {
    std::ifstream in(from, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (size_t p = bytes.find(old); p != std::string::npos; p = bytes.find(old, p + 1)) bytes.replace(p, old.size(), now);
    const std::string path = ::testing::TempDir() + "/relabeled-" + now + ".gguf";
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
}

TEST(Cli, InfoNamesTheMissingArchitecture) {
    // An architecture no file of ../shared has (qwen3's file under another name).
    Result r = run("info " + relabeled(shared_dir() + "/models/arch/qwen3.gguf", "qwen3", "xwen3"));
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("architecture 'xwen3' is not supported (supported: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("llama, "), std::string::npos) << r.out;  // the list, in any order
}

TEST(Cli, UnknownOrMisshapenArchitectureIsOneLineError) {
    Result r = run("run -m " + relabeled(shared_dir() + "/models/arch/qwen3.gguf", "qwen3", "ywen3") + " -p hi -n 1", true);
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_NE(r.out.find("architecture 'ywen3' is not supported (supported: "), std::string::npos) << r.out;
    // qwen3's tensors read as qwen2: the Q/K/V biases qwen2 requires are missing.
    const std::string fake = relabeled(shared_dir() + "/models/arch/qwen3.gguf", "qwen3", "qwen2");
    r = run("run -m " + fake + " -p hi -n 1", true);
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_NE(r.out.find("attn_q.bias"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace pensieve
