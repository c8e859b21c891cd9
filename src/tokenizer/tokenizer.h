// Text <-> token ids, from the tokenizer described in a GGUF file's metadata.
//
// Tokenizer owns the vocabulary and does what all tokenizer models share: adding
// BOS/EOS, splitting special tokens out of the text, turning ids back into bytes. The
// model-specific part (SentencePiece BPE "llama", byte-level BPE "gpt2", WordPiece
// "bert", unigram "t5") is a TokenizerAlgorithm, see algorithm.h. Behaviour matches llama.cpp's, token for token.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace pensieve {

class GgufFile;
class TokenizerAlgorithm;

// Which special tokens' text shield_specials() breaks.
enum class ShieldKinds {
    CONTROL,       // control and unknown tokens (those parse_special governs)
    ALL_SPECIAL,   // and user-defined ones too (which plain-text encoding always matches)
};

class Tokenizer {
public:
    // Throws Error: missing/invalid tokenizer metadata, unsupported tokenizer.ggml.model.
    static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& file);
    ~Tokenizer();

    // add_special: add BOS (and EOS, SEP) as the metadata says.
    // parse_special: text like "<s>" or "<|im_start|>" becomes the control token;
    // otherwise it is plain text. User-defined tokens are always matched as wholes
    // (as in llama.cpp and HF tokenizers).
    std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special = false) const;

    // --- Text from users inside a chat template's output -------------------------------
    //
    // Only text the chat template itself wrote may become special tokens: a user who types
    // "<|im_start|>system" must not open a system turn. The template may transform what it
    // is given (trim, split, `in` tests), so user text cannot be located in its output by
    // position. Instead every special token's text inside user-provided strings is broken
    // before rendering by inserting kShieldMark after its first character; the rendered
    // text is then split at the special tokens that remain (the template's own), and the
    // marks are removed from the plain-text parts, which are encoded as plain text (no
    // special token of any kind is matched in them).
    //
    // U+FDD0, a Unicode noncharacter (reserved for internal use, never assigned). One that
    // a user sends is removed like the marks.
    static constexpr std::string_view kShieldMark = "\xEF\xB7\x90";

    // `text` with kShieldMark inserted into every occurrence of a special token's text of
    // the given kinds (at every byte offset, so invalid UTF-8 cannot hide one).
    std::string shield_specials(std::string_view text, ShieldKinds kinds) const;
    // A rendered chat prompt -> ids: special tokens where the text (still) spells them,
    // the rest as plain text with the shield marks removed. add_special as in encode().
    std::vector<int32_t> encode_shielded(std::string_view text, bool add_special) const;
    // `text` without shield marks (for logs and display).
    static std::string remove_shield_marks(std::string_view text);

    // The bytes of one token ("▁" -> " ", <0xAB> -> that byte; control and unknown
    // tokens -> empty unless render_special, then their text). May be partial UTF-8.
    // Throws Error for an id outside the vocab.
    std::string token_to_piece(int32_t id, bool render_special = false) const;

    // Concatenated pieces, minus the one space the encoder's space prefix added (taken
    // from the first token after any leading BOS), so decode(encode(x)) == x for
    // ordinary text. Streaming should use token_to_piece, which strips nothing.
    std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;

    int32_t n_vocab() const { return vocab_.size(); }
    int32_t bos_id() const { return vocab_.bos; }   // -1 when absent
    int32_t eos_id() const { return vocab_.eos; }
    int32_t eot_id() const { return vocab_.eot; }
    int32_t unk_id() const { return vocab_.unk; }
    int32_t pad_id() const { return vocab_.pad; }
    int32_t sep_id() const { return vocab_.sep; }   // BERT's [SEP]; -1 when absent
    bool add_bos() const { return vocab_.add_bos; }
    bool add_eos() const { return vocab_.add_eos; }
    bool add_space_prefix() const { return vocab_.add_space_prefix; }
    // EOS, EOT, EOM and the usual end-of-turn tokens (<|im_end|>, <|end|>, ...).
    bool is_end_of_generation(int32_t id) const;
    const std::vector<int32_t>& end_of_generation_ids() const { return vocab_.end_of_generation; }
    bool is_control(int32_t id) const;          // CONTROL type (BOS, EOS, <|im_start|>, ...)
    const std::string& token_text(int32_t id) const;   // raw vocab string; throws if out of range
    TokenType token_type(int32_t id) const;
    float token_score(int32_t id) const;
    // Id of the token whose raw text is exactly `text`, or -1.
    int32_t find_token(std::string_view text) const { return vocab_.find(text); }
    std::string_view model_name() const { return vocab_.model; }   // "llama", ...
    const Vocab& vocab() const { return vocab_; }

private:
    Tokenizer() = default;

    struct Fragment {
        int32_t token;    // special token id, or -1 for text
        size_t offset;    // text: byte range in the input
        size_t length;
    };
    std::vector<Fragment> split_special(std::string_view text, bool parse_special) const;
    std::vector<int32_t> encode_fragments(std::string_view text, bool add_special, bool parse_special,
                                          bool strip_shield_marks) const;
    void check_id(int32_t id) const;

    Vocab vocab_;
    std::unique_ptr<TokenizerAlgorithm> algo_;
    std::vector<std::string> pieces_;   // token_to_piece(id, false), precomputed
    // Special tokens (longest first) by the first byte of their text, for shield_specials.
    std::vector<int32_t> specials_by_first_byte_[256];
};

}  // namespace pensieve
