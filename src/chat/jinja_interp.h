// Jinja template: parse once, render many times. The interpreter walks the syntax tree
// (jinja_ast.h) with Jinja2's semantics as Hugging Face transformers configures it for chat
// templates: ImmutableSandboxedEnvironment, trim_blocks/lstrip_blocks on, loop controls
// ({% break %}/{% continue %}), `raise_exception(msg)`, `strftime_now(fmt)` and a tojson
// filter that is json.dumps(x, ensure_ascii=False, indent=..., sort_keys=False).
#pragma once

#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_lexer.h"
#include "chat/jinja_value.h"

namespace pensieve::jinja {

struct RenderOptions {
    // true: |tojson as transformers defines it (no HTML escaping, keys in insertion order,
    // non-ASCII kept). false: Jinja2's built-in |tojson (sorted keys, \u0027-style HTML-safe
    // escaping of < > & ', ASCII only).
    bool hf_tojson = true;
    // The clock behind strftime_now(); unset: the local time at render.
    std::function<std::tm()> now;
};

class Template {
public:
    // Throws pensieve::Error("chat template syntax error at line N: ...").
    explicit Template(std::string_view source, const LexOptions& lex = {}, RenderOptions opt = {});

    // Renders with the given top-level variables (later entries win). Throws pensieve::Error
    // ("chat template error at line N: ...") for runtime errors and raise_exception().
    std::string render(const std::vector<std::pair<std::string, Value>>& context) const;

private:
    TemplateAst ast_;
    RenderOptions opt_;
    size_t size_hint_ = 0;
};

}  // namespace pensieve::jinja
