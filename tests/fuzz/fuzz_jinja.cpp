// libFuzzer target for the chat-template interpreter: a template, then, after a NUL
// byte, JSON for its variables. The fuzzed template renders the JSON (an object: its
// keys become variables; an array: the messages); one of the real templates in
// ../shared/templates renders it too (hostile values: messages = the JSON if an array,
// else its "messages", tools = its "tools"). Every render must produce text or throw
// pensieve::Error; a crash, a sanitizer report or any other exception is a bug.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "chat/chat_template.h"
#include "fuzz_common.h"
#include "util/json_text.h"

using namespace pensieve;
using ojson = nlohmann::ordered_json;

namespace {

std::vector<ChatTemplate> real_templates() {
    std::vector<std::filesystem::path> paths;
    for (const auto& e : std::filesystem::directory_iterator(shared_dir() + "/templates"))
        if (e.path().extension() == ".jinja") paths.push_back(e.path());
    std::sort(paths.begin(), paths.end());
    std::vector<ChatTemplate> out;
    for (const auto& p : paths) {
        std::ifstream in(p, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        ChatTemplateOptions o;
        o.now = [] { return std::tm{}; };  // a fixed date: renders repeat exactly
        out.emplace_back(ss.str(), "<s>", "</s>", o);
    }
    return out;
}

const ojson kMessages = ojson::parse(R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])");

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static std::vector<ChatTemplate> templates = real_templates();
    const auto parts = fuzz::split_at_nul(data, size);  // not a structured binding: clang 14 cannot capture one
    const std::string_view source = parts.first, values = parts.second;
    ojson context = try_parse_json_text(values).value_or(ojson());

    const ojson* messages = &kMessages;
    if (context.is_array()) messages = &context;
    else if (context.is_object() && context.contains("messages") && context["messages"].is_array()) messages = &context["messages"];
    const ojson tools = context.is_object() && context.contains("tools") && context["tools"].is_array() ? context["tools"] : ojson();
    const ojson extra = context.is_object() ? context : ojson::object();

    fuzz::expect_clean([&] {
        ChatTemplateOptions o;
        o.now = [] { return std::tm{}; };
        ChatTemplate t(source, "<s>", "</s>", o);
        t.render(*messages, tools, size % 2 == 0, extra);
    });
    if (!templates.empty())
        fuzz::expect_clean([&] { templates[size % templates.size()].render(*messages, tools, true, extra); });
    return 0;
}
