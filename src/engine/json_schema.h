// JSON Schema -> GBNF, for response_format {"type": "json_schema", ...} (and
// {"type": "json_object"}: any JSON object). Grammar::from_json_schema / any_json wrap
// these and compile the text.
//
// Every keyword of JSON Schema (2020-12, plus draft 4's boolean exclusiveMinimum /
// exclusiveMaximum and OpenAPI's nullable) is either enforced, refused with an Error
// naming it, or one that only annotates:
//
// Enforced:
//   type: object, array, string, number, integer, boolean, null; type arrays such as
//     ["string", "null"]; "nullable": true (OpenAPI style); no "type" -> inferred from
//     the other keywords (properties -> object, items -> array, minimum -> number, ...)
//     or any value. Keywords of other types than the instance's do not apply to it.
//   object: properties (emitted in the order given), required (mandatory, in that
//     order among the properties; optional ones may be left out), additionalProperties
//     false / true / a schema. When "properties" is given and additionalProperties is
//     absent, no other keys are generated (a valid subset of what the schema allows,
//     and what users of structured output expect).
//   array: items, minItems, maxItems (<= 100000)
//   string: minLength, maxLength (<= 100000), pattern (regex subset, see below),
//     format date, time, date-time, uuid
//   integer, number: minimum, maximum, exclusiveMinimum, exclusiveMaximum, exactly
//     (json_schema_numbers.h: integers digit by digit; bounded numbers are written
//     without an exponent and compared as decimals)
//   enum, const (any JSON values; checked against a "type" beside them), anyOf,
//     oneOf (as anyOf: meant for disjoint alternatives), allOf with one schema, $ref
//     to "#", "#/$defs/...", "#/definitions/..." or any "#/..." pointer (recursive
//     schemas work)
// Refused (Error naming the keyword): not, if/then/else, allOf with several schemas,
//   patternProperties, propertyNames, dependentRequired, dependentSchemas, dependencies,
//   unevaluatedProperties/Items, minProperties, maxProperties, prefixItems, items as an
//   array, additionalItems, contains, minContains, maxContains, uniqueItems: true,
//   multipleOf, $dynamicRef, $recursiveRef, remote $ref, schema false; any constraint
//   beside $ref, const, enum, anyOf, oneOf or allOf (which decide the schema alone);
//   pattern together with minLength, maxLength or a format; a known format with
//   minLength/maxLength; keywords of the wrong JSON type (e.g. "minimum": "3").
// Annotations (no constraint, ignored): title, description, default, examples, $comment,
//   $schema, $id, $anchor, $dynamicAnchor, $vocabulary, $defs, definitions, readOnly,
//   writeOnly, deprecated, contentEncoding, contentMediaType, contentSchema, and
//   "format" values other than the four above (an annotation by default in 2020-12),
//   unknown keywords (JSON Schema ignores them).
//
// pattern: ECMAScript-style subset: literals, ., [...] / [^...] with ranges, \d \w \s
//   \D \W \S, escapes \n \t \r \f \v \xHH \uHHHH and escaped punctuation, groups (...)
//   and (?:...), |, quantifiers * + ? {m} {m,} {m,n} (lazy '?' accepted, meaningless
//   here), ^ and $ at the ends. Unanchored ends match anything, as JSON Schema says.
//   Lookaround, backreferences, \b, \p{...} -> Error. Pattern characters that JSON must
//   escape (", \, control characters) are generated in their escaped form.
//
// Bounds that keep generation finite (so a model cannot loop forever):
//   whitespace between tokens: nothing, one space, or 1-2 newlines then up to 20
//     spaces/tabs (enough for pretty-printing); also allowed before and after the root
//   numbers: up to 16 integer digits, 16 fraction digits, 2 exponent digits
//     (so every number fits a double: strict parsers reject 1e400); integers up to 16
//     digits
//   nesting: kMaxNesting (util/nesting.h) subschemas deep, $ref hops included
//   untyped values ("any JSON", additionalProperties true, {}): nesting depth <= 12
// Strings, arrays without maxItems and extra properties remain unbounded: the
// request's max_tokens bounds those.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

namespace pensieve {

// GBNF text (start rule "root") for the JSON texts valid under `schema`. Throws Error
// for unsupported features, naming the keyword and where it is ("#/properties/a").
// With another root_name, the start rule and every rule made for this schema are named
// "<root_name>..." (only the shared primitives such as string and ws are not), so the
// texts for several schemas can be joined, keeping one copy of each identical line.
std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema, const std::string& root_name = "root");

// GBNF text for any JSON object.
std::string any_json_object_gbnf();

}  // namespace pensieve
