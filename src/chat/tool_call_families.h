// The tool-call syntaxes pensieve reads, one file each (tool_call_<family>.cpp); the
// table in tool_calls.cpp maps ToolFormat to them and detects one from a template.
#pragma once

#include "chat/tool_calls.h"

namespace pensieve {

const ToolCallSyntax& hermes_tool_calls();
const ToolCallSyntax& llama3_tool_calls();
const ToolCallSyntax& mistral_tool_calls();
const ToolCallSyntax& qwen3_xml_tool_calls();
const ToolCallSyntax& harmony_tool_calls();
const ToolCallSyntax& deepseek_v3_tool_calls();
const ToolCallSyntax& deepseek_v31_tool_calls();
const ToolCallSyntax& gemma4_tool_calls();
const ToolCallSyntax& command_r_tool_calls();
const ToolCallSyntax& command_r7b_tool_calls();
const ToolCallSyntax& kimi_tool_calls();
const ToolCallSyntax& glm_tool_calls();
const ToolCallSyntax& seed_oss_tool_calls();
const ToolCallSyntax& functionary_v31_tool_calls();
const ToolCallSyntax& functionary_v32_tool_calls();

}  // namespace pensieve
