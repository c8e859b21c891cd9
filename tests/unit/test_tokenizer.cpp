// Tokenizer: exact agreement with the reference engine on llama.cpp's test-tokenizer-0
// cases (../shared/vocab/*.inp/.out), on the reference models' prompts, round trips,
// special-token handling, errors, and speed.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/utf8.h"

using namespace pensieve;

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct VocabCase {
    std::string text;
    std::vector<int32_t> ids;
};

// The .inp file is every case followed by "\n__ggml_vocab_test__\n"; the .out file has
// one line of space-separated ids per case.
std::vector<VocabCase> load_vocab_cases(const std::string& gguf_path) {
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::string inp = read_file(gguf_path + ".inp");
    std::vector<VocabCase> cases;
    for (size_t pos = 0; pos < inp.size();) {
        size_t end = inp.find(sep, pos);
        if (end == std::string::npos) throw std::runtime_error("unterminated case in " + gguf_path + ".inp");
        cases.push_back({inp.substr(pos, end - pos), {}});
        pos = end + sep.size();
    }
    std::istringstream out(read_file(gguf_path + ".out"));
    std::string line;
    for (VocabCase& c : cases) {
        if (!std::getline(out, line)) throw std::runtime_error("too few lines in " + gguf_path + ".out");
        std::istringstream ids(line);
        for (int32_t id; ids >> id;) c.ids.push_back(id);
    }
    return cases;
}

std::string ids_str(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) {
        if (!s.empty()) s += ' ';
        s += std::to_string(id);
    }
    return s;
}

struct Loaded {
    std::unique_ptr<GgufFile> file;
    std::unique_ptr<Tokenizer> tok;
};

Loaded load(const std::string& rel) {
    Loaded l;
    l.file = GgufFile::open(shared_dir() + "/" + rel);
    l.tok = Tokenizer::from_gguf(*l.file);
    return l;
}

// ---------------------------------------------------------------------------------------
// test-tokenizer-0 cases: add_special=false, parse_special=false (as the reference ran).

class VocabCases : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabCases, EncodeMatchesReferenceExactly) {
    std::string path = shared_dir() + "/vocab/" + GetParam();
    Loaded l = load(std::string("vocab/") + GetParam());
    std::vector<VocabCase> cases = load_vocab_cases(path);
    ASSERT_EQ(cases.size(), 46u);
    int matched = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
        std::vector<int32_t> got = l.tok->encode(cases[i].text, false, false);
        if (got == cases[i].ids) {
            ++matched;
        } else {
            ADD_FAILURE() << "case " << i << " '" << cases[i].text << "'\n  want " << ids_str(cases[i].ids)
                          << "\n  got  " << ids_str(got);
        }
    }
    std::printf("[ tokenizer ] %s: %d/%zu cases match exactly\n", GetParam(), matched, cases.size());
}

// decode(encode(x)) == x. SentencePiece cannot give back what its normalisation loses;
// with byte fallback and no normaliser, that is nothing for these inputs.
TEST_P(VocabCases, DecodeRoundTrips) {
    Loaded l = load(std::string("vocab/") + GetParam());
    std::vector<VocabCase> cases = load_vocab_cases(shared_dir() + "/vocab/" + GetParam());
    int ok = 0;
    for (const VocabCase& c : cases) {
        EXPECT_EQ(l.tok->decode(l.tok->encode(c.text, false)), c.text);
        EXPECT_EQ(l.tok->decode(l.tok->encode(c.text, true)), c.text);
        ok += l.tok->decode(l.tok->encode(c.text, false)) == c.text;
    }
    std::printf("[ tokenizer ] %s: %d/%zu round trips\n", GetParam(), ok, cases.size());
}

INSTANTIATE_TEST_SUITE_P(Spm, VocabCases,
                         ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf"),
                         [](const auto& info) {
                             std::string name = info.param;
                             for (char& c : name) if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                             return name;
                         });

// Byte-level BPE with the pre-tokenizers implemented so far.
INSTANTIATE_TEST_SUITE_P(Bpe, VocabCases,
                         ::testing::Values("ggml-vocab-gpt-2.gguf", "ggml-vocab-mpt.gguf",
                                           "ggml-vocab-starcoder.gguf", "ggml-vocab-refact.gguf"),
                         [](const auto& info) {
                             std::string name = info.param;
                             for (char& c : name) if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                             return name;
                         });

// ---------------------------------------------------------------------------------------
// Reference models: prompts (BOS as the metadata says) and greedy text.

class ReferenceModels : public ::testing::TestWithParam<const char*> {};

TEST_P(ReferenceModels, PromptTokensAndGreedyText) {
    std::string name = GetParam();
    Loaded l = load("models/" + name + ".gguf");
    nlohmann::json ref = nlohmann::json::parse(read_file(shared_dir() + "/reference/" + name + ".json"));
    ASSERT_FALSE(ref["cases"].empty());
    for (const auto& c : ref["cases"]) {
        std::string prompt = c["prompt"];
        auto want = c["prompt_tokens"].get<std::vector<int32_t>>();
        EXPECT_EQ(ids_str(l.tok->encode(prompt, true)), ids_str(want)) << "prompt '" << prompt << "'";

        std::string text;
        for (int32_t id : c["greedy"].get<std::vector<int32_t>>()) text += l.tok->token_to_piece(id);
        EXPECT_EQ(text, c["greedy_text"].get<std::string>()) << "prompt '" << prompt << "'";
    }
}

INSTANTIATE_TEST_SUITE_P(Spm, ReferenceModels, ::testing::Values("stories260K", "synth-tiny-F16"),
                         [](const auto& info) {
                             std::string name = info.param;
                             for (char& c : name) if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                             return name;
                         });

// ---------------------------------------------------------------------------------------
// Behaviour details

TEST(Tokenizer, LlamaMetadata) {
    Loaded l = load("vocab/ggml-vocab-llama-spm.gguf");
    const Tokenizer& t = *l.tok;
    EXPECT_EQ(t.model_name(), "llama");
    EXPECT_EQ(t.n_vocab(), 32000);
    EXPECT_EQ(t.bos_id(), 1);
    EXPECT_EQ(t.eos_id(), 2);
    EXPECT_TRUE(t.add_bos());
    EXPECT_TRUE(t.is_end_of_generation(2));
    EXPECT_FALSE(t.is_end_of_generation(1));
    EXPECT_FALSE(t.is_end_of_generation(13));
    EXPECT_EQ(t.token_text(1), "<s>");
    EXPECT_THROW(t.token_text(32000), Error);
    EXPECT_THROW(t.token_to_piece(-1), Error);
}

TEST(Tokenizer, Pieces) {
    Loaded l = load("vocab/ggml-vocab-llama-spm.gguf");
    const Tokenizer& t = *l.tok;
    EXPECT_EQ(t.token_to_piece(1), "");                  // control: hidden
    EXPECT_EQ(t.token_to_piece(1, true), "<s>");
    EXPECT_EQ(t.token_to_piece(0), "");                  // unknown
    EXPECT_EQ(t.token_to_piece(0, true), "<unk>");
    EXPECT_EQ(t.token_to_piece(13), "\n");               // <0x0A>
    EXPECT_EQ(t.token_to_piece(3 + 0xE2), "\xE2");       // partial UTF-8 is fine
    int32_t hello = t.find_token("\xE2\x96\x81Hello");
    ASSERT_GE(hello, 0);
    EXPECT_EQ(t.token_to_piece(hello), " Hello");
}

TEST(Tokenizer, AddSpecialAndEmpty) {
    Loaded l = load("vocab/ggml-vocab-llama-spm.gguf");
    const Tokenizer& t = *l.tok;
    EXPECT_TRUE(t.encode("", false).empty());
    EXPECT_EQ(t.encode("", true), std::vector<int32_t>{1});
    std::vector<int32_t> plain = t.encode("Hello world", false);
    std::vector<int32_t> with_bos = t.encode("Hello world", true);
    ASSERT_EQ(with_bos.size(), plain.size() + 1);
    EXPECT_EQ(with_bos[0], 1);
    EXPECT_TRUE(std::equal(plain.begin(), plain.end(), with_bos.begin() + 1));
}

TEST(Tokenizer, ParseSpecial) {
    Loaded l = load("vocab/ggml-vocab-llama-spm.gguf");
    const Tokenizer& t = *l.tok;
    // Parsed: "<s>" is BOS, and the text after it gets its own space prefix.
    std::vector<int32_t> parsed = t.encode("<s>Hi</s>", false, true);
    std::vector<int32_t> hi = t.encode("Hi", false);
    std::vector<int32_t> want = {1};
    want.insert(want.end(), hi.begin(), hi.end());
    want.push_back(2);
    EXPECT_EQ(parsed, want);
    // Not parsed: plain text, no control token anywhere.
    for (int32_t id : t.encode("<s>Hi</s>", false, false)) EXPECT_FALSE(t.is_control(id));
    // Text between two specials: each fragment is encoded on its own.
    std::vector<int32_t> two = t.encode("a</s>b", false, true);
    std::vector<int32_t> a = t.encode("a", false), b = t.encode("b", false);
    std::vector<int32_t> want2 = a;
    want2.push_back(2);
    want2.insert(want2.end(), b.begin(), b.end());
    EXPECT_EQ(two, want2);
}

TEST(Tokenizer, Phi3SpecialTokens) {
    Loaded l = load("vocab/ggml-vocab-phi-3.gguf");
    const Tokenizer& t = *l.tok;
    EXPECT_EQ(t.eos_id(), 32000);
    EXPECT_TRUE(t.is_end_of_generation(32000));   // <|endoftext|>
    EXPECT_TRUE(t.is_end_of_generation(32007));   // <|end|>
    EXPECT_FALSE(t.is_end_of_generation(32001));  // <|assistant|>
    // llama.cpp drops the whitespace after Phi-3's chat tokens (RSTRIP, keyed on the
    // model name), then the SPM space prefix applies to the next fragment.
    EXPECT_EQ(ids_str(t.encode("<|user|>\nSYS\nHI<|end|>\n<|assistant|>\n", true, true)),
              "1 32010 317 21554 13 17628 32007 32001");
    // </s> is USER_DEFINED in Phi-3: matched as a whole even without parse_special.
    EXPECT_EQ(t.encode("</s>", false, false), std::vector<int32_t>{2});
    EXPECT_EQ(t.token_to_piece(2), "</s>");
}

// ---------------------------------------------------------------------------------------
// Errors

std::unique_ptr<GgufFile> parse_bytes(const std::vector<uint8_t>& bytes) {
    return GgufFile::parse(bytes.data(), bytes.size(), "test.gguf");
}

TEST(Tokenizer, UnsupportedModelIsNamed) {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "rwkv");
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b"});
    std::vector<uint8_t> bytes = w.to_bytes();
    auto file = parse_bytes(bytes);
    try {
        Tokenizer::from_gguf(*file);
        FAIL() << "expected Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("rwkv"), std::string::npos) << e.what();
    }
}

TEST(Tokenizer, MissingOrInvalidMetadata) {
    {
        GgufWriter w;
        w.set_string("general.name", "no tokenizer");
        std::vector<uint8_t> bytes = w.to_bytes();
        auto file = parse_bytes(bytes);
        EXPECT_THROW(Tokenizer::from_gguf(*file), Error);
    }
    {
        GgufWriter w;
        w.set_string("tokenizer.ggml.model", "llama");
        std::vector<uint8_t> bytes = w.to_bytes();
        auto file = parse_bytes(bytes);
        EXPECT_THROW(Tokenizer::from_gguf(*file), Error);   // no tokens
    }
    {
        GgufWriter w;
        w.set_string("tokenizer.ggml.model", "llama");
        w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
        w.set_f32_array("tokenizer.ggml.scores", {0, 0});   // wrong length
        std::vector<uint8_t> bytes = w.to_bytes();
        auto file = parse_bytes(bytes);
        EXPECT_THROW(Tokenizer::from_gguf(*file), Error);
    }
}

// A hand-made vocab: merges follow scores, ties go left, unknown characters fall back
// to bytes, and ids of "none" (0xFFFFFFFF) are ignored.
TEST(Tokenizer, SmallVocabMerges) {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    std::vector<float> scores = {0, 0, 0};
    std::vector<int32_t> types = {2, 3, 3};
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        tokens.push_back(buf);
        scores.push_back(0);
        types.push_back(6);
    }
    auto add = [&](const std::string& s, float score) {
        tokens.push_back(s);
        scores.push_back(score);
        types.push_back(1);
        return static_cast<int32_t>(tokens.size() - 1);
    };
    const std::string sp = "\xE2\x96\x81";
    int32_t t_sp = add(sp, -1), t_a = add("a", -1), t_b = add("b", -1);
    int32_t t_ab = add("ab", -2), t_ba = add("ba", -2);   // equal scores: leftmost wins
    int32_t t_spa = add(sp + "a", -5);
    w.set_string_array("tokenizer.ggml.tokens", tokens);
    w.set_f32_array("tokenizer.ggml.scores", scores);
    w.set_i32_array("tokenizer.ggml.token_type", types);
    w.set_u32("tokenizer.ggml.padding_token_id", 0xFFFFFFFFu);
    std::vector<uint8_t> bytes = w.to_bytes();
    auto file = parse_bytes(bytes);
    auto t = Tokenizer::from_gguf(*file);
    EXPECT_EQ(t->bos_id(), 1);   // llama.cpp's SPM defaults
    EXPECT_EQ(t->eos_id(), 2);
    EXPECT_TRUE(t->add_bos());

    // "▁aba": ▁a(-5) vs ab(-2) vs ba(-2): "ab" (leftmost of the best) first, then ▁ alone.
    EXPECT_EQ(t->encode("aba", false), (std::vector<int32_t>{t_sp, t_ab, t_a}));
    EXPECT_EQ(t->encode("bab", false), (std::vector<int32_t>{t_sp, t_ba, t_b}));
    EXPECT_EQ(t->encode("a", false), (std::vector<int32_t>{t_spa}));
    // "é" (C3 A9) is not in the vocab: byte fallback.
    EXPECT_EQ(t->encode("\xC3\xA9", false), (std::vector<int32_t>{t_sp, 3 + 0xC3, 3 + 0xA9}));
    EXPECT_EQ(t->decode(t->encode("ab \xC3\xA9 ba", true)), "ab \xC3\xA9 ba");
}

// Arbitrary bytes (invalid UTF-8, NULs, stray "<|") never crash either algorithm, and
// byte-level BPE gives them back exactly. SPM does for valid UTF-8 (and not a literal
// "▁", which it reads as a space): it cuts characters by their first byte, so a stray
// lead byte swallows the bytes after it, an escaped space included, exactly as the
// reference does.
TEST(Tokenizer, RandomBytesRoundTrip) {
    uint64_t state = 12345;
    auto next = [&] { state = state * 6364136223846793005ull + 1442695040888963407ull; return state >> 33; };
    const char* pool[] = {" ", "  ", "\n", "a", "Hello", "\xC3", "\xA9", "\xF0\x9F\x98\x80",
                          "<s>", "</s>", "<|", "|>", "123", "'s", "\t", "\0"};
    for (const char* vocab : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"}) {
        Loaded l = load(std::string("vocab/") + vocab);
        for (int iter = 0; iter < 300; ++iter) {
            std::string text;
            int n = next() % 12;
            for (int i = 0; i < n; ++i) {
                if (next() % 4 == 0) text += static_cast<char>(next() & 0xFF);
                else text += std::string(pool[next() % (sizeof pool / sizeof pool[0])]);
            }
            for (bool parse : {false, true}) {
                std::vector<int32_t> ids = l.tok->encode(text, true, parse);
                std::string back = l.tok->decode(ids);
                bool spm = l.tok->model_name() == "llama";
                if (!parse && (!spm || is_valid_utf8(text))) {
                    EXPECT_EQ(back, text) << vocab;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Speed: ~100 KB of text must encode well under 50 ms (no quadratic behaviour).

TEST(Tokenizer, Speed100KB) {
    std::string base = read_file(shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf.inp");
    std::string text;
    while (text.size() < 100 * 1024) text += base;
    text.resize(100 * 1024);

    for (const char* vocab : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"}) {
        Loaded l = load(std::string("vocab/") + vocab);
        // For SPM this is one long fragment, the worst case for the merge loop.
        double best_ms = 1e9;
        size_t n_tokens = 0;
        for (int rep = 0; rep < 3; ++rep) {
            auto t0 = std::chrono::steady_clock::now();
            std::vector<int32_t> ids = l.tok->encode(text, true, true);
            auto t1 = std::chrono::steady_clock::now();
            best_ms = std::min(best_ms, std::chrono::duration<double, std::milli>(t1 - t0).count());
            n_tokens = ids.size();
        }
        std::printf("[ tokenizer ] %s: encode %zu bytes -> %zu tokens: %.2f ms\n", vocab, text.size(),
                    n_tokens, best_ms);
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__)
        EXPECT_LT(best_ms, 50.0) << vocab;   // sanitizer / -O0 builds only report
#endif
    }
}

}  // namespace
