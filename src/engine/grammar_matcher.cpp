// GrammarMatcher: lazily built byte DFA over the grammar's pushdown states, walked
// along a shared trie of token pieces (see grammar_matcher.h for the idea).

#include "engine/grammar_matcher.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <mutex>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pensieve {

// Every usable token's bytes, as a trie stored in preorder: a node's subtree is the
// index range [node, node.end), so the walk skips a dead subtree with one assignment.
// Built once per Tokenizer (a few ms for 32k tokens, tens of ms for 150k) and shared by
// all matchers on it.
struct TokenTrie {
    struct Node {
        uint8_t byte;
        uint16_t depth;      // root 0
        uint32_t end;        // one past the last node of this subtree
        uint32_t tok_begin;  // tokens ending here: tokens[tok_begin, next node's tok_begin)
    };
    std::vector<Node> nodes;      // [0] root ... [n-1], then a sentinel
    std::vector<int32_t> tokens;  // token ids in node order
    int max_depth = 0;
    std::vector<std::string> pieces;  // per id: its bytes ("" when unusable)
    std::vector<uint8_t> usable;      // per id: may appear inside grammar output
    std::vector<int32_t> eog;         // end-of-generation ids (EOS included)
};

namespace {

constexpr size_t kMaxStates = 8192;      // DFA size at which the caches are rebuilt
constexpr size_t kMaxFrames = 1 << 21;   // ... or stack frames (~100 MB with their index)
constexpr size_t kMaxCachedMasks = 64;
constexpr size_t kMaxPieceBytes = 1024;  // longer "tokens" are ignored (none exist in practice)
// Work allowed to one call (mask, accept, ...), in stack frames visited while building
// transitions. A grammar can be ambiguous enough that a state holds exponentially many
// stacks (x ::= "a" x "b" | "a" x "c" | "" doubles them per "a"); past this budget the
// call throws instead of stalling the server (and the request ends with a 400). The
// most any test grammar needs is 360k (a 60000-rule nullable chain); the JSON-schema and
// tool-call grammars stay near 100k on their first, uncached mask. A unit that creates
// stack frames costs ~0.4 us here (memory-bound), so the doubling grammar of the test
// is refused after 17 "a"s and 0.74 s of CPU in all.
constexpr uint64_t kMaxWorkPerCall = 1'000'000;

std::shared_ptr<const TokenTrie> build_trie(const Tokenizer& tok) {
    auto trie = std::make_shared<TokenTrie>();
    const int32_t n = tok.n_vocab();
    trie->pieces.resize(size_t(n));
    trie->usable.assign(size_t(n), 0);
    trie->eog = tok.end_of_generation_ids();
    if (tok.eos_id() >= 0 && !std::count(trie->eog.begin(), trie->eog.end(), tok.eos_id()))
        trie->eog.push_back(tok.eos_id());

    std::vector<int32_t> ids;
    for (int32_t id = 0; id < n; ++id) {
        const TokenType type = tok.token_type(id);
        // Control tokens (BOS, <|im_start|>, ...) never belong inside grammar output;
        // EOG tokens are handled apart from the trie.
        if (type == TokenType::CONTROL || type == TokenType::UNKNOWN || type == TokenType::UNUSED) continue;
        if (tok.is_end_of_generation(id) || tok.is_control(id)) continue;
        std::string piece = tok.token_to_piece(id);
        if (piece.empty() || piece.size() > kMaxPieceBytes) continue;
        trie->pieces[size_t(id)] = std::move(piece);
        trie->usable[size_t(id)] = 1;
        ids.push_back(id);
    }
    std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
        const std::string& pa = trie->pieces[size_t(a)];
        const std::string& pb = trie->pieces[size_t(b)];
        return pa != pb ? pa < pb : a < b;
    });

    // Sorted pieces give the preorder directly: each piece adds nodes for the bytes past
    // its common prefix with the previous piece, and closes the previous piece's deeper nodes.
    auto& nodes = trie->nodes;
    nodes.push_back({0, 0, 0, 0});
    std::vector<uint32_t> path = {0};  // path[d]: open node at depth d
    const std::string* prev = nullptr;
    for (int32_t id : ids) {
        const std::string& p = trie->pieces[size_t(id)];
        size_t lcp = 0;
        if (prev)
            while (lcp < prev->size() && lcp < p.size() && (*prev)[lcp] == p[lcp]) ++lcp;
        while (path.size() > lcp + 1) {
            nodes[path.back()].end = uint32_t(nodes.size());
            path.pop_back();
        }
        for (size_t d = lcp; d < p.size(); ++d) {
            path.push_back(uint32_t(nodes.size()));
            nodes.push_back({uint8_t(p[d]), uint16_t(d + 1), 0, uint32_t(trie->tokens.size())});
        }
        trie->tokens.push_back(id);
        trie->max_depth = std::max(trie->max_depth, int(p.size()));
        prev = &p;
    }
    while (!path.empty()) {
        nodes[path.back()].end = uint32_t(nodes.size());
        path.pop_back();
    }
    nodes.push_back({0, 0, uint32_t(nodes.size() + 1), uint32_t(trie->tokens.size())});  // sentinel
    return trie;
}

// One trie per tokenizer, kept for the life of the process (tokenizers live as long as
// their model). The key includes the vocabulary's storage address and size so that a
// new tokenizer allocated where an old one was is not mistaken for it.
std::shared_ptr<const TokenTrie> trie_for(const Tokenizer& tok) {
    struct Entry {
        const Tokenizer* tok;
        const void* storage;
        int32_t n_vocab;
        std::shared_ptr<const TokenTrie> trie;
    };
    static std::mutex mutex;
    static std::vector<Entry> cache;
    std::lock_guard<std::mutex> lock(mutex);
    const void* storage = tok.vocab().tokens.data();
    for (const Entry& e : cache)
        if (e.tok == &tok && e.storage == storage && e.n_vocab == tok.n_vocab()) return e.trie;
    auto trie = build_trie(tok);
    if (cache.size() >= 4) cache.erase(cache.begin());
    cache.push_back({&tok, storage, tok.n_vocab(), trie});
    return trie;
}

}  // namespace

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar, const Tokenizer& tokenizer)
    : grammar_(std::move(grammar)), tokenizer_(tokenizer), trie_(trie_for(tokenizer)), n_vocab_(tokenizer.n_vocab()) {
    if (!grammar_) fail("grammar matcher: no grammar");
    reset();
}

GrammarMatcher::~GrammarMatcher() = default;

void GrammarMatcher::reset() {
    frames_.clear();
    frame_ids_.clear();
    after_char_.clear();
    after_char_done_.clear();
    frame_dist_.clear();
    states_.clear();
    state_ids_.clear();
    trans_.clear();
    mask_cache_.clear();
    work_ = 0;
    frames_.push_back({-1, -1});  // frame 0 is kAccept: "the root rule has ended"
    current_ = start_state();
    ended_ = false;
}

void GrammarMatcher::charge(uint64_t units) {
    work_ += units;
    if (work_ > kMaxWorkPerCall)
        fail("grammar: too ambiguous to follow (over ", kMaxWorkPerCall,
             " parser steps for one token); simplify the grammar (fewer alternatives that match the same text)");
}

int32_t GrammarMatcher::intern_frame(int32_t pos, int32_t parent) {
    bool inserted = false;
    const uint32_t id = frame_ids_.get_or_insert(frame_key(pos, parent), uint32_t(frames_.size()), inserted);
    if (inserted) frames_.push_back({pos, parent});
    return int32_t(id);
}

// Adds to `out` the stack tops reachable from "match symbols[pos...], then return to
// parent" without consuming a character: rule references are expanded into their
// alternatives, ends of alternatives pop to the parent. Terminates because the grammar
// has no left recursion. A work list instead of recursion: a chain of nullable rules
// (x? nested, or ends popping through a deep stack) can be longer than the C++ stack.
//
// Past the first few dozen steps, each (position, parent) pair is expanded once per
// call: what it adds depends on nothing else, and without this a group of n empty
// alternatives repeated m times ("( "a" | | | ){1,6}") would be walked n^m times.
// Small expansions (nearly all) skip the set: a set per call cost more than the walk.
void GrammarMatcher::expand(int32_t pos, int32_t parent, std::vector<int32_t>& out) {
    constexpr int kStepsWithoutSet = 64;
    const std::vector<GrammarSymbol>& syms = grammar_->symbols();
    std::vector<Frame>& work = expand_work_;
    FlatMap64 seen;  // allocates only once used
    int steps = 0;
    work.assign(1, {pos, parent});
    while (!work.empty()) {
        const Frame w = work.back();
        work.pop_back();
        if (++steps > kStepsWithoutSet) {
            bool inserted = false;
            seen.get_or_insert(frame_key(w.pos, w.parent), 0, inserted);
            if (!inserted) continue;
        }
        charge(1);
        const GrammarSymbol s = syms[size_t(w.pos)];
        if (s.kind == GrammarSymbol::End) {
            if (w.parent < 0) out.push_back(kAccept);
            else work.push_back(frames_[size_t(w.parent)]);
        } else if (s.kind == GrammarSymbol::Chars) {
            out.push_back(intern_frame(w.pos, w.parent));
        } else {
            // Tail call: when the reference ends its alternative, return straight to our
            // parent. This keeps x* (star ::= x star | ) at constant stack depth, which is
            // what makes the state inside a string repeat.
            const int32_t cont =
                syms[size_t(w.pos) + 1].kind == GrammarSymbol::End ? w.parent : intern_frame(w.pos + 1, w.parent);
            for (int32_t alt : grammar_->alternatives(s.index)) work.push_back({alt, cont});
        }
    }
}

// The tops that follow once the character at `frame`'s top has been matched. Depends
// only on the frame (not on which character it was), so it is computed once.
const std::vector<int32_t>& GrammarMatcher::after_char(int32_t frame) {
    if (size_t(frame) >= after_char_.size()) {
        after_char_.resize(frames_.size());
        after_char_done_.resize(frames_.size(), 0);
    }
    if (!after_char_done_[size_t(frame)]) {
        std::vector<int32_t> out;
        const Frame f = frames_[size_t(frame)];
        expand(f.pos + 1, f.parent, out);
        std::sort(out.begin(), out.end());
        out.erase(std::unique(out.begin(), out.end()), out.end());
        if (size_t(frame) >= after_char_.size()) {  // expand() may have added frames
            after_char_.resize(frames_.size());
            after_char_done_.resize(frames_.size(), 0);
        }
        after_char_[size_t(frame)] = std::move(out);
        after_char_done_[size_t(frame)] = 1;
    }
    return after_char_[size_t(frame)];
}

int32_t GrammarMatcher::intern_state(State&& s) {
    std::string key;
    key.reserve(8 + s.tops.size() * 4);
    const uint32_t head[2] = {s.partial, uint32_t(s.need) | (uint32_t(s.len) << 8)};
    key.append(reinterpret_cast<const char*>(head), sizeof head);
    key.append(reinterpret_cast<const char*>(s.tops.data()), s.tops.size() * sizeof(int32_t));
    auto [it, inserted] = state_ids_.try_emplace(std::move(key), int32_t(states_.size()));
    if (inserted) {
        states_.push_back(std::move(s));
        trans_.resize(trans_.size() + 256, kUnknown);
    }
    return it->second;
}

int32_t GrammarMatcher::start_state() {
    State s;
    for (int32_t alt : grammar_->alternatives(grammar_->root())) expand(alt, -1, s.tops);
    std::sort(s.tops.begin(), s.tops.end());
    s.tops.erase(std::unique(s.tops.begin(), s.tops.end()), s.tops.end());
    return intern_state(std::move(s));
}

bool GrammarMatcher::state_complete(int32_t s) const {
    const State& st = states_[size_t(s)];
    return st.need == 0 && !st.tops.empty() && st.tops[0] == kAccept;
}

int32_t GrammarMatcher::compute_step(int32_t state, uint8_t byte) {
    // Copies: interning below may reallocate states_.
    const std::vector<int32_t> tops = states_[size_t(state)].tops;
    const State cur = {{}, states_[size_t(state)].partial, states_[size_t(state)].need, states_[size_t(state)].len};
    const std::vector<GrammarSymbol>& syms = grammar_->symbols();
    auto charset_of = [&](int32_t f) -> const CharSet& {
        return grammar_->charset(syms[size_t(frames_[size_t(f)].pos)].index);
    };

    // A whole code point: keep the tops that match it and move past them.
    auto advance = [&](uint32_t cp) -> int32_t {
        State next;
        charge(tops.size());
        for (int32_t f : tops) {
            if (f == kAccept || !charset_of(f).contains(cp)) continue;
            const std::vector<int32_t>& after = after_char(f);
            charge(after.size());
            next.tops.insert(next.tops.end(), after.begin(), after.end());
        }
        if (next.tops.empty()) return kDead;
        std::sort(next.tops.begin(), next.tops.end());
        next.tops.erase(std::unique(next.tops.begin(), next.tops.end()), next.tops.end());
        return intern_state(std::move(next));
    };
    // Part of a character: its value lies in an interval; keep the tops whose set meets
    // it, so a token ending mid-character is only allowed if the character can still
    // be finished validly.
    auto partial = [&](uint32_t bits, int need, int len) -> int32_t {
        uint32_t lo = bits << (6 * need), hi = lo | ((uint32_t(1) << (6 * need)) - 1);
        const uint32_t min_cp = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;  // no overlong forms
        lo = std::max(lo, min_cp);
        hi = std::min<uint32_t>(hi, 0x10FFFF);
        if (lo > hi || (lo >= 0xD800 && hi <= 0xDFFF)) return kDead;  // surrogates are not characters
        State next;
        next.partial = bits;
        next.need = uint8_t(need);
        next.len = uint8_t(len);
        charge(tops.size());
        for (int32_t f : tops)
            if (f != kAccept && charset_of(f).intersects(lo, hi)) next.tops.push_back(f);
        if (next.tops.empty()) return kDead;
        return intern_state(std::move(next));
    };

    if (cur.need == 0) {
        if (byte < 0x80) return advance(byte);
        if (byte >= 0xC2 && byte <= 0xDF) return partial(byte & 0x1F, 1, 2);
        if ((byte & 0xF0) == 0xE0) return partial(byte & 0x0F, 2, 3);
        if (byte >= 0xF0 && byte <= 0xF4) return partial(byte & 0x07, 3, 4);
        return kDead;  // continuation byte without a lead, or a byte never valid in UTF-8
    }
    if ((byte & 0xC0) != 0x80) return kDead;
    const uint32_t bits = (cur.partial << 6) | (byte & 0x3F);
    if (cur.need > 1) return partial(bits, cur.need - 1, cur.len);
    const uint32_t min_cp = cur.len == 2 ? 0x80 : cur.len == 3 ? 0x800 : 0x10000;
    if (bits < min_cp || bits > 0x10FFFF || (bits >= 0xD800 && bits <= 0xDFFF)) return kDead;
    return advance(bits);
}

// Calls on_token(id, state after it) for every token that can follow the current
// state, by one depth-first walk over the token trie.
template <typename F>
void GrammarMatcher::walk_trie(F&& on_token) {
    const TokenTrie& trie = *trie_;
    const TokenTrie::Node* nodes = trie.nodes.data();
    const uint32_t n = uint32_t(trie.nodes.size() - 1);  // without the sentinel
    walk_states_.assign(size_t(trie.max_depth) + 1, kDead);
    walk_states_[0] = current_;
    for (uint32_t i = 1; i < n;) {
        const TokenTrie::Node& nd = nodes[i];
        const int32_t s = step(walk_states_[nd.depth - 1u], nd.byte);
        if (s < 0) {
            i = nd.end;  // no token with this prefix can continue the output
            continue;
        }
        walk_states_[nd.depth] = s;
        for (uint32_t k = nd.tok_begin; k < nodes[i + 1].tok_begin; ++k) on_token(trie.tokens[k], s);
        ++i;
    }
}

// Allowed-token bitmap of the current state: cached, else one walk over the trie.
const std::vector<uint64_t>& GrammarMatcher::allowed_bitmap() {
    auto it = mask_cache_.find(current_);
    if (it != mask_cache_.end()) return it->second;
    if (mask_cache_.size() >= kMaxCachedMasks) mask_cache_.clear();
    std::vector<uint64_t> bits((size_t(n_vocab_) + 63) / 64, 0);
    walk_trie([&](int32_t id, int32_t) { bits[size_t(id) >> 6] |= uint64_t(1) << (id & 63); });
    return mask_cache_[current_] = std::move(bits);
}

void GrammarMatcher::apply_bitmap(float* logits, const std::vector<uint64_t>& bits, bool open_eog) {
    const std::vector<int32_t>& eog = trie_->eog;
    eog_saved_.clear();
    for (int32_t id : eog) eog_saved_.push_back(logits[id]);
    for (size_t w = 0; w < bits.size(); ++w) {
        uint64_t word = bits[w];
        if (word == ~uint64_t(0)) continue;
        const size_t base = w * 64, end = std::min(base + 64, size_t(n_vocab_));
        for (size_t id = base; id < end; ++id)
            if (!((word >> (id - base)) & 1)) logits[id] = -INFINITY;
    }
    for (size_t i = 0; i < eog.size(); ++i) logits[eog[i]] = open_eog ? eog_saved_[i] : -INFINITY;
}

// Fewest characters to finish a stack: the rest of each frame's alternative, summed
// down to the root. Memoized per frame (frames are shared between stacks); computed from
// the nearest known ancestor down, since a stack can be as deep as the output is long.
int32_t GrammarMatcher::frame_dist(int32_t frame) {
    if (frame == kAccept || frame < 0) return 0;
    if (frame_dist_.size() < frames_.size()) frame_dist_.resize(frames_.size(), -1);
    std::vector<int32_t> unknown;  // frame, its parent, ... up to the first known one
    for (int32_t f = frame; f > 0 && frame_dist_[size_t(f)] < 0; f = frames_[size_t(f)].parent) unknown.push_back(f);
    for (size_t i = unknown.size(); i-- > 0;) {
        const Frame f = frames_[size_t(unknown[i])];
        const int64_t below = f.parent > 0 ? frame_dist_[size_t(f.parent)] : 0;
        frame_dist_[size_t(unknown[i])] = int32_t(std::min<int64_t>(grammar_->min_chars_from(f.pos) + below, INT32_MAX));
    }
    return frame_dist_[size_t(frame)];
}

int32_t GrammarMatcher::state_dist(int32_t state) {
    if (state_complete(state)) return 0;
    int32_t best = INT32_MAX;
    const std::vector<int32_t> tops = states_[size_t(state)].tops;
    charge(tops.size());
    for (int32_t f : tops)
        if (f != kAccept) best = std::min(best, frame_dist(f));
    return best;
}

int32_t GrammarMatcher::min_chars_to_complete() {
    work_ = 0;
    return ended_ ? 0 : state_dist(current_);
}

void GrammarMatcher::mask_logits_to_finish(float* logits) {
    work_ = 0;
    maybe_shrink();
    std::vector<uint64_t> bits((size_t(n_vocab_) + 63) / 64, 0);
    if (!is_complete()) {
        // Keep the tokens after which the least remains to be written.
        std::vector<std::pair<int32_t, int32_t>> candidates;  // (token, dist after it)
        int32_t best = INT32_MAX;
        walk_trie([&](int32_t id, int32_t s) {
            const int32_t d = state_dist(s);
            candidates.push_back({id, d});
            best = std::min(best, d);
        });
        for (auto [id, d] : candidates)
            if (d == best) bits[size_t(id) >> 6] |= uint64_t(1) << (id & 63);
    }
    const bool any = std::any_of(bits.begin(), bits.end(), [](uint64_t w) { return w != 0; });
    apply_bitmap(logits, bits, is_complete() || !any);
}

void GrammarMatcher::mask_logits(float* logits) {
    const std::vector<int32_t>& eog = trie_->eog;
    if (ended_) {  // after EOG nothing more belongs to the output; leave only EOG
        eog_saved_.clear();
        for (int32_t id : eog) eog_saved_.push_back(logits[id]);
        std::fill(logits, logits + n_vocab_, -INFINITY);
        for (size_t i = 0; i < eog.size(); ++i) logits[eog[i]] = eog_saved_[i];
        return;
    }
    work_ = 0;
    maybe_shrink();
    const std::vector<uint64_t>& bits = allowed_bitmap();
    const bool open_eog = state_complete(current_) ||
                          std::all_of(bits.begin(), bits.end(), [](uint64_t w) { return w == 0; });
    apply_bitmap(logits, bits, open_eog);
}

bool GrammarMatcher::is_token_allowed(int32_t token) {
    if (token < 0 || token >= n_vocab_) return false;
    if (std::count(trie_->eog.begin(), trie_->eog.end(), token)) return ended_ || is_complete();
    if (ended_ || !trie_->usable[size_t(token)]) return false;
    work_ = 0;
    int32_t s = current_;
    for (char c : trie_->pieces[size_t(token)])
        if ((s = step(s, uint8_t(c))) < 0) return false;
    return true;
}

void GrammarMatcher::accept_token(int32_t token) {
    work_ = 0;
    if (token < 0 || token >= n_vocab_) fail("grammar: token id ", token, " is outside the vocabulary");
    if (std::count(trie_->eog.begin(), trie_->eog.end(), token)) {
        if (!ended_ && !is_complete())
            fail("grammar: end of generation (token ", token, ") before the output is complete");
        ended_ = true;
        return;
    }
    if (ended_) fail("grammar: token ", token, " after the end of generation");
    if (!trie_->usable[size_t(token)])
        fail("grammar: token ", token, " ('", tokenizer_.token_text(token), "') is a special token, never allowed in grammar output");
    int32_t s = current_;
    for (char c : trie_->pieces[size_t(token)])
        if ((s = step(s, uint8_t(c))) < 0)
            fail("grammar: token ", token, " ('", tokenizer_.token_text(token), "') does not fit the grammar here");
    current_ = s;
    maybe_shrink();
}

void GrammarMatcher::accept_bytes(std::string_view bytes) {
    work_ = 0;
    if (ended_ && !bytes.empty()) fail("grammar: text after the end of generation");
    int32_t s = current_;
    for (char c : bytes)
        if ((s = step(s, uint8_t(c))) < 0) fail("grammar: text does not fit the grammar: '", bytes, "'");
    current_ = s;
    maybe_shrink();
}

bool GrammarMatcher::is_complete() const { return ended_ || state_complete(current_); }

bool GrammarMatcher::can_only_end() const {
    if (ended_) return true;
    const State& st = states_[size_t(current_)];
    return st.need == 0 && st.tops.size() == 1 && st.tops[0] == kAccept;
}

// The DFA grows with every state the generation explores; past kMaxStates, start the
// caches over, keeping only the current state (rebuilt from its stacks' positions).
void GrammarMatcher::maybe_shrink() {
    if (states_.size() < kMaxStates && frames_.size() < kMaxFrames) return;
    const State old = states_[size_t(current_)];
    std::vector<std::vector<int32_t>> stacks;  // per top: positions from the bottom up
    for (int32_t f : old.tops) {
        std::vector<int32_t> chain;
        for (int32_t x = f; x > 0; x = frames_[size_t(x)].parent) {
            charge(1);  // unshared, the stacks can be far larger than their frames
            chain.push_back(frames_[size_t(x)].pos);
        }
        std::reverse(chain.begin(), chain.end());
        stacks.push_back(std::move(chain));
    }
    const bool ended = ended_;
    reset();
    State s = {{}, old.partial, old.need, old.len};
    for (const std::vector<int32_t>& chain : stacks) {
        int32_t parent = chain.empty() ? kAccept : -1;
        for (int32_t pos : chain) parent = intern_frame(pos, parent);
        s.tops.push_back(parent);
    }
    std::sort(s.tops.begin(), s.tops.end());
    current_ = intern_state(std::move(s));
    ended_ = ended;
}

}  // namespace pensieve
