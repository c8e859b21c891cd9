// Tokenizer throughput: encoding ~1 MB of mixed text (English prose plus the
// multilingual / emoji / code-like llama.cpp tokenizer test inputs) with one vocab of
// each family in ../shared/vocab, and pre-tokenizing it with the regex families that
// have no vocab there. Counters: bytes/s and tokens/s (words/s for pre-tokenizers).
//
//   pensieve_bench_tokenizer [--benchmark_filter=Encode]
//
// Data: $PENSIEVE_SHARED, else ../shared next to the source tree.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "gguf/gguf.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

using namespace pensieve;

namespace {

std::string shared_dir() {
    if (const char* env = std::getenv("PENSIEVE_SHARED"); env && *env) return env;
#ifdef PENSIEVE_SOURCE_DIR
    return PENSIEVE_SOURCE_DIR "/../shared";
#else
    return "../shared";
#endif
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// ~1 MB: prose and the test inputs (separators removed), repeated.
const std::string& sample_text() {
    static const std::string text = [] {
        std::string base = read_file(shared_dir() + "/text/tinystories-gen.txt");
        std::string cases = read_file(shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf.inp");
        const std::string sep = "\n__ggml_vocab_test__\n";
        for (size_t p; (p = cases.find(sep)) != std::string::npos;) cases.replace(p, sep.size(), "\n");
        base += cases;
        std::string out;
        while (out.size() < (1u << 20)) out += base;
        out.resize(1u << 20);
        // Do not end inside a multi-byte character.
        while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) out.pop_back();
        if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) out.pop_back();
        return out;
    }();
    return text;
}

struct Loaded {
    std::unique_ptr<GgufFile> file;
    std::unique_ptr<Tokenizer> tok;
};

const Tokenizer& tokenizer(const std::string& vocab) {
    static std::map<std::string, Loaded> cache;
    Loaded& l = cache[vocab];
    if (!l.tok) {
        l.file = GgufFile::open(shared_dir() + "/vocab/ggml-vocab-" + vocab + ".gguf");
        l.tok = Tokenizer::from_gguf(*l.file);
    }
    return *l.tok;
}

void BM_Encode(benchmark::State& state, const std::string& vocab) {
    const Tokenizer* tok = nullptr;
    try {
        tok = &tokenizer(vocab);
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        return;
    }
    const std::string& text = sample_text();
    size_t n_tokens = 0;
    for (auto _ : state) {
        std::vector<int32_t> ids = tok->encode(text, false);
        n_tokens = ids.size();
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
    state.counters["tokens/s"] =
        benchmark::Counter(static_cast<double>(n_tokens) * state.iterations(), benchmark::Counter::kIsRate);
    state.counters["tokens"] = static_cast<double>(n_tokens);
}

void BM_Decode(benchmark::State& state, const std::string& vocab) {
    const Tokenizer& tok = tokenizer(vocab);
    std::vector<int32_t> ids = tok.encode(sample_text(), false);
    for (auto _ : state) {
        std::string text;
        for (int32_t id : ids) text += tok.token_to_piece(id);
        benchmark::DoNotOptimize(text.data());
    }
    state.counters["tokens/s"] =
        benchmark::Counter(static_cast<double>(ids.size()) * state.iterations(), benchmark::Counter::kIsRate);
}

void BM_PreTokenize(benchmark::State& state, const std::string& name) {
    PreTokenizer pre(name);
    const std::string& text = sample_text();
    std::vector<TextSpan> words;
    for (auto _ : state) {
        words.clear();
        pre.split(text, words);
        benchmark::DoNotOptimize(words.data());
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
    state.counters["words/s"] =
        benchmark::Counter(static_cast<double>(words.size()) * state.iterations(), benchmark::Counter::kIsRate);
}

const int kRegistered = [] {
    for (const char* vocab : {"llama-spm", "phi-3", "baichuan", "gpt-2", "starcoder", "falcon", "deepseek-llm",
                              "deepseek-coder", "gpt-neox", "bert-bge"}) {
        benchmark::RegisterBenchmark((std::string("Encode/") + vocab).c_str(), BM_Encode, std::string(vocab))
            ->Unit(benchmark::kMillisecond);
    }
    benchmark::RegisterBenchmark("Decode/gpt-2", BM_Decode, std::string("gpt-2"))->Unit(benchmark::kMillisecond);
    for (const char* name : {"gpt-2", "llama3", "qwen2", "tekken", "gpt-4o", "deepseek-v3", "bloom"}) {
        benchmark::RegisterBenchmark((std::string("PreTokenize/") + name).c_str(), BM_PreTokenize, std::string(name))
            ->Unit(benchmark::kMillisecond);
    }
    return 0;
}();

}  // namespace

BENCHMARK_MAIN();
