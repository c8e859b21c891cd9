// What the fuzz targets share: where the reference data is, loading a tokenizer once,
// and the rule that an input may only be refused with the project's own errors.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>

#include "gguf/gguf.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pensieve::fuzz {

// Runs f. A pensieve::Error (or another type the caller lists as a clean refusal, such
// as the server's ApiError) is a fine answer to bad input; any other exception would
// reach a user as a 500 or a crash, so it stops the fuzzer with the message.
template <typename... Refusals, typename F>
void expect_clean(F&& f) {
    try {
        f();
    } catch (const Error&) {
    } catch (const std::exception& e) {
        if ((dynamic_cast<const Refusals*>(&e) || ...)) return;
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        std::abort();
    }
}

struct LoadedTokenizer {
    std::unique_ptr<GgufFile> file;
    std::unique_ptr<Tokenizer> tokenizer;
};

// A tokenizer from a GGUF under ../shared (e.g. "models/stories260K.gguf"), kept for
// the life of the process.
inline LoadedTokenizer load_tokenizer(const std::string& relative_path) {
    LoadedTokenizer t;
    t.file = GgufFile::open(shared_dir() + "/" + relative_path);
    t.tokenizer = Tokenizer::from_gguf(*t.file);
    return t;
}

// The input split at its first NUL byte: two independent texts from one input
// (a grammar and a text to match, a template and its messages).
inline std::pair<std::string_view, std::string_view> split_at_nul(const uint8_t* data, size_t size) {
    const std::string_view all(reinterpret_cast<const char*>(data), size);
    const size_t nul = all.find('\0');
    if (nul == std::string_view::npos) return {all, {}};
    return {all.substr(0, nul), all.substr(nul + 1)};
}

}  // namespace pensieve::fuzz
