// The Unicode the tokenizers need: UTF-8 <-> code points, general-category classes
// (\p{L}, \p{N}, ... of the pre-tokenizer patterns), White_Space, lower case and
// canonical decomposition, and GPT-2's mapping of bytes to printable characters.
// Character data comes from utf8proc; nothing here is a hand-made table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pensieve {

// General-category classes (first letter of the category).
enum : uint8_t {
    CPT_LETTER = 1, CPT_NUMBER = 2, CPT_PUNCT = 4, CPT_SYMBOL = 8, CPT_MARK = 16,
    CPT_SEPARATOR = 32, CPT_OTHER = 64,
};

// Class of a code point (CPT_OTHER for unassigned and out-of-range values).
uint8_t unicode_flags(uint32_t cpt);
// The White_Space property (\s in the patterns): \t..\r, U+0085 and the Z categories.
bool unicode_is_space(uint32_t cpt);
// Nonspacing mark (category Mn): what BERT's accent stripping removes.
bool unicode_is_nonspacing_mark(uint32_t cpt);
// Simple lower-case mapping (the code point itself if it has none).
uint32_t unicode_tolower(uint32_t cpt);
// Appends the canonical decomposition (NFD, not reordered) of one code point.
void unicode_append_nfd(uint32_t cpt, std::vector<uint32_t>& out);

// Decodes the character at s[pos], advancing pos. Malformed input yields U+FFFD and
// advances one byte (as llama.cpp's unicode_cpts_from_utf8 does).
uint32_t utf8_next(std::string_view s, size_t& pos);
std::vector<uint32_t> utf8_to_cpts(std::string_view s);
void append_utf8(std::string& out, uint32_t cpt);

// GPT-2 byte-level BPE: every byte has a printable stand-in character ("Ġ" for ' ').
const std::string& byte_to_unicode(uint8_t byte);   // UTF-8 of the stand-in
int unicode_to_byte(uint32_t cpt);                   // -1 if cpt stands for no byte

}  // namespace pensieve
