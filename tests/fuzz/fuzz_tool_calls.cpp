// libFuzzer target for the tool-call parsers: bytes as a model's reply, split into
// content and calls in every syntax (chat/tool_calls.h), at once and streamed in
// pieces. Never a crash or an exception; every call found has a name and object
// arguments.
#include <cstddef>
#include <cstdint>

#include "fuzz_common.h"
#include "chat/tool_calls.h"

using namespace pensieve;

namespace {

void check(const ParsedReply& r) {
    for (const ToolCall& c : r.calls)
        if (c.name.empty() || !c.arguments.is_object() || c.id.empty()) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    for (ToolFormat f : all_tool_formats()) {
        check(parse_tool_calls(text, f));
        // Streamed in pieces of 1..8 bytes (sizes taken from the text itself).
        ToolCallStreamer streamer(f);
        std::string content;
        for (size_t pos = 0; pos < text.size();) {
            const size_t n = 1 + (uint8_t(text[pos]) % 8);
            content += streamer.feed(text.substr(pos, n));
            pos += n;
        }
        ParsedReply r = streamer.finish();
        check(r);
        if (r.calls.empty() && content + r.content != text) abort();  // no call: every byte is content
    }
    return 0;
}
