// Byte-level BPE (tokenizer.ggml.model = "gpt2"), as GPT-2, LLaMA 3, Qwen2, DeepSeek,
// Falcon, StarCoder, ... GGUFs use it.
//
// 1. Pre-tokenize: cut the text into words with the model's pre-tokenizer patterns
//    (tokenizer.ggml.pre names them; pretokenizer.cpp).
// 2. Each word's bytes are mapped to GPT-2's printable stand-in characters ("Ġ" for a
//    space), cut into characters, and adjacent pairs are merged in the order of
//    tokenizer.ggml.merges (lowest rank first, ties leftmost), with the same linked
//    list + heap scheme as spm.cpp. Some models (LLaMA 3, Tekken) take a word that is
//    itself a token as it is, without merging ("ignore_merges" in HF tokenizers).
//
// Token pieces are the raw bytes again (the stand-ins undone), so a streamed
// concatenation of pieces is exactly the encoded text.
//
// Gemma 4 (tokenizer.ggml.model = "gemma4") runs the same merges over SentencePiece-style
// text instead: no byte stand-ins, every space written "▁" (U+2581), words are only runs
// of newlines and runs of everything else, and a piece that is not a token falls back to
// its bytes' "<0xXX>" tokens (the vocab has all 256).
#include <queue>

#include "gguf/gguf.h"
#include "tokenizer/algorithm.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace pensieve {
namespace {

// ---------------------------------------------------------------------------------------
// BPE merges

struct Symbol {
    uint32_t start, len;   // bytes in the mapped word; len 0 once merged away
    int32_t prev, next;
};

struct Candidate {
    int32_t rank;
    int32_t left;
    uint32_t len;
};

// Heap order: lowest rank on top; ties: leftmost.
struct CandidateLess {
    bool operator()(const Candidate& a, const Candidate& b) const {
        if (a.rank != b.rank) return a.rank > b.rank;
        return a.left > b.left;
    }
};

// How a word's text is spelled in the vocab and the merges.
enum class Spelling {
    BYTE_LEVEL,    // GPT-2's printable stand-in for every byte ("Ġ" for a space)
    SPACE_MARKS,   // UTF-8 as it is, spaces as "▁"; missing pieces fall back to byte tokens
};

class BpeAlgorithm final : public TokenizerAlgorithm {
public:
    BpeAlgorithm(const GgufFile& file, const Vocab& vocab, Spelling spelling, const std::string& pre)
        : vocab_(vocab), spelling_(spelling), pre_(pre_tokenizer(file, pre)) {
        for (const char* name : {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                                 "midm-2.0", "lfm2", "tekken"}) {
            if (vocab.pre == name) ignore_merges_ = true;
        }
        merges_ = file.get_string_array("tokenizer.ggml.merges");
        // A merge is "left right"; the first space after the first byte separates them
        // (the left part may itself be a single space in odd vocabs).
        std::vector<std::string_view> keys;
        keys.reserve(merges_.size());
        for (const std::string& m : merges_) {
            if (m.find(' ', 1) == std::string::npos)
                fail(file.path(), ": malformed BPE merge \"", m, "\" (tokenizer.ggml.merges)");
            keys.push_back(m);
        }
        ranks_.build(keys, /*first_wins=*/true);
    }

    void encode_fragment(std::string_view text, bool, std::vector<int32_t>& out) const override {
        std::vector<TextSpan> words;
        pre_->split(text, words);
        std::string word;
        for (TextSpan w : words) {
            spell(text.substr(w.begin, w.end - w.begin), word);
            if (ignore_merges_) {
                if (int32_t id = vocab_.find(word); id >= 0) {
                    out.push_back(id);
                    continue;
                }
            }
            encode_word(word, out);
        }
    }

    std::string normal_piece(const TokenData& token) const override {
        if (spelling_ == Spelling::SPACE_MARKS) return spaces_from_marks(token.text);
        std::string out;
        std::string_view s = token.text;
        for (size_t pos = 0; pos < s.size();) {
            size_t start = pos;
            int b = unicode_to_byte(utf8_next(s, pos));
            if (b >= 0) out += static_cast<char>(b);
            else out.append(s.substr(start, pos - start));   // not a stand-in: keep as is
        }
        return out;
    }

private:
    using Heap = std::priority_queue<Candidate, std::vector<Candidate>, CandidateLess>;

    void spell(std::string_view text, std::string& word) const {
        word.clear();
        if (spelling_ == Spelling::BYTE_LEVEL) {
            for (char c : text) word += byte_to_unicode(static_cast<uint8_t>(c));
            return;
        }
        for (char c : text) {
            if (c == ' ') word += kSpaceMark;
            else word += c;
        }
    }

    void try_pair(const std::string& word, const std::vector<Symbol>& symbols, int32_t left,
                  std::string& key, Heap& heap) const {
        if (left < 0 || symbols[left].next < 0) return;
        const Symbol& l = symbols[left];
        const Symbol& r = symbols[l.next];
        key.assign(word, l.start, l.len);
        key += ' ';
        key.append(word, r.start, r.len);
        int32_t rank = ranks_.find(key);
        if (rank >= 0) heap.push({rank, left, l.len + r.len});
    }

    void encode_word(const std::string& word, std::vector<int32_t>& out) const {
        std::vector<Symbol> symbols;
        for (size_t pos = 0; pos < word.size();) {
            size_t start = pos;
            utf8_next(word, pos);
            int32_t index = static_cast<int32_t>(symbols.size());
            symbols.push_back({static_cast<uint32_t>(start), static_cast<uint32_t>(pos - start), index - 1,
                               pos == word.size() ? -1 : index + 1});
        }
        if (symbols.empty()) return;

        Heap heap;
        std::string key;
        for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) {
            try_pair(word, symbols, i, key, heap);
        }
        while (!heap.empty()) {
            Candidate c = heap.top();
            heap.pop();
            Symbol& left = symbols[c.left];
            if (left.len == 0 || left.next < 0) continue;   // stale
            Symbol& right = symbols[left.next];
            if (left.len + right.len != c.len) continue;      // stale
            left.len += right.len;
            right.len = 0;
            left.next = right.next;
            if (right.next >= 0) symbols[right.next].prev = c.left;
            try_pair(word, symbols, left.prev, key, heap);
            try_pair(word, symbols, c.left, key, heap);
        }

        for (int32_t i = 0; i != -1; i = symbols[i].next) {
            std::string_view piece = std::string_view(word).substr(symbols[i].start, symbols[i].len);
            int32_t id = vocab_.find(piece);
            if (id >= 0) {
                out.push_back(id);
                continue;
            }
            if (spelling_ == Spelling::SPACE_MARKS) {   // byte fallback
                for (char ch : piece) {
                    int32_t b = vocab_.byte_token[static_cast<uint8_t>(ch)];
                    if (b < 0) b = vocab_.unk;
                    if (b >= 0) out.push_back(b);
                }
                continue;
            }
            // Not in the vocab (a broken vocab): fall back to the piece's single bytes
            // that are tokens, as llama.cpp does.
            for (char ch : piece) {
                if (int32_t b = vocab_.find(std::string_view(&ch, 1)); b >= 0) out.push_back(b);
            }
        }
    }

    static std::unique_ptr<PreTokenizer> pre_tokenizer(const GgufFile& file, const std::string& name) {
        try {
            return std::make_unique<PreTokenizer>(name);
        } catch (const Error& e) {
            fail(file.path(), ": ", e.what());
        }
    }

    const Vocab& vocab_;
    Spelling spelling_;
    std::unique_ptr<PreTokenizer> pre_;
    bool ignore_merges_ = false;
    std::vector<std::string> merges_;   // owns the strings ranks_ points into
    TokenIndex ranks_;
};

}  // namespace

std::unique_ptr<TokenizerAlgorithm> make_bpe_algorithm(const GgufFile& file, const Vocab& vocab) {
    return std::make_unique<BpeAlgorithm>(file, vocab, Spelling::BYTE_LEVEL, vocab.pre);
}

std::unique_ptr<TokenizerAlgorithm> make_gemma4_algorithm(const GgufFile& file, const Vocab& vocab) {
    return std::make_unique<BpeAlgorithm>(file, vocab, Spelling::SPACE_MARKS, "gemma4");
}

}  // namespace pensieve
