// Byte-level BPE (tokenizer.ggml.model = "gpt2"), as GPT-2, StarCoder, ... GGUFs use it.
//
// 1. Pre-tokenize: cut the text into words with the model's pre-tokenizer patterns
//    (tokenizer.ggml.pre names them). The patterns are matched by hand-written code
//    over code points — no regex engine.
// 2. Each word's bytes are mapped to GPT-2's printable stand-in characters ("Ġ" for a
//    space), cut into characters, and adjacent pairs are merged in the order of
//    tokenizer.ggml.merges (lowest rank first, ties leftmost), with the same linked
//    list + heap scheme as spm.cpp.
//
// Status: the GPT-2 pattern, optionally after splitting digits apart ("\p{N}"), is
// implemented; other pre-tokenizers (llama3, deepseek, falcon, qwen2, ...) are
// rejected by name until written.
#include <queue>

#include "gguf/gguf.h"
#include "tokenizer/algorithm.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace pensieve {
namespace {

// ---------------------------------------------------------------------------------------
// Pre-tokenizer

// A piece of the input, as a range of code points.
struct Span {
    size_t begin, end;
};

struct CptText {
    std::vector<uint32_t> cpts;
    std::vector<uint8_t> flags;   // unicode_flags of each cpt
    std::vector<bool> space;      // unicode_is_space of each cpt
    std::vector<size_t> offset;   // byte offset of each cpt, plus the end
};

CptText analyse(std::string_view text) {
    CptText t;
    t.cpts.reserve(text.size());
    t.offset.reserve(text.size() + 1);
    for (size_t pos = 0; pos < text.size();) {
        t.offset.push_back(pos);
        t.cpts.push_back(utf8_next(text, pos));
    }
    t.offset.push_back(text.size());
    for (uint32_t c : t.cpts) {
        t.flags.push_back(unicode_flags(c));
        t.space.push_back(unicode_is_space(c));
    }
    return t;
}

// "\p{N}": every digit becomes a word of its own; the text between stays as it is.
void split_digits(const CptText& t, const std::vector<Span>& in, std::vector<Span>& out) {
    for (Span s : in) {
        size_t start = s.begin;
        for (size_t i = s.begin; i < s.end; ++i) {
            if (t.flags[i] & CPT_NUMBER) {
                if (i > start) out.push_back({start, i});
                out.push_back({i, i + 1});
                start = i + 1;
            }
        }
        if (start < s.end) out.push_back({start, s.end});
    }
}

// GPT-2's pattern, applied to each span:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const CptText& t, const std::vector<Span>& in, std::vector<Span>& out) {
    // The three " ?X+" classes; 0 for whitespace, which none of them takes.
    const auto cls = [&](size_t i) -> int {
        if (t.space[i]) return 0;
        if (t.flags[i] & CPT_LETTER) return 1;
        if (t.flags[i] & CPT_NUMBER) return 2;
        return 3;
    };
    for (Span s : in) {
        size_t pos = s.begin;
        const auto emit = [&](size_t len) {
            out.push_back({pos, pos + len});
            pos += len;
        };
        while (pos < s.end) {
            const uint32_t c = t.cpts[pos];
            // Contractions (case-sensitive for GPT-2).
            if (c == '\'' && pos + 1 < s.end) {
                uint32_t c1 = t.cpts[pos + 1];
                if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                    emit(2);
                    continue;
                }
                if (pos + 2 < s.end) {
                    uint32_t c2 = t.cpts[pos + 2];
                    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                        emit(3);
                        continue;
                    }
                }
            }
            // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional space, then a run.
            size_t p = (c == ' ' && pos + 1 < s.end && cls(pos + 1) != 0) ? pos + 1 : pos;
            if (int k = cls(p); k != 0) {
                size_t q = p + 1;
                while (q < s.end && cls(q) == k) ++q;
                emit(q - pos);
                continue;
            }
            // "\s+(?!\S)|\s+": a whitespace run; if a non-space follows, its last
            // character is left to prefix the next word (unless it is the only one).
            size_t q = pos;
            while (q < s.end && t.space[q]) ++q;
            if (q < s.end && q - pos > 1) --q;
            emit(q - pos);
        }
    }
}

enum class Split { DIGITS, GPT2 };

// The splitting steps for each tokenizer.ggml.pre, as in llama.cpp.
std::vector<Split> pre_tokenizer_steps(const GgufFile& file, const std::string& pre) {
    static const char* const kGpt2[] = {
        "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es",
        "jina-v2-de", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais",
    };
    static const char* const kDigitsThenGpt2[] = {
        "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b",
    };
    for (const char* name : kGpt2) {
        if (pre == name) return {Split::GPT2};
    }
    for (const char* name : kDigitsThenGpt2) {
        if (pre == name) return {Split::DIGITS, Split::GPT2};
    }
    fail(file.path(), ": unsupported pre-tokenizer \"", pre, "\" (tokenizer.ggml.pre) for byte-level BPE");
}

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

class BpeAlgorithm final : public TokenizerAlgorithm {
public:
    BpeAlgorithm(const GgufFile& file, const Vocab& vocab) : vocab_(vocab) {
        steps_ = pre_tokenizer_steps(file, vocab.pre);
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
        CptText t = analyse(text);
        std::vector<Span> spans = {{0, t.cpts.size()}}, next;
        for (Split step : steps_) {
            next.clear();
            if (step == Split::DIGITS) split_digits(t, spans, next);
            else split_gpt2(t, spans, next);
            spans.swap(next);
        }
        std::string word;
        for (Span s : spans) {
            word.clear();
            for (size_t b = t.offset[s.begin]; b < t.offset[s.end]; ++b) {
                word += byte_to_unicode(static_cast<uint8_t>(text[b]));
            }
            encode_word(word, out);
        }
    }

    std::string normal_piece(const TokenData& token) const override {
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
            // Not in the vocab (a broken vocab): fall back to the piece's single bytes
            // that are tokens, as llama.cpp does.
            for (char ch : piece) {
                if (int32_t b = vocab_.find(std::string_view(&ch, 1)); b >= 0) out.push_back(b);
            }
        }
    }

    const Vocab& vocab_;
    std::vector<Split> steps_;
    std::vector<std::string> merges_;   // owns the strings ranks_ points into
    TokenIndex ranks_;
};

}  // namespace

std::unique_ptr<TokenizerAlgorithm> make_bpe_algorithm(const GgufFile& file, const Vocab& vocab) {
    return std::make_unique<BpeAlgorithm>(file, vocab);
}

}  // namespace pensieve
