// Stop strings across token boundaries.
//
// Generated text arrives one token piece at a time, and a stop string may span several
// pieces ("Hel" + "lo" for the stop string "lo"). The matcher emits text as early as it
// can, but holds back any tail that could still grow into a stop string; once a stop
// string completes, nothing from its first byte on is ever emitted.
//
// Matching is on bytes. It composes with Utf8Streamer (util/utf8.h) in either order; the
// usual one is stops.feed(utf8.feed(piece)), so stop strings are matched against the text
// the client will see. A held-back tail always starts where a stop string starts, so the
// matcher never splits a character that its input did not already split.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pensieve {

struct StopMatch {
    bool stopped = false;
    std::string stop_string;  // the stop string that matched (empty unless stopped)
};

class StopStringMatcher {
public:
    // Empty stop strings are ignored (they would match before any output).
    explicit StopStringMatcher(std::vector<std::string> stop_strings);

    // Adds a piece of generated text; returns the text that is now safe to emit.
    // After a stop string has matched, returns "" and ignores the piece.
    std::string feed(std::string_view piece);

    // A stop string has completed; generation should end.
    bool stopped() const { return match_.stopped; }

    // End of generation: returns the withheld text (empty if stopped).
    std::string flush();

    // The stop string that matched (empty unless stopped()).
    const std::string& matched() const { return match_.stop_string; }
    const StopMatch& match() const { return match_; }

    // Bytes currently held back because they may be the start of a stop string.
    size_t held_size() const { return held_.size(); }

private:
    // Where the earliest stop string starts in held_, or npos; sets *which to its index.
    size_t find_earliest_stop(size_t* which) const;
    // Length of the longest tail of held_ that is a proper prefix of some stop string.
    size_t longest_partial_stop_tail() const;

    std::vector<std::string> stop_strings_;
    std::string held_;  // fed but not yet emitted
    StopMatch match_;
};

}  // namespace pensieve
