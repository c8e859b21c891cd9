// Python semantics of template values: str(), repr(), ==, <, bool(), json.dumps.
#include "chat/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "util/error.h"
#include "util/nesting.h"

namespace pensieve::jinja {

// ---------------------------------------------------------------------------------------------
// freeing deep values

namespace {

thread_local std::vector<std::shared_ptr<Object>> t_orphans;  // children waiting to be freed
thread_local bool t_freeing = false;                          // an outer destructor is emptying t_orphans

std::string too_deep_message() {
    return cat("maximum recursion depth exceeded: values are nested deeper than ", kMaxNesting, " levels");
}

void orphan(std::shared_ptr<Object>& o) {
    if (!o) return;
    try {
        t_orphans.push_back(std::move(o));
    } catch (...) {
        o.reset();  // no memory for the list: free it here (recursing, as plain shared_ptr would)
    }
}

void free_orphans() {
    if (t_freeing) return;
    t_freeing = true;
    while (!t_orphans.empty()) {
        std::shared_ptr<Object> o = std::move(t_orphans.back());
        t_orphans.pop_back();
        o.reset();  // may run a destructor that adds its own children to t_orphans
    }
    t_freeing = false;
}

}  // namespace

void free_later(std::vector<Value>& values) {
    for (Value& v : values) orphan(v.o);
    free_orphans();
}

DictObj::~DictObj() {
    for (auto& [k, v] : items) {
        orphan(k.o);
        orphan(v.o);
    }
    free_orphans();
}

NamespaceObj::~NamespaceObj() {
    for (auto& [k, v] : attrs) orphan(v.o);
    free_orphans();
}

// ---------------------------------------------------------------------------------------------
// accessors and constructors

const ListObj& Value::list() const { return static_cast<const ListObj&>(*o); }
const DictObj& Value::dict() const { return static_cast<const DictObj&>(*o); }
FuncObj& Value::func() const { return static_cast<FuncObj&>(*o); }
NamespaceObj& Value::ns() const { return static_cast<NamespaceObj&>(*o); }
LoopObj& Value::loop() const { return static_cast<LoopObj&>(*o); }

const Value* DictObj::find(const Value& key) const {
    if (key.kind == Kind::String) return find(std::string_view(key.str()));
    for (const auto& [k, v] : items)
        if (equals(k, key)) return &v;
    return nullptr;
}

const Value* DictObj::find(std::string_view key) const {
    for (const auto& [k, v] : items)
        if (k.kind == Kind::String && k.str() == key) return &v;
    return nullptr;
}

const Value* CallArgs::kwarg(std::string_view name) const {
    for (const auto& [k, v] : kw)
        if (k == name) return &v;
    return nullptr;
}

Value* NamespaceObj::find(std::string_view name) {
    for (auto& [k, v] : attrs)
        if (k == name) return &v;
    return nullptr;
}

void NamespaceObj::set(std::string_view name, Value v) {
    if (Value* slot = find(name))
        *slot = std::move(v);
    else
        attrs.emplace_back(std::string(name), std::move(v));
}

Value undefined(std::string why) {
    Value v;
    if (!why.empty()) v.s = std::make_shared<const std::string>(std::move(why));
    return v;
}
Value none() {
    Value v;
    v.kind = Kind::None;
    return v;
}
Value boolean(bool b) {
    Value v;
    v.kind = Kind::Bool;
    v.b = b;
    return v;
}
Value integer(int64_t i) {
    Value v;
    v.kind = Kind::Int;
    v.i = i;
    return v;
}
Value floating(double f) {
    Value v;
    v.kind = Kind::Float;
    v.f = f;
    return v;
}
Value string(std::string s, bool safe) {
    Value v;
    v.kind = Kind::String;
    v.safe = safe;
    v.s = std::make_shared<const std::string>(std::move(s));
    return v;
}
Value list(std::vector<Value> items, bool tuple) {
    auto obj = std::make_shared<ListObj>();
    obj->items = std::move(items);
    obj->tuple = tuple;
    Value v;
    v.kind = Kind::List;
    v.o = std::move(obj);
    return v;
}
Value generator(std::vector<Value> items) {
    Value v = list(std::move(items));
    static_cast<ListObj&>(*v.o).generator = true;
    return v;
}
Value dict(std::vector<std::pair<Value, Value>> items) {
    auto obj = std::make_shared<DictObj>();
    obj->items = std::move(items);
    Value v;
    v.kind = Kind::Dict;
    v.o = std::move(obj);
    return v;
}
Value function(std::string name, std::function<Value(CallArgs&)> fn) {
    auto obj = std::make_shared<FuncObj>();
    obj->name = std::move(name);
    obj->fn = std::move(fn);
    Value v;
    v.kind = Kind::Func;
    v.o = std::move(obj);
    return v;
}

static Value from_json_at(const nlohmann::ordered_json& j, int& depth) {
    using T = nlohmann::ordered_json::value_t;
    switch (j.type()) {
        case T::null: return none();
        case T::boolean: return boolean(j.get<bool>());
        case T::number_integer: return integer(j.get<int64_t>());
        case T::number_unsigned: {
            const uint64_t u = j.get<uint64_t>();
            return u <= uint64_t(INT64_MAX) ? integer(int64_t(u)) : floating(double(u));
        }
        case T::number_float: return floating(j.get<double>());
        case T::string: return string(j.get<std::string>());
        case T::array: {
            NestingGuard guard(depth);
            if (guard.too_deep()) throw RuntimeError(too_deep_message());
            std::vector<Value> items;
            items.reserve(j.size());
            for (const auto& e : j) items.push_back(from_json_at(e, depth));
            return list(std::move(items));
        }
        case T::object: {
            NestingGuard guard(depth);
            if (guard.too_deep()) throw RuntimeError(too_deep_message());
            std::vector<std::pair<Value, Value>> items;
            items.reserve(j.size());
            for (const auto& [k, e] : j.items()) items.emplace_back(string(k), from_json_at(e, depth));
            return dict(std::move(items));
        }
        default: return none();  // binary / discarded: not produced by the JSON parser
    }
}

Value from_json(const nlohmann::ordered_json& j) {
    int depth = 0;
    return from_json_at(j, depth);
}

// ---------------------------------------------------------------------------------------------
// UTF-8

uint32_t decode_utf8(std::string_view s, size_t& i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (n <= 0 || i + n >= s.size()) {  // ASCII, or invalid/truncated: one byte, one character
        ++i;
        return c;
    }
    uint32_t cp = n == 1 ? (c & 0x1f) : n == 2 ? (c & 0x0f) : (c & 0x07);
    for (int k = 1; k <= n; ++k) {
        const auto cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xc0) != 0x80) {
            ++i;
            return c;
        }
        cp = (cp << 6) | (cc & 0x3f);
    }
    i += n + 1;
    return cp;
}

size_t utf8_length(std::string_view s) {
    size_t n = 0;
    for (size_t i = 0; i < s.size();) {
        decode_utf8(s, i);
        ++n;
    }
    return n;
}

std::vector<std::string_view> utf8_chars(std::string_view s) {
    std::vector<std::string_view> out;
    for (size_t i = 0; i < s.size();) {
        const size_t start = i;
        decode_utf8(s, i);
        out.push_back(s.substr(start, i - start));
    }
    return out;
}

bool is_py_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

// Strips code points for which `drop` is true from one or both ends.
template <typename Pred>
static std::string_view strip_if(std::string_view s, bool left, bool right, Pred drop) {
    size_t b = 0, e = s.size();
    if (left) {
        while (b < e) {
            size_t i = b;
            const uint32_t cp = decode_utf8(s, i);
            if (!drop(cp, s.substr(b, i - b))) break;
            b = i;
        }
    }
    if (right) {
        while (e > b) {
            size_t start = e - 1;  // back up to the start of the last code point
            while (start > b && (static_cast<unsigned char>(s[start]) & 0xc0) == 0x80) --start;
            size_t i = start;
            const uint32_t cp = decode_utf8(s, i);
            if (!drop(cp, s.substr(start, e - start))) break;
            e = start;
        }
    }
    return s.substr(b, e - b);
}

std::string_view py_strip(std::string_view s, bool left, bool right) {
    return strip_if(s, left, right, [](uint32_t cp, std::string_view) { return is_py_space(cp); });
}

std::string_view py_strip_chars(std::string_view s, std::string_view chars, bool left, bool right) {
    const auto set = utf8_chars(chars);
    return strip_if(s, left, right, [&](uint32_t, std::string_view ch) {
        return std::find(set.begin(), set.end(), ch) != set.end();
    });
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xc0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += char(0xe0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    } else {
        out += char(0xf0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3f));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    }
}

// ---------------------------------------------------------------------------------------------
// Python semantics

const char* type_name(const Value& v) {
    switch (v.kind) {
        case Kind::Undefined: return "Undefined";
        case Kind::None: return "NoneType";
        case Kind::Bool: return "bool";
        case Kind::Int: return "int";
        case Kind::Float: return "float";
        case Kind::String: return "str";
        case Kind::List: return v.list().generator ? "generator" : v.list().tuple ? "tuple" : "list";
        case Kind::Dict: return "dict";
        case Kind::Func: return "function";
        case Kind::Namespace: return "Namespace";
        case Kind::Loop: return "LoopContext";
    }
    return "object";
}

bool truthy(const Value& v) {
    switch (v.kind) {
        case Kind::Undefined:
        case Kind::None: return false;
        case Kind::Bool: return v.b;
        case Kind::Int: return v.i != 0;
        case Kind::Float: return v.f != 0.0;
        case Kind::String: return !v.s->empty();
        case Kind::List: return v.list().generator || !v.list().items.empty();
        case Kind::Dict: return !v.dict().items.empty();
        default: return true;
    }
}

void fail_undefined(const Value& v) {
    throw RuntimeError(v.s ? *v.s : std::string("value is undefined"));
}

std::string format_float(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
    // Shortest round-trip digits, then Python's repr layout: fixed for 1e-4 <= |d| < 1e16.
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    std::string sci(buf, res.ptr);
    const size_t epos = sci.find('e');
    std::string mant = sci.substr(0, epos);
    const int exp = std::stoi(sci.substr(epos + 1));
    std::string sign;
    if (mant[0] == '-') {
        sign = "-";
        mant.erase(0, 1);
    }
    std::string digits;
    for (char c : mant)
        if (c != '.') digits += c;
    std::string out = sign;
    if (exp >= -5 + 1 && exp < 16) {  // -4 <= exp < 16
        if (exp >= 0) {
            if (int(digits.size()) <= exp + 1) {
                out += digits + std::string(exp + 1 - digits.size(), '0') + ".0";
            } else {
                out += digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
            }
        } else {
            out += "0." + std::string(-exp - 1, '0') + digits;
        }
    } else {
        out += digits.substr(0, 1);
        if (digits.size() > 1) out += "." + digits.substr(1);
        char e[16];
        std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        out += e;
    }
    return out;
}

static bool py_printable(uint32_t cp) {
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0xad) return false;
    if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f) ||
        (cp >= 0x205f && cp <= 0x2064) || cp == 0x3000 || cp == 0xfeff)
        return false;
    if ((cp >= 0xd800 && cp <= 0xf8ff) || cp >= 0xf0000) return false;  // surrogates, private use
    return true;
}

static void repr_string(std::string& out, std::string_view s) {
    const bool has_single = s.find('\'') != std::string_view::npos;
    const bool has_double = s.find('"') != std::string_view::npos;
    const char q = has_single && !has_double ? '"' : '\'';
    out += q;
    for (size_t i = 0; i < s.size();) {
        const size_t start = i;
        const uint32_t cp = decode_utf8(s, i);
        char buf[16];
        if (cp == uint32_t(q) || cp == '\\') {
            out += '\\';
            out += char(cp);
        } else if (cp == '\n') {
            out += "\\n";
        } else if (cp == '\r') {
            out += "\\r";
        } else if (cp == '\t') {
            out += "\\t";
        } else if (!py_printable(cp)) {
            if (cp < 0x100)
                std::snprintf(buf, sizeof buf, "\\x%02x", cp);
            else if (cp < 0x10000)
                std::snprintf(buf, sizeof buf, "\\u%04x", cp);
            else
                std::snprintf(buf, sizeof buf, "\\U%08x", cp);
            out += buf;
        } else {
            out.append(s.substr(start, i - start));
        }
    }
    out += q;
}

static void append_repr(std::string& out, const Value& v, int& depth);

static void append_container(std::string& out, const Value& v, int& depth) {
    NestingGuard guard(depth);
    if (guard.too_deep()) throw RuntimeError(too_deep_message());
    if (v.kind == Kind::List) {
        const ListObj& l = v.list();
        if (l.generator) {
            out += "<generator object>";
            return;
        }
        out += l.tuple ? '(' : '[';
        for (size_t k = 0; k < l.items.size(); ++k) {
            if (k) out += ", ";
            append_repr(out, l.items[k], depth);
        }
        if (l.tuple && l.items.size() == 1) out += ',';
        out += l.tuple ? ')' : ']';
    } else {
        out += '{';
        bool first = true;
        for (const auto& [k, e] : v.dict().items) {
            if (!first) out += ", ";
            first = false;
            append_repr(out, k, depth);
            out += ": ";
            append_repr(out, e, depth);
        }
        out += '}';
    }
}

static void append_scalar_or_object(std::string& out, const Value& v, int& depth) {
    switch (v.kind) {
        case Kind::Undefined: break;
        case Kind::None: out += "None"; break;
        case Kind::Bool: out += v.b ? "True" : "False"; break;
        case Kind::Int: out += std::to_string(v.i); break;
        case Kind::Float: out += format_float(v.f); break;
        case Kind::String: out += *v.s; break;
        case Kind::List:
        case Kind::Dict: append_container(out, v, depth); break;
        case Kind::Func: out += "<function " + v.func().name + ">"; break;
        case Kind::Namespace: {
            NestingGuard guard(depth);  // a namespace may contain itself
            if (guard.too_deep()) throw RuntimeError(too_deep_message());
            out += "<Namespace {";
            bool first = true;
            for (const auto& [k, e] : v.ns().attrs) {
                if (!first) out += ", ";
                first = false;
                repr_string(out, k);
                out += ": ";
                append_repr(out, e, depth);
            }
            out += "}>";
            break;
        }
        case Kind::Loop: out += "<LoopContext>"; break;
    }
}

static void append_repr(std::string& out, const Value& v, int& depth) {
    if (v.kind == Kind::String)
        repr_string(out, *v.s);
    else if (v.kind == Kind::Undefined)
        out += "Undefined";
    else
        append_scalar_or_object(out, v, depth);
}

void append_str(std::string& out, const Value& v) {
    int depth = 0;
    append_scalar_or_object(out, v, depth);
}

std::string to_str(const Value& v) {
    if (v.kind == Kind::String) return *v.s;
    std::string out;
    append_str(out, v);
    return out;
}

std::string repr(const Value& v) {
    std::string out;
    int depth = 0;
    append_repr(out, v, depth);
    return out;
}

static bool equals_at(const Value& a, const Value& b, int& depth) {
    if (a.is_number() && b.is_number()) {
        if (a.kind != Kind::Float && b.kind != Kind::Float)
            return (a.kind == Kind::Int ? a.i : a.b) == (b.kind == Kind::Int ? b.i : b.b);
        return a.num() == b.num();
    }
    if (a.kind != b.kind) return false;
    switch (a.kind) {
        case Kind::Undefined:
        case Kind::None: return true;
        case Kind::String: return *a.s == *b.s;
        case Kind::List: {
            const ListObj &x = a.list(), &y = b.list();
            if (x.generator || y.generator) return &x == &y;
            if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
            NestingGuard guard(depth);
            if (guard.too_deep()) throw RuntimeError(too_deep_message());
            for (size_t k = 0; k < x.items.size(); ++k)
                if (!equals_at(x.items[k], y.items[k], depth)) return false;
            return true;
        }
        case Kind::Dict: {
            const DictObj &x = a.dict(), &y = b.dict();
            if (&x == &y) return true;
            if (x.items.size() != y.items.size()) return false;
            NestingGuard guard(depth);
            if (guard.too_deep()) throw RuntimeError(too_deep_message());
            for (const auto& [k, e] : x.items) {
                const Value* other = y.find(k);
                if (!other || !equals_at(e, *other, depth)) return false;
            }
            return true;
        }
        default: return a.o == b.o;
    }
}

bool equals(const Value& a, const Value& b) {
    int depth = 0;
    return equals_at(a, b, depth);
}

static int compare_at(const Value& a, const Value& b, int& depth) {
    if (a.is_number() && b.is_number()) {
        if (a.kind != Kind::Float && b.kind != Kind::Float) {
            const int64_t x = a.kind == Kind::Int ? a.i : a.b, y = b.kind == Kind::Int ? b.i : b.b;
            return x < y ? -1 : x > y ? 1 : 0;
        }
        return a.num() < b.num() ? -1 : a.num() > b.num() ? 1 : 0;
    }
    if (a.kind == Kind::String && b.kind == Kind::String) return a.s->compare(*b.s) < 0 ? -1 : *a.s == *b.s ? 0 : 1;
    if (a.kind == Kind::List && b.kind == Kind::List && !a.list().generator && !b.list().generator &&
        a.list().tuple == b.list().tuple) {
        const auto &x = a.list().items, &y = b.list().items;
        NestingGuard guard(depth);
        if (guard.too_deep()) throw RuntimeError(too_deep_message());
        for (size_t k = 0; k < x.size() && k < y.size(); ++k)
            if (int c = compare_at(x[k], y[k], depth)) return c;
        return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
    }
    if (a.is_undefined()) fail_undefined(a);
    if (b.is_undefined()) fail_undefined(b);
    throw RuntimeError(std::string("'<' not supported between instances of '") + type_name(a) + "' and '" +
                       type_name(b) + "'");
}

int compare(const Value& a, const Value& b) {
    int depth = 0;
    return compare_at(a, b, depth);
}

std::string html_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&#34;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// json.dumps

static void json_string(std::string& out, std::string_view s, const JsonStyle& st) {
    out += '"';
    char buf[16];
    for (size_t i = 0; i < s.size();) {
        const size_t start = i;
        const uint32_t cp = decode_utf8(s, i);
        switch (cp) {
            case '"': out += "\\\""; continue;
            case '\\': out += "\\\\"; continue;
            case '\n': out += "\\n"; continue;
            case '\r': out += "\\r"; continue;
            case '\t': out += "\\t"; continue;
            case '\b': out += "\\b"; continue;
            case '\f': out += "\\f"; continue;
            default: break;
        }
        if (cp < 0x20 || (st.ensure_ascii && cp >= 0x7f)) {
            if (cp >= 0x10000) {
                const uint32_t c = cp - 0x10000;
                std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xd800 + (c >> 10), 0xdc00 + (c & 0x3ff));
            } else {
                std::snprintf(buf, sizeof buf, "\\u%04x", cp);
            }
            out += buf;
        } else {
            out.append(s.substr(start, i - start));
        }
    }
    out += '"';
}

static void json_newline(std::string& out, const JsonStyle& st, int level) {
    out += '\n';
    for (int k = 0; k < level; ++k) out += st.indent;
}

[[noreturn]] static void not_serializable(const Value& v) {
    if (v.is_undefined()) fail_undefined(v);
    throw RuntimeError(std::string("Object of type ") + type_name(v) + " is not JSON serializable");
}

static std::string json_key(const Value& k) {
    switch (k.kind) {
        case Kind::String: return *k.s;
        case Kind::Int: return std::to_string(k.i);
        case Kind::Float: return format_float(k.f);
        case Kind::Bool: return k.b ? "true" : "false";
        case Kind::None: return "null";
        default:
            throw RuntimeError(std::string("keys must be str, int, float, bool or None, not ") + type_name(k));
    }
}

static void dump_value(std::string& out, const Value& v, const JsonStyle& st, int level) {
    switch (v.kind) {
        case Kind::None: out += "null"; return;
        case Kind::Bool: out += v.b ? "true" : "false"; return;
        case Kind::Int: out += std::to_string(v.i); return;
        case Kind::Float:
            if (std::isnan(v.f))
                out += "NaN";
            else if (std::isinf(v.f))
                out += v.f > 0 ? "Infinity" : "-Infinity";
            else
                out += format_float(v.f);
            return;
        case Kind::String: json_string(out, *v.s, st); return;
        case Kind::List: {
            const ListObj& l = v.list();
            if (l.generator) not_serializable(v);
            if (level >= kMaxNesting) throw RuntimeError(too_deep_message());
            if (l.items.empty()) {
                out += "[]";
                return;
            }
            out += '[';
            for (size_t k = 0; k < l.items.size(); ++k) {
                if (k) out += st.item_sep;
                if (st.has_indent) json_newline(out, st, level + 1);
                dump_value(out, l.items[k], st, level + 1);
            }
            if (st.has_indent) json_newline(out, st, level);
            out += ']';
            return;
        }
        case Kind::Dict: {
            const DictObj& d = v.dict();
            if (level >= kMaxNesting) throw RuntimeError(too_deep_message());
            if (d.items.empty()) {
                out += "{}";
                return;
            }
            std::vector<std::pair<std::string, const Value*>> entries;
            entries.reserve(d.items.size());
            for (const auto& [k, e] : d.items) entries.emplace_back(json_key(k), &e);
            if (st.sort_keys)
                std::stable_sort(entries.begin(), entries.end(),
                                 [](const auto& x, const auto& y) { return x.first < y.first; });
            out += '{';
            for (size_t k = 0; k < entries.size(); ++k) {
                if (k) out += st.item_sep;
                if (st.has_indent) json_newline(out, st, level + 1);
                json_string(out, entries[k].first, st);
                out += st.key_sep;
                dump_value(out, *entries[k].second, st, level + 1);
            }
            if (st.has_indent) json_newline(out, st, level);
            out += '}';
            return;
        }
        default: not_serializable(v);
    }
}

void dump_json(std::string& out, const Value& v, const JsonStyle& st) {
    if (!st.html_safe) {
        dump_value(out, v, st, 0);
        return;
    }
    std::string raw;
    dump_value(raw, v, st, 0);
    for (char c : raw) {
        switch (c) {
            case '<': out += "\\u003c"; break;
            case '>': out += "\\u003e"; break;
            case '&': out += "\\u0026"; break;
            case '\'': out += "\\u0027"; break;
            default: out += c;
        }
    }
}

}  // namespace pensieve::jinja
