// libFuzzer target: raw bytes as the body of POST /v1/messages and
// /v1/messages/count_tokens, through parsing, validation, the chat template and the
// tokenizer (fuzz_request.h). Every input must end as a request or as a 400 (ApiError
// or pensieve::Error); a crash, a sanitizer report or any other exception is a bug.
#include <cstddef>
#include <cstdint>

#include "fuzz_request.h"

using namespace pensieve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static fuzz::ChatPipeline pipeline;
    const std::string body(reinterpret_cast<const char*>(data), size);
    // serve --models-dir reads "model" and "keep_alive" first, before the full parse.
    fuzz::expect_clean<server::ApiError>([&] { server::model_wish_of_body(body); });
    for (bool count_tokens : {false, true}) {
        fuzz::expect_clean<server::ApiError>([&] {
            server::ChatRequest r = server::parse_anthropic_messages(server::parse_body(body), count_tokens);
            pipeline.run(r, size);
        });
    }
    return 0;
}
