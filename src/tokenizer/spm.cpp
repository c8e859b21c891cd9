// SentencePiece BPE, as llama-family GGUFs use it (tokenizer.ggml.model = "llama").
//
// The text's spaces become "▁" (U+2581), optionally with one "▁" prepended; the text
// is cut into UTF-8 characters ("symbols"), and then, repeatedly, the adjacent pair
// whose concatenation is a vocab token with the highest score is merged (ties: the
// leftmost pair). Symbols are a doubly linked list over one array and candidate pairs
// wait in a max-heap, so the whole thing is O(n log n). A candidate goes stale when
// one of its symbols has been merged into something else since it was pushed; it is
// recognised on pop by its length no longer matching.
//
// At the end each symbol is a vocab token, or a single character that is not: that
// one is emitted as its UTF-8 bytes through the "<0xXX>" byte tokens (byte fallback),
// or as the unknown token if the vocab has no byte tokens.
#include <queue>

#include "tokenizer/algorithm.h"

namespace pensieve {
namespace {


// Length of the UTF-8 sequence that starts with byte c, judged from the first byte
// only. A stray continuation byte counts as a character of its own.
size_t utf8_len(unsigned char c) {
    if (c < 0xC0) return 1;
    if (c < 0xE0) return 2;
    if (c < 0xF0) return 3;
    return 4;
}

struct Symbol {
    uint32_t start;   // byte offset in the escaped text
    uint32_t len;     // 0 once merged into its left neighbour
    int32_t prev;     // index of the neighbouring symbols, -1 at the ends
    int32_t next;
};

struct Candidate {
    float score;
    int32_t left;     // index of the left symbol; the right one is symbols[left].next
    uint32_t len;     // byte length of the merged text when pushed (staleness check)
};

// Heap order: highest score on top; among equal scores the leftmost pair.
struct CandidateLess {
    bool operator()(const Candidate& a, const Candidate& b) const {
        if (a.score != b.score) return a.score < b.score;
        return a.left > b.left;
    }
};

class SpmAlgorithm final : public TokenizerAlgorithm {
public:
    explicit SpmAlgorithm(const Vocab& vocab) : vocab_(vocab) {
        // Can the text be cut into words before each "▁" that follows another
        // character? Only if no token has a "▁" after a character other than "▁":
        // then no merge ever crosses such a cut, and every word gives the same tokens
        // alone as in the whole text. (True of LLaMA's and Phi-3's vocabs.) Words keep
        // the heap small, which matters: one heap over a long text is cache-bound.
        split_words_ = true;
        for (const TokenData& t : vocab.tokens) {
            if (t.type != TokenType::NORMAL && t.type != TokenType::USER_DEFINED) continue;
            std::string_view s = t.text;
            for (size_t p = s.find(kSpaceMark, 1); p != std::string_view::npos; p = s.find(kSpaceMark, p + 1)) {
                if (p < kSpaceMark.size() || s.substr(p - kSpaceMark.size(), kSpaceMark.size()) != kSpaceMark) {
                    split_words_ = false;
                }
            }
        }
    }

    void encode_fragment(std::string_view text, bool after_special,
                         std::vector<int32_t>& out) const override {
        std::string escaped = escape(text, vocab_.add_space_prefix && after_special);
        std::string_view rest = escaped;
        while (!rest.empty()) {
            size_t cut = split_words_ ? next_word_start(rest) : rest.size();
            encode_word(rest.substr(0, cut), out);
            rest.remove_prefix(cut);
        }
    }

    std::string normal_piece(const TokenData& token) const override { return spaces_from_marks(token.text); }

    bool decode_strips_leading_space() const override { return vocab_.add_space_prefix; }

private:
    void encode_word(std::string_view word, std::vector<int32_t>& out) const {
        std::vector<Symbol> symbols = split_chars(word);
        merge(word, symbols);
        for (int32_t i = 0; i != -1; i = symbols[i].next) {
            emit(word.substr(symbols[i].start, symbols[i].len), out);
        }
    }

    // Length of the first word of s: up to the first "▁" that follows a character
    // other than "▁" (s.size() if there is none).
    static size_t next_word_start(std::string_view s) {
        for (size_t p = s.find(kSpaceMark, 1); p != std::string_view::npos; p = s.find(kSpaceMark, p + 1)) {
            if (p >= kSpaceMark.size() && s.substr(p - kSpaceMark.size(), kSpaceMark.size()) != kSpaceMark) return p;
        }
        return s.size();
    }

    // Spaces -> "▁", with one prepended when asked.
    static std::string escape(std::string_view text, bool space_prefix) {
        std::string out;
        out.reserve(text.size() + text.size() / 2 + 3);
        if (space_prefix) out += kSpaceMark;
        for (char c : text) {
            if (c == ' ') out += kSpaceMark;
            else out += c;
        }
        return out;
    }

    static std::vector<Symbol> split_chars(std::string_view text) {
        std::vector<Symbol> symbols;
        symbols.reserve(text.size());
        for (size_t pos = 0; pos < text.size();) {
            size_t len = std::min(utf8_len(static_cast<unsigned char>(text[pos])), text.size() - pos);
            int32_t index = static_cast<int32_t>(symbols.size());
            symbols.push_back({static_cast<uint32_t>(pos), static_cast<uint32_t>(len), index - 1,
                               pos + len == text.size() ? -1 : index + 1});
            pos += len;
        }
        return symbols;
    }

    using Heap = std::priority_queue<Candidate, std::vector<Candidate>, CandidateLess>;

    // Pushes the pair (left, its next) if their concatenation is a vocab token.
    void try_pair(std::string_view text, const std::vector<Symbol>& symbols, int32_t left,
                  Heap& heap) const {
        if (left < 0) return;
        int32_t right = symbols[left].next;
        if (right < 0) return;
        uint32_t len = symbols[left].len + symbols[right].len;
        int32_t id = vocab_.find(text.substr(symbols[left].start, len));
        if (id < 0) return;
        heap.push({vocab_.tokens[id].score, left, len});
    }

    void merge(std::string_view text, std::vector<Symbol>& symbols) const {
        std::vector<Candidate> storage;
        storage.reserve(symbols.size());
        Heap heap(CandidateLess{}, std::move(storage));
        for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) {
            try_pair(text, symbols, i, heap);
        }
        while (!heap.empty()) {
            Candidate c = heap.top();
            heap.pop();
            Symbol& left = symbols[c.left];
            // Stale: the left symbol was merged away, or either side grew since.
            if (left.len == 0 || left.next < 0) continue;
            Symbol& right = symbols[left.next];
            if (left.len + right.len != c.len) continue;

            left.len += right.len;
            right.len = 0;
            left.next = right.next;
            if (right.next >= 0) symbols[right.next].prev = c.left;
            try_pair(text, symbols, left.prev, heap);
            try_pair(text, symbols, c.left, heap);
        }
    }

    // One final symbol: its token, or byte fallback, or unknown.
    void emit(std::string_view piece, std::vector<int32_t>& out) const {
        int32_t id = vocab_.find(piece);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
        bool have_bytes = true;
        for (unsigned char c : piece) have_bytes = have_bytes && vocab_.byte_token[c] >= 0;
        if (have_bytes) {
            for (unsigned char c : piece) out.push_back(vocab_.byte_token[c]);
        } else if (vocab_.unk >= 0) {
            out.push_back(vocab_.unk);
        }
    }

    const Vocab& vocab_;
    bool split_words_ = false;
};

}  // namespace

std::unique_ptr<TokenizerAlgorithm> make_spm_algorithm(const Vocab& vocab) {
    return std::make_unique<SpmAlgorithm>(vocab);
}

}  // namespace pensieve
