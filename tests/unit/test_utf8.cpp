#include "util/utf8.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace pensieve;

namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

// Streams bytes split at the given cut points and returns the concatenated output,
// checking that every chunk is valid UTF-8 on its own.
std::string stream_with_cuts(const std::string& bytes, const std::vector<size_t>& cuts) {
    Utf8Streamer streamer;
    std::string out;
    size_t start = 0;
    for (size_t cut : cuts) {
        const std::string chunk = streamer.feed(std::string_view(bytes).substr(start, cut - start));
        EXPECT_TRUE(is_valid_utf8(chunk));
        out += chunk;
        start = cut;
    }
    const std::string last = streamer.feed(std::string_view(bytes).substr(start));
    EXPECT_TRUE(is_valid_utf8(last));
    out += last;
    const std::string tail = streamer.flush();
    EXPECT_TRUE(is_valid_utf8(tail));
    return out + tail;
}

}  // namespace

TEST(Utf8, ValidStrings) {
    EXPECT_TRUE(is_valid_utf8(""));
    EXPECT_TRUE(is_valid_utf8("plain ascii"));
    EXPECT_TRUE(is_valid_utf8("\xC3\xA9"));          // é (2 bytes)
    EXPECT_TRUE(is_valid_utf8("\xE2\x82\xAC"));      // € (3 bytes)
    EXPECT_TRUE(is_valid_utf8("\xF0\x9F\x98\x80"));  // 😀 (4 bytes)
    EXPECT_TRUE(is_valid_utf8("\xC2\x80"));          // U+0080, smallest 2-byte
    EXPECT_TRUE(is_valid_utf8("\xE0\xA0\x80"));      // U+0800, smallest 3-byte
    EXPECT_TRUE(is_valid_utf8("\xED\x9F\xBF"));      // U+D7FF, just below surrogates
    EXPECT_TRUE(is_valid_utf8("\xEE\x80\x80"));      // U+E000, just above surrogates
    EXPECT_TRUE(is_valid_utf8("\xF0\x90\x80\x80"));  // U+10000, smallest 4-byte
    EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF, the largest
    EXPECT_TRUE(is_valid_utf8(std::string("a\0b", 3)));
}

TEST(Utf8, InvalidStrings) {
    EXPECT_FALSE(is_valid_utf8("\x80"));              // lone continuation
    EXPECT_FALSE(is_valid_utf8("\xBF"));
    EXPECT_FALSE(is_valid_utf8("\xC3"));              // truncated 2-byte
    EXPECT_FALSE(is_valid_utf8("\xE2\x82"));          // truncated 3-byte
    EXPECT_FALSE(is_valid_utf8("\xF0\x9F\x98"));      // truncated 4-byte
    EXPECT_FALSE(is_valid_utf8("\xC3" "a"));          // lead then ASCII
    EXPECT_FALSE(is_valid_utf8("\xFF"));
    EXPECT_FALSE(is_valid_utf8("\xFE"));
    EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));  // lead beyond F4
}

TEST(Utf8, OverlongFormsRejected) {
    EXPECT_FALSE(is_valid_utf8("\xC0\x80"));          // U+0000 as 2 bytes
    EXPECT_FALSE(is_valid_utf8("\xC1\xBF"));          // U+007F as 2 bytes
    EXPECT_FALSE(is_valid_utf8("\xE0\x80\x80"));      // U+0000 as 3 bytes
    EXPECT_FALSE(is_valid_utf8("\xE0\x9F\xBF"));      // U+07FF as 3 bytes
    EXPECT_FALSE(is_valid_utf8("\xF0\x80\x80\x80"));  // U+0000 as 4 bytes
    EXPECT_FALSE(is_valid_utf8("\xF0\x8F\xBF\xBF"));  // U+FFFF as 4 bytes
}

TEST(Utf8, SurrogatesAndBeyondMaxRejected) {
    EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));              // U+D800
    EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));              // U+DFFF
    EXPECT_FALSE(is_valid_utf8("\xED\xA0\xBD\xED\xB8\x80"));  // CESU-8 pair
    EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));          // U+110000
}

TEST(Utf8, CompletePrefix) {
    EXPECT_EQ(utf8_complete_prefix(""), 0u);
    EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
    EXPECT_EQ(utf8_complete_prefix("ab\xC3"), 2u);
    EXPECT_EQ(utf8_complete_prefix("ab\xC3\xA9"), 4u);
    EXPECT_EQ(utf8_complete_prefix("ab\xE2"), 2u);
    EXPECT_EQ(utf8_complete_prefix("ab\xE2\x82"), 2u);
    EXPECT_EQ(utf8_complete_prefix("ab\xF0\x9F\x98"), 2u);
    EXPECT_EQ(utf8_complete_prefix("\xF0\x9F\x98\x80"), 4u);
    // Bytes that can never complete are not held back.
    EXPECT_EQ(utf8_complete_prefix("a\x80"), 2u);
    EXPECT_EQ(utf8_complete_prefix("a\xFF"), 2u);
    EXPECT_EQ(utf8_complete_prefix("a\xE0\x80"), 3u);  // overlong start: dead already
    EXPECT_EQ(utf8_complete_prefix("a\xED\xA0"), 3u);  // surrogate start: dead already
    EXPECT_EQ(utf8_complete_prefix("a\xC3" "b"), 3u);
}

TEST(Utf8, Sanitize) {
    EXPECT_EQ(sanitize_utf8("h\xC3\xA9llo"), "h\xC3\xA9llo");
    EXPECT_EQ(sanitize_utf8("a\xFF" "b"), "a" + kFFFD + "b");
    EXPECT_EQ(sanitize_utf8("a\xE2\x82" "b"), "a" + kFFFD + "b");  // one per maximal subpart
    EXPECT_EQ(sanitize_utf8("\xC0\x80"), kFFFD + kFFFD);            // C0 is never valid
    EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);
    EXPECT_EQ(sanitize_utf8("\xF0\x9F\x98"), kFFFD);                  // truncated at the end
    EXPECT_TRUE(is_valid_utf8(sanitize_utf8("\x80\x81\xFE\xF4\x90\xC3")));
}

TEST(Utf8, StreamerSplitsEveryCharacterAtEveryByte) {
    const std::vector<std::string> chars = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};
    for (const auto& ch : chars) {
        const std::string text = "a" + ch + "b";
        for (size_t cut = 0; cut <= text.size(); ++cut) {
            Utf8Streamer streamer;
            const std::string first = streamer.feed(text.substr(0, cut));
            const std::string second = streamer.feed(text.substr(cut));
            EXPECT_TRUE(is_valid_utf8(first)) << ch.size() << "-byte char, cut " << cut;
            EXPECT_EQ(first + second, text);
            EXPECT_EQ(streamer.flush(), "");
        }
        // And one byte at a time.
        std::vector<size_t> cuts;
        for (size_t i = 1; i < text.size(); ++i) cuts.push_back(i);
        EXPECT_EQ(stream_with_cuts(text, cuts), text);
    }
}

TEST(Utf8, StreamerHoldsOnlyTheUnfinishedCharacter) {
    Utf8Streamer s;
    EXPECT_EQ(s.feed("ok \xF0\x9F"), "ok ");
    EXPECT_EQ(s.pending_size(), 2u);
    EXPECT_EQ(s.feed("\x98"), "");
    EXPECT_EQ(s.feed("\x80!"), "\xF0\x9F\x98\x80!");
    EXPECT_EQ(s.pending_size(), 0u);
}

TEST(Utf8, StreamerReplacesInvalidBytes) {
    Utf8Streamer s;
    EXPECT_EQ(s.feed("a\xFF" "b"), "a" + kFFFD + "b");
    EXPECT_EQ(s.feed("\xC3"), "");
    EXPECT_EQ(s.feed("x"), kFFFD + "x");  // the lead byte was not followed by a continuation
    EXPECT_EQ(s.feed("\xE2\x82"), "");
    EXPECT_EQ(s.flush(), kFFFD);  // stream ended inside a character
    EXPECT_EQ(s.flush(), "");
}

TEST(Utf8, StreamerMatchesSanitizeForEverySplit) {
    const std::string bytes = "x\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xFF\xE2\x82y\xED\xA0\x80\xC3";
    const std::string expected = sanitize_utf8(bytes);
    for (size_t a = 0; a <= bytes.size(); ++a) {
        for (size_t b = a; b <= bytes.size(); ++b) {
            ASSERT_EQ(stream_with_cuts(bytes, {a, b}), expected) << a << "," << b;
        }
    }
}
