// UTF-8 helpers for streaming generated text.
//
// Token pieces are byte strings: a byte-level BPE token may end in the middle of a
// multi-byte character, and a model may emit bytes that are not UTF-8 at all. What
// reaches a client (JSON, SSE, the terminal) must always be valid UTF-8, so streamed
// output passes through a Utf8Streamer, which holds back an unfinished character until
// its remaining bytes arrive and replaces bytes that can never form a character with
// U+FFFD.
//
// "Valid" here is strict RFC 3629 / Unicode: no overlong forms, no surrogates
// (U+D800..U+DFFF), nothing above U+10FFFF.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pensieve {

// True when s is entirely well-formed UTF-8.
bool is_valid_utf8(std::string_view s);

// Length of the longest prefix of s that does not end inside an unfinished character:
// s.size(), minus the trailing bytes that are the start of a valid multi-byte sequence
// still waiting for its continuation bytes. Bytes that can never become valid are not
// held back (they end at a "boundary" too: they will be replaced, not completed).
size_t utf8_complete_prefix(std::string_view s);

// Copy of s with every ill-formed part replaced by U+FFFD (EF BF BD), one replacement
// per maximal ill-formed subpart, as the Unicode standard recommends (and as browsers
// and Python's "replace" error handler do). Valid input is returned unchanged.
std::string sanitize_utf8(std::string_view s);

// Turns a stream of byte chunks into a stream of valid UTF-8 chunks. Concatenating
// everything feed() and flush() return equals sanitize_utf8(all bytes fed), however the
// bytes were split.
class Utf8Streamer {
public:
    // Returns the newly completed text; an unfinished character at the end is kept.
    std::string feed(std::string_view bytes);
    // End of stream: returns what was held back (an unfinished character becomes U+FFFD).
    std::string flush();
    // Bytes currently held back (0..3).
    size_t pending_size() const { return pending_.size(); }

private:
    std::string pending_;
};

}  // namespace pensieve
