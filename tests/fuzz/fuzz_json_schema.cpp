// libFuzzer target: bytes as a JSON schema (response_format json_schema, a tool's
// parameters under tool_choice), converted to GBNF, compiled, and used to mask a first
// token. Every input must end as a grammar or as a pensieve::Error naming the problem.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/grammar.h"
#include "engine/grammar_matcher.h"
#include "engine/json_schema.h"
#include "fuzz_common.h"
#include "util/json_text.h"

using namespace pensieve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static fuzz::LoadedTokenizer tok = fuzz::load_tokenizer("models/stories260K.gguf");
    fuzz::expect_clean([&] {
        const nlohmann::ordered_json schema = parse_json_text(std::string_view(reinterpret_cast<const char*>(data), size));
        auto grammar = Grammar::from_json_schema(schema);
        GrammarMatcher m(grammar, *tok.tokenizer);
        std::vector<float> logits(size_t(tok.tokenizer->n_vocab()), 0.0f);
        m.mask_logits(logits.data());
        if (m.min_chars_to_complete() < 0) abort();
    });
    return 0;
}
