// The token side of reply parsing: a chat syntax's markers that are control tokens in
// the vocabulary reach the generated text (only those: other control tokens stay
// invisible), and gpt-oss's harmony vocabulary ends a reply at <|return|> / <|call|>
// but not at <|end|>, which only closes a message (its reasoning) within the reply.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/decoder.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace pensieve {
namespace {

struct SmallVocab {
    std::vector<uint8_t> bytes;
    std::unique_ptr<GgufFile> file;
    std::unique_ptr<Tokenizer> tok;
};

// A SentencePiece vocab: <unk> <s> </s>, the given special tokens (control type), "a".
SmallVocab make_vocab(const std::vector<std::string>& specials) {
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    std::vector<int32_t> types = {2, 3, 3};
    for (const std::string& s : specials) {
        tokens.push_back(s);
        types.push_back(3);
    }
    tokens.push_back("a");
    types.push_back(1);
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_string_array("tokenizer.ggml.tokens", tokens);
    w.set_f32_array("tokenizer.ggml.scores", std::vector<float>(tokens.size(), 0.0f));
    w.set_i32_array("tokenizer.ggml.token_type", types);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    SmallVocab v;
    v.bytes = w.to_bytes();
    v.file = GgufFile::parse(v.bytes.data(), v.bytes.size(), "vocab.gguf");
    v.tok = Tokenizer::from_gguf(*v.file);
    return v;
}

// The text a decoder gives for `token` when the model all but certainly picks it.
std::string text_of(const Tokenizer& tok, int32_t token, std::vector<int32_t> shown) {
    RequestParams p;
    p.options.sampling.temperature = 0.0f;
    p.options.shown_control_tokens = std::move(shown);
    SequenceDecoder d(p, tok, tok.n_vocab());
    std::vector<float> logits(size_t(tok.n_vocab()), -10.0f);
    logits[size_t(token)] = 10.0f;
    SequenceDecoder::Step s = d.next(logits.data());
    EXPECT_EQ(s.token, token);
    return s.event.text + d.tail();
}

TEST(ReplyTokens, ShownControlTokensReachTheText) {
    SmallVocab v = make_vocab({"<|channel|>", "<|im_start|>"});
    const int32_t channel = v.tok->find_token("<|channel|>"), im_start = v.tok->find_token("<|im_start|>");
    ASSERT_TRUE(v.tok->is_control(channel));
    EXPECT_EQ(text_of(*v.tok, channel, {}), "");
    EXPECT_EQ(text_of(*v.tok, channel, {channel}), "<|channel|>");
    EXPECT_EQ(text_of(*v.tok, im_start, {channel}), "");  // not a marker of the reply syntax
    EXPECT_EQ(text_of(*v.tok, v.tok->find_token("a"), {channel}), "a");
}

TEST(ReplyTokens, HarmonyRepliesEndAtReturnOrCallNotEnd) {
    SmallVocab gpt_oss = make_vocab({"<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>"});
    EXPECT_FALSE(gpt_oss.tok->is_end_of_generation(gpt_oss.tok->find_token("<|end|>")));
    EXPECT_TRUE(gpt_oss.tok->is_end_of_generation(gpt_oss.tok->find_token("<|return|>")));
    EXPECT_TRUE(gpt_oss.tok->is_end_of_generation(gpt_oss.tok->find_token("<|call|>")));
    // Elsewhere (Phi-3) <|end|> ends the turn.
    SmallVocab phi = make_vocab({"<|end|>", "<|user|>"});
    EXPECT_TRUE(phi.tok->is_end_of_generation(phi.tok->find_token("<|end|>")));
}

}  // namespace
}  // namespace pensieve
