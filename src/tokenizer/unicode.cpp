// Unicode helpers for the tokenizers; the character database is utf8proc's.
#include "tokenizer/unicode.h"

#include <array>

#include <utf8proc.h>

namespace pensieve {

uint8_t unicode_flags(uint32_t cpt) {
    if (cpt > 0x10FFFF) return CPT_OTHER;
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(cpt))) {
        case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
        case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
            return CPT_LETTER;
        case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
            return CPT_NUMBER;
        case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
        case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
        case UTF8PROC_CATEGORY_PO:
            return CPT_PUNCT;
        case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK:
        case UTF8PROC_CATEGORY_SO:
            return CPT_SYMBOL;
        case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
            return CPT_MARK;
        case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
            return CPT_SEPARATOR;
        default:
            return CPT_OTHER;   // Cc, Cf, Cs, Co, Cn
    }
}

bool unicode_is_space(uint32_t cpt) {
    // White_Space (PropList.txt) is exactly the Z categories plus these controls.
    if ((cpt >= 0x09 && cpt <= 0x0D) || cpt == 0x20 || cpt == 0x85) return true;
    return cpt > 0x7F && unicode_flags(cpt) == CPT_SEPARATOR;
}

bool unicode_is_nonspacing_mark(uint32_t cpt) {
    return cpt <= 0x10FFFF && utf8proc_category(static_cast<utf8proc_int32_t>(cpt)) == UTF8PROC_CATEGORY_MN;
}

uint32_t unicode_tolower(uint32_t cpt) {
    if (cpt < 0x80) return (cpt >= 'A' && cpt <= 'Z') ? cpt + 32 : cpt;
    if (cpt > 0x10FFFF) return cpt;
    return static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cpt)));
}

void unicode_append_nfd(uint32_t cpt, std::vector<uint32_t>& out) {
    if (cpt < 0xC0 || cpt > 0x10FFFF) {   // nothing below U+00C0 decomposes canonically
        out.push_back(cpt);
        return;
    }
    utf8proc_int32_t buf[8];   // canonical decompositions are at most 4 code points
    int boundclass = UTF8PROC_BOUNDCLASS_START;
    utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cpt), buf, 8,
                                                 UTF8PROC_DECOMPOSE, &boundclass);
    if (n <= 0 || n > 8) {
        out.push_back(cpt);
        return;
    }
    for (utf8proc_ssize_t i = 0; i < n; ++i) out.push_back(static_cast<uint32_t>(buf[i]));
}

uint32_t utf8_next(std::string_view s, size_t& pos) {
    const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
    const auto cont = [&](size_t i) { return i < s.size() && (byte(i) & 0xC0) == 0x80; };
    unsigned char c = byte(pos);
    if (c < 0x80) {
        pos += 1;
        return c;
    }
    if ((c & 0xE0) == 0xC0 && cont(pos + 1)) {
        uint32_t cpt = ((c & 0x1Fu) << 6) | (byte(pos + 1) & 0x3Fu);
        pos += 2;
        return cpt;
    }
    if ((c & 0xF0) == 0xE0 && cont(pos + 1) && cont(pos + 2)) {
        uint32_t cpt = ((c & 0x0Fu) << 12) | ((byte(pos + 1) & 0x3Fu) << 6) | (byte(pos + 2) & 0x3Fu);
        pos += 3;
        return cpt;
    }
    if ((c & 0xF8) == 0xF0 && cont(pos + 1) && cont(pos + 2) && cont(pos + 3)) {
        uint32_t cpt = ((c & 0x07u) << 18) | ((byte(pos + 1) & 0x3Fu) << 12) |
                       ((byte(pos + 2) & 0x3Fu) << 6) | (byte(pos + 3) & 0x3Fu);
        pos += 4;
        return cpt;
    }
    pos += 1;
    return 0xFFFD;
}

std::vector<uint32_t> utf8_to_cpts(std::string_view s) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    for (size_t pos = 0; pos < s.size();) out.push_back(utf8_next(s, pos));
    return out;
}

void append_utf8(std::string& out, uint32_t c) {
    if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out += static_cast<char>(0xE0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (c >> 18));
        out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    }
}

namespace {

// GPT-2's table: printable Latin-1 bytes stand for themselves, the other 68 bytes
// (controls, space, ...) take the code points 256, 257, ... in byte order.
struct ByteMap {
    std::array<std::string, 256> to_utf8;
    std::array<uint32_t, 256> to_cpt;
    ByteMap() {
        uint32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            to_cpt[b] = printable ? static_cast<uint32_t>(b) : next++;
            append_utf8(to_utf8[b], to_cpt[b]);
        }
    }
};

const ByteMap& byte_map() {
    static const ByteMap map;
    return map;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t byte) { return byte_map().to_utf8[byte]; }

int unicode_to_byte(uint32_t cpt) {
    if (cpt < 256) {
        const ByteMap& m = byte_map();
        return m.to_cpt[cpt] == cpt ? static_cast<int>(cpt) : -1;
    }
    if (cpt < 256 + 68) {
        const ByteMap& m = byte_map();
        for (int b = 0; b < 256; ++b) {
            if (m.to_cpt[b] == cpt) return b;
        }
    }
    return -1;
}

}  // namespace pensieve
