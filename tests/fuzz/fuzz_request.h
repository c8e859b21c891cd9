// The chat routes' work on a parsed request, up to the scheduler: the chat template
// renders the conversation, the tokenizer reads the prompt, tool_choice becomes a
// grammar, and a grammar (response_format, grammar, tool_choice) masks a first token.
// Shared by fuzz_request_openai and fuzz_request_anthropic.
#pragma once

#include <fstream>
#include <sstream>
#include <vector>

#include "engine/grammar_matcher.h"
#include "fuzz_common.h"
#include "chat/chat_format.h"
#include "chat/chat_prompt.h"
#include "server/json_fields.h"
#include "server/model_host.h"
#include "server/request_parse.h"
#include "server/tool_grammar.h"

namespace pensieve::fuzz {

class ChatPipeline {
public:
    ChatPipeline() : tok_(load_tokenizer("models/stories260K.gguf")) {
        formats_.emplace_back("", "<s>", "</s>");  // the built-in ChatML (Hermes tool calls)
        // One real template per tool-call syntax.
        for (const char* name : {"Qwen-Qwen2.5-7B-Instruct", "meta-llama-Llama-3.1-8B-Instruct",
                                 "mistralai-Mistral-Nemo-Instruct-2407"})
            formats_.emplace_back(read(shared_dir() + "/templates/" + name + ".jinja"), "<s>", "</s>");
    }

    // `pick` chooses the template (the fuzzer steers it through the input's bytes).
    void run(server::ChatRequest& r, size_t pick) {
        const ChatFormatter& f = formats_[pick % formats_.size()];
        // As the server renders: shielded values, then the template, then the tokenizer.
        make_chat_prompt(*tok_.tokenizer, r.messages, r.tools_active() ? r.tools : json(nullptr),
                         [&](const json& messages, const json& tools) { return f.render(messages, tools, true); });
        server::apply_tool_choice(r, f.tool_format());
        mask_first_token(r.params);
    }

    void mask_first_token(const RequestParams& p) {
        if (!p.options.grammar) return;
        GrammarMatcher m(p.options.grammar, *tok_.tokenizer);
        std::vector<float> logits(size_t(tok_.tokenizer->n_vocab()), 0.0f);
        m.mask_logits(logits.data());
    }

private:
    static std::string read(const std::string& path) {
        std::ifstream in(path, std::ios::binary);
        if (!in) fail("cannot read ", path);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }

    LoadedTokenizer tok_;
    std::vector<ChatFormatter> formats_;
};

}  // namespace pensieve::fuzz
