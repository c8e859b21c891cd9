#include "engine/stop_strings.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace pensieve;

namespace {

struct StreamResult {
    std::vector<std::string> emitted;  // what each feed() returned
    std::string text;                  // everything emitted, flush included
    bool stopped = false;
    std::string matched;
};

StreamResult stream(std::vector<std::string> stops, const std::vector<std::string>& pieces) {
    StopStringMatcher m(std::move(stops));
    StreamResult r;
    for (const auto& piece : pieces) {
        r.emitted.push_back(m.feed(piece));
        r.text += r.emitted.back();
    }
    r.text += m.flush();
    r.stopped = m.stopped();
    r.matched = m.matched();
    return r;
}

// Feeds text one byte at a time.
StreamResult stream_bytes(std::vector<std::string> stops, const std::string& text) {
    std::vector<std::string> pieces;
    for (char c : text) pieces.emplace_back(1, c);
    return stream(std::move(stops), pieces);
}

}  // namespace

TEST(StopStrings, SplitAcrossPieces) {
    StopStringMatcher m({"lo"});
    EXPECT_EQ(m.feed("Hel"), "He");  // "l" might be the start of "lo"
    EXPECT_FALSE(m.stopped());
    EXPECT_EQ(m.feed("lo"), "l");
    EXPECT_TRUE(m.stopped());
    EXPECT_EQ(m.matched(), "lo");
    EXPECT_TRUE(m.match().stopped);
    EXPECT_EQ(m.flush(), "");
}

TEST(StopStrings, HeldPrefixReleasedWhenItDiverges) {
    StopStringMatcher m({"lo"});
    EXPECT_EQ(m.feed("Hel"), "He");
    EXPECT_EQ(m.held_size(), 1u);
    EXPECT_EQ(m.feed("p"), "lp");
    EXPECT_FALSE(m.stopped());
    EXPECT_EQ(m.flush(), "");
}

TEST(StopStrings, StopAtStart) {
    auto r = stream({"###"}, {"###", " more"});
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(r.text, "");
    EXPECT_EQ(r.emitted, (std::vector<std::string>{"", ""}));

    auto bytes = stream_bytes({"###"}, "### more");
    EXPECT_TRUE(bytes.stopped);
    EXPECT_EQ(bytes.text, "");
}

TEST(StopStrings, StopInsideOnePiece) {
    auto r = stream({"END"}, {"abcENDdef"});
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(r.text, "abc");
}

TEST(StopStrings, OverlappingPrefix) {
    // "aab" with stop "ab": the first 'a' is released once the second 'a' shows that it
    // cannot be the start of the match.
    StopStringMatcher m({"ab"});
    EXPECT_EQ(m.feed("a"), "");
    EXPECT_EQ(m.feed("a"), "a");
    EXPECT_EQ(m.feed("b"), "");
    EXPECT_TRUE(m.stopped());
    EXPECT_EQ(m.flush(), "");

    EXPECT_EQ(stream({"ab"}, {"aab"}).text, "a");
    EXPECT_EQ(stream_bytes({"abab"}, "ababab!").text, "");
    EXPECT_EQ(stream_bytes({"abac"}, "ababac!").text, "ab");
}

TEST(StopStrings, SeveralStopStrings) {
    auto r = stream_bytes({"</s>", "\nUser:", "STOP"}, "Hello there\nUser: hi</s>");
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(r.matched, "\nUser:");
    EXPECT_EQ(r.text, "Hello there");

    // The earliest occurrence wins, even when a later one completes in the same piece.
    auto same_piece = stream({"xyz", "b"}, {"axyzb"});
    EXPECT_EQ(same_piece.matched, "xyz");
    EXPECT_EQ(same_piece.text, "a");

    // At the same start the shorter one wins: in a stream it completes first.
    auto nested = stream({"abc", "ab"}, {"zabc"});
    EXPECT_EQ(nested.matched, "ab");
    EXPECT_EQ(nested.text, "z");
}

TEST(StopStrings, HoldsBackLongestPossiblePrefixOfAnyStop) {
    StopStringMatcher m({"xyz", "yzw"});
    EXPECT_EQ(m.feed("axy"), "a");  // "xy" may start "xyz"
    EXPECT_EQ(m.feed("z"), "");
    EXPECT_EQ(m.matched(), "xyz");
}

TEST(StopStrings, NoStopStringsPassEverythingThrough) {
    StopStringMatcher m({});
    EXPECT_EQ(m.feed("Hel"), "Hel");
    EXPECT_EQ(m.feed("lo"), "lo");
    EXPECT_EQ(m.held_size(), 0u);
    EXPECT_FALSE(m.stopped());
    EXPECT_EQ(m.flush(), "");

    StopStringMatcher only_empty({""});  // empty stop strings are ignored
    EXPECT_EQ(only_empty.feed("abc"), "abc");
    EXPECT_FALSE(only_empty.stopped());
}

TEST(StopStrings, FlushReturnsHeldText) {
    StopStringMatcher m({"<|end|>"});
    EXPECT_EQ(m.feed("answer <|en"), "answer ");
    EXPECT_EQ(m.flush(), "<|en");
    EXPECT_FALSE(m.stopped());
    EXPECT_EQ(m.flush(), "");  // nothing left
}

TEST(StopStrings, NothingAfterStopIsEmitted) {
    StopStringMatcher m({"."});
    EXPECT_EQ(m.feed("one. two"), "one");
    EXPECT_EQ(m.feed("three"), "");
    EXPECT_EQ(m.flush(), "");
    EXPECT_EQ(m.matched(), ".");
}

TEST(StopStrings, EverySplitGivesTheSameResult) {
    const std::string text = "The answer is 42.\n\nQuestion: next";
    const std::vector<std::string> stops = {"\n\nQuestion:", "\n\nQ&A"};
    for (size_t a = 0; a <= text.size(); ++a) {
        for (size_t b = a; b <= text.size(); ++b) {
            auto r = stream(stops, {text.substr(0, a), text.substr(a, b - a), text.substr(b)});
            ASSERT_EQ(r.text, "The answer is 42.") << a << "," << b;
            ASSERT_EQ(r.matched, "\n\nQuestion:");
        }
    }
}

TEST(StopStrings, UnmatchedTextAllComesOutInOrder) {
    const std::string text = "ab aab abb ba a";
    auto r = stream_bytes({"abc", "bb!"}, text);
    EXPECT_FALSE(r.stopped);
    EXPECT_EQ(r.text, text);
}
