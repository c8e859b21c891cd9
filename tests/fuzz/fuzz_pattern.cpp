// libFuzzer target: a JSON schema "pattern" (the regex subset converted to GBNF), then,
// after a NUL byte, a string to match as the JSON string's content. The pattern must
// convert and compile or throw pensieve::Error naming it; matching must not crash.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "engine/grammar.h"
#include "engine/grammar_matcher.h"
#include "fuzz_common.h"

using namespace pensieve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static fuzz::LoadedTokenizer tok = fuzz::load_tokenizer("models/stories260K.gguf");
    const auto parts = fuzz::split_at_nul(data, size);  // not a structured binding: clang 14 cannot capture one
    const std::string_view pattern = parts.first, text = parts.second;
    std::shared_ptr<const Grammar> grammar;
    fuzz::expect_clean([&] {
        grammar = Grammar::from_json_schema({{"type", "string"}, {"pattern", std::string(pattern)}});
    });
    if (!grammar) return 0;
    GrammarMatcher m(grammar, *tok.tokenizer);
    try {
        m.accept_bytes("\"");
        m.accept_bytes(text);
        m.accept_bytes("\"");
    } catch (const Error&) {
    }
    return 0;
}
