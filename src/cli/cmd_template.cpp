// `pensieve template -m MODEL --messages M.json`: the prompt the model's chat template makes
// of a conversation, through the server's own ChatFormatter (same template choice, same
// adaptations of the conversation, same BOS/EOS texts), so it is exactly what the server
// feeds the tokenizer for /v1/chat/completions. `--ids`: the tokens the server feeds the
// model (special tokens only from the template's own text, chat/chat_prompt.h).
#include <cstdio>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "chat/chat_format.h"
#include "chat/chat_prompt.h"
#include "chat/chat_template.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/json_text.h"

namespace pensieve {

namespace {

struct TemplateOptions {
    std::string model;
    std::string messages;
    std::string tools;
    std::string template_file;
    std::string builtin;
    std::string name;  // named template in the GGUF (tokenizer.chat_template.<name>)
    std::string context;
    std::optional<std::string> bos, eos;
    bool add_generation_prompt = false;
    bool ids = false;  // print the token ids instead of the text
};

nlohmann::ordered_json read_json(const std::string& path, const char* what) {
    const std::string text = read_text_file(path);
    try {
        return parse_json_text(text);
    } catch (const JsonTextError& e) {
        fail(path, ": invalid JSON in ", what, " file: ", e.what());
    }
}

// The template source the options choose; "" means the model has none, and the
// formatter then uses the server's built-in ChatML (as `pensieve serve` does).
std::string template_source(const TemplateOptions& o, const GgufFile* gguf) {
    if (!o.template_file.empty()) return read_text_file(o.template_file);
    if (!o.builtin.empty()) {
        auto t = builtin_chat_template(o.builtin);
        if (!t) {
            std::string names;
            for (const auto& n : builtin_chat_template_names()) names += (names.empty() ? "" : ", ") + n;
            fail("unknown built-in chat template '", o.builtin, "' (available: ", names, ")");
        }
        return *t;
    }
    if (!gguf) fail("no chat template: give -m MODEL.gguf, --template-file F.jinja or --builtin NAME");
    if (!o.name.empty()) {
        auto t = gguf_chat_template(*gguf, o.name);
        if (!t) fail(o.model, ": no chat template named '", o.name, "'");
        return *t;
    }
    auto t = gguf_chat_template(*gguf);
    if (!t) std::fprintf(stderr, "%s: no chat template in the model; using the server's built-in ChatML\n", o.model.c_str());
    return t.value_or("");
}

int run_template(const TemplateOptions& o) {
    std::unique_ptr<GgufFile> gguf;
    if (!o.model.empty()) gguf = GgufFile::open(o.model);
    if (o.ids && !gguf) fail("--ids needs -m MODEL.gguf (its tokenizer)");
    const std::string source = template_source(o, gguf.get());

    // BOS / EOS texts as the server takes them: from the model's tokenizer.
    std::unique_ptr<Tokenizer> tok;
    std::string bos, eos;
    if (gguf) {
        tok = Tokenizer::from_gguf(*gguf);
        bos = ChatFormatter::bos_text(*tok);
        eos = ChatFormatter::eos_text(*tok);
    }
    const ChatFormatter format(source, o.bos.value_or(bos), o.eos.value_or(eos));

    nlohmann::ordered_json doc = read_json(o.messages, "messages");
    nlohmann::ordered_json messages, tools, extra = nlohmann::ordered_json::object();
    if (doc.is_array()) {
        messages = doc;
    } else if (doc.is_object() && doc.contains("messages")) {
        messages = doc["messages"];
        if (doc.contains("tools")) tools = doc["tools"];
        if (doc.contains("extra_context")) extra = doc["extra_context"];
    } else {
        fail(o.messages, ": expected a list of messages or an object with \"messages\"");
    }
    if (!o.tools.empty()) {
        tools = read_json(o.tools, "tools");
        if (tools.is_object() && tools.contains("tools")) tools = tools["tools"];
    }
    if (!o.context.empty()) {
        nlohmann::ordered_json c = read_json(o.context, "context");
        if (!c.is_object()) fail(o.context, ": the context must be a JSON object");
        for (const auto& [k, v] : c.items()) extra[k] = v;
    }

    const ChatRenderFn render = [&](const nlohmann::ordered_json& m, const nlohmann::ordered_json& t) {
        return format.render(m, t, o.add_generation_prompt, extra);
    };
    if (!tok) {   // no tokenizer: the text only
        const std::string text = render(messages, tools);
        std::fwrite(text.data(), 1, text.size(), stdout);
        return 0;
    }
    // With the model's tokenizer: exactly what the server feeds the model.
    const ChatPrompt prompt = make_chat_prompt(*tok, messages, tools, render);
    if (o.ids) {
        std::string line;
        for (int32_t id : prompt.tokens) {
            if (!line.empty()) line += ' ';
            line += std::to_string(id);
        }
        std::printf("%s\n", line.c_str());
    } else {
        std::fwrite(prompt.text.data(), 1, prompt.text.size(), stdout);
    }
    return 0;
}

}  // namespace

Command add_template_command(CLI::App& root) {
    auto o = std::make_shared<TemplateOptions>();
    CLI::App* app = root.add_subcommand("template", "Print the prompt a chat template makes of a conversation");
    app->add_option("-m,--model", o->model, "Model file (GGUF): its chat template and BOS/EOS tokens")
        ->check(CLI::ExistingFile);
    app->add_option("--messages", o->messages,
                    "JSON file: a list of OpenAI-style messages, or {\"messages\": [...], \"tools\": [...]}")
        ->required()
        ->check(CLI::ExistingFile);
    app->add_option("--tools", o->tools, "JSON file with the tool definitions (a list)")->check(CLI::ExistingFile);
    app->add_flag("--add-generation-prompt", o->add_generation_prompt, "End with the assistant turn's header");
    auto* tf = app->add_option("--template-file", o->template_file, "Use this Jinja template instead of the model's")
                   ->check(CLI::ExistingFile);
    app->add_option("--builtin", o->builtin, "Use a built-in template: chatml, llama2, llama3, mistral, phi3, gemma, zephyr")
        ->excludes(tf);
    app->add_option("--name", o->name, "Use the model's named template tokenizer.chat_template.NAME (e.g. tool_use)");
    app->add_option("--context", o->context, "JSON file with extra template variables (an object)")
        ->check(CLI::ExistingFile);
    app->add_option("--bos", o->bos, "BOS token text (default: the model's)");
    app->add_option("--eos", o->eos, "EOS token text (default: the model's)");
    app->add_flag("--ids", o->ids,
                  "Print the prompt's token ids, as the server tokenizes it (special tokens only from the "
                  "template's own text)");
    return {app, [o] { return run_template(*o); }};
}

}  // namespace pensieve
