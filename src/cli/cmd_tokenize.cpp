// `pensieve tokenize -m MODEL TEXT`: token ids of a text, as the model sees it.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace pensieve {

namespace {

struct TokenizeOptions {
    std::string model;
    std::string text;
    std::string file;
    bool no_bos = false;
    bool pieces = false;
    bool parse_special = false;
};

int tokenize(const TokenizeOptions& o) {
    auto gguf = GgufFile::open(o.model);
    auto tok = Tokenizer::from_gguf(*gguf);
    const std::string text = o.file.empty() ? o.text : read_text_file(o.file);
    const std::vector<int32_t> ids = tok->encode(text, !o.no_bos, o.parse_special);
    for (size_t i = 0; i < ids.size(); ++i) {
        if (i) std::fputc(' ', stdout);
        if (o.pieces)
            std::printf("%d:'%s'", ids[i], tok->token_to_piece(ids[i], true).c_str());
        else
            std::printf("%d", ids[i]);
    }
    std::fputc('\n', stdout);
    return 0;
}

}  // namespace

Command add_tokenize_command(CLI::App& root) {
    auto o = std::make_shared<TokenizeOptions>();
    CLI::App* app = root.add_subcommand("tokenize", "Print the token ids of a text");
    app->add_option("-m,--model", o->model, "Model or vocabulary file (GGUF)")->required()->check(CLI::ExistingFile);
    auto* t = app->add_option("text", o->text, "Text to tokenize");
    app->add_option("-f,--file", o->file, "Read the text from a file")->excludes(t)->check(CLI::ExistingFile);
    app->add_flag("--no-bos", o->no_bos, "Do not add BOS/EOS even if the model asks for them");
    app->add_flag("--pieces", o->pieces, "Show each token's text");
    app->add_flag("--parse-special", o->parse_special, "Turn special-token text (e.g. <s>) into special tokens");
    return {app, [o] { return tokenize(*o); }};
}

}  // namespace pensieve
