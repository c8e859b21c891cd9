// The operations the interpreter applies to values, each as Jinja2 does it: operators,
// attribute and item access (sandboxed: attributes first, then items), iteration, filters,
// tests and the str/dict/list methods that templates call.
#pragma once

#include <string_view>
#include <vector>

#include "chat/jinja_interp.h"
#include "chat/jinja_value.h"

namespace pensieve::jinja {

Value binary_op(std::string_view op, const Value& a, const Value& b);  // + - * / // % ** ~ == != < <= > >= in
Value negate(const Value& v);
bool contains(const Value& container, const Value& item);  // item in container

Value get_attr(const Value& obj, std::string_view name);  // obj.name
Value get_item(const Value& obj, const Value& key);       // obj[key]
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
std::vector<Value> iterate(const Value& v);               // for x in v

bool has_method(const Value& self, std::string_view name);
Value call_method(const Value& self, std::string_view name, CallArgs& args);

bool has_filter(std::string_view name);
bool has_test(std::string_view name);
Value apply_filter(std::string_view name, const Value& input, CallArgs& args, const RenderOptions& opt);
bool apply_test(std::string_view name, const Value& v, CallArgs& args);

// printf-style `fmt % args` (%s %d %i %r %f %%).
Value percent_format(const Value& fmt, const Value& args);

}  // namespace pensieve::jinja
