// WordPiece (tokenizer.ggml.model = "bert"), as BERT-family embedding models use it.
//
// 1. Basic tokenization (BERT's BasicTokenizer / HF BertNormalizer + BertPreTokenizer):
//    drop NUL, U+FFFD and control characters; for an uncased vocab, decompose (NFD),
//    drop the accents (nonspacing marks) and lower-case; then cut at whitespace, and
//    make every punctuation character and every CJK ideograph a word of its own.
// 2. Each word is cut greedily, longest match first, into vocab tokens: the first piece
//    must be a word-start token, the rest continuation tokens. A word that cannot be
//    cut completely (or is over 100 characters) becomes the unknown token.
//
// GGUF converters rewrite BERT's vocab: a word-start token "hello" is stored as
// "▁hello" and a continuation "##lo" as "lo". Vocabs still in the original "##" form
// are recognised and handled as well.
#include <algorithm>

#include "tokenizer/algorithm.h"
#include "tokenizer/unicode.h"

namespace pensieve {
namespace {

const size_t kMaxWordChars = 100;                     // BERT's max_input_chars_per_word

// CJK Unified Ideographs and their extensions, as BERT's _is_chinese_char lists them
// (with HF tokenizers' 0x2B920 for the start of the fifth extension block).
bool is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// BERT counts all ASCII non-alphanumeric printable characters as punctuation ("$", "+",
// "^", "`" are symbols in Unicode), plus the Unicode P categories.
bool is_punctuation(uint32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
    return unicode_flags(c) == CPT_PUNCT;
}

// Removed by BERT's text cleaning: the C categories, except the whitespace controls
// tab, newline and carriage return (which separate words instead).
bool is_removed_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    return c == 0 || c == 0xFFFD || unicode_flags(c) == CPT_OTHER;
}

class WpmAlgorithm final : public TokenizerAlgorithm {
public:
    explicit WpmAlgorithm(const Vocab& vocab) : vocab_(vocab) {
        // Uncased vocab (bert-base-uncased, BGE, MiniLM, ...): no word token has an
        // upper-case letter. Original-form vocab: continuation tokens start with "##".
        bool any_upper = false, any_space_mark = false;
        for (const TokenData& t : vocab.tokens) {
            if (t.type != TokenType::NORMAL) continue;
            for (char c : t.text) any_upper = any_upper || (c >= 'A' && c <= 'Z');
            any_space_mark = any_space_mark || t.text.starts_with(kSpaceMark);
            max_token_len_ = std::max(max_token_len_, t.text.size());
        }
        uncased_ = !any_upper;
        hash_form_ = !any_space_mark;
    }

    void encode_fragment(std::string_view text, bool, std::vector<int32_t>& out) const override {
        std::string word;
        const auto finish_word = [&] {
            if (!word.empty()) encode_word(word, out);
            word.clear();
        };
        std::vector<uint32_t> chars;
        for (size_t pos = 0; pos < text.size();) {
            uint32_t c = utf8_next(text, pos);
            if (is_removed_control(c)) continue;
            if (unicode_is_space(c)) {
                finish_word();
                continue;
            }
            chars.clear();
            if (uncased_) {
                unicode_append_nfd(c, chars);
            } else {
                chars.push_back(c);
            }
            for (uint32_t d : chars) {
                if (uncased_) {
                    if (unicode_is_nonspacing_mark(d)) continue;   // strip accents
                    d = unicode_tolower(d);
                }
                if (is_punctuation(d) || is_cjk(d)) {
                    finish_word();
                    append_utf8(word, d);
                    finish_word();
                } else {
                    append_utf8(word, d);
                }
            }
        }
        finish_word();
    }

    std::string normal_piece(const TokenData& token) const override {
        std::string_view s = token.text;
        if (hash_form_) {
            if (s.starts_with("##")) return std::string(s.substr(2));
            std::string piece(1, ' ');
            piece += s;
            return piece;
        }
        return spaces_from_marks(s);
    }

    // Every word starts with a space: the first one's is not part of the text.
    bool decode_strips_leading_space() const override { return true; }

private:
    void encode_word(const std::string& word, std::vector<int32_t>& out) const {
        size_t n_chars = 0;
        for (unsigned char c : word) n_chars += (c & 0xC0) != 0x80;
        if (n_chars > kMaxWordChars) {
            push_unknown(out);
            return;
        }
        const size_t first = out.size();
        std::string key;
        for (size_t start = 0; start < word.size();) {
            int32_t found = -1;
            size_t end = std::min(word.size(), start + max_token_len_);
            for (; end > start; --end) {
                if (end < word.size() && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80) continue;
                key.clear();
                if (start == 0 && !hash_form_) key = kSpaceMark;
                if (start > 0 && hash_form_) key = "##";
                key.append(word, start, end - start);
                found = vocab_.find(key);
                if (found >= 0) break;
            }
            if (found < 0) {   // the word cannot be cut: all of it is unknown
                out.resize(first);
                push_unknown(out);
                return;
            }
            out.push_back(found);
            start = end;
        }
    }

    void push_unknown(std::vector<int32_t>& out) const {
        if (vocab_.unk >= 0) out.push_back(vocab_.unk);
    }

    const Vocab& vocab_;
    bool uncased_ = true;
    bool hash_form_ = false;
    size_t max_token_len_ = 0;
};

}  // namespace

std::unique_ptr<TokenizerAlgorithm> make_wpm_algorithm(const Vocab& vocab) {
    return std::make_unique<WpmAlgorithm>(vocab);
}

}  // namespace pensieve
