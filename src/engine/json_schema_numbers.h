// Number bounds of JSON Schema (minimum, maximum, exclusiveMinimum, exclusiveMaximum)
// as exact GBNF over the digits, for json_schema.cpp.
//
// The numbers generated are the ones the plain rules allow: integers of up to 16 digits,
// and for "number" up to 16 integer and 16 fraction digits. With bounds, "number" has no
// exponent (every bounded range is reachable without one), so a range is a set of
// decimal strings and is compared digit by digit:
//   - integers: [lo, hi] in int64, either end open, is split by digit count, and each
//     same-length range [X, Y] into X's prefix, then "first digit above X's" alternatives,
//     as a few nested groups per digit (so {"minimum": 10, "maximum": 20} allows 10..20);
//   - numbers: bounds are the schema's doubles. A validator compares doubles, and
//     rounding to the nearest double is monotonic, so decimal x >= d (d the shortest
//     decimal of the bound b) implies double(x) >= b: inclusive bounds are exact. An
//     exclusive bound b is the inclusive bound nextafter(b) (the next double), whose
//     shortest decimal is also exact. Bounds are rounded inwards to 16 fraction digits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pensieve {

// Largest magnitude the generated integers can have (16 digits).
constexpr int64_t kMaxGeneratedInteger = 9999999999999999;

// GBNF expression (one unit, in parentheses when needed) for the JSON integers in
// [lo, hi]; absent ends are open (up to 16 digits). Throws Error when no integer of up to
// 16 digits is in the range.
std::string integer_range_gbnf(std::optional<int64_t> lo, std::optional<int64_t> hi);

// The same for JSON numbers in [lo, hi] (inclusive; turn exclusive bounds into
// inclusive ones with std::nextafter first). An infinite end is open, or throws Error
// when it leaves no number (a lower bound of +inf).
std::string number_range_gbnf(std::optional<double> lo, std::optional<double> hi);

}  // namespace pensieve
