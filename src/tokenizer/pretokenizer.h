// Pre-tokenization for byte-level BPE: cutting text into the words that BPE merges
// within, as the model's tokenizer.ggml.pre names them.
//
// Each pre-tokenizer is a list of regular expressions applied one after another, as in
// llama.cpp and HF tokenizers: every pattern cuts each piece left by the previous one
// into its matches and the text between them (which stays a piece of its own). The
// patterns are the models' own (tokenizer.json); GPT-2's and the single-digit split
// are matched by hand-written code, the others by PCRE2 over code points.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pensieve {

struct TextSpan {
    size_t begin, end;   // byte offsets into the text, begin < end
};

class PreTokenizer {
public:
    // `name` is tokenizer.ggml.pre; "" and "default" are llama.cpp's default patterns.
    // Throws Error for a name it does not know, listing the ones it does.
    explicit PreTokenizer(const std::string& name);
    ~PreTokenizer();
    PreTokenizer(const PreTokenizer&) = delete;
    PreTokenizer& operator=(const PreTokenizer&) = delete;

    // Appends the words of `text`, in order; together they cover the text exactly.
    void split(std::string_view text, std::vector<TextSpan>& words) const;

    // Every accepted tokenizer.ggml.pre value.
    static std::vector<std::string> supported_names();

private:
    struct Step;
    std::vector<std::unique_ptr<Step>> steps_;
};

}  // namespace pensieve
