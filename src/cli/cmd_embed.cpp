// `pensieve embed -m MODEL [--pooling mean|cls|last] [--normalize] TEXT...`: one JSON
// array of floats per text (the pooled last-layer vector; raw unless --normalize).
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/embed.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace pensieve {

namespace {

struct EmbedOptions {
    ModelOptions model;
    std::vector<std::string> texts;
    std::string pooling;  // empty: the model's (`<arch>.pooling_type`)
    bool normalize = false;
};

int embed(const EmbedOptions& o) {
    LoadedModel lm = load(o.model);
    Pooling pooling = lm.model->config().pooling;
    if (o.pooling == "mean") pooling = Pooling::Mean;
    else if (o.pooling == "cls") pooling = Pooling::Cls;
    else if (o.pooling == "last") pooling = Pooling::Last;
    std::vector<std::vector<int32_t>> inputs;
    for (const std::string& text : o.texts) inputs.push_back(lm.tokenizer->encode(text, true));
    for (std::vector<float>& v : embed_inputs(*lm.model, *lm.pool, inputs, pooling)) {
        if (o.normalize) l2_normalize(v);
        std::fputc('[', stdout);
        for (size_t i = 0; i < v.size(); ++i) std::printf(i ? ", %.9g" : "%.9g", double(v[i]));
        std::fputs("]\n", stdout);
    }
    return 0;
}

}  // namespace

Command add_embed_command(CLI::App& root) {
    auto o = std::make_shared<EmbedOptions>();
    CLI::App* app = root.add_subcommand("embed", "Print the embedding of each text (one JSON array per line)");
    add_model_options(*app, o->model);
    app->add_option("text", o->texts, "Texts to embed")->required();
    app->add_option("--pooling", o->pooling, "How token vectors become one (default: the model's pooling type)")
        ->check(CLI::IsMember({"mean", "cls", "last"}));
    app->add_flag("--normalize", o->normalize, "Scale each vector to unit length (L2)");
    return {app, [o] { return embed(*o); }};
}

}  // namespace pensieve
