// Jinja syntax tree: expressions (Expr) and statements (Stmt), made by the parser from the
// lexer's tokens and walked by the interpreter. Nodes are "fat" structs with a kind tag;
// each kind uses the few fields documented next to it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/jinja_lexer.h"
#include "chat/jinja_value.h"

namespace pensieve::jinja {

enum class ExprKind : uint8_t {
    Literal,   // value
    Name,      // name
    List,      // args = items
    Tuple,     // args = items
    Dict,      // args = key0, value0, key1, value1, ...
    Attr,      // a.name
    Item,      // a[b]
    Slice,     // a[args[0]:args[1]:args[2]] (null = omitted)
    Call,      // a(args, kwargs)
    Filter,    // a|name(args, kwargs); a == null inside {% filter %} / {% set x | f %}
    Test,      // a is [not] name(args)
    Unary,     // op a: "-", "+", "not"
    Binary,    // a op b: + - * / // % ** ~ == != < <= > >= in "not in" and or
    Cond,      // a if b else c (c may be null)
};

struct Expr {
    ExprKind kind;
    int line = 0;
    int height = 1;    // levels in this subtree; the parser keeps it <= kMaxNesting, so
                       // evaluating, copying or freeing the tree cannot overflow the stack
    std::string name;  // Name, Attr, Filter, Test, Unary/Binary operator
    Value value;       // Literal
    bool negated = false;  // Test: "is not"
    std::unique_ptr<Expr> a, b, c;
    std::vector<std::unique_ptr<Expr>> args;
    std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
};
using ExprPtr = std::unique_ptr<Expr>;

enum class StmtKind : uint8_t {
    Text,         // text
    Output,       // {{ expr }}
    If,           // if expr: body else: orelse (elif = nested If in orelse)
    For,          // for targets in expr [if cond]: body else: orelse
    Set,          // set targets = expr;  set targets[0].attr = expr (namespace attribute)
    SetBlock,     // set targets[0] [| filters]: body
    Macro,        // macro name(params = defaults): body
    CallBlock,    // call[(params)] expr: body   (body is the macro `caller`)
    FilterBlock,  // filter filters: body
    Break,
    Continue,
    Scope,        // a plain block whose body is rendered in place ({% generation %})
};

struct Stmt {
    StmtKind kind;
    int line = 0;
    std::string text;                  // Text; Macro: name; Set: attr when assigning ns.attr
    ExprPtr expr;                      // Output, If, For (iterable), Set (value), CallBlock (call)
    ExprPtr cond;                      // For: the `if` filter
    std::vector<std::string> targets;  // For/Set: names (several = tuple unpacking); Macro/CallBlock: params
    std::vector<ExprPtr> defaults;     // Macro/CallBlock: default per param (null if none)
    std::vector<ExprPtr> filters;      // SetBlock/FilterBlock: Filter exprs with a == null
    std::vector<Stmt> body, orelse;
};

struct TemplateAst {
    std::vector<Stmt> body;
};

TemplateAst parse(const std::vector<Token>& tokens);

}  // namespace pensieve::jinja
