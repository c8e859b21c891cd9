// Jinja interpreter: executes statements, evaluates expressions, runs macros.
//
// Scoping follows Jinja2: each for-loop iteration and each macro call gets a fresh frame
// whose parent is the enclosing one; `set` writes the innermost frame (so a set inside a
// loop does not leak out of it, and namespace() objects are how templates carry state
// across iterations); if-blocks share their frame. Macros see their defining frame at call
// time (late binding, like Python closures).
#include "chat/jinja_interp.h"

#include <ctime>

#include "chat/jinja_builtins.h"
#include "util/error.h"
#include "util/nesting.h"

namespace pensieve::jinja {

namespace {

struct Frame {
    std::vector<std::pair<std::string, Value>> vars;
    std::shared_ptr<Frame> parent;

    Value* find_local(std::string_view name) {
        for (auto& [k, v] : vars)
            if (k == name) return &v;
        return nullptr;
    }
    void set(std::string_view name, Value v) {
        if (Value* slot = find_local(name))
            *slot = std::move(v);
        else
            vars.emplace_back(std::string(name), std::move(v));
    }
};

// raise_exception(msg) from the template: reported as the template's own message.
struct TemplateRaised : RuntimeError {
    explicit TemplateRaised(const std::string& m) : RuntimeError(m) {}
};

enum class Flow { Normal, Break, Continue };

class Interp {
public:
    Interp(const RenderOptions& opt, std::string* out) : opt_(opt), out_(out) {}
    // A macro lives in the frame it closes over (frame -> macro value -> closure ->
    // frame), a reference cycle shared_ptr cannot free. The render is over when the
    // interpreter goes: empty those frames so the cycles fall apart.
    // Namespaces can hold themselves ({% set ns.me = ns %}): emptied the same way.
    ~Interp() {
        for (const std::shared_ptr<Frame>& f : closure_frames_) {
            f->vars.clear();
            f->parent.reset();
        }
        for (const std::weak_ptr<NamespaceObj>& w : namespaces_)
            if (std::shared_ptr<NamespaceObj> ns = w.lock()) ns->attrs.clear();
    }

    void run(const TemplateAst& ast, const std::vector<std::pair<std::string, Value>>& context) {
        frame_ = std::make_shared<Frame>();
        add_globals(*frame_);
        for (const auto& [k, v] : context) frame_->set(k, v);
        exec_block(ast.body);
    }

    int line() const { return line_; }

private:
    const RenderOptions& opt_;
    std::string* out_;
    std::shared_ptr<Frame> frame_;
    std::vector<std::shared_ptr<Frame>> closure_frames_;  // frames a macro closes over
    std::vector<std::weak_ptr<NamespaceObj>> namespaces_;  // every namespace() made
    int line_ = 0;
    // Runaway recursion must not overflow the stack. The parser bounds one template's
    // nesting (blocks and expression height <= kMaxNesting each); macros calling macros
    // multiply it, so evaluation depth is bounded as a whole (a macro call costs ~5
    // levels: output, call, block, if/for, output) and macro depth on its own.
    static constexpr int kMaxEvalDepth = 8 * kMaxNesting;
    int eval_depth_ = 0;   // exec() and eval() calls in progress
    int macro_depth_ = 0;  // macro calls in progress

    // --- variables ---

    Value lookup(const std::string& name) const {
        for (Frame* f = frame_.get(); f; f = f->parent.get())
            if (Value* v = f->find_local(name)) return *v;
        return undefined("'" + name + "' is undefined");
    }

    void assign(const std::vector<std::string>& targets, const Value& v) {
        if (targets.size() == 1) {
            frame_->set(targets[0], v);
            return;
        }
        std::vector<Value> items = iterate(v);
        if (items.size() != targets.size())
            throw RuntimeError(items.size() > targets.size()
                                   ? "too many values to unpack (expected " + std::to_string(targets.size()) + ")"
                                   : "not enough values to unpack (expected " + std::to_string(targets.size()) +
                                         ", got " + std::to_string(items.size()) + ")");
        for (size_t k = 0; k < targets.size(); ++k) frame_->set(targets[k], items[k]);
    }

    void add_globals(Frame& f) {
        f.set("raise_exception", function("raise_exception", [](CallArgs& a) -> Value {
                  throw TemplateRaised(a.pos.empty() ? std::string("raise_exception() called") : to_str(a.pos[0]));
              }));
        f.set("strftime_now", function("strftime_now", [this](CallArgs& a) { return strftime_now(a); }));
        f.set("namespace", function("namespace", [this](CallArgs& a) {
                  auto ns = std::make_shared<NamespaceObj>();
                  namespaces_.push_back(ns);
                  for (const Value& p : a.pos) {
                      if (!p.is_dict()) throw RuntimeError("namespace() takes a dict or keyword arguments");
                      for (const auto& [k, v] : p.dict().items) ns->set(to_str(k), v);
                  }
                  for (const auto& [k, v] : a.kw) ns->set(k, v);
                  Value v;
                  v.kind = Kind::Namespace;
                  v.o = std::move(ns);
                  return v;
              }));
        f.set("range", function("range", [](CallArgs& a) {
                  int64_t start = 0, stop = 0, step = 1;
                  auto num = [](const Value& v) {
                      if (v.kind != Kind::Int && v.kind != Kind::Bool)
                          throw RuntimeError(std::string("'") + type_name(v) + "' object cannot be interpreted as an integer");
                      return v.kind == Kind::Int ? v.i : int64_t(v.b);
                  };
                  if (a.pos.size() == 1) {
                      stop = num(a.pos[0]);
                  } else if (a.pos.size() == 2 || a.pos.size() == 3) {
                      start = num(a.pos[0]);
                      stop = num(a.pos[1]);
                      if (a.pos.size() == 3) step = num(a.pos[2]);
                  } else {
                      throw RuntimeError("range expected 1 to 3 arguments");
                  }
                  if (step == 0) throw RuntimeError("range() arg 3 must not be zero");
                  std::vector<Value> out;
                  for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
                      if (out.size() >= 100000) throw RuntimeError("range too big (more than 100000 items)");
                      out.push_back(integer(k));
                  }
                  return list(std::move(out));
              }));
        f.set("dict", function("dict", [](CallArgs& a) {
                  std::vector<std::pair<Value, Value>> items;
                  for (const Value& p : a.pos)
                      if (p.is_dict()) items = p.dict().items;
                  for (const auto& [k, v] : a.kw) items.emplace_back(string(k), v);
                  return dict(std::move(items));
              }));
    }

    Value strftime_now(CallArgs& a) {
        if (a.pos.empty() || !a.pos[0].is_string()) throw RuntimeError("strftime_now() needs a format string");
        std::tm tm{};
        if (opt_.now) {
            tm = opt_.now();
        } else {
            const std::time_t t = std::time(nullptr);
            localtime_r(&t, &tm);
        }
        const std::string& fmt = a.pos[0].str();
        if (fmt.empty()) return string("");
        for (size_t cap = 64 + fmt.size() * 4; cap < 65536; cap *= 4) {
            std::string buf(cap, '\0');
            const size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
            if (n > 0) {
                buf.resize(n);
                return string(std::move(buf));
            }
        }
        return string("");
    }

    // --- statements ---

    Flow exec_block(const std::vector<Stmt>& body) {
        for (const Stmt& s : body) {
            const Flow f = exec(s);
            if (f != Flow::Normal) return f;
        }
        return Flow::Normal;
    }

    // Renders `body` into a string of its own (macros, block set, filter blocks).
    std::string capture(const std::vector<Stmt>& body) {
        std::string buf;
        std::string* saved = out_;
        out_ = &buf;
        try {
            exec_block(body);
        } catch (...) {
            out_ = saved;
            throw;
        }
        out_ = saved;
        return buf;
    }

    Value apply_filters(const std::vector<ExprPtr>& filters, Value v) {
        for (const ExprPtr& f : filters) {
            line_ = f->line;
            CallArgs args = eval_args(*f);
            v = apply_filter(f->name, v, args, opt_);
        }
        return v;
    }

    Flow exec(const Stmt& s) {
        line_ = s.line;
        NestingGuard guard(eval_depth_);
        if (guard.too_deep(kMaxEvalDepth)) throw RuntimeError("maximum recursion depth exceeded");
        switch (s.kind) {
            case StmtKind::Text: out_->append(s.text); return Flow::Normal;
            case StmtKind::Output: {
                const Value v = eval(*s.expr);
                if (v.is_string())
                    out_->append(v.str());
                else
                    append_str(*out_, v);
                return Flow::Normal;
            }
            case StmtKind::If: return exec_block(truthy(eval(*s.expr)) ? s.body : s.orelse);
            case StmtKind::For: return exec_for(s);
            case StmtKind::Set: {
                Value v = eval(*s.expr);
                if (!s.text.empty()) {  // {% set ns.attr = v %}
                    Value target = lookup(s.targets[0]);
                    if (target.kind != Kind::Namespace)
                        throw RuntimeError("cannot assign attribute on non-namespace object");
                    target.ns().set(s.text, std::move(v));
                } else {
                    assign(s.targets, v);
                }
                return Flow::Normal;
            }
            case StmtKind::SetBlock: {
                Value v = string(capture(s.body));
                frame_->set(s.targets[0], apply_filters(s.filters, std::move(v)));
                return Flow::Normal;
            }
            case StmtKind::FilterBlock: {
                Value v = apply_filters(s.filters, string(capture(s.body)));
                append_str(*out_, v);
                return Flow::Normal;
            }
            case StmtKind::Macro: frame_->set(s.text, make_macro(s, s.text)); return Flow::Normal;
            case StmtKind::CallBlock: {
                const Expr& call = *s.expr;
                Value callee = eval(*call.a);
                CallArgs args = eval_args(call);
                args.kw.emplace_back("caller", make_macro(s, "caller"));
                line_ = s.line;
                append_str(*out_, call_value(callee, args));
                return Flow::Normal;
            }
            case StmtKind::Break: return Flow::Break;
            case StmtKind::Continue: return Flow::Continue;
            case StmtKind::Scope: return exec_block(s.body);
        }
        return Flow::Normal;
    }

    Flow exec_for(const Stmt& s) {
        const Value seq = eval(*s.expr);
        auto items = std::make_shared<ListObj>();
        items->items = iterate(seq);
        const std::shared_ptr<Frame> outer = frame_;
        if (s.cond) {  // `for x in xs if cond`: filter first, so loop.* counts the kept items
            std::vector<Value> kept;
            for (const Value& item : items->items) {
                frame_ = std::make_shared<Frame>();
                frame_->parent = outer;
                assign(s.targets, item);
                const bool keep = truthy(eval(*s.cond));
                frame_ = outer;
                if (keep) kept.push_back(item);
            }
            items->items = std::move(kept);
        }
        if (items->items.empty()) {
            frame_ = std::make_shared<Frame>();
            frame_->parent = outer;
            Flow f = exec_block(s.orelse);
            frame_ = outer;
            return f == Flow::Normal ? Flow::Normal : f;
        }
        auto loop = std::make_shared<LoopObj>();
        loop->items = items;
        Value loop_value;
        loop_value.kind = Kind::Loop;
        loop_value.o = loop;
        if (Value* parent_loop = nullptr; (parent_loop = find_var("loop")) && parent_loop->kind == Kind::Loop)
            loop->depth = parent_loop->loop().depth + 1;
        struct Restore {
            Interp* in;
            std::shared_ptr<Frame> f;
            ~Restore() { in->frame_ = f; }
        } restore{this, outer};
        for (size_t k = 0; k < items->items.size(); ++k) {
            loop->index0 = k;
            frame_ = std::make_shared<Frame>();
            frame_->parent = outer;
            assign(s.targets, items->items[k]);
            frame_->set("loop", loop_value);
            if (exec_block(s.body) == Flow::Break) break;
        }
        return Flow::Normal;
    }

    Value* find_var(std::string_view name) const {
        for (Frame* f = frame_.get(); f; f = f->parent.get())
            if (Value* v = f->find_local(name)) return v;
        return nullptr;
    }

    // A macro (or a call block's `caller`) as a function value closing over the current frame.
    Value make_macro(const Stmt& m, const std::string& name) {
        std::shared_ptr<Frame> closure = frame_;
        closure_frames_.push_back(closure);
        const Stmt* stmt = &m;
        return function(name, [this, stmt, closure, name](CallArgs& a) { return call_macro(*stmt, name, closure, a); });
    }

    Value call_macro(const Stmt& m, const std::string& name, const std::shared_ptr<Frame>& closure, CallArgs& a) {
        NestingGuard guard(macro_depth_);
        if (guard.too_deep()) throw RuntimeError("maximum recursion depth exceeded in macro '" + name + "'");
        auto f = std::make_shared<Frame>();
        f->parent = closure;
        const std::shared_ptr<Frame> saved = frame_;
        const int saved_line = line_;
        frame_ = f;
        struct Restore {
            Interp* in;
            std::shared_ptr<Frame> f;
            ~Restore() { in->frame_ = f; }
        } restore{this, saved};
        std::vector<bool> used_kw(a.kw.size(), false);
        for (size_t k = 0; k < m.targets.size(); ++k) {
            const std::string& p = m.targets[k];
            Value v;
            bool given = false;
            if (k < a.pos.size()) {
                v = a.pos[k];
                given = true;
            } else {
                for (size_t j = 0; j < a.kw.size(); ++j) {
                    if (a.kw[j].first == p) {
                        v = a.kw[j].second;
                        used_kw[j] = true;
                        given = true;
                    }
                }
            }
            if (!given) v = m.defaults[k] ? eval(*m.defaults[k]) : undefined("parameter '" + p + "' was not provided");
            f->set(p, std::move(v));
        }
        std::vector<Value> varargs;
        for (size_t k = m.targets.size(); k < a.pos.size(); ++k) varargs.push_back(a.pos[k]);
        std::vector<std::pair<Value, Value>> kwargs;
        for (size_t j = 0; j < a.kw.size(); ++j) {
            if (used_kw[j]) continue;
            if (a.kw[j].first == "caller")
                f->set("caller", a.kw[j].second);
            else
                kwargs.emplace_back(string(a.kw[j].first), a.kw[j].second);
        }
        f->set("varargs", list(std::move(varargs)));
        f->set("kwargs", dict(std::move(kwargs)));
        std::string text = capture(m.body);
        line_ = saved_line;
        return string(std::move(text));
    }

    // --- expressions ---

    CallArgs eval_args(const Expr& e) {
        CallArgs a;
        a.pos.reserve(e.args.size());
        for (const ExprPtr& x : e.args) a.pos.push_back(eval(*x));
        for (const auto& [k, x] : e.kwargs) a.kw.emplace_back(k, eval(*x));
        return a;
    }

    Value call_value(const Value& callee, CallArgs& args) {
        if (callee.kind == Kind::Func) return callee.func().fn(args);
        if (callee.is_undefined()) fail_undefined(callee);
        throw RuntimeError(std::string("'") + type_name(callee) + "' object is not callable");
    }

    Value eval(const Expr& e) {
        line_ = e.line;
        NestingGuard guard(eval_depth_);
        if (guard.too_deep(kMaxEvalDepth)) throw RuntimeError("maximum recursion depth exceeded");
        switch (e.kind) {
            case ExprKind::Literal: return e.value;
            case ExprKind::Name: return lookup(e.name);
            case ExprKind::List:
            case ExprKind::Tuple: {
                std::vector<Value> items;
                items.reserve(e.args.size());
                for (const ExprPtr& x : e.args) items.push_back(eval(*x));
                return list(std::move(items), e.kind == ExprKind::Tuple);
            }
            case ExprKind::Dict: {
                std::vector<std::pair<Value, Value>> items;
                for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
                    Value key = eval(*e.args[k]);
                    Value val = eval(*e.args[k + 1]);
                    bool replaced = false;
                    for (auto& kv : items)
                        if (equals(kv.first, key)) {
                            kv.second = val;
                            replaced = true;
                        }
                    if (!replaced) items.emplace_back(std::move(key), std::move(val));
                }
                return dict(std::move(items));
            }
            case ExprKind::Attr: {
                Value obj = eval(*e.a);
                line_ = e.line;
                return get_attr(obj, e.name);
            }
            case ExprKind::Item: {
                Value obj = eval(*e.a);
                Value key = eval(*e.b);
                line_ = e.line;
                return get_item(obj, key);
            }
            case ExprKind::Slice: {
                Value obj = eval(*e.a);
                Value parts[3];
                for (int k = 0; k < 3; ++k) parts[k] = e.args[k] ? eval(*e.args[k]) : none();
                line_ = e.line;
                return slice(obj, parts[0], parts[1], parts[2]);
            }
            case ExprKind::Call: {
                if (e.a->kind == ExprKind::Attr) {  // obj.method(...) without making a bound method
                    Value obj = eval(*e.a->a);
                    if (has_method(obj, e.a->name)) {
                        CallArgs args = eval_args(e);
                        line_ = e.line;
                        return call_method(obj, e.a->name, args);
                    }
                    line_ = e.line;
                    Value callee = get_attr(obj, e.a->name);
                    CallArgs args = eval_args(e);
                    line_ = e.line;
                    Value r = call_value(callee, args);
                    line_ = e.line;
                    return r;
                }
                Value callee = eval(*e.a);
                CallArgs args = eval_args(e);
                line_ = e.line;
                Value r = call_value(callee, args);
                line_ = e.line;
                return r;
            }
            case ExprKind::Filter: {
                Value in = eval(*e.a);
                CallArgs args = eval_args(e);
                line_ = e.line;
                return apply_filter(e.name, in, args, opt_);
            }
            case ExprKind::Test: {
                Value in = eval(*e.a);
                CallArgs args = eval_args(e);
                line_ = e.line;
                if (!has_test(e.name)) throw RuntimeError("no test named '" + e.name + "'");
                return boolean(apply_test(e.name, in, args) != e.negated);
            }
            case ExprKind::Unary: {
                Value v = eval(*e.a);
                line_ = e.line;
                if (e.name == "not") return boolean(!truthy(v));
                if (e.name == "-") return negate(v);
                if (!v.is_number()) {
                    if (v.is_undefined()) fail_undefined(v);
                    throw RuntimeError(std::string("bad operand type for unary +: '") + type_name(v) + "'");
                }
                return v;
            }
            case ExprKind::Binary: {
                if (e.name == "and") {
                    Value a = eval(*e.a);
                    return truthy(a) ? eval(*e.b) : a;
                }
                if (e.name == "or") {
                    Value a = eval(*e.a);
                    return truthy(a) ? a : eval(*e.b);
                }
                Value a = eval(*e.a);
                Value b = eval(*e.b);
                line_ = e.line;
                return binary_op(e.name, a, b);
            }
            case ExprKind::Cond: {
                if (truthy(eval(*e.b))) return eval(*e.a);
                if (e.c) return eval(*e.c);
                return undefined("the inline if-expression evaluated to false and no else section was defined");
            }
        }
        return undefined();
    }
};

}  // namespace

Template::Template(std::string_view source, const LexOptions& lex, RenderOptions opt)
    : ast_(parse(tokenize(source, lex))), opt_(std::move(opt)), size_hint_(source.size()) {}

std::string Template::render(const std::vector<std::pair<std::string, Value>>& context) const {
    std::string out;
    out.reserve(size_hint_ + 256);
    Interp in(opt_, &out);
    try {
        in.run(ast_, context);
    } catch (const TemplateRaised& e) {
        fail("chat template raised an exception at line ", in.line(), ": ", e.what());
    } catch (const RuntimeError& e) {
        fail("chat template error at line ", in.line(), ": ", e.what());
    }
    return out;
}

}  // namespace pensieve::jinja
