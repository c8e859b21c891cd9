// Just enough Unicode for tokenizers: UTF-8 <-> code points, general-category classes
// (\p{L}, \p{N}, ... of the pre-tokenizer patterns), White_Space, and GPT-2's mapping
// of bytes to printable characters.
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

struct UnicodeRange {
    uint32_t first;
    uint8_t flags;
};

// Class of a code point (CPT_OTHER for unassigned and out-of-range values).
uint8_t unicode_flags(uint32_t cpt);
// The White_Space property (\s in the patterns).
bool unicode_is_space(uint32_t cpt);

// Decodes the character at s[pos], advancing pos. Malformed input yields U+FFFD and
// advances one byte (as llama.cpp's unicode_cpts_from_utf8 does).
uint32_t utf8_next(std::string_view s, size_t& pos);
std::vector<uint32_t> utf8_to_cpts(std::string_view s);
void append_utf8(std::string& out, uint32_t cpt);

// GPT-2 byte-level BPE: every byte has a printable stand-in character ("Ġ" for ' ').
const std::string& byte_to_unicode(uint8_t byte);   // UTF-8 of the stand-in
int unicode_to_byte(uint32_t cpt);                   // -1 if cpt stands for no byte

}  // namespace pensieve
