// The vocabulary shared by every tokenizer algorithm: token strings, scores, types and
// the special-token ids, as read from a GGUF file's `tokenizer.ggml.*` metadata, plus a
// fast string -> id lookup. Algorithms (spm.cpp, ...) only read it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pensieve {

class GgufFile;

// Values of `tokenizer.ggml.token_type` (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
    UNDEFINED = 0, NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6,
};

struct TokenData {
    std::string text;         // raw vocab string, e.g. "▁the", "<0x0A>", "<s>"
    float score = 0.0f;       // SPM merge priority (higher merges first)
    TokenType type = TokenType::NORMAL;
    // When this token is split out of the text as a special token, drop the whitespace
    // on its left / right (llama.cpp's LSTRIP / RSTRIP attributes; not in the GGUF, set
    // by model name, see Vocab::load).
    bool lstrip = false;
    bool rstrip = false;
};

// Open-addressing hash table from a string to its index in a list. Keys are views into
// strings owned elsewhere (Vocab::tokens, BPE merges), which must not move.
class TokenIndex {
public:
    // A key that occurs twice maps to its last index, or its first if `first_wins`.
    void build(const std::vector<std::string_view>& keys, bool first_wins = false);
    // Id of the token whose text is exactly `text`, or -1.
    int32_t find(std::string_view text) const {
        if (slots_.empty()) return -1;
        for (size_t i = hash(text) & mask_;; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (s.id < 0) return -1;
            if (s.len == text.size() && std::string_view(s.data, s.len) == text) return s.id;
        }
    }

private:
    struct Slot {
        const char* data = nullptr;
        uint32_t len = 0;
        int32_t id = -1;
    };
    static uint64_t hash(std::string_view s) {
        // FNV-1a: keys are short (a few bytes), so a simple byte loop is fastest.
        uint64_t h = 1469598103934665603ull;
        for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
        return h ^ (h >> 29);
    }
    std::vector<Slot> slots_;
    size_t mask_ = 0;
};

struct Vocab {
    std::string model;        // tokenizer.ggml.model: "llama", "gpt2", "bert", "t5", ...
    std::string pre;          // tokenizer.ggml.pre (pre-tokenizer name), may be empty
    std::vector<TokenData> tokens;
    TokenIndex index;

    // Special ids, -1 when absent.
    int32_t bos = -1, eos = -1, unk = -1, pad = -1, eot = -1, eom = -1;
    int32_t sep = -1;         // separator ([SEP] of BERT-style models)
    bool add_bos = false;
    bool add_eos = false;
    bool add_sep = false;     // append `sep` after the text (BERT, RoBERTa-style BPE)
    bool add_space_prefix = false;
    std::vector<int32_t> end_of_generation;  // sorted; EOS, EOT, EOM and end-like tokens
    // Tokens that are split out of the text before the algorithm runs (control,
    // user-defined, unknown), longest text first.
    std::vector<int32_t> special_tokens;
    // byte value -> id of its "<0xXX>" token, or -1.
    int32_t byte_token[256] = {};

    // `index` points into `tokens`: moving keeps the strings in place, copying would not.
    Vocab() = default;
    Vocab(Vocab&&) = default;
    Vocab& operator=(Vocab&&) = default;
    Vocab(const Vocab&) = delete;
    Vocab& operator=(const Vocab&) = delete;

    // Reads and validates the `tokenizer.ggml.*` metadata; throws Error.
    static Vocab load(const GgufFile& file);

    int32_t size() const { return static_cast<int32_t>(tokens.size()); }
    bool valid(int32_t id) const { return id >= 0 && id < size(); }
    int32_t find(std::string_view text) const { return index.find(text); }
};

}  // namespace pensieve
