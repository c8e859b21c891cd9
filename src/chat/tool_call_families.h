// The tool-call syntaxes pensieve reads, one file each (tool_call_<family>.cpp); the
// registry in tool_calls.cpp maps ToolFormat to them and detects one from a template.
#pragma once

#include "chat/tool_calls.h"

namespace pensieve {

const ToolCallSyntax& hermes_tool_calls();
const ToolCallSyntax& llama3_tool_calls();
const ToolCallSyntax& mistral_tool_calls();

}  // namespace pensieve
