// libFuzzer target: raw bytes as the body of POST /v1/chat/completions and
// /v1/completions, through parsing, validation, the chat template and the tokenizer
// (fuzz_request.h). Every input must end as a request or as a 400 (ApiError or
// pensieve::Error); a crash, a sanitizer report or any other exception is a bug.
#include <cstddef>
#include <cstdint>

#include "fuzz_request.h"

using namespace pensieve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static fuzz::ChatPipeline pipeline;
    const std::string body(reinterpret_cast<const char*>(data), size);
    // serve --models-dir reads "model" and "keep_alive" first, before the full parse.
    fuzz::expect_clean<server::ApiError>([&] { server::model_wish_of_body(body); });
    fuzz::expect_clean<server::ApiError>([&] {
        server::ChatRequest r = server::parse_openai_chat(server::parse_body(body));
        pipeline.run(r, size);
    });
    fuzz::expect_clean<server::ApiError>([&] {
        server::CompletionRequest r = server::parse_openai_completion(server::parse_body(body));
        pipeline.mask_first_token(r.params);
    });
    return 0;
}
