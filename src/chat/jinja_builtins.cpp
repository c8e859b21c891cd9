// Operators, attribute access, filters, tests and methods with Jinja2/Python semantics.
#include "chat/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <unordered_map>

namespace pensieve::jinja {

namespace {

[[noreturn]] void type_error(const std::string& m) { throw RuntimeError(m); }

void check_defined(const Value& v) {
    if (v.is_undefined()) fail_undefined(v);
}

int64_t as_int(const Value& v) { return v.kind == Kind::Bool ? v.b : v.i; }
bool is_intlike(const Value& v) { return v.kind == Kind::Int || v.kind == Kind::Bool; }

// Positional argument `idx` or keyword `name`, else `def`.
Value arg(const CallArgs& a, size_t idx, std::string_view name, Value def = undefined()) {
    if (idx < a.pos.size()) return a.pos[idx];
    if (const Value* v = a.kwarg(name)) return *v;
    return def;
}
std::string str_arg(const CallArgs& a, size_t idx, std::string_view name, const char* what) {
    Value v = arg(a, idx, name);
    if (!v.is_string()) type_error(std::string(what) + " expects a string argument, got '" + type_name(v) + "'");
    return v.str();
}

// ASCII case mapping (non-ASCII characters are left as they are).
char up(char c) { return c >= 'a' && c <= 'z' ? char(c - 32) : c; }
char low(char c) { return c >= 'A' && c <= 'Z' ? char(c + 32) : c; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
std::string upper(std::string s) {
    for (char& c : s) c = up(c);
    return s;
}
std::string lower(std::string s) {
    for (char& c : s) c = low(c);
    return s;
}
std::string capitalize(const std::string& s) {
    std::string out = lower(s);
    if (!out.empty()) out[0] = up(out[0]);
    return out;
}
std::string py_title(const std::string& s) {  // str.title()
    std::string out = s;
    bool prev_cased = false;
    for (char& c : out) {
        if (is_alpha(c)) {
            c = prev_cased ? low(c) : up(c);
            prev_cased = true;
        } else {
            prev_cased = static_cast<unsigned char>(c) >= 0x80 && prev_cased;
        }
    }
    return out;
}
std::string jinja_title(const std::string& s) {  // |title: capitalize words split at [-\s({\[<]+
    std::string out;
    bool word_start = true;
    for (size_t i = 0; i < s.size();) {
        size_t j = i;
        const uint32_t cp = decode_utf8(s, j);
        const bool sep = is_py_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
        if (sep) {
            word_start = true;
            out.append(s, i, j - i);
        } else {
            if (j - i == 1)
                out += word_start ? up(s[i]) : low(s[i]);
            else
                out.append(s, i, j - i);
            word_start = false;
        }
        i = j;
    }
    return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
    std::string out;
    if (from.empty()) {  // Python inserts `to` between every character (and at both ends)
        int64_t n = 0;
        for (std::string_view ch : utf8_chars(s)) {
            if (count < 0 || n < count) {
                out += to;
                ++n;
            }
            out += ch;
        }
        if (count < 0 || n < count) out += to;
        return out;
    }
    size_t pos = 0;
    int64_t n = 0;
    for (;;) {
        const size_t hit = s.find(from, pos);
        if (hit == std::string::npos || (count >= 0 && n >= count)) break;
        out.append(s, pos, hit - pos);
        out += to;
        pos = hit + from.size();
        ++n;
    }
    out.append(s, pos, std::string::npos);
    return out;
}

std::vector<Value> split(const std::string& s, const Value& sep, int64_t maxsplit) {
    std::vector<Value> parts;
    if (sep.is_none() || sep.is_undefined()) {  // runs of whitespace, no empty parts
        size_t i = 0;
        auto skip_space = [&] {
            while (i < s.size()) {
                size_t j = i;
                if (!is_py_space(decode_utf8(s, j))) break;
                i = j;
            }
        };
        skip_space();
        while (i < s.size()) {
            if (maxsplit >= 0 && int64_t(parts.size()) >= maxsplit) {
                parts.push_back(string(std::string(py_strip(std::string_view(s).substr(i), false, true))));
                return parts;
            }
            const size_t start = i;
            while (i < s.size()) {
                size_t j = i;
                if (is_py_space(decode_utf8(s, j))) break;
                i = j;
            }
            parts.push_back(string(s.substr(start, i - start)));
            skip_space();
        }
        return parts;
    }
    if (!sep.is_string()) type_error("must be str or None, not " + std::string(type_name(sep)));
    const std::string& d = sep.str();
    if (d.empty()) type_error("empty separator");
    size_t pos = 0;
    for (;;) {
        const size_t hit = s.find(d, pos);
        if (hit == std::string::npos || (maxsplit >= 0 && int64_t(parts.size()) >= maxsplit)) break;
        parts.push_back(string(s.substr(pos, hit - pos)));
        pos = hit + d.size();
    }
    parts.push_back(string(s.substr(pos)));
    return parts;
}

std::vector<Value> rsplit(const std::string& s, const Value& sep, int64_t maxsplit) {
    if (maxsplit < 0) return split(s, sep, maxsplit);  // same parts either way
    if (!sep.is_string() || sep.str().empty()) type_error("rsplit with a limit needs a separator");
    const std::string& d = sep.str();
    std::vector<Value> parts;
    size_t end = s.size();
    while (int64_t(parts.size()) < maxsplit) {
        if (end < d.size()) break;
        const size_t hit = s.rfind(d, end - d.size());
        if (hit == std::string::npos) break;
        parts.push_back(string(s.substr(hit + d.size(), end - hit - d.size())));
        end = hit;
    }
    parts.push_back(string(s.substr(0, end)));
    std::reverse(parts.begin(), parts.end());
    return parts;
}

std::vector<Value> splitlines(const std::string& s, bool keepends) {
    std::vector<Value> out;
    size_t start = 0, i = 0;
    while (i < s.size()) {
        size_t j = i;
        const uint32_t cp = decode_utf8(s, j);
        const bool nl = cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c || cp == 0x1d ||
                        cp == 0x1e || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
        if (nl) {
            size_t end = j;
            if (cp == '\r' && j < s.size() && s[j] == '\n') end = j + 1;
            out.push_back(string(s.substr(start, (keepends ? end : i) - start)));
            start = i = end;
        } else {
            i = j;
        }
    }
    if (start < s.size()) out.push_back(string(s.substr(start)));
    return out;
}

bool starts_or_ends(const std::string& s, const Value& what, bool start) {
    auto test = [&](const Value& p) {
        if (!p.is_string()) type_error("startswith/endswith first arg must be str or a tuple of str");
        const std::string& x = p.str();
        return x.size() <= s.size() && (start ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0);
    };
    if (what.is_list()) {
        for (const Value& p : what.list().items)
            if (test(p)) return true;
        return false;
    }
    return test(what);
}

// str.format with {} / {0} / {name} fields (format specs are not supported).
std::string str_format(const std::string& fmt, const CallArgs& a) {
    std::string out;
    size_t auto_idx = 0;
    for (size_t i = 0; i < fmt.size(); ++i) {
        const char c = fmt[i];
        if (c == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') {
            out += '{';
            ++i;
        } else if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
            out += '}';
            ++i;
        } else if (c == '{') {
            const size_t close = fmt.find('}', i);
            if (close == std::string::npos) type_error("Single '{' encountered in format string");
            std::string field = fmt.substr(i + 1, close - i - 1);
            if (field.find_first_of(":!") != std::string::npos) type_error("format specs in str.format are not supported");
            Value v;
            if (field.empty()) {
                v = arg(a, auto_idx++, "\x01");
            } else if (std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
                v = arg(a, std::stoul(field), "\x01");
            } else if (const Value* kv = a.kwarg(field)) {
                v = *kv;
            } else {
                type_error("KeyError: '" + field + "'");
            }
            if (v.is_undefined() && !v.s) type_error("Replacement index out of range for positional args tuple");
            append_str(out, v);
            i = close;
        } else if (c == '}') {
            type_error("Single '}' encountered in format string");
        } else {
            out += c;
        }
    }
    return out;
}

Value make_bound(const Value& self, std::string name) {
    return function(name, [self, name](CallArgs& a) { return call_method(self, name, a); });
}

bool is_str_method(std::string_view n) {
    static const char* names[] = {"strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith",
                                  "endswith", "upper", "lower", "title", "capitalize", "replace", "find", "rfind",
                                  "count", "join", "format", "isdigit", "isalpha", "isalnum", "isspace", "islower",
                                  "isupper", "index", "center", "ljust", "rjust", "zfill", "swapcase", "casefold",
                                  "encode", "partition", "rpartition", "expandtabs", "isnumeric", "isdecimal",
                                  "istitle", "isidentifier", "isprintable", "removeprefix", "removesuffix", "translate",
                                  "maketrans", "format_map", "rindex", "splitlines"};
    for (const char* x : names)
        if (n == x) return true;
    return false;
}
bool is_dict_method(std::string_view n) {
    static const char* names[] = {"items", "keys", "values", "get", "copy", "pop", "popitem", "update",
                                  "setdefault", "clear", "fromkeys"};
    for (const char* x : names)
        if (n == x) return true;
    return false;
}
bool is_list_method(std::string_view n) {
    static const char* names[] = {"index", "count", "copy", "append", "extend", "insert", "pop", "remove",
                                  "reverse", "sort", "clear"};
    for (const char* x : names)
        if (n == x) return true;
    return false;
}

Value loop_attr(const Value& lv, std::string_view name) {
    const LoopObj& l = lv.loop();
    const int64_t n = int64_t(l.items->items.size()), i = int64_t(l.index0);
    if (name == "index") return integer(i + 1);
    if (name == "index0") return integer(i);
    if (name == "revindex") return integer(n - i);
    if (name == "revindex0") return integer(n - i - 1);
    if (name == "first") return boolean(i == 0);
    if (name == "last") return boolean(i == n - 1);
    if (name == "length") return integer(n);
    if (name == "depth") return integer(l.depth);
    if (name == "depth0") return integer(l.depth - 1);
    if (name == "previtem") return i > 0 ? l.items->items[i - 1] : undefined("there is no previous item");
    if (name == "nextitem") return i + 1 < n ? l.items->items[i + 1] : undefined("there is no next item");
    if (name == "cycle") {
        return function("cycle", [lv](CallArgs& a) {
            if (a.pos.empty()) type_error("no items for cycling given");
            return a.pos[lv.loop().index0 % a.pos.size()];
        });
    }
    return undefined("'LoopContext' has no attribute '" + std::string(name) + "'");
}

// --- filters ---

using FilterFn = Value (*)(const Value& in, CallArgs& a, const RenderOptions& opt);

int64_t length_of(const Value& v) {
    switch (v.kind) {
        case Kind::Undefined: return 0;
        case Kind::String: return int64_t(utf8_length(v.str()));
        case Kind::List:
            if (!v.list().generator) return int64_t(v.list().items.size());
            break;
        case Kind::Dict: return int64_t(v.dict().items.size());
        default: break;
    }
    type_error(std::string("object of type '") + type_name(v) + "' has no len()");
}

// attribute="a.b.0" as Jinja's make_attrgetter: item access per dotted part.
Value get_path(const Value& v, const std::string& path) {
    Value cur = v;
    size_t pos = 0;
    for (;;) {
        const size_t dot = path.find('.', pos);
        std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
        const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
        cur = get_item(cur, digits ? integer(std::stoll(part)) : string(part));
        if (dot == std::string::npos) return cur;
        pos = dot + 1;
    }
}

Value sort_key(const Value& v, bool case_sensitive) {
    if (!case_sensitive && v.is_string()) return string(lower(v.str()));
    return v;
}

// select / reject / selectattr / rejectattr
Value select_impl(const Value& in, CallArgs& a, bool attr_mode, bool keep_if) {
    if (!truthy(in)) return generator({});  // Jinja2 checks `if value:` first (so None is fine)
    std::string attr;
    size_t first_test_arg = 0;
    if (attr_mode) {
        attr = str_arg(a, 0, "\x01", "selectattr");
        first_test_arg = 1;
    }
    std::string test;
    CallArgs targs;
    if (a.pos.size() > first_test_arg) {
        const Value& t = a.pos[first_test_arg];
        if (!t.is_string()) type_error("test name must be a string");
        test = t.str();
        targs.pos.assign(a.pos.begin() + first_test_arg + 1, a.pos.end());
        targs.kw = a.kw;
    }
    std::vector<Value> out;
    for (const Value& item : iterate(in)) {
        const Value v = attr_mode ? get_path(item, attr) : item;
        const bool ok = test.empty() ? truthy(v) : apply_test(test, v, targs);
        if (ok == keep_if) out.push_back(item);
    }
    return generator(std::move(out));
}

std::string indent_str(const Value& width) {
    if (width.is_string()) return width.str();
    if (is_intlike(width)) return std::string(size_t(std::max<int64_t>(0, as_int(width))), ' ');
    type_error("indent width must be an int or a string");
}

Value f_tojson(const Value& in, CallArgs& a, const RenderOptions& opt) {
    JsonStyle st;
    Value indent;
    if (opt.hf_tojson) {  // tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
        st.ensure_ascii = truthy(arg(a, 0, "ensure_ascii", boolean(false)));
        indent = arg(a, 1, "indent", none());
        const Value seps = arg(a, 2, "separators", none());
        st.sort_keys = truthy(arg(a, 3, "sort_keys", boolean(false)));
        st.has_indent = !indent.is_none() && !indent.is_undefined();
        if (st.has_indent) st.indent = indent_str(indent);
        st.item_sep = st.has_indent ? "," : ", ";
        if (seps.is_list() && seps.list().items.size() == 2 && seps.list().items[0].is_string() &&
            seps.list().items[1].is_string()) {
            st.item_sep = seps.list().items[0].str();
            st.key_sep = seps.list().items[1].str();
        }
        std::string out;
        dump_json(out, in, st);
        return string(std::move(out));
    }
    indent = arg(a, 0, "indent", none());  // Jinja2: htmlsafe_json_dumps(x, sort_keys=True, indent=...)
    st.ensure_ascii = true;
    st.sort_keys = true;
    st.html_safe = true;
    st.has_indent = !indent.is_none() && !indent.is_undefined();
    if (st.has_indent) st.indent = indent_str(indent);
    st.item_sep = st.has_indent ? "," : ", ";
    std::string out;
    dump_json(out, in, st);
    return string(std::move(out), true);
}

Value f_trim(const Value& in, CallArgs& a, const RenderOptions&) {
    const std::string s = to_str(in);
    const Value chars = arg(a, 0, "chars", none());
    if (chars.is_string()) return string(std::string(py_strip_chars(s, chars.str(), true, true)), in.safe);
    return string(std::string(py_strip(s, true, true)), in.safe);
}

Value f_length(const Value& in, CallArgs&, const RenderOptions&) { return integer(length_of(in)); }

Value f_upper(const Value& in, CallArgs&, const RenderOptions&) { return string(upper(to_str(in)), in.safe); }
Value f_lower(const Value& in, CallArgs&, const RenderOptions&) { return string(lower(to_str(in)), in.safe); }
Value f_title(const Value& in, CallArgs&, const RenderOptions&) { return string(jinja_title(to_str(in)), in.safe); }
Value f_capitalize(const Value& in, CallArgs&, const RenderOptions&) { return string(capitalize(to_str(in)), in.safe); }

Value f_replace(const Value& in, CallArgs& a, const RenderOptions&) {
    const Value count = arg(a, 2, "count", none());
    return string(replace_all(to_str(in), to_str(arg(a, 0, "old")), to_str(arg(a, 1, "new")),
                              is_intlike(count) ? as_int(count) : -1));
}

Value f_join(const Value& in, CallArgs& a, const RenderOptions&) {
    const std::string sep = to_str(arg(a, 0, "d", string("")));
    const Value attr = arg(a, 1, "attribute", none());
    std::string out;
    bool first = true;
    for (const Value& item : iterate(in)) {
        if (!first) out += sep;
        first = false;
        append_str(out, attr.is_string() ? get_path(item, attr.str()) : item);
    }
    return string(std::move(out));
}

Value f_default(const Value& in, CallArgs& a, const RenderOptions&) {
    const Value def = arg(a, 0, "default_value", string(""));
    const bool boolean_mode = truthy(arg(a, 1, "boolean", boolean(false)));
    if (in.is_undefined() || (boolean_mode && !truthy(in))) return def;
    return in;
}

Value f_first(const Value& in, CallArgs&, const RenderOptions&) {
    if (in.is_list() && !in.list().items.empty()) return in.list().items.front();
    std::vector<Value> items = iterate(in);
    return items.empty() ? undefined("No first item, sequence was empty.") : items.front();
}

Value f_last(const Value& in, CallArgs&, const RenderOptions&) {
    if (in.is_list() && in.list().generator) type_error("'generator' object is not reversible");
    std::vector<Value> items = iterate(in);
    return items.empty() ? undefined("No last item, sequence was empty.") : items.back();
}

Value f_list(const Value& in, CallArgs&, const RenderOptions&) { return list(iterate(in)); }

Value f_items(const Value& in, CallArgs&, const RenderOptions&) {
    if (in.is_undefined()) return list({});
    if (!in.is_dict()) type_error("Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (const auto& [k, v] : in.dict().items) out.push_back(list({k, v}, true));
    return list(std::move(out));
}

Value f_dictsort(const Value& in, CallArgs& a, const RenderOptions&) {
    if (!in.is_dict()) type_error("You can only sort by either \"key\" or \"value\"");
    const bool cs = truthy(arg(a, 0, "case_sensitive", boolean(false)));
    const Value by = arg(a, 1, "by", string("key"));
    const bool rev = truthy(arg(a, 2, "reverse", boolean(false)));
    const bool by_value = by.is_string() && by.str() == "value";
    std::vector<Value> out;
    for (const auto& [k, v] : in.dict().items) out.push_back(list({k, v}, true));
    std::stable_sort(out.begin(), out.end(), [&](const Value& x, const Value& y) {
        const size_t idx = by_value ? 1 : 0;
        return compare(sort_key(x.list().items[idx], cs), sort_key(y.list().items[idx], cs)) < 0;
    });
    if (rev) std::reverse(out.begin(), out.end());
    return list(std::move(out));
}

Value f_selectattr(const Value& in, CallArgs& a, const RenderOptions&) { return select_impl(in, a, true, true); }
Value f_rejectattr(const Value& in, CallArgs& a, const RenderOptions&) { return select_impl(in, a, true, false); }
Value f_select(const Value& in, CallArgs& a, const RenderOptions&) { return select_impl(in, a, false, true); }
Value f_reject(const Value& in, CallArgs& a, const RenderOptions&) { return select_impl(in, a, false, false); }

Value f_map(const Value& in, CallArgs& a, const RenderOptions& opt) {
    if (!truthy(in)) return generator({});  // as in Jinja2
    std::vector<Value> out;
    if (const Value* attr = a.kwarg("attribute")) {
        if (!attr->is_string()) type_error("map: attribute must be a string");
        const Value* def = a.kwarg("default");
        for (const Value& item : iterate(in)) {
            Value v = get_path(item, attr->str());
            out.push_back(v.is_undefined() && def ? *def : v);
        }
        return generator(std::move(out));
    }
    if (a.pos.empty()) return generator(iterate(in));
    if (!a.pos[0].is_string()) type_error("map: filter name must be a string");
    const std::string name = a.pos[0].str();
    CallArgs fargs;
    fargs.pos.assign(a.pos.begin() + 1, a.pos.end());
    fargs.kw = a.kw;
    for (const Value& item : iterate(in)) out.push_back(apply_filter(name, item, fargs, opt));
    return generator(std::move(out));
}

Value f_unique(const Value& in, CallArgs& a, const RenderOptions&) {
    const bool cs = truthy(arg(a, 0, "case_sensitive", boolean(false)));
    const Value attr = arg(a, 1, "attribute", none());
    std::vector<Value> out, seen;
    for (const Value& item : iterate(in)) {
        Value key = sort_key(attr.is_string() ? get_path(item, attr.str()) : item, cs);
        bool dup = false;
        for (const Value& s : seen)
            if (equals(s, key)) dup = true;
        if (dup) continue;
        seen.push_back(key);
        out.push_back(item);
    }
    return generator(std::move(out));
}

Value f_sort(const Value& in, CallArgs& a, const RenderOptions&) {
    const bool rev = truthy(arg(a, 0, "reverse", boolean(false)));
    const bool cs = truthy(arg(a, 1, "case_sensitive", boolean(false)));
    const Value attr = arg(a, 2, "attribute", none());
    std::vector<Value> items = iterate(in);
    auto key = [&](const Value& v) { return sort_key(attr.is_string() ? get_path(v, attr.str()) : v, cs); };
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
        return rev ? compare(key(y), key(x)) < 0 : compare(key(x), key(y)) < 0;
    });
    return list(std::move(items));
}

Value min_max(const Value& in, CallArgs& a, bool want_max) {
    const bool cs = truthy(arg(a, 0, "case_sensitive", boolean(false)));
    const Value attr = arg(a, 1, "attribute", none());
    std::vector<Value> items = iterate(in);
    if (items.empty()) return undefined("No aggregated item, sequence was empty.");
    auto key = [&](const Value& v) { return sort_key(attr.is_string() ? get_path(v, attr.str()) : v, cs); };
    Value best = items[0];
    for (size_t k = 1; k < items.size(); ++k) {
        const int c = compare(key(items[k]), key(best));
        if (want_max ? c > 0 : c < 0) best = items[k];
    }
    return best;
}
Value f_min(const Value& in, CallArgs& a, const RenderOptions&) { return min_max(in, a, false); }
Value f_max(const Value& in, CallArgs& a, const RenderOptions&) { return min_max(in, a, true); }

Value f_sum(const Value& in, CallArgs& a, const RenderOptions&) {
    const Value attr = arg(a, 0, "attribute", none());
    Value total = arg(a, 1, "start", integer(0));
    for (const Value& item : iterate(in)) total = binary_op("+", total, attr.is_string() ? get_path(item, attr.str()) : item);
    return total;
}

Value f_reverse(const Value& in, CallArgs&, const RenderOptions&) {
    if (in.is_string()) {
        auto chars = utf8_chars(in.str());
        std::string out;
        for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += *it;
        return string(std::move(out));
    }
    std::vector<Value> items = iterate(in);
    std::reverse(items.begin(), items.end());
    return generator(std::move(items));
}

Value f_string(const Value& in, CallArgs&, const RenderOptions&) {
    if (in.is_string()) return in;
    return string(to_str(in));
}

bool parse_int(std::string_view s, int base, int64_t* out) {
    s = py_strip(s, true, true);
    std::string t;
    for (char c : s)
        if (c != '_') t += c;
    if (t.empty()) return false;
    try {
        size_t used = 0;
        const long long v = std::stoll(t, &used, base);
        if (used != t.size()) return false;
        *out = v;
        return true;
    } catch (const std::exception&) {
        return false;
    }
}
bool parse_float(std::string_view s, double* out) {
    s = py_strip(s, true, true);
    std::string t(s);
    if (t.empty()) return false;
    try {
        size_t used = 0;
        *out = std::stod(t, &used);
        return used == t.size();
    } catch (const std::exception&) {
        return false;
    }
}

Value f_int(const Value& in, CallArgs& a, const RenderOptions&) {
    const Value def = arg(a, 0, "default", integer(0));
    const Value base = arg(a, 1, "base", integer(10));
    switch (in.kind) {
        case Kind::Int: return in;
        case Kind::Bool: return integer(in.b);
        case Kind::Float:
            if (std::isfinite(in.f)) return integer(int64_t(in.f));
            return def;
        case Kind::String: {
            int64_t v;
            if (parse_int(in.str(), int(as_int(base)), &v)) return integer(v);
            double d;
            if (parse_float(in.str(), &d) && std::isfinite(d)) return integer(int64_t(d));
            return def;
        }
        default: return def;
    }
}

Value f_float(const Value& in, CallArgs& a, const RenderOptions&) {
    const Value def = arg(a, 0, "default", floating(0.0));
    if (in.is_number()) return floating(in.num());
    double d;
    if (in.is_string() && parse_float(in.str(), &d)) return floating(d);
    return def;
}

Value f_abs(const Value& in, CallArgs&, const RenderOptions&) {
    if (in.kind == Kind::Float) return floating(std::fabs(in.f));
    if (is_intlike(in)) return integer(std::llabs(as_int(in)));
    check_defined(in);
    type_error(std::string("bad operand type for abs(): '") + type_name(in) + "'");
}

Value f_round(const Value& in, CallArgs& a, const RenderOptions&) {
    const int64_t precision = as_int(arg(a, 0, "precision", integer(0)));
    const Value method = arg(a, 1, "method", string("common"));
    if (!in.is_number()) type_error("round: value must be a number");
    const double scale = std::pow(10.0, double(precision));
    const double x = in.num() * scale;
    const std::string m = method.is_string() ? method.str() : "common";
    double r = m == "ceil" ? std::ceil(x) : m == "floor" ? std::floor(x) : std::nearbyint(x);
    return floating(r / scale);
}

Value f_safe(const Value& in, CallArgs&, const RenderOptions&) { return string(to_str(in), true); }

Value f_escape(const Value& in, CallArgs&, const RenderOptions&) {
    if (in.is_string() && in.safe) return in;
    return string(html_escape(to_str(in)), true);
}

Value f_forceescape(const Value& in, CallArgs&, const RenderOptions&) {
    return string(html_escape(to_str(in)), true);
}

Value f_indent(const Value& in, CallArgs& a, const RenderOptions&) {
    const std::string ind = indent_str(arg(a, 0, "width", integer(4)));
    const bool first = truthy(arg(a, 1, "first", boolean(false)));
    const bool blank = truthy(arg(a, 2, "blank", boolean(false)));
    std::string s = to_str(in) + "\n";  // as Jinja2 does, so splitlines() keeps a trailing empty line
    std::vector<Value> lines = splitlines(s, false);
    std::string out;
    for (size_t k = 0; k < lines.size(); ++k) {
        const std::string& line = lines[k].str();
        if (k > 0) {
            out += '\n';
            if (blank || !line.empty()) out += ind;
        }
        out += line;
    }
    if (first) out = ind + out;
    return string(std::move(out), in.safe);
}

Value f_attr(const Value& in, CallArgs& a, const RenderOptions&) {
    const std::string name = str_arg(a, 0, "name", "attr");
    if (in.kind == Kind::Namespace || in.kind == Kind::Loop) return get_attr(in, name);
    if (has_method(in, name)) return make_bound(in, name);
    return undefined("'" + std::string(type_name(in)) + " object' has no attribute '" + name + "'");
}

Value f_format(const Value& in, CallArgs& a, const RenderOptions&) {
    if (!a.kw.empty()) type_error("format: keyword arguments are not supported");
    return percent_format(in, a.pos.size() == 1 ? a.pos[0] : list(a.pos, true));
}

Value f_wordcount(const Value& in, CallArgs&, const RenderOptions&) {
    const std::string s = to_str(in);
    int64_t n = 0;
    bool in_word = false;
    for (char c : s) {
        const bool w = is_alpha(c) || (c >= '0' && c <= '9') || c == '_' || static_cast<unsigned char>(c) >= 0x80;
        if (w && !in_word) ++n;
        in_word = w;
    }
    return integer(n);
}

Value f_center(const Value& in, CallArgs& a, const RenderOptions&) {
    const std::string s = to_str(in);
    const int64_t width = as_int(arg(a, 0, "width", integer(80)));
    const int64_t len = int64_t(utf8_length(s));
    if (width <= len) return string(s);
    const int64_t total = width - len;
    const int64_t left = total / 2 + (total & width & 1);
    return string(std::string(size_t(left), ' ') + s + std::string(size_t(total - left), ' '));
}

const std::unordered_map<std::string_view, FilterFn>& filters() {
    static const std::unordered_map<std::string_view, FilterFn> table = {
        {"tojson", f_tojson},       {"trim", f_trim},           {"length", f_length},
        {"count", f_length},        {"upper", f_upper},         {"lower", f_lower},
        {"title", f_title},         {"capitalize", f_capitalize}, {"replace", f_replace},
        {"join", f_join},           {"default", f_default},     {"d", f_default},
        {"first", f_first},         {"last", f_last},           {"list", f_list},
        {"items", f_items},         {"dictsort", f_dictsort},   {"selectattr", f_selectattr},
        {"rejectattr", f_rejectattr}, {"select", f_select},     {"reject", f_reject},
        {"map", f_map},             {"unique", f_unique},       {"sort", f_sort},
        {"min", f_min},             {"max", f_max},             {"sum", f_sum},
        {"reverse", f_reverse},     {"string", f_string},       {"int", f_int},
        {"float", f_float},         {"abs", f_abs},             {"round", f_round},
        {"safe", f_safe},           {"escape", f_escape},       {"e", f_escape},
        {"forceescape", f_forceescape}, {"indent", f_indent},   {"attr", f_attr},
        {"format", f_format},       {"wordcount", f_wordcount}, {"center", f_center},
    };
    return table;
}

// --- tests ---

bool test_compare(const Value& v, const CallArgs& a, const char* op) {
    if (a.pos.empty()) type_error(std::string("test needs an argument"));
    return truthy(binary_op(op, v, a.pos[0]));
}

bool sameas(const Value& x, const Value& y) {
    if (x.kind != y.kind) return false;
    switch (x.kind) {
        case Kind::None:
        case Kind::Undefined: return true;
        case Kind::Bool: return x.b == y.b;
        case Kind::Int: return x.i == y.i && x.i >= -5 && x.i <= 256;  // CPython's small-int cache
        case Kind::Float: return false;
        case Kind::String: return x.s == y.s;
        default: return x.o == y.o;
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// operators

Value negate(const Value& v) {
    if (v.kind == Kind::Float) return floating(-v.f);
    if (is_intlike(v)) return integer(-as_int(v));
    check_defined(v);
    type_error(std::string("bad operand type for unary -: '") + type_name(v) + "'");
}

bool contains(const Value& c, const Value& item) {
    switch (c.kind) {
        case Kind::Undefined: return false;
        case Kind::String:
            if (!item.is_string()) {
                check_defined(item);
                type_error(std::string("'in <string>' requires string as left operand, not ") + type_name(item));
            }
            return c.str().find(item.str()) != std::string::npos;
        case Kind::List:
            for (const Value& x : c.list().items)
                if (equals(x, item)) return true;
            return false;
        case Kind::Dict: return c.dict().find(item) != nullptr;
        default: type_error(std::string("argument of type '") + type_name(c) + "' is not iterable");
    }
}

[[noreturn]] static void unsupported(std::string_view op, const Value& a, const Value& b) {
    check_defined(a);
    check_defined(b);
    if (a.is_string() && op == "+")
        type_error(std::string("can only concatenate str (not \"") + type_name(b) + "\") to str");
    if (a.is_list() && op == "+")
        type_error(std::string("can only concatenate ") + type_name(a) + " (not \"" + type_name(b) + "\") to " +
                   type_name(a));
    type_error("unsupported operand type(s) for " + std::string(op) + ": '" + type_name(a) + "' and '" +
               type_name(b) + "'");
}

static double py_fmod(double x, double y) {
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    return m;
}

static Value repeat(const Value& seq, int64_t n) {
    if (seq.is_string()) {
        std::string out;
        for (int64_t k = 0; k < n; ++k) out += seq.str();
        return string(std::move(out));
    }
    std::vector<Value> out;
    for (int64_t k = 0; k < n; ++k) out.insert(out.end(), seq.list().items.begin(), seq.list().items.end());
    return list(std::move(out), seq.list().tuple);
}

Value binary_op(std::string_view op, const Value& a, const Value& b) {
    if (op == "~") {
        std::string out;
        append_str(out, a);
        append_str(out, b);
        return string(std::move(out));
    }
    if (op == "==") return boolean(equals(a, b));
    if (op == "!=") return boolean(!equals(a, b));
    if (op == "<") return boolean(compare(a, b) < 0);
    if (op == "<=") return boolean(compare(a, b) <= 0);
    if (op == ">") return boolean(compare(a, b) > 0);
    if (op == ">=") return boolean(compare(a, b) >= 0);
    if (op == "in") return boolean(contains(b, a));
    if (op == "not in") return boolean(!contains(b, a));

    const bool nums = a.is_number() && b.is_number();
    const bool ints = nums && a.kind != Kind::Float && b.kind != Kind::Float;
    if (op == "+") {
        if (ints) return integer(as_int(a) + as_int(b));
        if (nums) return floating(a.num() + b.num());
        if (a.is_string() && b.is_string()) {
            if (a.safe || b.safe) {  // markupsafe.Markup: the plain operand is HTML-escaped
                return string((a.safe ? a.str() : html_escape(a.str())) + (b.safe ? b.str() : html_escape(b.str())),
                              true);
            }
            std::string out;
            out.reserve(a.str().size() + b.str().size());
            out += a.str();
            out += b.str();
            return string(std::move(out));
        }
        if (a.is_list() && b.is_list() && !a.list().generator && !b.list().generator &&
            a.list().tuple == b.list().tuple) {
            std::vector<Value> out = a.list().items;
            out.insert(out.end(), b.list().items.begin(), b.list().items.end());
            return list(std::move(out), a.list().tuple);
        }
        unsupported(op, a, b);
    }
    if (op == "-") {
        if (ints) return integer(as_int(a) - as_int(b));
        if (nums) return floating(a.num() - b.num());
        unsupported(op, a, b);
    }
    if (op == "*") {
        if (ints) return integer(as_int(a) * as_int(b));
        if (nums) return floating(a.num() * b.num());
        if ((a.is_string() || (a.is_list() && !a.list().generator)) && is_intlike(b)) return repeat(a, as_int(b));
        if ((b.is_string() || (b.is_list() && !b.list().generator)) && is_intlike(a)) return repeat(b, as_int(a));
        unsupported(op, a, b);
    }
    if (op == "/") {
        if (!nums) unsupported(op, a, b);
        if (b.num() == 0) type_error("division by zero");
        return floating(a.num() / b.num());
    }
    if (op == "//") {
        if (!nums) unsupported(op, a, b);
        if (b.num() == 0) type_error("integer division or modulo by zero");
        if (ints) {
            const int64_t x = as_int(a), y = as_int(b);
            int64_t q = x / y;
            if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
            return integer(q);
        }
        return floating(std::floor(a.num() / b.num()));
    }
    if (op == "%") {
        if (a.is_string()) return percent_format(a, b);
        if (!nums) unsupported(op, a, b);
        if (b.num() == 0) type_error("integer division or modulo by zero");
        if (ints) {
            const int64_t x = as_int(a), y = as_int(b);
            int64_t m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) m += y;
            return integer(m);
        }
        return floating(py_fmod(a.num(), b.num()));
    }
    if (op == "**") {
        if (ints && as_int(b) >= 0) {
            int64_t r = 1, base = as_int(a);
            for (int64_t e = as_int(b); e > 0; --e) r *= base;
            return integer(r);
        }
        if (nums) return floating(std::pow(a.num(), b.num()));
        unsupported(op, a, b);
    }
    type_error("unknown operator " + std::string(op));
}

Value percent_format(const Value& fmt, const Value& args) {
    const std::string& f = fmt.str();
    std::vector<Value> items;
    if (args.is_list() && args.list().tuple)
        items = args.list().items;
    else
        items.push_back(args);
    std::string out;
    size_t n = 0;
    for (size_t i = 0; i < f.size(); ++i) {
        if (f[i] != '%') {
            out += f[i];
            continue;
        }
        if (++i >= f.size()) type_error("incomplete format");
        const char c = f[i];
        if (c == '%') {
            out += '%';
            continue;
        }
        if (n >= items.size()) type_error("not enough arguments for format string");
        const Value& v = items[n++];
        if (c == 's') {
            append_str(out, v);
        } else if (c == 'r') {
            out += repr(v);
        } else if (c == 'd' || c == 'i') {
            if (!v.is_number()) type_error(std::string("%d format: a real number is required, not ") + type_name(v));
            out += std::to_string(v.kind == Kind::Float ? int64_t(v.f) : as_int(v));
        } else if (c == 'f') {
            if (!v.is_number()) type_error(std::string("must be real number, not ") + type_name(v));
            char buf[64];
            std::snprintf(buf, sizeof buf, "%f", v.num());
            out += buf;
        } else {
            type_error(std::string("unsupported format character '") + c + "'");
        }
    }
    if (n < items.size()) type_error("not all arguments converted during string formatting");
    return string(std::move(out));
}

// ---------------------------------------------------------------------------------------------
// attribute and item access

bool has_method(const Value& self, std::string_view name) {
    switch (self.kind) {
        case Kind::String: return is_str_method(name);
        case Kind::Dict: return is_dict_method(name);
        case Kind::List: return !self.list().generator && is_list_method(name);
        default: return false;
    }
}

Value get_attr(const Value& obj, std::string_view name) {
    switch (obj.kind) {
        case Kind::Undefined: fail_undefined(obj);
        case Kind::Dict: {
            if (is_dict_method(name)) return make_bound(obj, std::string(name));
            if (const Value* v = obj.dict().find(name)) return *v;
            return undefined("'dict object' has no attribute '" + std::string(name) + "'");
        }
        case Kind::Namespace: {
            if (Value* v = obj.ns().find(name)) return *v;
            return undefined("'Namespace' object has no attribute '" + std::string(name) + "'");
        }
        case Kind::Loop: return loop_attr(obj, name);
        default:
            if (has_method(obj, name)) return make_bound(obj, std::string(name));
            return undefined("'" + std::string(type_name(obj)) + " object' has no attribute '" + std::string(name) + "'");
    }
}

Value get_item(const Value& obj, const Value& key) {
    switch (obj.kind) {
        case Kind::Undefined: fail_undefined(obj);
        case Kind::Dict:
            if (const Value* v = obj.dict().find(key)) return *v;
            break;
        case Kind::List:
            if (is_intlike(key) && !obj.list().generator) {
                const auto& items = obj.list().items;
                int64_t idx = as_int(key);
                if (idx < 0) idx += int64_t(items.size());
                if (idx >= 0 && idx < int64_t(items.size())) return items[size_t(idx)];
                return undefined("'list object' has no element " + std::to_string(as_int(key)));
            }
            break;
        case Kind::String:
            if (is_intlike(key)) {
                const auto chars = utf8_chars(obj.str());
                int64_t idx = as_int(key);
                if (idx < 0) idx += int64_t(chars.size());
                if (idx >= 0 && idx < int64_t(chars.size())) return string(std::string(chars[size_t(idx)]));
                return undefined("'str object' has no element " + std::to_string(as_int(key)));
            }
            break;
        case Kind::Namespace:
        case Kind::Loop:
            if (key.is_string()) return get_attr(obj, key.str());
            break;
        default: break;
    }
    if (key.is_string() && has_method(obj, key.str())) return make_bound(obj, key.str());
    std::string what = key.is_string() ? key.str() : repr(key);
    return undefined("'" + std::string(type_name(obj)) + " object' has no attribute '" + what + "'");
}

Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
    check_defined(obj);
    auto opt_int = [](const Value& v, const char* what) -> std::pair<bool, int64_t> {
        if (v.is_none() || v.is_undefined()) return {false, 0};
        if (!is_intlike(v)) type_error(std::string("slice indices must be integers or None, not ") + type_name(v));
        (void)what;
        return {true, as_int(v)};
    };
    const auto [has_step, step_v] = opt_int(step, "step");
    const int64_t st = has_step ? step_v : 1;
    if (st == 0) type_error("slice step cannot be zero");
    std::vector<std::string_view> chars;
    const std::vector<Value>* items = nullptr;
    int64_t n;
    if (obj.is_string()) {
        chars = utf8_chars(obj.str());
        n = int64_t(chars.size());
    } else if (obj.is_list() && !obj.list().generator) {
        items = &obj.list().items;
        n = int64_t(items->size());
    } else {
        type_error(std::string("'") + type_name(obj) + "' object is not subscriptable");
    }
    auto clamp = [&](std::pair<bool, int64_t> v, int64_t def) {
        if (!v.first) return def;
        int64_t x = v.second;
        if (x < 0) x += n;
        if (st > 0) return std::clamp<int64_t>(x, 0, n);
        return std::clamp<int64_t>(x, -1, n - 1);
    };
    const int64_t b = clamp(opt_int(start, "start"), st > 0 ? 0 : n - 1);
    const int64_t e = clamp(opt_int(stop, "stop"), st > 0 ? n : -1);
    std::string s_out;
    std::vector<Value> l_out;
    for (int64_t k = b; st > 0 ? k < e : k > e; k += st) {
        if (items)
            l_out.push_back((*items)[size_t(k)]);
        else
            s_out += chars[size_t(k)];
    }
    if (items) return list(std::move(l_out), obj.list().tuple);
    return string(std::move(s_out));
}

std::vector<Value> iterate(const Value& v) {
    switch (v.kind) {
        case Kind::Undefined: return {};
        case Kind::List: return v.list().items;
        case Kind::Dict: {
            std::vector<Value> keys;
            keys.reserve(v.dict().items.size());
            for (const auto& kv : v.dict().items) keys.push_back(kv.first);
            return keys;
        }
        case Kind::String: {
            std::vector<Value> out;
            for (std::string_view ch : utf8_chars(v.str())) out.push_back(string(std::string(ch)));
            return out;
        }
        default: type_error(std::string("'") + type_name(v) + "' object is not iterable");
    }
}

// ---------------------------------------------------------------------------------------------
// methods

Value call_method(const Value& self, std::string_view name, CallArgs& a) {
    if (self.kind == Kind::String) {
        const std::string& s = self.str();
        if (name == "strip" || name == "lstrip" || name == "rstrip") {
            const bool l = name != "rstrip", r = name != "lstrip";
            const Value chars = arg(a, 0, "chars", none());
            if (chars.is_string()) return string(std::string(py_strip_chars(s, chars.str(), l, r)), self.safe);
            return string(std::string(py_strip(s, l, r)), self.safe);
        }
        if (name == "split" || name == "rsplit") {
            const Value sep = arg(a, 0, "sep", none());
            const Value maxsplit = arg(a, 1, "maxsplit", integer(-1));
            return list(name == "split" ? split(s, sep, as_int(maxsplit)) : rsplit(s, sep, as_int(maxsplit)));
        }
        if (name == "splitlines") return list(splitlines(s, truthy(arg(a, 0, "keepends", boolean(false)))));
        if (name == "startswith") return boolean(starts_or_ends(s, arg(a, 0, "prefix"), true));
        if (name == "endswith") return boolean(starts_or_ends(s, arg(a, 0, "suffix"), false));
        if (name == "upper") return string(upper(s));
        if (name == "lower" || name == "casefold") return string(lower(s));
        if (name == "title") return string(py_title(s));
        if (name == "capitalize") return string(capitalize(s));
        if (name == "swapcase") {
            std::string out = s;
            for (char& c : out) c = (c >= 'a' && c <= 'z') ? up(c) : low(c);
            return string(std::move(out));
        }
        if (name == "replace") {
            const Value count = arg(a, 2, "count", integer(-1));
            return string(replace_all(s, str_arg(a, 0, "old", "replace"), str_arg(a, 1, "new", "replace"), as_int(count)));
        }
        if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
            const std::string sub = str_arg(a, 0, "sub", "find");
            const size_t pos = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
            if (pos == std::string::npos) {
                if (name == "index" || name == "rindex") type_error("substring not found");
                return integer(-1);
            }
            return integer(int64_t(utf8_length(std::string_view(s).substr(0, pos))));
        }
        if (name == "count") {
            const std::string sub = str_arg(a, 0, "sub", "count");
            if (sub.empty()) return integer(int64_t(utf8_length(s)) + 1);
            int64_t n = 0;
            for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
            return integer(n);
        }
        if (name == "join") {
            std::string out;
            bool first = true;
            for (const Value& item : iterate(arg(a, 0, "iterable"))) {
                if (!item.is_string())
                    type_error(std::string("sequence item: expected str instance, ") + type_name(item) + " found");
                if (!first) out += s;
                first = false;
                out += item.str();
            }
            return string(std::move(out));
        }
        if (name == "format") return string(str_format(s, a));
        if (name == "removeprefix" || name == "removesuffix") {
            const std::string x = str_arg(a, 0, "prefix", name == "removeprefix" ? "removeprefix" : "removesuffix");
            if (name == "removeprefix") return string(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
            return string(x.size() <= s.size() && s.compare(s.size() - x.size(), x.size(), x) == 0
                              ? s.substr(0, s.size() - x.size())
                              : s);
        }
        if (name.substr(0, 2) == "is") {
            if (s.empty()) return boolean(false);
            bool all = true, any_cased = false, any_upper = false, any_lower = false;
            for (char c : s) {
                const bool digit = c >= '0' && c <= '9', alpha = is_alpha(c);
                if (alpha) any_cased = true;
                if (c >= 'A' && c <= 'Z') any_upper = true;
                if (c >= 'a' && c <= 'z') any_lower = true;
                if (name == "isdigit" || name == "isnumeric" || name == "isdecimal") all = all && digit;
                if (name == "isalpha") all = all && alpha;
                if (name == "isalnum") all = all && (alpha || digit);
                if (name == "isspace") all = all && is_py_space(static_cast<unsigned char>(c));
            }
            if (name == "islower") return boolean(any_cased && !any_upper);
            if (name == "isupper") return boolean(any_cased && !any_lower);
            if (name == "isdigit" || name == "isnumeric" || name == "isdecimal" || name == "isalpha" ||
                name == "isalnum" || name == "isspace")
                return boolean(all);
        }
        if (name == "center" || name == "ljust" || name == "rjust" || name == "zfill") {
            const int64_t width = as_int(arg(a, 0, "width", integer(0)));
            const int64_t len = int64_t(utf8_length(s));
            if (width <= len) return self;
            const size_t pad = size_t(width - len);
            if (name == "ljust") return string(s + std::string(pad, ' '));
            if (name == "rjust") return string(std::string(pad, ' ') + s);
            if (name == "zfill") return string(std::string(pad, '0') + s);
            CallArgs ca;
            ca.pos.push_back(integer(width));
            return f_center(self, ca, RenderOptions{});
        }
    } else if (self.kind == Kind::Dict) {
        const DictObj& d = self.dict();
        if (name == "items") {
            std::vector<Value> out;
            out.reserve(d.items.size());
            for (const auto& [k, v] : d.items) out.push_back(list({k, v}, true));
            return list(std::move(out));
        }
        if (name == "keys") return list(iterate(self));
        if (name == "values") {
            std::vector<Value> out;
            for (const auto& kv : d.items) out.push_back(kv.second);
            return list(std::move(out));
        }
        if (name == "get") {
            if (const Value* v = d.find(arg(a, 0, "key"))) return *v;
            return arg(a, 1, "default", none());
        }
        if (name == "copy") return self;
    } else if (self.kind == Kind::List) {
        const auto& items = self.list().items;
        if (name == "count") {
            const Value x = arg(a, 0, "value");
            return integer(std::count_if(items.begin(), items.end(), [&](const Value& v) { return equals(v, x); }));
        }
        if (name == "index") {
            const Value x = arg(a, 0, "value");
            for (size_t k = 0; k < items.size(); ++k)
                if (equals(items[k], x)) return integer(int64_t(k));
            type_error(repr(x) + " is not in list");
        }
        if (name == "copy") return list(items, self.list().tuple);
    }
    if (has_method(self, name))
        type_error("access to attribute '" + std::string(name) + "' of '" + type_name(self) +
                   "' object is unsafe or not supported");
    type_error("'" + std::string(type_name(self)) + "' object has no attribute '" + std::string(name) + "'");
}

// ---------------------------------------------------------------------------------------------
// filters and tests

bool has_filter(std::string_view name) { return filters().count(name) != 0; }

Value apply_filter(std::string_view name, const Value& input, CallArgs& args, const RenderOptions& opt) {
    const auto& table = filters();
    const auto it = table.find(name);
    if (it == table.end()) type_error("no filter named '" + std::string(name) + "'");
    return it->second(input, args, opt);
}

bool has_test(std::string_view name) {
    static const char* names[] = {"defined", "undefined", "none", "boolean", "false", "true", "integer", "float",
                                  "number", "string", "mapping", "iterable", "sequence", "callable", "sameas",
                                  "escaped", "in", "odd", "even", "divisibleby", "eq", "equalto", "==", "ne", "!=",
                                  "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "lower",
                                  "upper", "filter", "test"};
    for (const char* n : names)
        if (name == n) return true;
    return false;
}

bool apply_test(std::string_view n, const Value& v, CallArgs& a) {
    if (n == "defined") return !v.is_undefined();
    if (n == "undefined") return v.is_undefined();
    if (n == "none") return v.is_none();
    if (n == "boolean") return v.kind == Kind::Bool;
    if (n == "false") return v.kind == Kind::Bool && !v.b;
    if (n == "true") return v.kind == Kind::Bool && v.b;
    if (n == "integer") return v.kind == Kind::Int;
    if (n == "float") return v.kind == Kind::Float;
    if (n == "number") return v.is_number();
    if (n == "string") return v.is_string();
    if (n == "mapping") return v.is_dict();
    if (n == "iterable") return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
    if (n == "sequence") return v.is_undefined() || v.is_string() || (v.is_list() && !v.list().generator) || v.is_dict();
    if (n == "callable") return v.kind == Kind::Func;
    if (n == "sameas") return sameas(v, arg(a, 0, "other"));
    if (n == "escaped") return v.is_string() && v.safe;
    if (n == "in") return contains(arg(a, 0, "seq"), v);
    if (n == "odd" || n == "even") {
        if (!is_intlike(v)) type_error(std::string("odd/even test needs an integer, got ") + type_name(v));
        const bool odd = (as_int(v) % 2) != 0;
        return n == "odd" ? odd : !odd;
    }
    if (n == "divisibleby") {
        const Value d = arg(a, 0, "num");
        if (!is_intlike(v) || !is_intlike(d) || as_int(d) == 0) type_error("divisibleby needs non-zero integers");
        return as_int(v) % as_int(d) == 0;
    }
    if (n == "eq" || n == "equalto" || n == "==") return test_compare(v, a, "==");
    if (n == "ne" || n == "!=") return test_compare(v, a, "!=");
    if (n == "lt" || n == "lessthan" || n == "<") return test_compare(v, a, "<");
    if (n == "le" || n == "<=") return test_compare(v, a, "<=");
    if (n == "gt" || n == "greaterthan" || n == ">") return test_compare(v, a, ">");
    if (n == "ge" || n == ">=") return test_compare(v, a, ">=");
    if (n == "lower" || n == "upper") {
        const std::string s = to_str(v);
        return n == "lower" ? lower(s) == s : upper(s) == s;
    }
    if (n == "filter") return v.is_string() && has_filter(v.str());
    if (n == "test") return v.is_string() && has_test(v.str());
    type_error("no test named '" + std::string(n) + "'");
}

}  // namespace pensieve::jinja
