// GrammarMatcher: per request, which tokens may come next under a Grammar.
//
// Use, once per generated token:
//     matcher.mask_logits(logits);          // disallowed tokens -> -inf
//     int32_t t = sampler.sample(logits);
//     matcher.accept_token(t);              // advance (EOG accepted only when complete)
//
// How it works. The grammar is run as a pushdown automaton over Unicode code points:
// the parse state is a set of stacks (each a chain of "what comes next" positions, the
// top always a character set), like llama.cpp's. Stacks are hash-consed frames, so two
// equal stacks are the same integer, and a whole parse state (a sorted set of stack
// tops, plus an unfinished UTF-8 character) is interned as one state id. Byte
// transitions between state ids are computed lazily and cached, i.e. the matcher builds
// the DFA of the grammar as the generation explores it. Inside a JSON string the state
// after a character is the state before it, so that part of the DFA is a self-loop.
//
// Masking walks a trie of every token's bytes (built once per Tokenizer and shared),
// following cached byte transitions: a dead transition prunes the whole subtree, and a
// shared prefix is checked once. The allowed-token bitmap is also cached per state, so
// a state seen before (e.g. the middle of a string) costs one pass over the logits.
//
// Tokens that are never allowed: control/unknown/unused tokens and tokens with no bytes.
// End-of-generation tokens (EOS, EOT, <|im_end|>, ...) are allowed exactly when the
// output so far is a complete sentence of the grammar.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/grammar.h"
#include "util/flat_map.h"

namespace pensieve {

class Tokenizer;
struct TokenTrie;

class GrammarMatcher {
public:
    GrammarMatcher(std::shared_ptr<const Grammar> grammar, const Tokenizer& tokenizer);
    ~GrammarMatcher();
    GrammarMatcher(const GrammarMatcher&) = delete;
    GrammarMatcher& operator=(const GrammarMatcher&) = delete;

    // Sets logits[id] = -inf for every token that cannot continue a valid output
    // (n_vocab floats). If nothing at all could follow (impossible for grammars that
    // parse_gbnf accepts, whose every rule can finish, with a vocabulary that can spell
    // every byte) the EOG tokens are left open so generation still ends.
    void mask_logits(float* logits);

    // Advances by one sampled token. Throws Error if the token is not allowed now. An
    // EOG token is allowed when is_complete(); after it, nothing else is.
    void accept_token(int32_t token);

    // Advances by raw bytes (e.g. text forced into the output); throws Error if they
    // do not continue a valid output.
    void accept_bytes(std::string_view bytes);

    // Would `token` be allowed now? (Same answer as mask_logits, without the full pass.)
    bool is_token_allowed(int32_t token);

    // The output so far is a full sentence of the grammar (EOG may be sampled).
    bool is_complete() const;
    // Complete and nothing but end-of-generation can follow.
    bool can_only_end() const;

    // Fewest characters that would complete the output from here (0 when complete).
    int32_t min_chars_to_complete();
    // Like mask_logits, but keeps only the allowed tokens that bring the output closest
    // to complete (only EOG once it is complete). For when the token budget is about to
    // run out: e.g. once the tokens left <= min_chars_to_complete() + a small margin,
    // so a JSON answer still closes its strings and brackets. Repeated use always
    // reaches a complete output.
    void mask_logits_to_finish(float* logits);

    // Back to the start (same grammar); drops the caches.
    void reset();

    // Diagnostics: DFA states built so far.
    size_t n_states() const { return states_.size(); }

private:
    struct State {
        std::vector<int32_t> tops;  // sorted frame ids; kAccept (0) when the root may end here
        uint32_t partial = 0;       // bits of an unfinished UTF-8 character
        uint8_t need = 0;           // its missing continuation bytes (0: none pending)
        uint8_t len = 0;            // its total length in bytes
    };
    struct Frame {
        int32_t pos;     // symbol index: what to match next
        int32_t parent;  // frame to return to at the end of the alternative; -1: none
    };
    static constexpr int32_t kAccept = 0;
    static constexpr int32_t kDead = -1;
    static constexpr int32_t kUnknown = -2;

    static uint64_t frame_key(int32_t pos, int32_t parent) { return (uint64_t(uint32_t(pos)) << 32) | uint32_t(parent); }
    int32_t intern_frame(int32_t pos, int32_t parent);
    void charge(uint64_t units);  // counts work; throws Error past the per-call budget
    void expand(int32_t pos, int32_t parent, std::vector<int32_t>& out);
    const std::vector<int32_t>& after_char(int32_t frame);
    int32_t intern_state(State&& s);
    int32_t start_state();
    int32_t step(int32_t state, uint8_t byte) {
        const size_t i = size_t(state) * 256 + byte;
        int32_t t = trans_[i];
        if (t == kUnknown) {
            t = compute_step(state, byte);  // may grow trans_, so no reference held across it
            trans_[i] = t;
        }
        return t;
    }
    int32_t compute_step(int32_t state, uint8_t byte);
    const std::vector<uint64_t>& allowed_bitmap();
    template <typename F> void walk_trie(F&& on_token);
    int32_t frame_dist(int32_t frame);
    int32_t state_dist(int32_t state);
    void apply_bitmap(float* logits, const std::vector<uint64_t>& bits, bool open_eog);
    void maybe_shrink();
    bool state_complete(int32_t s) const;

    std::shared_ptr<const Grammar> grammar_;
    const Tokenizer& tokenizer_;
    std::shared_ptr<const TokenTrie> trie_;
    int32_t n_vocab_;

    std::vector<Frame> frames_;
    FlatMap64 frame_ids_;                             // frame_key(pos, parent) -> frame id
    std::vector<std::vector<int32_t>> after_char_;   // per frame: tops after its char matched
    std::vector<uint8_t> after_char_done_;
    std::vector<int32_t> frame_dist_;                 // per frame: min chars to finish its stack; -1 unknown
    std::vector<State> states_;
    std::unordered_map<std::string, int32_t> state_ids_;
    std::vector<int32_t> trans_;                      // states_ x 256
    std::unordered_map<int32_t, std::vector<uint64_t>> mask_cache_;

    int32_t current_ = 0;
    bool ended_ = false;                              // an EOG token was accepted
    std::vector<int32_t> walk_states_;                // scratch for the trie walk
    std::vector<Frame> expand_work_;                  // scratch for expand()
    uint64_t work_ = 0;                               // spent by the current call, see charge()
    std::vector<float> eog_saved_;
};

}  // namespace pensieve
