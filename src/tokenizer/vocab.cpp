// Reading the vocabulary from GGUF metadata. Where the metadata is silent, the choices
// follow llama.cpp (the reference engine), so that tokenizations match it exactly.
#include "tokenizer/vocab.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>

#include "gguf/gguf.h"
#include "util/error.h"

namespace pensieve {

// ---------------------------------------------------------------------------------------
// TokenIndex

void TokenIndex::build(const std::vector<std::string_view>& keys, bool first_wins) {
    // Power-of-two table at most half full, so probe chains stay short.
    size_t cap = 16;
    while (cap < keys.size() * 2) cap *= 2;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (size_t id = 0; id < keys.size(); ++id) {
        std::string_view text = keys[id];
        for (size_t i = hash(text) & mask_;; i = (i + 1) & mask_) {
            Slot& s = slots_[i];
            if (s.id < 0) {
                s = {text.data(), static_cast<uint32_t>(text.size()), static_cast<int32_t>(id)};
                break;
            }
            if (std::string_view(s.data, s.len) == text) {
                if (!first_wins) s.id = static_cast<int32_t>(id);
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Vocab::load

namespace {

const char* kModelKey = "tokenizer.ggml.model";

// Reads an optional token-id key. An id outside the vocab (e.g. 0xFFFFFFFF, which some
// converters write for "none") leaves `id` at its default, as llama.cpp does.
void read_id(const GgufFile& file, const char* key, int32_t n_vocab, int32_t& id) {
    const GgufValue* v = file.find(key);
    if (!v) return;
    if (!v->is_integer()) fail(file.path(), ": ", key, " is not an integer");
    int64_t value = file.get_int(key);
    if (value >= 0 && value < n_vocab) id = static_cast<int32_t>(value);
}

TokenType to_token_type(int64_t t) {
    if (t < 0 || t > 6) return TokenType::UNDEFINED;
    return static_cast<TokenType>(t);
}

bool is_special_type(TokenType t) {
    return t == TokenType::CONTROL || t == TokenType::USER_DEFINED || t == TokenType::UNKNOWN;
}

void load_tokens(const GgufFile& file, Vocab& v) {
    std::vector<std::string> texts = file.get_string_array("tokenizer.ggml.tokens");
    if (texts.empty()) fail(file.path(), ": tokenizer.ggml.tokens is empty");
    if (texts.size() > 0x7fffffff) fail(file.path(), ": too many tokens");
    const size_t n = texts.size();

    std::vector<double> scores;
    if (file.has("tokenizer.ggml.scores")) scores = file.get_float_array("tokenizer.ggml.scores");
    std::vector<int64_t> types;
    if (file.has("tokenizer.ggml.token_type")) types = file.get_int_array("tokenizer.ggml.token_type");
    if (!scores.empty() && scores.size() != n)
        fail(file.path(), ": tokenizer.ggml.scores has ", scores.size(), " entries for ", n, " tokens");
    if (!types.empty() && types.size() != n)
        fail(file.path(), ": tokenizer.ggml.token_type has ", types.size(), " entries for ", n, " tokens");

    v.tokens.resize(n);
    for (size_t i = 0; i < n; ++i) {
        v.tokens[i].text = std::move(texts[i]);
        v.tokens[i].score = scores.empty() ? 0.0f : static_cast<float>(scores[i]);
        v.tokens[i].type = types.empty() ? TokenType::NORMAL : to_token_type(types[i]);
    }
    // A duplicate text maps to its last id, as in llama.cpp's token_to_id.
    std::vector<std::string_view> keys;
    keys.reserve(n);
    for (const TokenData& t : v.tokens) keys.push_back(t.text);
    v.index.build(keys);
}

void load_special_ids(const GgufFile& file, Vocab& v) {
    // llama.cpp's defaults for each model when the keys are absent.
    const auto default_id = [&](int32_t id) { return v.valid(id) ? id : -1; };
    const auto pre_is = [&](std::initializer_list<const char*> names) {
        for (const char* n : names) {
            if (v.pre == n) return true;
        }
        return false;
    };
    bool add_bos = false, add_eos = false, add_sep = false;
    if (v.model == "llama") {            // SentencePiece BPE
        v.bos = default_id(1);
        v.eos = default_id(2);
        v.unk = default_id(0);
        add_bos = true;
    } else if (v.model == "gpt2") {      // byte-level BPE
        v.bos = default_id(11);
        v.eos = default_id(11);
        add_bos = pre_is({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                          "lfm2", "tekken", "chameleon"});
        add_sep = pre_is({"jina-v1-en", "jina-v2-code", "roberta-bpe"});
        if (pre_is({"chatglm-bpe", "glm4"})) v.bos = -1;
    } else if (v.model == "gemma4") {    // SentencePiece-style BPE: <bos> text
        add_bos = true;
    } else if (v.model == "bert") {      // WordPiece: [CLS] text [SEP]
        v.bos = default_id(101);
        v.unk = default_id(100);
        v.sep = default_id(102);
        v.pad = default_id(0);
        add_bos = true;
        add_sep = true;
    } else if (v.model == "t5") {        // unigram SentencePiece
        v.eos = default_id(1);
        v.unk = default_id(2);
        v.pad = default_id(0);
        add_eos = true;
    }
    const int32_t n = v.size();
    read_id(file, "tokenizer.ggml.cls_token_id", n, v.bos);   // older BERT GGUFs
    read_id(file, "tokenizer.ggml.bos_token_id", n, v.bos);
    read_id(file, "tokenizer.ggml.eos_token_id", n, v.eos);
    read_id(file, "tokenizer.ggml.unknown_token_id", n, v.unk);
    read_id(file, "tokenizer.ggml.seperator_token_id", n, v.sep);   // sic: the GGUF key
    read_id(file, "tokenizer.ggml.padding_token_id", n, v.pad);
    read_id(file, "tokenizer.ggml.eot_token_id", n, v.eot);
    read_id(file, "tokenizer.ggml.eom_token_id", n, v.eom);
    // BERT has no EOS of its own; [SEP] ends its input.
    if (v.model == "bert" && v.eos < 0) v.eos = v.sep;

    v.add_bos = file.get_bool("tokenizer.ggml.add_bos_token", add_bos);
    v.add_eos = file.get_bool("tokenizer.ggml.add_eos_token", add_eos);
    v.add_sep = file.get_bool("tokenizer.ggml.add_sep_token", add_sep);
    v.add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix", v.model == "llama");
}

// End-of-generation tokens. GGUFs rarely list them all, so, like llama.cpp, recognise
// the usual end-of-turn tokens by their text (and treat them as control tokens).
void find_end_tokens(Vocab& v) {
    static const char* const kEotTexts[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
        "<｜end▁of▁sentence｜>",  // DeepSeek (UTF-8 source, UTF-8 execution charset)
    };
    static const char* const kEogTexts[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>",
        "<turn|>",   // Gemma 4
        "<|return|>", "<|call|>",  // gpt-oss
    };
    // gpt-oss (harmony): <|end|> closes one message of a reply (the reasoning before the
    // answer), and the reply ends at <|return|> (an answer) or <|call|> (a tool call).
    const bool harmony = v.find("<|return|>") >= 0 && v.find("<|call|>") >= 0;
    auto ends_reply = [&](std::string_view text) { return !(harmony && text == "<|end|>"); };
    if (v.eot < 0) {
        for (const char* text : kEotTexts) {
            if (!ends_reply(text)) continue;
            int32_t id = v.find(text);
            if (id >= 0 && (v.eot < 0 || id < v.eot)) v.eot = id;
        }
        if (v.eot >= 0) v.tokens[v.eot].type = TokenType::CONTROL;
    }
    if (v.eom < 0) {
        int32_t id = v.find("<|eom_id|>");
        if (id >= 0) {
            v.eom = id;
            v.tokens[id].type = TokenType::CONTROL;
        }
    }

    std::vector<int32_t>& eog = v.end_of_generation;
    for (const char* text : kEogTexts) {
        int32_t id = ends_reply(text) ? v.find(text) : -1;
        if (id >= 0) {
            eog.push_back(id);
            v.tokens[id].type = TokenType::CONTROL;
        }
    }
    for (int32_t id : {v.eos, v.eot, v.eom}) {
        if (id >= 0) eog.push_back(id);
    }
    std::sort(eog.begin(), eog.end());
    eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
}

// Special tokens in the order they are split out of the text: longest first, so that
// "<|im_start|>" wins over a "<|" that may also be a token.
void collect_special_tokens(Vocab& v) {
    for (int32_t id = 0; id < v.size(); ++id) {
        if (is_special_type(v.tokens[id].type) && !v.tokens[id].text.empty()) {
            v.special_tokens.push_back(id);
        }
    }
    std::stable_sort(v.special_tokens.begin(), v.special_tokens.end(), [&](int32_t a, int32_t b) {
        return v.tokens[a].text.size() > v.tokens[b].text.size();
    });
}

// llama.cpp sets whitespace-stripping attributes from the model's name (they are not
// in the GGUF). Phi-3: whitespace after its special tokens is dropped, except after
// <unk>, <s> and <|endoftext|>. Matching the reference means doing the same.
void apply_name_rules(const GgufFile& file, Vocab& v) {
    std::string name = file.get_string("general.name", "");
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
        for (int32_t id : v.special_tokens) v.tokens[id].rstrip = true;
        if (int32_t id = v.find("</s>"); id >= 0) v.tokens[id].rstrip = true;
        for (const char* text : {"<unk>", "<s>", "<|endoftext|>"}) {
            if (int32_t id = v.find(text); id >= 0) v.tokens[id].rstrip = false;
        }
    }
}

void find_byte_tokens(Vocab& v) {
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
        const char text[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        v.byte_token[b] = v.find(std::string_view(text, 6));
    }
}

}  // namespace

Vocab Vocab::load(const GgufFile& file) {
    if (!file.has(kModelKey)) fail(file.path(), ": no tokenizer (", kModelKey, " is missing)");
    Vocab v;
    v.model = file.get_string(kModelKey);
    v.pre = file.get_string("tokenizer.ggml.pre", "");
    load_tokens(file, v);
    load_special_ids(file, v);
    find_end_tokens(v);
    collect_special_tokens(v);
    apply_name_rules(file, v);
    find_byte_tokens(v);
    return v;
}

}  // namespace pensieve
