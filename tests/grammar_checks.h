// What the grammar tests share: the LLaMA SentencePiece vocabulary from ../shared, loaded
// once per test binary, and whether a grammar accepts a whole text.
#pragma once

#include <memory>
#include <string>

#include "engine/grammar.h"
#include "engine/grammar_matcher.h"
#include "gguf/gguf.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pensieve::test {

inline const Tokenizer& llama_vocab() {
    static std::unique_ptr<GgufFile> file = GgufFile::open(shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf");
    static std::unique_ptr<Tokenizer> tok = Tokenizer::from_gguf(*file);
    return *tok;
}

// True when `text` is a complete sentence of `g` (bytes the grammar refuses throw).
inline bool grammar_accepts(const std::shared_ptr<const Grammar>& g, const std::string& text) {
    GrammarMatcher m(g, llama_vocab());
    try {
        m.accept_bytes(text);
    } catch (const Error&) {
        return false;
    }
    return m.is_complete();
}

}  // namespace pensieve::test
