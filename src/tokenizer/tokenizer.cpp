// Model-independent tokenizer logic; see tokenizer.h. The algorithms live in their own
// files (spm.cpp, ...) behind TokenizerAlgorithm.
#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "gguf/gguf.h"
#include "tokenizer/algorithm.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace pensieve {

namespace {

// Whitespace as C's isspace() in the "C" locale, which llama.cpp uses for stripping.
bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// The byte a "<0xAB>" token stands for, or -1 if the text is not of that form.
int byte_token_value(std::string_view text) {
    if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
    int hi = hex_digit(text[3]), lo = hex_digit(text[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::unique_ptr<TokenizerAlgorithm> make_algorithm(const GgufFile& file, const Vocab& vocab) {
    if (vocab.model == "llama") return make_spm_algorithm(vocab);
    if (vocab.model == "gpt2") return make_bpe_algorithm(file, vocab);
    if (vocab.model == "gemma4") return make_gemma4_algorithm(file, vocab);
    if (vocab.model == "bert") return make_wpm_algorithm(vocab);
    if (vocab.model == "t5") return make_ugm_algorithm(file, vocab);
    fail(file.path(), ": unsupported tokenizer model \"", vocab.model,
         "\" (tokenizer.ggml.model; supported: llama, gpt2, gemma4, bert, t5)");
}

}  // namespace

Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& file) {
    std::unique_ptr<Tokenizer> t(new Tokenizer());
    t->vocab_ = Vocab::load(file);
    // The algorithm keeps a reference to vocab_, which never moves again: Tokenizer
    // lives behind this unique_ptr and cannot be copied or moved.
    t->algo_ = make_algorithm(file, t->vocab_);

    // Precompute pieces: the engine asks for one per generated token.
    t->pieces_.resize(t->vocab_.tokens.size());
    for (int32_t id = 0; id < t->n_vocab(); ++id) {
        const TokenData& tok = t->vocab_.tokens[id];
        std::string& piece = t->pieces_[id];
        switch (tok.type) {
            case TokenType::NORMAL: piece = t->algo_->normal_piece(tok); break;
            case TokenType::USER_DEFINED: piece = tok.text; break;
            case TokenType::BYTE: {
                int b = byte_token_value(tok.text);
                piece = b < 0 ? tok.text : std::string(1, static_cast<char>(b));
                break;
            }
            default: break;   // control, unknown, unused: nothing
        }
    }
    for (int32_t id : t->vocab_.special_tokens)   // already longest first
        t->specials_by_first_byte_[static_cast<uint8_t>(t->vocab_.tokens[id].text[0])].push_back(id);
    return t;
}

// ---------------------------------------------------------------------------------------
// Encoding

// Cuts the text into special tokens and plain-text fragments, the way llama.cpp does:
// one special token at a time, longest first, each split out of every text fragment
// left so far. (This is not the same as a leftmost-longest scan when specials overlap;
// matching the reference matters more.) Control and unknown tokens take part only when
// parse_special; user-defined ones always do.
std::vector<Tokenizer::Fragment> Tokenizer::split_special(std::string_view text, bool parse_special) const {
    std::vector<Fragment> frags;
    if (text.empty()) return frags;
    frags.push_back({-1, 0, text.size()});

    std::vector<Fragment> next;
    for (int32_t id : vocab_.special_tokens) {
        const TokenData& tok = vocab_.tokens[id];
        if (!parse_special && (tok.type == TokenType::CONTROL || tok.type == TokenType::UNKNOWN)) continue;
        // Fragments are pieces of `text`: a token absent from it is absent from all.
        if (text.find(tok.text) == std::string_view::npos) continue;

        next.clear();
        for (const Fragment& f : frags) {
            if (f.token >= 0) {
                next.push_back(f);
                continue;
            }
            size_t begin = f.offset, end = f.offset + f.length;
            while (begin < end) {
                size_t match = text.substr(0, end).find(tok.text, begin);
                if (match == std::string_view::npos) {
                    next.push_back({-1, begin, end - begin});
                    break;
                }
                size_t left_end = match;
                if (tok.lstrip) {
                    while (left_end > begin && is_space(text[left_end - 1])) --left_end;
                }
                if (left_end > begin) next.push_back({-1, begin, left_end - begin});
                next.push_back({id, 0, 0});
                begin = match + tok.text.size();
                if (tok.rstrip) {
                    while (begin < end && is_space(text[begin])) ++begin;
                }
            }
        }
        frags.swap(next);
    }
    return frags;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
    return encode_fragments(text, add_special, parse_special, /*strip_shield_marks=*/false);
}

std::vector<int32_t> Tokenizer::encode_shielded(std::string_view text, bool add_special) const {
    return encode_fragments(text, add_special, /*parse_special=*/true, /*strip_shield_marks=*/true);
}

std::vector<int32_t> Tokenizer::encode_fragments(std::string_view text, bool add_special, bool parse_special,
                                                 bool strip_shield_marks) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    if (add_special && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);

    // SPM prefixes a space to the first fragment and to every fragment that follows a
    // special token (BOS or not), as llama.cpp does.
    bool after_special = true;
    std::string plain;
    for (const Fragment& f : split_special(text, parse_special)) {
        if (f.token >= 0) {
            out.push_back(f.token);
            after_special = true;
            continue;
        }
        std::string_view fragment = text.substr(f.offset, f.length);
        if (strip_shield_marks && fragment.find(kShieldMark) != std::string_view::npos) {
            plain = remove_shield_marks(fragment);
            fragment = plain;
        }
        if (!fragment.empty()) algo_->encode_fragment(fragment, after_special, out);
        after_special = false;
    }

    if (add_special && vocab_.add_eos && vocab_.eos >= 0) out.push_back(vocab_.eos);
    if (add_special && vocab_.add_sep && vocab_.sep >= 0) out.push_back(vocab_.sep);
    return out;
}

// ---------------------------------------------------------------------------------------
// Shielding user text

std::string Tokenizer::shield_specials(std::string_view text, ShieldKinds kinds) const {
    std::string out;
    size_t copied = 0;
    for (size_t pos = 0; pos < text.size(); ++pos) {
        for (int32_t id : specials_by_first_byte_[static_cast<uint8_t>(text[pos])]) {
            const TokenData& tok = vocab_.tokens[id];
            if (tok.type == TokenType::USER_DEFINED && kinds != ShieldKinds::ALL_SPECIAL) continue;
            if (text.compare(pos, tok.text.size(), tok.text) != 0) continue;
            // Break it after its first character (a token of one character cannot be broken).
            size_t first = 0;
            utf8_next(tok.text, first);
            const size_t at = pos + first;
            if (at >= pos + tok.text.size() || at < copied) break;
            out.append(text.substr(copied, at - copied));
            out.append(kShieldMark);
            copied = at;
            break;
        }
    }
    out.append(text.substr(copied));
    return out;
}

std::string Tokenizer::remove_shield_marks(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t pos = 0;;) {
        const size_t mark = text.find(kShieldMark, pos);
        out.append(text.substr(pos, mark == std::string_view::npos ? std::string_view::npos : mark - pos));
        if (mark == std::string_view::npos) return out;
        pos = mark + kShieldMark.size();
    }
}

// ---------------------------------------------------------------------------------------
// Decoding

void Tokenizer::check_id(int32_t id) const {
    if (!vocab_.valid(id)) fail("token id ", id, " is out of range (vocabulary has ", n_vocab(), " tokens)");
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
    check_id(id);
    if (render_special) {
        TokenType type = vocab_.tokens[id].type;
        if (type == TokenType::CONTROL || type == TokenType::UNKNOWN) return vocab_.tokens[id].text;
    }
    return pieces_[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
    std::string out;
    bool strip_space = algo_->decode_strips_leading_space();
    for (int32_t id : ids) {
        std::string piece = token_to_piece(id, render_special);
        if (strip_space && id == vocab_.bos) {
            out += piece;   // the prefix space is on the token after BOS
            continue;
        }
        if (strip_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
        strip_space = false;
        out += piece;
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// Queries

bool Tokenizer::is_end_of_generation(int32_t id) const {
    const auto& eog = vocab_.end_of_generation;
    return std::binary_search(eog.begin(), eog.end(), id);
}

bool Tokenizer::is_control(int32_t id) const {
    return vocab_.valid(id) && vocab_.tokens[id].type == TokenType::CONTROL;
}

const std::string& Tokenizer::token_text(int32_t id) const {
    check_id(id);
    return vocab_.tokens[id].text;
}

TokenType Tokenizer::token_type(int32_t id) const {
    check_id(id);
    return vocab_.tokens[id].type;
}

float Tokenizer::token_score(int32_t id) const {
    check_id(id);
    return vocab_.tokens[id].score;
}

}  // namespace pensieve
