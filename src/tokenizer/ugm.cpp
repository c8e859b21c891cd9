// Unigram SentencePiece (tokenizer.ggml.model = "t5"), as T5, mT5, ... GGUFs use it.
//
// 1. Normalize: at each position the longest user-defined token is kept as it is;
//    otherwise the longest rule of the precompiled character map (SentencePiece's
//    normalizer, e.g. NFKC, stored as a double-array trie) rewrites the input; otherwise
//    one UTF-8 character is copied (a malformed byte becomes U+FFFD). Spaces become
//    "▁", optionally with one prepended and runs of them merged.
// 2. Viterbi: the segmentation into vocab tokens with the highest total score (token
//    scores are log probabilities; user-defined tokens score 0). A character no token
//    covers is the unknown token, scored min_score - 10; runs of unknowns become one.
#include <algorithm>
#include <cfloat>
#include <cstring>

#include "gguf/gguf.h"
#include "tokenizer/algorithm.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace pensieve {
namespace {


size_t utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c < 0xC0) return 1;   // stray continuation byte
    if (c < 0xE0) return 2;
    if (c < 0xF0) return 3;
    return 4;
}

// SentencePiece's precompiled character map: a uint32 size, an XOR-compressed double
// array (XCDA) trie of that many bytes over input byte strings, then the NUL-terminated
// replacement strings its leaves point to. Each trie unit packs BASE (bits 10..30,
// scaled by 256 when bit 9 is set), LEAF (bit 8) and LCHECK (bits 0..7); a unit with
// bit 31 set holds a replacement's offset instead.
class CharsMap {
public:
    CharsMap() = default;
    CharsMap(const std::vector<uint8_t>& blob, const std::string& where) {
        if (blob.empty()) return;
        if (blob.size() < 4) fail(where, ": tokenizer.ggml.precompiled_charsmap is truncated");
        uint32_t trie_size = blob[0] | blob[1] << 8 | blob[2] << 16 | static_cast<uint32_t>(blob[3]) << 24;
        if (trie_size % 4 != 0 || trie_size > blob.size() - 4)
            fail(where, ": tokenizer.ggml.precompiled_charsmap has a bad trie size ", trie_size);
        units_.resize(trie_size / 4);
        for (size_t i = 0; i < units_.size(); ++i) {
            const uint8_t* p = &blob[4 + 4 * i];
            units_[i] = p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24;
        }
        replacements_.assign(blob.begin() + 4 + trie_size, blob.end());
    }

    bool empty() const { return units_.empty(); }

    // Longest rule matching a prefix of `s`: its length in bytes (0 if none) and its
    // replacement.
    size_t longest_match(std::string_view s, std::string_view& replacement) const {
        if (units_.empty()) return 0;
        size_t best = 0;
        uint32_t node = base(0);
        for (size_t i = 0; i < s.size(); ++i) {
            unsigned char c = static_cast<unsigned char>(s[i]);
            if (c == 0) break;
            node ^= c;
            if (node >= units_.size() || lcheck(node) != c) break;
            bool leaf = (units_[node] >> 8) & 1;
            node ^= base(node);
            if (leaf) {
                if (node >= units_.size()) break;
                uint32_t offset = units_[node] & 0x7FFFFFFFu;
                if (offset >= replacements_.size()) fail("tokenizer: precompiled charsmap points outside its strings");
                const char* r = replacements_.data() + offset;
                replacement = std::string_view(r, strnlen(r, replacements_.size() - offset));
                best = i + 1;
            }
        }
        return best;
    }

private:
    uint32_t base(uint32_t i) const {
        if (i >= units_.size()) return 0;
        uint32_t u = units_[i];
        return (u >> 10) << ((u & (1u << 9)) >> 6);
    }
    uint32_t lcheck(uint32_t i) const { return units_[i] & ((1u << 31) | 0xFFu); }

    std::vector<uint32_t> units_;
    std::string replacements_;
};

class UgmAlgorithm final : public TokenizerAlgorithm {
public:
    UgmAlgorithm(const GgufFile& file, const Vocab& vocab) : vocab_(vocab) {
        if (const GgufValue* v = file.find("tokenizer.ggml.precompiled_charsmap")) {
            if (v->type != GgufType::ARRAY) fail(file.path(), ": tokenizer.ggml.precompiled_charsmap is not an array");
            std::vector<uint8_t> blob;
            blob.reserve(v->array.size());
            for (const GgufValue& b : v->array) blob.push_back(static_cast<uint8_t>(b.as_int()));
            charsmap_ = CharsMap(blob, file.path());
        }
        remove_extra_spaces_ = file.get_bool("tokenizer.ggml.remove_extra_whitespaces", false);

        // Tokens the segmentation may use, and every prefix of them (so the search
        // along the text can stop as soon as no token continues).
        float min_score = FLT_MAX;
        std::vector<std::string_view> prefixes;
        std::vector<std::string_view> user_defined;
        for (const TokenData& t : vocab.tokens) {
            bool usable = t.type == TokenType::NORMAL || t.type == TokenType::USER_DEFINED ||
                          t.type == TokenType::UNUSED;
            if (t.type == TokenType::NORMAL) min_score = std::min(min_score, t.score);
            if (!usable) continue;
            for (size_t n = 1; n <= t.text.size(); ++n) prefixes.push_back(std::string_view(t.text).substr(0, n));
            if (t.type == TokenType::USER_DEFINED) {
                user_defined.push_back(t.text);
                max_user_defined_len_ = std::max(max_user_defined_len_, t.text.size());
            }
        }
        prefixes_.build(prefixes);
        user_defined_.build(user_defined);
        unknown_score_ = (min_score == FLT_MAX ? 0.0 : static_cast<double>(min_score)) - 10.0;
    }

    void encode_fragment(std::string_view text, bool, std::vector<int32_t>& out) const override {
        std::string s = normalize(text);
        if (s.empty()) return;

        // best[i]: the best segmentation of s[0, i): its score and its last token.
        struct Best {
            double score;
            int32_t token;
            size_t start;   // where the last token starts
        };
        const size_t n = s.size();
        std::vector<Best> best(n + 1, {-DBL_MAX, vocab_.unk, 0});
        best[0] = {0.0, vocab_.unk, 0};
        for (size_t i = 0; i < n;) {
            const size_t char_len = std::min(utf8_len(static_cast<unsigned char>(s[i])), n - i);
            bool char_covered = false;
            if (best[i].score > -DBL_MAX) {
                for (size_t j = i + 1; j <= n; ++j) {
                    std::string_view piece = std::string_view(s).substr(i, j - i);
                    if (prefixes_.find(piece) < 0) break;
                    int32_t id = vocab_.find(piece);
                    if (id < 0 || !usable(id)) continue;
                    if (j - i == char_len) char_covered = true;
                    const TokenData& t = vocab_.tokens[id];
                    double score = best[i].score + (t.type == TokenType::USER_DEFINED ? 0.0 : t.score);
                    if (score > best[j].score) best[j] = {score, id, i};
                }
                if (!char_covered) {
                    double score = best[i].score + unknown_score_;
                    if (score > best[i + char_len].score) best[i + char_len] = {score, vocab_.unk, i};
                }
            }
            i += char_len;
        }

        // Walk back from the end; consecutive unknowns collapse into one.
        const size_t first = out.size();
        bool prev_unknown = false;
        for (size_t j = n; j > 0; j = best[j].start) {
            bool unknown = best[j].token == vocab_.unk;
            if (!(unknown && prev_unknown) && best[j].token >= 0) out.push_back(best[j].token);
            prev_unknown = unknown;
        }
        std::reverse(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
    }

    std::string normal_piece(const TokenData& token) const override { return spaces_from_marks(token.text); }

    bool decode_strips_leading_space() const override { return vocab_.add_space_prefix; }

private:
    bool usable(int32_t id) const {
        TokenType t = vocab_.tokens[id].type;
        return t == TokenType::NORMAL || t == TokenType::USER_DEFINED || t == TokenType::UNUSED;
    }

    // The text the segmentation runs on; see the top of the file.
    std::string normalize(std::string_view text) const {
        std::string out;
        out.reserve(text.size() * 3 / 2 + 4);
        bool in_word = false, prefixed = false;
        const auto put = [&](std::string_view chunk) {
            for (char c : chunk) {
                if (c != ' ') {
                    if (!in_word) {
                        in_word = true;
                        if ((vocab_.add_space_prefix && !prefixed) || remove_extra_spaces_) {
                            out += kSpaceMark;
                            prefixed = true;
                        }
                    }
                    out += c;
                } else {
                    in_word = false;
                    if (!remove_extra_spaces_) out += kSpaceMark;
                }
            }
        };
        for (size_t pos = 0; pos < text.size();) {
            std::string_view rest = text.substr(pos);
            // A user-defined token passes through untouched.
            size_t ud = 0;
            for (size_t len = std::min(max_user_defined_len_, rest.size()); len > 0; --len) {
                if (user_defined_.find(rest.substr(0, len)) >= 0) {
                    ud = len;
                    break;
                }
            }
            if (ud > 0) {
                put(rest.substr(0, ud));
                pos += ud;
                continue;
            }
            std::string_view replacement;
            if (size_t len = charsmap_.longest_match(rest, replacement); len > 0) {
                put(replacement);
                pos += len;
                continue;
            }
            size_t next = pos;
            uint32_t c = utf8_next(text, next);
            if (c == 0xFFFD && !rest.starts_with("\xEF\xBF\xBD")) put("\xEF\xBF\xBD");
            else put(text.substr(pos, next - pos));
            pos = next;
        }
        return out;
    }

    const Vocab& vocab_;
    CharsMap charsmap_;
    bool remove_extra_spaces_ = false;
    TokenIndex prefixes_;
    TokenIndex user_defined_;
    size_t max_user_defined_len_ = 0;
    double unknown_score_ = -10.0;
};

}  // namespace

std::unique_ptr<TokenizerAlgorithm> make_ugm_algorithm(const GgufFile& file, const Vocab& vocab) {
    if (vocab.unk < 0) fail(file.path(), ": unigram tokenizer needs an unknown token (tokenizer.ggml.unknown_token_id)");
    return std::make_unique<UgmAlgorithm>(file, vocab);
}

}  // namespace pensieve
