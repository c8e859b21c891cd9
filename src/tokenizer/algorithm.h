// The per-model part of a tokenizer. Tokenizer (tokenizer.cpp) does what every model
// shares — BOS/EOS, splitting special tokens out of the text, rendering control and
// byte tokens — and hands each plain-text fragment to one of these.
//
// To add a model: implement this interface in its own file and add a case to
// make_algorithm() in tokenizer.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace pensieve {

class TokenizerAlgorithm {
public:
    virtual ~TokenizerAlgorithm() = default;

    // Appends the ids of one fragment of plain text (it contains no special token that
    // is being parsed). `after_special` is true for the first fragment of the input and
    // for a fragment that directly follows a special token (SPM adds its space prefix
    // there).
    virtual void encode_fragment(std::string_view text, bool after_special,
                                 std::vector<int32_t>& out) const = 0;

    // Text of a NORMAL token as it appears in the output (SPM: "▁" -> " ";
    // byte-level BPE: the unicode-to-byte mapping undone).
    virtual std::string normal_piece(const TokenData& token) const = 0;

    // Whether decode() should drop one leading space from the first piece, undoing a
    // space prefix that encoding added.
    virtual bool decode_strips_leading_space() const { return false; }
};

// SentencePiece's space mark U+2581 "▁", which stands for ' ' in vocab strings.
inline constexpr std::string_view kSpaceMark = "\xE2\x96\x81";

// A SentencePiece vocab string as text: every "▁" becomes a space (spm.cpp, ugm.cpp).
inline std::string spaces_from_marks(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t pos = 0; pos < s.size();) {
        if (s.substr(pos, kSpaceMark.size()) == kSpaceMark) {
            out += ' ';
            pos += kSpaceMark.size();
        } else {
            out += s[pos++];
        }
    }
    return out;
}

class GgufFile;

// SentencePiece BPE ("llama"), spm.cpp.
std::unique_ptr<TokenizerAlgorithm> make_spm_algorithm(const Vocab& vocab);
// Byte-level BPE ("gpt2"), bpe.cpp; reads its merges from the file. Throws Error for a
// pre-tokenizer (tokenizer.ggml.pre) it does not implement.
std::unique_ptr<TokenizerAlgorithm> make_bpe_algorithm(const GgufFile& file, const Vocab& vocab);
// Gemma 4's BPE over "▁"-spelled UTF-8 with byte fallback ("gemma4"), bpe.cpp.
std::unique_ptr<TokenizerAlgorithm> make_gemma4_algorithm(const GgufFile& file, const Vocab& vocab);
// WordPiece ("bert"), wpm.cpp.
std::unique_ptr<TokenizerAlgorithm> make_wpm_algorithm(const Vocab& vocab);
// Unigram SentencePiece ("t5"), ugm.cpp; reads the normalization rules
// (tokenizer.ggml.precompiled_charsmap, ...) from the file.
std::unique_ptr<TokenizerAlgorithm> make_ugm_algorithm(const GgufFile& file, const Vocab& vocab);

}  // namespace pensieve
