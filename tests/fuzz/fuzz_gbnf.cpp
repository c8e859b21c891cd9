// libFuzzer target: a GBNF grammar (the request's "grammar" field), then, after a NUL
// byte, text to feed the matcher byte by byte. The grammar must compile or throw
// pensieve::Error; the matcher must mask, step, measure the distance to completion and
// steer to completion without crashing or stalling (past its work budget it throws
// pensieve::Error), whatever the grammar and the text.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/grammar.h"
#include "engine/grammar_matcher.h"
#include "fuzz_common.h"

using namespace pensieve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static fuzz::LoadedTokenizer tok = fuzz::load_tokenizer("models/stories260K.gguf");
    const auto parts = fuzz::split_at_nul(data, size);  // not a structured binding: clang 14 cannot capture one
    const std::string_view gbnf = parts.first, text = parts.second;
    std::shared_ptr<const Grammar> grammar;
    fuzz::expect_clean([&] { grammar = Grammar::parse_gbnf(gbnf); });
    if (!grammar) return 0;

    try {
        GrammarMatcher m(grammar, *tok.tokenizer);
        std::vector<float> logits(size_t(tok.tokenizer->n_vocab()), 0.0f);
        m.mask_logits(logits.data());
        for (char c : text) {
            try {
                m.accept_bytes(std::string_view(&c, 1));
            } catch (const Error&) {
                break;  // the text left the grammar: refused cleanly
            }
            if (m.min_chars_to_complete() < 0) abort();
        }
        m.mask_logits(logits.data());
        m.mask_logits_to_finish(logits.data());
        if (m.is_complete() && m.min_chars_to_complete() != 0) abort();
    } catch (const Error&) {
        // A grammar too ambiguous to follow within the matcher's work budget: refused.
    }
    return 0;
}
