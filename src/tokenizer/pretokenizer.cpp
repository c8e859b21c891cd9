// Pre-tokenizers for byte-level BPE; see pretokenizer.h.
//
// The text is decoded to code points once. A piece is a range of code points; each
// step cuts every piece into smaller ones. Two patterns are so common that they are
// matched by hand (GPT-2's, and "\p{N}" which isolates every digit); the rest go to
// PCRE2 in its 32-bit mode, so the subject is the code point array itself and
// malformed UTF-8 (already U+FFFD per bad byte) cannot trip it up.
//
// Regex dialect: the patterns are written as in tokenizer.json (Rust regex / Oniguruma).
// Two details differ in PCRE2 and are fixed when compiling: "\s" must be Unicode's
// White_Space (PCRE2's misses U+0085), and "$" must mean end of text only.
#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 32
#include <pcre2.h>

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace pensieve {
namespace {

// ---------------------------------------------------------------------------------------
// The patterns

const char* const kGpt2 = R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)re";
const char* const kDigit = R"re(\p{N})re";

// LLaMA 3 and friends: contractions, letters with one leading non-letter, numbers in
// groups of up to three (Qwen2: one), punctuation runs, newlines, spaces.
const char* const kLlama3 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kQwen2 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
// Qwen 3.5: Qwen2's pattern with combining marks (\p{M}) kept in words, never in a
// punctuation run, so a decomposed "é" (e + U+0301) stays one word.
const char* const kQwen35 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// BLOOM, Poro, GPT-3 Finnish, Viking: a word is anything up to a space or . , ! ? etc.
const char* const kBloom = R"re( ?[^(\s|.,!?…。，、।۔،)]+)re";

// CJK ideographs, Hangul and more, as DeepSeek's tokenizer.json isolates them.
const char* const kDeepseekCjk = R"re([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)re";

struct Family {
    std::vector<const char*> names;
    std::vector<const char*> patterns;
};

const std::vector<Family>& families() {
    static const std::vector<Family> all = {
        {{"default", ""},   // llama.cpp's fallback (GPT-NeoX GGUFs without a name)
         {R"re([\p{P}\$\+<=>\^~\|]+)re", kGpt2, R"re(\p{N}+)re", R"re([0-9][0-9][0-9])re"}},
        {{"gpt-2", "phi-2", "mpt", "olmo", "jais", "jina-es", "jina-de", "jina-v1-en", "jina-v2-es",
          "jina-v2-de", "jina-v2-code", "roberta-bpe", "gigachat", "exaone4", "trillion",
          "granite-docling", "a.x-4.0", "mellum"},
         {kGpt2}},
        {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
         {kDigit, kGpt2}},
        {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
          "dbrx", "smaug-bpe", "chatglm-bpe", "glm4"},
         {kLlama3}},
        {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", "hunyuan", "grok-2", "kormo"}, {kQwen2}},
        {{"qwen35"}, {kQwen35}},
        {{"falcon"}, {R"re([\p{P}\$\+<=>\^~\|`]+)re", kGpt2, R"re([0-9][0-9][0-9])re"}},
        {{"deepseek-llm"},
         {R"re([\r\n])re",
          // Cased letters (Unicode L&), as DeepSeek lists them. Non-ASCII characters are
          // written as \x{...}: several of them change under Unicode normalization.
          R"re(\s?[)re"
          R"re(A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293})re"
          R"re(\x{295}-\x{2AF}\x{370}-\x{373}\x{376}-\x{377}\x{37B}-\x{37D}\x{37F}\x{386})re"
          R"re(\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F})re"
          R"re(\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA})re"
          R"re(\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})re"
          R"re(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D})re"
          R"re(\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4})re"
          R"re(\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3})re"
          R"re(\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})re"
          R"re(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D})re"
          R"re(\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}-\x{2184})re"
          R"re(\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}-\x{2CF3})re"
          R"re(\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})re"
          R"re(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17})re"
          R"re(\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3})re"
          R"re(\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF})re"
          R"re(\x{1E900}-\x{1E943})re"
          R"re(]+)re",
          R"re(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)re",
          R"re(\s+$)re",
          kDeepseekCjk,
          R"re(\p{N}+)re"}},
        {{"deepseek-coder"},
         {R"re([\r\n])re", R"re(\s?\p{L}+)re", R"re(\s?\p{P}+)re", kDeepseekCjk, kDigit}},
        {{"deepseek-v3", "hunyuan-dense"},
         {R"re(\p{N}{1,3})re", R"re([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)re",
          R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"}},
        {{"poro-chat", "bloom", "gpt3-finnish"}, {kBloom}},
        {{"viking"}, {kBloom, kDigit}},
        {{"tekken"},
         {R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"}},
        {{"gpt-4o", "llama4", "minimax-m2"},
         {R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"}},
        {{"seed-coder"},
         {R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)re"}},
        {{"bailingmoe", "bailingmoe2", "llada-moe"},
         {R"re('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)re"}},
        // Gemma 4 (tokenizer.ggml.model "gemma4", which has no tokenizer.ggml.pre): runs of
        // newlines and runs of everything else.
        {{"gemma4"}, {R"re([^\n]+|[\n]+)re"}},
        {{"chameleon"},
         {R"re(<sentinel:[0-9]+>)re", R"re((IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z)re", R"re(([\t\n]|    |  ))re",
          kDigit, R"re([\p{P}!-/:-@\[-`{-~])re", kGpt2}},
    };
    return all;
}

// ---------------------------------------------------------------------------------------
// Hand-written steps

struct CptText {
    std::vector<uint32_t> cpts;
    std::vector<uint8_t> flags;   // unicode_flags of each cpt
    std::vector<uint8_t> space;   // unicode_is_space of each cpt
    std::vector<size_t> offset;   // byte offset of each cpt, plus the end
};

struct Piece {
    size_t begin, end;   // code point indices
};

// "\p{N}": every digit becomes a piece of its own; the text between stays as it is.
void split_digits(const CptText& t, const std::vector<Piece>& in, std::vector<Piece>& out) {
    for (Piece s : in) {
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

// GPT-2's pattern:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const CptText& t, const std::vector<Piece>& in, std::vector<Piece>& out) {
    // The three " ?X+" classes; 0 for whitespace, which none of them takes.
    const auto cls = [&](size_t i) -> int {
        if (t.space[i]) return 0;
        if (t.flags[i] & CPT_LETTER) return 1;
        if (t.flags[i] & CPT_NUMBER) return 2;
        return 3;
    };
    for (Piece s : in) {
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

// ---------------------------------------------------------------------------------------
// Regex steps (PCRE2, 32-bit code units = code points)

// White_Space, for use inside a character class.
const char* const kWhiteSpaceClass = R"re(\t-\r\x{20}\x{85}\p{Z})re";

// Rewrites \s and \S (outside and inside [...]) to White_Space classes.
std::string expand_space_classes(std::string_view pattern) {
    std::string out;
    bool in_class = false;
    for (size_t i = 0; i < pattern.size(); ++i) {
        char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            char e = pattern[++i];
            if (e == 's') {
                out += in_class ? std::string(kWhiteSpaceClass) : cat("[", kWhiteSpaceClass, "]");
            } else if (e == 'S' && !in_class) {
                out += cat("[^", kWhiteSpaceClass, "]");
            } else if (e == 'S') {
                fail("internal: \\S inside a character class is not supported: ", pattern);
            } else {
                out += c;
                out += e;
            }
            continue;
        }
        if (c == '[' && !in_class) in_class = true;
        else if (c == ']' && in_class) in_class = false;
        out += c;
    }
    return out;
}

struct Regex {
    pcre2_code* code = nullptr;

    explicit Regex(std::string_view pattern) {
        std::vector<uint32_t> units = utf8_to_cpts(expand_space_classes(pattern));
        int error = 0;
        PCRE2_SIZE error_offset = 0;
        code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(units.data()), units.size(),
                             PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_NO_UTF_CHECK,
                             &error, &error_offset, nullptr);
        if (!code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(error, msg, 256);
            std::string text;
            for (PCRE2_UCHAR* m = msg; *m; ++m) append_utf8(text, *m);
            fail("internal: bad pre-tokenizer pattern at ", error_offset, ": ", text, ": ", pattern);
        }
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);   // if JIT is unavailable, the interpreter runs
    }
    ~Regex() { pcre2_code_free(code); }
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;
};

// Per-thread match state: PCRE2's match data and a JIT stack big enough for long runs.
struct MatchState {
    pcre2_match_context* context = nullptr;
    pcre2_jit_stack* stack = nullptr;
    pcre2_match_data* data = nullptr;
    MatchState() {
        context = pcre2_match_context_create(nullptr);
        stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
        if (context && stack) pcre2_jit_stack_assign(context, nullptr, stack);
        data = pcre2_match_data_create(4, nullptr);   // grows below if a pattern needs more
    }
    ~MatchState() {
        pcre2_match_data_free(data);
        pcre2_jit_stack_free(stack);
        pcre2_match_context_free(context);
    }
};

MatchState& match_state() {
    thread_local MatchState state;
    return state;
}

// Cuts each piece into the regex's matches and the gaps between them.
void split_regex(const Regex& re, const std::vector<uint32_t>& subject, const std::vector<Piece>& in,
                 std::vector<Piece>& out) {
    MatchState& ms = match_state();
    if (!ms.data) fail("out of memory for the pre-tokenizer");
    for (Piece s : in) {
        const PCRE2_SPTR base = reinterpret_cast<PCRE2_SPTR>(subject.data() + s.begin);
        const size_t len = s.end - s.begin;
        size_t done = 0, from = 0;
        while (from < len) {
            int rc = pcre2_match(re.code, base, len, from, PCRE2_NO_UTF_CHECK, ms.data, ms.context);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) fail("pre-tokenizer: regex match failed (PCRE2 error ", rc, ")");
            const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(ms.data);
            size_t mb = ov[0], me = ov[1];
            if (me == mb) {   // an empty match cuts nothing
                from = me + 1;
                continue;
            }
            if (mb > done) out.push_back({s.begin + done, s.begin + mb});
            out.push_back({s.begin + mb, s.begin + me});
            done = from = me;
        }
        if (done < len) out.push_back({s.begin + done, s.end});
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// PreTokenizer

struct PreTokenizer::Step {
    enum Kind { GPT2, DIGITS, REGEX } kind;
    std::unique_ptr<Regex> regex;
};

PreTokenizer::PreTokenizer(const std::string& name) {
    const Family* family = nullptr;
    for (const Family& f : families()) {
        for (const char* n : f.names) {
            if (name == n) family = &f;
        }
    }
    if (!family) {
        std::string list;
        for (const std::string& n : supported_names()) list += (list.empty() ? "" : ", ") + n;
        fail("unsupported pre-tokenizer \"", name, "\" (tokenizer.ggml.pre); supported: ", list);
    }
    for (const char* pattern : family->patterns) {
        auto step = std::make_unique<Step>();
        if (std::string_view(pattern) == kGpt2) {
            step->kind = Step::GPT2;
        } else if (std::string_view(pattern) == kDigit) {
            step->kind = Step::DIGITS;
        } else {
            step->kind = Step::REGEX;
            step->regex = std::make_unique<Regex>(pattern);
        }
        steps_.push_back(std::move(step));
    }
}

PreTokenizer::~PreTokenizer() = default;

std::vector<std::string> PreTokenizer::supported_names() {
    std::vector<std::string> names;
    for (const Family& f : families()) {
        for (const char* n : f.names) {
            if (*n) names.push_back(n);
        }
    }
    return names;
}

void PreTokenizer::split(std::string_view text, std::vector<TextSpan>& words) const {
    if (text.empty()) return;
    CptText t;
    t.cpts.reserve(text.size());
    t.offset.reserve(text.size() + 1);
    for (size_t pos = 0; pos < text.size();) {
        t.offset.push_back(pos);
        t.cpts.push_back(utf8_next(text, pos));
    }
    t.offset.push_back(text.size());
    t.flags.resize(t.cpts.size());
    t.space.resize(t.cpts.size());
    for (size_t i = 0; i < t.cpts.size(); ++i) {
        t.flags[i] = unicode_flags(t.cpts[i]);
        t.space[i] = unicode_is_space(t.cpts[i]);
    }

    // PCRE2 in UTF mode must not see surrogates (which the lenient decoder lets through).
    std::vector<uint32_t> subject;
    for (const auto& step : steps_) {
        if (step->kind == Step::REGEX) {
            subject = t.cpts;
            for (uint32_t& c : subject) {
                if (c >= 0xD800 && (c <= 0xDFFF || c > 0x10FFFF)) c = 0xFFFD;
            }
            break;
        }
    }

    std::vector<Piece> pieces = {{0, t.cpts.size()}}, next;
    for (const auto& step : steps_) {
        next.clear();
        next.reserve(pieces.size() * 2);
        switch (step->kind) {
            case Step::GPT2: split_gpt2(t, pieces, next); break;
            case Step::DIGITS: split_digits(t, pieces, next); break;
            case Step::REGEX: split_regex(*step->regex, subject, pieces, next); break;
        }
        pieces.swap(next);
    }
    for (Piece p : pieces) words.push_back({t.offset[p.begin], t.offset[p.end]});
}

}  // namespace pensieve
