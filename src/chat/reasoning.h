// Reasoning in marker pairs: the model writes its thinking first, between an open and a
// close marker that its chat template shows, then the answer:
//
//   <think>...</think>                 Qwen3, Qwen 3.5, DeepSeek R1 / V3.1 / V4, SmolLM3,
//                                      MiniMax-M2, GLM 4.5+, Nemotron Nano 2
//   <seed:think>...</seed:think>       Seed-OSS
//   [THINK]...[/THINK]                 Ministral / Magistral reasoning
//   <|START_THINKING|>...<|END_THINKING|>  Command-R7B, Command-A
//   <|channel>thought\n...<channel|>   Gemma 4
//
// The table in reasoning.cpp lists them in detection order (gpt-oss's harmony channels
// are read by harmony.h instead). Only a block at the very start of a reply counts (after
// whitespace): a model talking about "<think>" later in its answer is not reasoning.
// Templates that open the block in the generation prompt (DeepSeek R1's "<think>\n")
// make the reply start inside it: prompt_opens_reasoning() tells.
#pragma once

#include <string_view>

#include "chat/reply.h"

namespace pensieve {

struct ReasoningSyntax {
    const char* name;
    std::string_view open;
    std::string_view close;
    std::string_view label = {};  // a word right after `open` that is not reasoning (Gemma's "thought")
};

// The marker pair a chat template shows, or nullptr.
const ReasoningSyntax* detect_reasoning(std::string_view template_source);

// True when the prompt ends inside an open reasoning block (its last marker is `open`,
// followed by nothing but whitespace), so the reply starts with reasoning.
bool prompt_opens_reasoning(const ReasoningSyntax& syntax, std::string_view prompt);

// Splits a streamed reply into reasoning and content. Reasoning is trimmed of the
// whitespace around it, and the whitespace between the close marker and the answer is
// dropped; a marker split across pieces is held back until it is certain.
class ReasoningSplitter {
public:
    // syntax nullptr: everything is content.
    ReasoningSplitter(const ReasoningSyntax* syntax, bool starts_inside);
    ReplyDelta feed(std::string_view text);
    ReplyDelta finish();   // whatever was held back (an unclosed block is all reasoning)

private:
    enum class State { Start, Label, Reasoning, AfterClose, Content };
    ReplyDelta step(bool at_end);

    const ReasoningSyntax* syntax_;
    State state_;
    std::string pending_;   // input not yet handed out
    bool started_reasoning_ = false;  // the reasoning's first word was seen
};

}  // namespace pensieve
