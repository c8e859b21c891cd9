// Jinja parser: tokens → syntax tree, by recursive descent with Jinja2's operator precedence
// (lowest first):  x if c else y | or | and | not | comparisons, in, not in | + - | ~ |
// * / // % | ** | unary - + | postfix . [] () | filters |f and tests `is`.
#include <algorithm>
#include <initializer_list>

#include "chat/jinja_ast.h"
#include "util/error.h"
#include "util/nesting.h"

namespace pensieve::jinja {

namespace {

const char* token_desc(const Token& t) {
    switch (t.type) {
        case Tok::Text: return "template text";
        case Tok::VarBegin: return "'{{'";
        case Tok::VarEnd: return "'}}'";
        case Tok::BlockBegin: return "'{%'";
        case Tok::BlockEnd: return "'%}'";
        case Tok::Eof: return "end of template";
        default: return nullptr;
    }
}

std::string describe(const Token& t) {
    if (const char* d = token_desc(t)) return d;
    if (t.type == Tok::String) return "string";
    return "'" + t.text + "'";
}

ExprPtr make(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
}

// Records e's height once its children are attached. Chains such as a+b+c+..., x.a.b.c
// or x|f|f|f are built by loops, not recursion, so the height is what bounds them.
ExprPtr sealed(ExprPtr e) {
    int h = 0;
    auto see = [&h](const ExprPtr& c) {
        if (c) h = std::max(h, c->height);
    };
    see(e->a);
    see(e->b);
    see(e->c);
    for (const ExprPtr& x : e->args) see(x);
    for (const auto& [k, x] : e->kwargs) see(x);
    e->height = h + 1;
    if (e->height > kMaxNesting)
        syntax_error(e->line, cat("the expression is nested deeper than ", kMaxNesting, " levels"));
    return e;
}

Stmt make_stmt(StmtKind kind, int line) {
    Stmt s;
    s.kind = kind;
    s.line = line;
    return s;
}

class Parser {
public:
    explicit Parser(const std::vector<Token>& toks) : t_(toks) {}

    TemplateAst run() {
        TemplateAst ast;
        ast.body = body({});
        return ast;
    }

private:
    const std::vector<Token>& t_;
    size_t p_ = 0;
    std::vector<std::pair<std::string, int>> open_blocks_;  // for "missing end tag" messages
    int depth_ = 0;  // recursion of statement() / if_stmt() / the expression parsers

    // One level of the parser's recursion (nested blocks, elif chains, parentheses,
    // not not ..., - - ..., else-if chains).
    void nest(NestingGuard& guard, int line, const char* what) const {
        if (guard.too_deep()) syntax_error(line, cat(what, " nested deeper than ", kMaxNesting, " levels"));
    }

    // --- token helpers ---
    const Token& cur() const { return t_[p_]; }
    const Token& peek(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
    const Token& advance() { return t_[p_ < t_.size() - 1 ? p_++ : p_]; }
    bool is_op(std::string_view op) const { return cur().type == Tok::Op && cur().text == op; }
    bool is_name(std::string_view n) const { return cur().type == Tok::Name && cur().text == n; }
    bool accept_op(std::string_view op) {
        if (!is_op(op)) return false;
        advance();
        return true;
    }
    bool accept_name(std::string_view n) {
        if (!is_name(n)) return false;
        advance();
        return true;
    }
    [[noreturn]] void unexpected(const std::string& expected) const {
        syntax_error(cur().line, "expected " + expected + ", got " + describe(cur()));
    }
    void expect_op(std::string_view op) {
        if (!accept_op(op)) unexpected("'" + std::string(op) + "'");
    }
    std::string expect_ident() {
        if (cur().type != Tok::Name) unexpected("a name");
        return advance().text;
    }
    void expect_block_end() {
        if (cur().type != Tok::BlockEnd) unexpected("'%}'");
        advance();
    }

    // --- statements ---

    // Parses statements until `{% <one of ends>` and stops at that name (not consumed).
    std::vector<Stmt> body(std::initializer_list<std::string_view> ends) {
        std::vector<Stmt> out;
        for (;;) {
            const Token& tk = cur();
            if (tk.type == Tok::Eof) {
                if (ends.size() == 0) return out;
                std::string want;
                for (auto e : ends) want += (want.empty() ? "'" : " or '") + std::string(e) + "'";
                syntax_error(open_blocks_.back().second,
                             "unexpected end of template: the '" + open_blocks_.back().first +
                                 "' block opened here was not closed (looking for " + want + ")");
            }
            if (tk.type == Tok::Text) {
                Stmt s = make_stmt(StmtKind::Text, tk.line);
                s.text = tk.text;
                out.push_back(std::move(s));
                advance();
            } else if (tk.type == Tok::VarBegin) {
                advance();
                Stmt s = make_stmt(StmtKind::Output, tk.line);
                s.expr = tuple_expr(true);
                if (cur().type != Tok::VarEnd) unexpected("'}}'");
                advance();
                out.push_back(std::move(s));
            } else if (tk.type == Tok::BlockBegin) {
                const Token& kw = peek();
                if (kw.type == Tok::Name && std::find(ends.begin(), ends.end(), kw.text) != ends.end()) {
                    advance();  // leave the end keyword as the current token
                    return out;
                }
                advance();
                out.push_back(statement());
            } else {
                unexpected("template text or a tag");
            }
        }
    }

    Stmt statement() {
        const Token& kw = cur();
        if (kw.type != Tok::Name) unexpected("a statement name");
        const int line = kw.line;
        NestingGuard guard(depth_);
        nest(guard, line, "blocks are");
        const std::string name = advance().text;
        if (name == "if") return if_stmt(line);
        if (name == "for") return for_stmt(line);
        if (name == "set") return set_stmt(line);
        if (name == "macro") return macro_stmt(line);
        if (name == "call") return call_stmt(line);
        if (name == "filter") return filter_stmt(line);
        if (name == "generation") return scope_stmt(line, "endgeneration");
        if (name == "break" || name == "continue") {
            expect_block_end();
            return make_stmt(name == "break" ? StmtKind::Break : StmtKind::Continue, line);
        }
        if (name.rfind("end", 0) == 0 || name == "elif" || name == "else")
            syntax_error(line, "unexpected '" + name + "'" +
                                   (open_blocks_.empty() ? "" : " inside '" + open_blocks_.back().first + "' block"));
        syntax_error(line, "unsupported tag '" + name + "'");
    }

    void end_block(std::string_view end) {
        // current token is the end keyword
        advance();
        expect_block_end();
        (void)end;
        open_blocks_.pop_back();
    }

    Stmt if_stmt(int line) {
        Stmt s = make_stmt(StmtKind::If, line);
        s.expr = expression(false);
        expect_block_end();
        open_blocks_.emplace_back("if", line);
        s.body = body({"elif", "else", "endif"});
        if (is_name("elif")) {
            const int eline = cur().line;
            advance();
            open_blocks_.pop_back();
            NestingGuard guard(depth_);  // an elif is an if nested in the else of the one before
            nest(guard, eline, "elif branches are");
            s.orelse.push_back(if_stmt(eline));
            return s;  // the nested if consumed endif
        }
        if (is_name("else")) {
            advance();
            expect_block_end();
            s.orelse = body({"endif"});
        }
        end_block("endif");
        return s;
    }

    std::vector<std::string> assign_targets() {
        std::vector<std::string> names;
        const bool paren = accept_op("(");
        do {
            if (paren && is_op(")")) break;
            names.push_back(expect_ident());
        } while (accept_op(","));
        if (paren) expect_op(")");
        return names;
    }

    Stmt for_stmt(int line) {
        Stmt s = make_stmt(StmtKind::For, line);
        s.targets = assign_targets();
        if (!accept_name("in")) unexpected("'in'");
        s.expr = tuple_expr(false);
        if (accept_name("if")) s.cond = expression(true);
        if (is_name("recursive")) syntax_error(cur().line, "recursive for loops are not supported");
        expect_block_end();
        open_blocks_.emplace_back("for", line);
        s.body = body({"else", "endfor"});
        if (accept_name("else")) {
            expect_block_end();
            s.orelse = body({"endfor"});
        }
        end_block("endfor");
        return s;
    }

    Stmt set_stmt(int line) {
        Stmt s = make_stmt(StmtKind::Set, line);
        s.targets.push_back(expect_ident());
        if (accept_op(".")) {
            s.text = expect_ident();  // namespace attribute
        } else {
            while (accept_op(",")) s.targets.push_back(expect_ident());
        }
        if (accept_op("=")) {
            s.expr = tuple_expr(true);
            expect_block_end();
            return s;
        }
        if (s.targets.size() != 1 || !s.text.empty()) unexpected("'='");
        s.kind = StmtKind::SetBlock;
        while (accept_op("|")) s.filters.push_back(filter(nullptr));
        expect_block_end();
        open_blocks_.emplace_back("set", line);
        s.body = body({"endset"});
        end_block("endset");
        return s;
    }

    void params(Stmt& s) {
        expect_op("(");
        while (!is_op(")")) {
            s.targets.push_back(expect_ident());
            s.defaults.push_back(accept_op("=") ? expression(true) : nullptr);
            if (!accept_op(",")) break;
        }
        expect_op(")");
    }

    Stmt macro_stmt(int line) {
        Stmt s = make_stmt(StmtKind::Macro, line);
        s.text = expect_ident();
        params(s);
        expect_block_end();
        open_blocks_.emplace_back("macro", line);
        s.body = body({"endmacro"});
        end_block("endmacro");
        return s;
    }

    Stmt call_stmt(int line) {
        Stmt s = make_stmt(StmtKind::CallBlock, line);
        if (is_op("(")) params(s);
        s.expr = expression(true);
        if (s.expr->kind != ExprKind::Call) syntax_error(line, "expected a call after 'call'");
        expect_block_end();
        open_blocks_.emplace_back("call", line);
        s.body = body({"endcall"});
        end_block("endcall");
        return s;
    }

    Stmt filter_stmt(int line) {
        Stmt s = make_stmt(StmtKind::FilterBlock, line);
        do {
            s.filters.push_back(filter(nullptr));
        } while (accept_op("|"));
        expect_block_end();
        open_blocks_.emplace_back("filter", line);
        s.body = body({"endfilter"});
        end_block("endfilter");
        return s;
    }

    Stmt scope_stmt(int line, const char* end) {
        Stmt s = make_stmt(StmtKind::Scope, line);
        expect_block_end();
        open_blocks_.emplace_back(end + 3, line);
        s.body = body({end});
        end_block(end);
        return s;
    }

    // --- expressions ---

    // expr or a, b, c (a tuple without parentheses)
    ExprPtr tuple_expr(bool with_cond) {
        const int line = cur().line;
        ExprPtr first = expression(with_cond);
        if (!is_op(",")) return first;
        ExprPtr t = make(ExprKind::Tuple, line);
        t->args.push_back(std::move(first));
        while (accept_op(",")) {
            if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || is_op(")")) break;
            t->args.push_back(expression(with_cond));
        }
        return t;
    }

    ExprPtr expression(bool with_cond) {
        NestingGuard guard(depth_);
        nest(guard, cur().line, "expressions are");
        return with_cond ? cond_expr() : or_expr();
    }

    ExprPtr cond_expr() {
        ExprPtr e = or_expr();
        while (is_name("if")) {
            const int line = advance().line;
            ExprPtr c = make(ExprKind::Cond, line);
            c->a = std::move(e);
            c->b = or_expr();
            if (accept_name("else")) {
                NestingGuard guard(depth_);
                nest(guard, line, "if-else expressions are");
                c->c = cond_expr();
            }
            e = sealed(std::move(c));
        }
        return e;
    }

    ExprPtr binary(std::string op, ExprPtr a, ExprPtr b, int line) {
        ExprPtr e = make(ExprKind::Binary, line);
        e->name = std::move(op);
        e->a = std::move(a);
        e->b = std::move(b);
        return sealed(std::move(e));
    }

    ExprPtr or_expr() {
        ExprPtr e = and_expr();
        while (is_name("or")) {
            const int line = advance().line;
            e = binary("or", std::move(e), and_expr(), line);
        }
        return e;
    }

    ExprPtr and_expr() {
        ExprPtr e = not_expr();
        while (is_name("and")) {
            const int line = advance().line;
            e = binary("and", std::move(e), not_expr(), line);
        }
        return e;
    }

    ExprPtr not_expr() {
        if (is_name("not")) {
            const int line = advance().line;
            NestingGuard guard(depth_);
            nest(guard, line, "'not' operators are");
            ExprPtr e = make(ExprKind::Unary, line);
            e->name = "not";
            e->a = not_expr();
            return sealed(std::move(e));
        }
        return compare_expr();
    }

    ExprPtr compare_expr() {
        ExprPtr e = math1();
        // a < b < c means (a < b) and (b < c); operands are re-evaluated (they have no side effects)
        ExprPtr result;
        const Expr* last = nullptr;
        for (;;) {
            std::string op;
            const int line = cur().line;
            if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                          cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
                op = advance().text;
            } else if (is_name("in")) {
                advance();
                op = "in";
            } else if (is_name("not") && peek().type == Tok::Name && peek().text == "in") {
                advance();
                advance();
                op = "not in";
            } else {
                break;
            }
            ExprPtr rhs = math1();
            ExprPtr lhs = last ? clone(*last) : std::move(e);
            last = rhs.get();
            ExprPtr cmp = binary(op, std::move(lhs), std::move(rhs), line);
            result = result ? binary("and", std::move(result), std::move(cmp), line) : std::move(cmp);
        }
        return result ? std::move(result) : std::move(e);
    }

    static ExprPtr clone(const Expr& x) {
        auto e = std::make_unique<Expr>();
        e->kind = x.kind;
        e->line = x.line;
        e->name = x.name;
        e->value = x.value;
        e->negated = x.negated;
        e->height = x.height;
        if (x.a) e->a = clone(*x.a);
        if (x.b) e->b = clone(*x.b);
        if (x.c) e->c = clone(*x.c);
        for (const auto& arg : x.args) e->args.push_back(arg ? clone(*arg) : nullptr);
        for (const auto& [k, v] : x.kwargs) e->kwargs.emplace_back(k, clone(*v));
        return e;
    }

    ExprPtr math1() {
        ExprPtr e = concat();
        while (is_op("+") || is_op("-")) {
            const Token& op = advance();
            e = binary(op.text, std::move(e), concat(), op.line);
        }
        return e;
    }

    ExprPtr concat() {
        ExprPtr e = math2();
        while (is_op("~")) {
            const int line = advance().line;
            e = binary("~", std::move(e), math2(), line);
        }
        return e;
    }

    ExprPtr math2() {
        ExprPtr e = power();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            const Token& op = advance();
            e = binary(op.text, std::move(e), power(), op.line);
        }
        return e;
    }

    ExprPtr power() {
        ExprPtr e = unary(true);
        while (is_op("**")) {
            const int line = advance().line;
            e = binary("**", std::move(e), unary(true), line);
        }
        return e;
    }

    ExprPtr unary(bool with_filter) {
        ExprPtr e;
        if (is_op("-") || is_op("+")) {
            const Token& op = advance();
            NestingGuard guard(depth_);
            nest(guard, op.line, "unary operators are");
            e = make(ExprKind::Unary, op.line);
            e->name = op.text;
            e->a = unary(false);
            e = sealed(std::move(e));
        } else {
            e = primary();
        }
        e = postfix(std::move(e));
        if (with_filter) e = filters_and_tests(std::move(e));
        return e;
    }

    ExprPtr primary() {
        const Token& tk = cur();
        const int line = tk.line;
        switch (tk.type) {
            case Tok::Name: {
                advance();
                ExprPtr e = make(ExprKind::Literal, line);
                if (tk.text == "true" || tk.text == "True") {
                    e->value = boolean(true);
                } else if (tk.text == "false" || tk.text == "False") {
                    e->value = boolean(false);
                } else if (tk.text == "none" || tk.text == "None") {
                    e->value = none();
                } else {
                    e->kind = ExprKind::Name;
                    e->name = tk.text;
                }
                return e;
            }
            case Tok::String: {
                std::string s;
                while (cur().type == Tok::String) s += advance().text;  // "a" "b" is "ab"
                ExprPtr e = make(ExprKind::Literal, line);
                e->value = string(std::move(s));
                return e;
            }
            case Tok::Int:
            case Tok::Float: {
                advance();
                ExprPtr e = make(ExprKind::Literal, line);
                e->value = tk.type == Tok::Int ? integer(tk.ival) : floating(tk.fval);
                return e;
            }
            case Tok::Op:
                if (tk.text == "(") return paren();
                if (tk.text == "[") return list_literal();
                if (tk.text == "{") return dict_literal();
                break;
            default: break;
        }
        unexpected("an expression");
    }

    ExprPtr paren() {
        const int line = advance().line;
        if (accept_op(")")) return make(ExprKind::Tuple, line);
        ExprPtr first = expression(true);
        if (accept_op(")")) return first;
        ExprPtr t = make(ExprKind::Tuple, line);
        t->args.push_back(std::move(first));
        while (accept_op(",")) {
            if (is_op(")")) break;
            t->args.push_back(expression(true));
        }
        expect_op(")");
        return sealed(std::move(t));
    }

    ExprPtr list_literal() {
        ExprPtr e = make(ExprKind::List, advance().line);
        while (!is_op("]")) {
            e->args.push_back(expression(true));
            if (!accept_op(",")) break;
        }
        expect_op("]");
        return sealed(std::move(e));
    }

    ExprPtr dict_literal() {
        ExprPtr e = make(ExprKind::Dict, advance().line);
        while (!is_op("}")) {
            e->args.push_back(expression(true));
            expect_op(":");
            e->args.push_back(expression(true));
            if (!accept_op(",")) break;
        }
        expect_op("}");
        return sealed(std::move(e));
    }

    ExprPtr postfix(ExprPtr e) {
        for (;;) {
            const int line = cur().line;
            if (accept_op(".")) {
                if (cur().type == Tok::Int) {  // x.0 is x[0]
                    ExprPtr item = make(ExprKind::Item, line);
                    item->a = std::move(e);
                    item->b = make(ExprKind::Literal, line);
                    item->b->value = integer(advance().ival);
                    e = sealed(std::move(item));
                    continue;
                }
                ExprPtr attr = make(ExprKind::Attr, line);
                attr->a = std::move(e);
                attr->name = expect_ident();
                e = sealed(std::move(attr));
            } else if (is_op("[")) {
                e = subscript(std::move(e));
            } else if (is_op("(")) {
                e = call(std::move(e));
            } else {
                return e;
            }
        }
    }

    ExprPtr subscript(ExprPtr obj) {
        const int line = advance().line;  // [
        ExprPtr parts[3];
        int n = 0;
        bool is_slice = false;
        for (;;) {
            if (!is_op(":") && !is_op("]")) parts[n] = expression(true);
            if (accept_op(":")) {
                is_slice = true;
                if (++n > 2) unexpected("']'");
                continue;
            }
            break;
        }
        expect_op("]");
        ExprPtr e = make(is_slice ? ExprKind::Slice : ExprKind::Item, line);
        e->a = std::move(obj);
        if (is_slice) {
            for (auto& part : parts) e->args.push_back(std::move(part));
        } else {
            if (!parts[0]) syntax_error(line, "expected an index inside []");
            e->b = std::move(parts[0]);
        }
        return sealed(std::move(e));
    }

    void call_args(Expr& e) {
        expect_op("(");
        while (!is_op(")")) {
            if (is_op("*") || is_op("**")) syntax_error(cur().line, "*args / **kwargs in calls are not supported");
            if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
                std::string key = advance().text;
                advance();
                e.kwargs.emplace_back(std::move(key), expression(true));
            } else {
                if (!e.kwargs.empty()) syntax_error(cur().line, "positional argument after keyword argument");
                e.args.push_back(expression(true));
            }
            if (!accept_op(",")) break;
        }
        expect_op(")");
    }

    ExprPtr call(ExprPtr callee) {
        ExprPtr e = make(ExprKind::Call, cur().line);
        e->a = std::move(callee);
        call_args(*e);
        return sealed(std::move(e));
    }

    ExprPtr filter(ExprPtr input) {
        ExprPtr f = make(ExprKind::Filter, cur().line);
        f->a = std::move(input);
        f->name = expect_ident();
        if (is_op("(")) call_args(*f);
        return sealed(std::move(f));
    }

    ExprPtr filters_and_tests(ExprPtr e) {
        for (;;) {
            if (accept_op("|")) {
                e = filter(std::move(e));
            } else if (is_name("is")) {
                ExprPtr t = make(ExprKind::Test, advance().line);
                t->negated = accept_name("not");
                t->name = expect_ident();
                t->a = std::move(e);
                const Token& nx = cur();
                if (is_op("(")) {
                    call_args(*t);
                } else if ((nx.type == Tok::Name || nx.type == Tok::String || nx.type == Tok::Int ||
                            nx.type == Tok::Float || is_op("[") || is_op("{")) &&
                           !(is_name("else") || is_name("or") || is_name("and"))) {
                    if (is_name("is")) syntax_error(nx.line, "cannot chain multiple tests with 'is'");
                    t->args.push_back(postfix(primary()));  // `x is divisibleby 3`
                }
                e = sealed(std::move(t));
            } else if (is_op("(")) {
                e = call(std::move(e));
            } else {
                return e;
            }
        }
    }
};

}  // namespace

TemplateAst parse(const std::vector<Token>& tokens) { return Parser(tokens).run(); }

}  // namespace pensieve::jinja
