// Values of the Jinja interpreter, with Python's semantics (Jinja2 runs on Python, and chat
// templates are written against Python's str(), ==, truthiness and json.dumps).
//
// A Value is a small tagged struct: scalars inline, strings and containers behind shared
// pointers (so copying a Value never copies a message's text). Lists and dicts are immutable
// once built, like in Jinja2's ImmutableSandboxedEnvironment; a namespace() is the only
// mutable object and is shared by reference, like in Python.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace pensieve::jinja {

// Errors raised while rendering (Python's TypeError, UndefinedError, ...). The interpreter
// adds the template line and turns them into pensieve::Error.
struct RuntimeError : std::runtime_error {
    explicit RuntimeError(const std::string& m) : std::runtime_error(m) {}
};

enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Func, Namespace, Loop };

struct Object {
    virtual ~Object() = default;
};
struct Value;

// Containers free their children through a per-thread list that the outermost
// destructor empties, never by recursion: a template can build [[[...]]] in a loop far
// deeper than the stack, and freeing it must not overflow.
void free_later(std::vector<Value>& values);
struct ListObj;
struct DictObj;
struct FuncObj;
struct NamespaceObj;
struct LoopObj;

struct Value {
    Kind kind = Kind::Undefined;
    bool safe = false;  // String only: a Markup string (from |safe): `+` HTML-escapes plain operands
    union {
        bool b;
        int64_t i;
        double f;
    };
    std::shared_ptr<const std::string> s;  // String: the text. Undefined: why it is undefined
    std::shared_ptr<Object> o;             // List, Dict, Func, Namespace, Loop

    Value() : i(0) {}

    bool is_undefined() const { return kind == Kind::Undefined; }
    bool is_none() const { return kind == Kind::None; }
    bool is_string() const { return kind == Kind::String; }
    bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
    bool is_list() const { return kind == Kind::List; }
    bool is_dict() const { return kind == Kind::Dict; }

    const std::string& str() const { return *s; }  // String only
    const ListObj& list() const;                    // List only
    const DictObj& dict() const;                    // Dict only
    FuncObj& func() const;                          // Func only
    NamespaceObj& ns() const;                       // Namespace only
    LoopObj& loop() const;                          // Loop only
    double num() const { return kind == Kind::Float ? f : kind == Kind::Int ? double(i) : double(b); }
};

struct ListObj : Object {
    ~ListObj() override { free_later(items); }
    std::vector<Value> items;
    bool tuple = false;      // printed as (a, b)
    bool generator = false;  // result of map/select/...: no len(), not JSON, always true
};

struct DictObj : Object {
    ~DictObj() override;
    std::vector<std::pair<Value, Value>> items;  // insertion order, like Python dicts
    const Value* find(const Value& key) const;
    const Value* find(std::string_view key) const;
};

// Positional and keyword arguments of a call.
struct CallArgs {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
    const Value* kwarg(std::string_view name) const;
};

struct FuncObj : Object {
    std::string name;
    std::function<Value(CallArgs&)> fn;
};

struct NamespaceObj : Object {
    ~NamespaceObj() override;
    std::vector<std::pair<std::string, Value>> attrs;
    Value* find(std::string_view name);
    void set(std::string_view name, Value v);
};

struct LoopObj : Object {
    std::shared_ptr<const ListObj> items;
    size_t index0 = 0;
    int depth = 1;
};

// --- construction ---
Value undefined(std::string why = "");
Value none();
Value boolean(bool v);
Value integer(int64_t v);
Value floating(double v);
Value string(std::string v, bool safe = false);
Value list(std::vector<Value> items, bool tuple = false);
Value generator(std::vector<Value> items);
Value dict(std::vector<std::pair<Value, Value>> items);
Value function(std::string name, std::function<Value(CallArgs&)> fn);
// Throws RuntimeError past kMaxNesting (util/nesting.h) levels of arrays and objects.
Value from_json(const nlohmann::ordered_json& j);

// --- Python semantics ---
const char* type_name(const Value& v);        // 'str', 'dict', 'NoneType', ...
bool truthy(const Value& v);                  // bool(v)
void append_str(std::string& out, const Value& v);  // out += str(v) (undefined → "")
std::string to_str(const Value& v);
std::string repr(const Value& v);             // repr(v)
// repr, str, ==, <, json.dumps of containers nested deeper than kMaxNesting (a
// namespace can even contain itself) throw RuntimeError, as Python's RecursionError.
bool equals(const Value& a, const Value& b);  // a == b
int compare(const Value& a, const Value& b);  // <0, 0, >0 for a < b; throws TypeError if unordered
[[noreturn]] void fail_undefined(const Value& v);  // raise UndefinedError for an undefined value
std::string format_float(double d);            // repr(float)
std::string html_escape(std::string_view s);   // markupsafe.escape

// json.dumps(v, ensure_ascii, indent, separators, sort_keys) as Python formats it.
struct JsonStyle {
    bool ensure_ascii = false;
    bool has_indent = false;
    std::string indent;                       // used when has_indent
    std::string item_sep = ", ", key_sep = ": ";
    bool sort_keys = false;
    bool html_safe = false;                   // Jinja2's own |tojson: escape < > & '
};
void dump_json(std::string& out, const Value& v, const JsonStyle& style);

// --- UTF-8 helpers (Python strings are sequences of code points) ---
uint32_t decode_utf8(std::string_view s, size_t& i);  // code point at i; advances i
void append_utf8(std::string& out, uint32_t cp);
size_t utf8_length(std::string_view s);
std::vector<std::string_view> utf8_chars(std::string_view s);
bool is_py_space(uint32_t cp);                  // str.isspace()
std::string_view py_strip(std::string_view s, bool left, bool right);             // whitespace
std::string_view py_strip_chars(std::string_view s, std::string_view chars, bool left, bool right);

}  // namespace pensieve::jinja
