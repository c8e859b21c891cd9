// The conversations the server builds (OpenAI- and Anthropic-shaped requests, with tool
// calls and results) render through real models' chat templates, and the tool-call
// syntax detected for each template is the one it teaches the model.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "chat/chat_format.h"
#include "server/request_parse.h"
#include "test_paths.h"
#include "util/error.h"

namespace pensieve::server {
namespace {

ChatRequest tool_conversation() {
    return parse_openai_chat(json::parse(R"({"messages":[
        {"role":"system","content":"You are helpful."},
        {"role":"user","content":"Weather in Paris?"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"call_abc123def","type":"function",
            "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
        {"role":"tool","tool_call_id":"call_abc123def","content":"sunny, 21 C"},
        {"role":"assistant","content":"It is sunny in Paris."},
        {"role":"user","content":"Thanks!"}],
      "tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather",
        "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]})"));
}

TEST(ChatFormat, BuiltinRendersToolsCallsAndResults) {
    ChatFormatter f("", "<s>", "</s>");
    EXPECT_TRUE(f.is_builtin());
    EXPECT_EQ(f.tool_format(), ToolFormat::Hermes);
    ChatRequest r = tool_conversation();
    const std::string p = f.render(r.messages, r.tools, true);
    EXPECT_NE(p.find("<|im_start|>system\nYou are helpful.\n\n# Tools"), std::string::npos) << p;
    EXPECT_NE(p.find("\"required\": [\"city\"]"), std::string::npos) << p;  // schema key order kept
    EXPECT_NE(p.find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"),
              std::string::npos)
        << p;
    EXPECT_NE(p.find("<|im_start|>user\n<tool_response>\nsunny, 21 C\n</tool_response><|im_end|>"), std::string::npos) << p;
    EXPECT_TRUE(p.ends_with("<|im_start|>assistant\nIt is sunny in Paris.<|im_end|>\n<|im_start|>user\nThanks!<|im_end|>\n<|im_start|>assistant\n")) << p;

    // Without tools it is plain ChatML.
    const json plain = json::parse(R"([{"role":"user","content":"Hi"}])");
    EXPECT_EQ(f.render(plain, nullptr, true), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatFormat, RealTemplatesRenderServerConversations) {
    const std::filesystem::path dir = shared_dir() + "/templates";
    ASSERT_TRUE(std::filesystem::exists(dir));
    int rendered = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".jinja") continue;
        const std::string name = entry.path().filename().string();
        ChatFormatter f(read_text_file(entry.path().string()), "<s>", "</s>");
        ChatRequest r = tool_conversation();
        try {
            const std::string p = f.render(r.messages, r.tools, true);
            EXPECT_NE(p.find("Thanks!"), std::string::npos) << name;
            ++rendered;
        } catch (const Error& e) {
            // A template may refuse a conversation shape (raise_exception); that must be a
            // clean Error (a 400 for the client), never a crash.
            std::fprintf(stderr, "note: %s refuses the conversation: %s\n", name.c_str(), e.what());
        }
    }
    EXPECT_GE(rendered, 10);
}

TEST(ChatFormat, DetectsEachFamilysToolSyntax) {
    const std::string d = shared_dir() + "/templates/";
    EXPECT_EQ(ChatFormatter(read_text_file(d + "Qwen-Qwen2.5-7B-Instruct.jinja"), "", "").tool_format(), ToolFormat::Hermes);
    EXPECT_EQ(ChatFormatter(read_text_file(d + "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja"), "", "").tool_format(),
              ToolFormat::Hermes);
    EXPECT_EQ(ChatFormatter(read_text_file(d + "meta-llama-Llama-3.1-8B-Instruct.jinja"), "", "").tool_format(), ToolFormat::Llama3);
    EXPECT_EQ(ChatFormatter(read_text_file(d + "mistralai-Mistral-Nemo-Instruct-2407.jinja"), "", "").tool_format(),
              ToolFormat::Mistral);
}

}  // namespace
}  // namespace pensieve::server
