// Tool-call syntaxes and reasoning markers against the real chat templates in
// ../shared/templates: each template's syntax is detected, and what the template renders
// for an assistant turn (a tool call with typed arguments, reasoning, an answer) parses
// back into the same call, reasoning and answer. The rendered turn stands for what the
// model writes: the text between the prompt the model continues and the template's
// end-of-turn marker. Every template is tried; one that teaches no known syntax is
// listed (note:) and skipped. ~1 s.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "chat/chat_format.h"
#include "chat/reasoning.h"
#include "test_paths.h"
#include "util/error.h"

namespace pensieve {
namespace {

std::map<std::string, std::string> templates() {
    std::map<std::string, std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(shared_dir() + "/templates"))
        if (e.path().extension() == ".jinja") out[e.path().filename().string()] = read_text_file(e.path().string());
    return out;
}

ChatFormatter formatter(const std::string& file) { return ChatFormatter(templates().at(file), "<s>", "</s>"); }

// Key order differs between syntaxes (Gemma sorts keys): compare as unordered objects.
nlohmann::json unordered(const json& j) { return nlohmann::json::parse(j.dump()); }

const json kTools = json::parse(R"([{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "days": {"type": "integer", "description": "Days ahead"},
        "metric": {"type": "boolean", "description": "Metric units"},
        "tags": {"type": "array", "items": {"type": "string"}, "description": "Labels"},
        "zip": {"type": "string", "description": "Postal code"}},
      "required": ["city"]}}}])");

// A string that looks like a number (zip) must stay a string: XML-style syntaxes print
// it bare, and only the schema tells it apart from the integer `days`.
const json kArgs = json::parse(R"({"city": "Paris", "days": 3, "metric": true, "tags": ["sun", "rain"], "zip": "75001"})");
const char* kCallId = "abc123XYZ";  // 9 alphanumerics: Mistral templates keep it as is
const char* kResult = "TOOL-RESULT-SENTINEL 21 C";
const char* kReasoning = "REASONING-SENTINEL: the user wants the weather, so call the tool.";
const char* kAnswer = "ANSWER-SENTINEL: it is sunny.";

json before_turn() {
    return json::array({{{"role", "system"}, {"content", "You are helpful."}},
                        {{"role", "user"}, {"content", "Weather in Paris?"}}});
}

json call_turn(bool with_reasoning) {
    json m = {{"role", "assistant"},
              {"content", nullptr},
              {"tool_calls", json::array({{{"id", kCallId},
                                           {"type", "function"},
                                           {"function", {{"name", "get_weather"}, {"arguments", kArgs}}}}})}};
    if (with_reasoning) m["reasoning_content"] = kReasoning;
    return m;
}

json result_turn() {
    return {{"role", "tool"}, {"tool_call_id", kCallId}, {"name", "get_weather"}, {"content", kResult}};
}

json answer_turn(bool with_reasoning) {
    json m = {{"role", "assistant"}, {"content", kAnswer}};
    if (with_reasoning) m["reasoning_content"] = kReasoning;
    return m;
}

json concat(json a, const json& b) {
    for (const json& m : b) a.push_back(m);
    return a;
}

// Where a model's reply ends in rendered text: end-of-turn / end-of-generation markers
// (and the next turn's opener in templates that do not close the assistant turn).
// Not <|end|>: harmony uses it between messages of one reply.
const std::vector<std::string> kTurnEnds = {
    "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|call|>", "<|return|>", "<｜end▁of▁sentence｜>",
    "<|END_OF_TURN_TOKEN|>", "<|START_OF_TURN_TOKEN|>", "<turn|>", "<|tool_response>", "<|end_of_text|>",
    "<|observation|>", "<|user|>", "</s>", "<seed:eos>", "[e~[",
    "<｜tool▁outputs▁begin｜>",  // DeepSeek R1's template leaves out the calls' end marker before the results
};

struct Rendered {
    std::string prompt;   // the text the reply continues
    std::string reply;    // the assistant turn as the template renders it
};

// The assistant turn `turn` as rendered after `history`, and the prompt before it. The
// turn starts where the generation prompt ends if the full rendering extends it (most
// templates), else where the rendering stops agreeing with the same conversation ending
// in a plain answer (templates that lay out the generation prompt differently, e.g.
// Command-R's closing instructions).
Rendered rendered_turn(const ChatFormatter& f, const json& history, const json& turn, const json& after) {
    const json extra = {{"enable_thinking", true}, {"thinking", true}};
    const std::string prompt = f.render(history, kTools, true, extra);
    const std::string full = f.render(concat(concat(history, json::array({turn})), after), kTools, false, extra);
    size_t start = prompt.size();
    if (!full.starts_with(prompt)) {
        const std::string other =
            f.render(concat(history, json::array({{{"role", "assistant"}, {"content", "OTHER-SENTINEL"}}})), kTools, false, extra);
        start = std::mismatch(full.begin(), full.end(), other.begin(), other.end()).first - full.begin();
        // Not inside a marker both spellings start alike (<|START_ACTION|> / <|START_TEXT|>).
        const size_t lt = full.rfind('<', start);
        if (lt != std::string::npos && full.find('>', lt) >= start) start = lt;
    }
    size_t end = full.find(kResult, start);
    for (const std::string& m : kTurnEnds) end = std::min(end, full.find(m, start));
    if (end == std::string::npos) end = full.size();
    return {full.substr(0, start), full.substr(start, end - start)};
}

bool teaches_known_syntax(const std::string& src) {
    for (ToolFormat f : all_tool_formats())
        if (tool_call_syntax(f).taught_by(src)) return true;
    return false;
}

TEST(ChatFormats, DetectsEachFamilysToolSyntax) {
    const std::pair<const char*, ToolFormat> cases[] = {
        {"Qwen-Qwen2.5-7B-Instruct.jinja", ToolFormat::Hermes},
        {"Qwen-Qwen3-0.6B.jinja", ToolFormat::Hermes},
        {"ibm-granite-granite-4.0.jinja", ToolFormat::Hermes},
        {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", ToolFormat::Hermes},
        {"meta-llama-Llama-3.1-8B-Instruct.jinja", ToolFormat::Llama3},
        {"mistralai-Mistral-Nemo-Instruct-2407.jinja", ToolFormat::Mistral},
        {"mistralai-Ministral-3-14B-Reasoning-2512.jinja", ToolFormat::Mistral},
        {"Qwen3-Coder.jinja", ToolFormat::Qwen3Xml},
        {"Qwen3.5-4B.jinja", ToolFormat::Qwen3Xml},
        {"openai-gpt-oss-120b.jinja", ToolFormat::Harmony},
        {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", ToolFormat::DeepSeekV3},
        {"llama-cpp-deepseek-r1.jinja", ToolFormat::DeepSeekV3},
        {"deepseek-ai-DeepSeek-V3.1.jinja", ToolFormat::DeepSeekV31},
        {"google-gemma-4-31B-it.jinja", ToolFormat::Gemma4},
        {"CohereForAI-c4ai-command-r-plus-tool_use.jinja", ToolFormat::CommandR},
        {"CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja", ToolFormat::CommandR7B},
        {"Cohere2MoE.jinja", ToolFormat::CommandR7B},
        {"moonshotai-Kimi-K2.jinja", ToolFormat::KimiK2},
        {"GLM-4.6.jinja", ToolFormat::Glm45},
        {"ByteDance-Seed-OSS.jinja", ToolFormat::SeedOss},
        {"meetkai-functionary-medium-v3.1.jinja", ToolFormat::FunctionaryV31},
        {"meetkai-functionary-medium-v3.2.jinja", ToolFormat::FunctionaryV32},
    };
    std::set<ToolFormat> covered;
    for (const auto& [file, format] : cases) {
        EXPECT_EQ(tool_format_name(formatter(file).tool_format()), std::string(tool_format_name(format))) << file;
        covered.insert(format);
    }
    for (ToolFormat f : all_tool_formats()) EXPECT_TRUE(covered.count(f)) << tool_format_name(f) << " has no real template";
}

TEST(ChatFormats, DetectsEachFamilysReasoningMarkers) {
    const std::pair<const char*, const char*> cases[] = {
        {"Qwen-Qwen3-0.6B.jinja", "think"},           {"Qwen3.5-4B.jinja", "think"},
        {"deepseek-ai-DeepSeek-V3.1.jinja", "think"}, {"llama-cpp-deepseek-r1.jinja", "think"},
        {"HuggingFaceTB-SmolLM3-3B.jinja", "think"},  {"MiniMax-M2.jinja", "think"},
        {"GLM-4.6.jinja", "think"},                   {"ByteDance-Seed-OSS.jinja", "seed-think"},
        {"mistralai-Ministral-3-14B-Reasoning-2512.jinja", "mistral-think"},
        {"CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja", "cohere-thinking"},
        {"google-gemma-4-31B-it.jinja", "gemma4-channel"},
        {"meta-llama-Llama-3.1-8B-Instruct.jinja", nullptr},
        {"Qwen-Qwen2.5-7B-Instruct.jinja", nullptr},
        {"openai-gpt-oss-120b.jinja", nullptr},  // harmony channels, read by harmony.h
    };
    for (const auto& [file, name] : cases) {
        const ReasoningSyntax* r = formatter(file).reply_syntax().reasoning;
        EXPECT_EQ(r ? std::string(r->name) : "none", name ? std::string(name) : "none") << file;
    }
}

// The template's rendering of a call (with its result after it) parses back into the
// same function, arguments and, where the syntax carries one, id.
void check_call_round_trip(const std::string& file, const ChatFormatter& f) {
    Rendered r;
    try {
        r = rendered_turn(f, before_turn(), call_turn(false), json::array({result_turn()}));
    } catch (const Error& e) {
        // The template itself fails (Jinja2 fails the same way; the chat-template oracle
        // tests check that): nothing to round-trip.
        std::fprintf(stderr, "note: %s refuses a tool-call conversation: %s\n", file.c_str(), e.what());
        return;
    }
    SCOPED_TRACE(file + " (" + tool_format_name(f.tool_format()) + ") renders the call as:\n" + r.reply);
    const ChatReply reply = parse_reply(r.reply, f.reply_syntax(), f.reply_options(kTools, r.prompt));
    ASSERT_EQ(reply.calls.size(), 1u);
    EXPECT_EQ(reply.calls[0].name, "get_weather");
    EXPECT_EQ(unordered(reply.calls[0].arguments), unordered(kArgs));
    EXPECT_FALSE(reply.calls[0].id.empty());
    if (r.reply.find(kCallId) != std::string::npos) {  // the syntax carries the id
        EXPECT_EQ(reply.calls[0].id, kCallId);
    }
    if (f.tool_format() == ToolFormat::KimiK2) {
        EXPECT_EQ(reply.calls[0].id, "functions.get_weather:0");
    }
    EXPECT_EQ(reply.reasoning, "");
}

TEST(ChatFormats, ToolCallsRoundTripThroughEveryTemplate) {
    std::set<ToolFormat> tried;
    for (const auto& [file, src] : templates()) {
        if (!teaches_known_syntax(src)) {
            std::fprintf(stderr, "note: %s teaches no known tool-call syntax (skipped)\n", file.c_str());
            continue;
        }
        const ChatFormatter f(src, "<s>", "</s>");
        check_call_round_trip(file, f);
        tried.insert(f.tool_format());
    }
    for (ToolFormat fmt : all_tool_formats())
        EXPECT_TRUE(tried.count(fmt)) << tool_format_name(fmt) << " was not round-tripped by any template";
}

// Reasoning the template renders in a turn (before a call, or before an answer) comes
// back as reasoning, and the answer as content. Returns false when the template leaves
// the reasoning out of that turn.
bool check_reasoning_round_trip(const std::string& file, const ChatFormatter& f, bool call) {
    Rendered r;
    try {
        r = call ? rendered_turn(f, before_turn(), call_turn(true), json::array({result_turn()}))
                 : rendered_turn(f, before_turn(), answer_turn(true), json::array());
    } catch (const Error& e) {
        std::fprintf(stderr, "note: %s refuses a conversation with reasoning: %s\n", file.c_str(), e.what());
        return false;
    }
    if (r.reply.find("REASONING-SENTINEL") == std::string::npos) return false;
    SCOPED_TRACE(file + " renders the turn as:\n" + r.reply);
    const ChatReply reply = parse_reply(r.reply, f.reply_syntax(), f.reply_options(kTools, r.prompt));
    EXPECT_EQ(reply.reasoning, kReasoning);
    if (call) {
        EXPECT_EQ(reply.calls.size(), 1u);
        EXPECT_TRUE(!reply.calls.empty() && reply.calls[0].name == "get_weather");
    } else {
        EXPECT_EQ(reply.content, kAnswer);
    }
    return true;
}

TEST(ChatFormats, ReasoningRoundTripsThroughEveryTemplate) {
    int with_call = 0, with_answer = 0;
    for (const auto& [file, src] : templates()) {
        const ChatFormatter f(src, "<s>", "</s>");
        if (teaches_known_syntax(src)) with_call += check_reasoning_round_trip(file, f, true);
        with_answer += check_reasoning_round_trip(file, f, false);
    }
    std::fprintf(stderr, "reasoning round-tripped: %d templates with a call, %d with an answer\n", with_call, with_answer);
    EXPECT_GE(with_call, 5);
    EXPECT_GE(with_answer, 5);
}

// reasoning_content reaches templates that read it under another name.
TEST(ChatFormats, ReasoningContentReachesTemplatesUnderTheirOwnNames) {
    const json messages = concat(before_turn(), json::array({answer_turn(true), {{"role", "user"}, {"content", "More?"}}}));
    // gpt-oss reads `thinking` (and shows it only in a final assistant turn it is trained on).
    const std::string harmony = formatter("openai-gpt-oss-120b.jinja").render(
        concat(before_turn(), json::array({answer_turn(true)})), nullptr, false);
    EXPECT_NE(harmony.find("<|channel|>analysis<|message|>" + std::string(kReasoning)), std::string::npos) << harmony;
    // Ministral reads a {"type": "thinking"} content block.
    const std::string ministral = formatter("mistralai-Ministral-3-14B-Reasoning-2512.jinja").render(messages, nullptr, true);
    EXPECT_NE(ministral.find(std::string("[THINK]") + kReasoning + "[/THINK]" + kAnswer), std::string::npos) << ministral;
    // Command-R7B reads the plan before its actions as `tool_plan`.
    const std::string r7b = formatter("CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja")
                                .render(concat(before_turn(), json::array({call_turn(true), result_turn()})), kTools, true);
    EXPECT_NE(r7b.find(std::string("<|START_THINKING|>") + kReasoning + "<|END_THINKING|>"), std::string::npos);
}

}  // namespace
}  // namespace pensieve
