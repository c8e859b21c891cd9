// JSON Schema -> grammar: every output of random sampling under the grammar parses
// and validates against the schema (checked by a small validator written here), any_json
// outputs are JSON objects, unsupported features are named, and the per-token masking
// time on the 32k llama vocabulary is measured.

#include <gtest/gtest.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <random>
#include <regex>

#include <nlohmann/json.hpp>

#include "engine/grammar.h"
#include "engine/grammar_matcher.h"
#include "engine/json_schema.h"
#include "engine/sampler.h"
#include "gguf/gguf.h"
#include "grammar_checks.h"
#include "test_paths.h"
#include "timing.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

using namespace pensieve;
using ojson = nlohmann::ordered_json;

namespace {

using test::llama_vocab;

bool is_eog(const Tokenizer& tok, int32_t id) { return tok.is_end_of_generation(id) || id == tok.eos_id(); }

struct RunStats {
    int tokens = 0;
    int forced = 0;  // runs that needed mask_logits_to_finish to end within the budget
    double mask_seconds = 0;
    double max_mask_seconds = 0;
};

// Random logits -> mask -> sample at temperature 1 from what the mask leaves; stops at
// EOG. *ended: EOG came within the budget.
std::string random_run(const std::shared_ptr<const Grammar>& g, const Tokenizer& tok, uint64_t seed, int budget,
                       bool* ended, RunStats* stats) {
    GrammarMatcher m(g, tok);
    SamplingParams sp;
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sp.seed = seed;
    Sampler sampler(sp, tok.n_vocab());
    std::mt19937_64 rng(seed * 7919 + 1);
    std::vector<float> logits(size_t(tok.n_vocab()));
    std::string out;
    *ended = false;
    bool forced = false;
    for (int step = 0; step < budget; ++step) {
        for (float& l : logits) l = float(rng() >> 40) * (6.0f / float(1 << 24));  // uniform [0, 6)
        auto t0 = std::chrono::steady_clock::now();
        // Near the end of the budget, steer towards a complete output (as a server
        // would before max_tokens, to keep JSON parseable).
        if (budget - step <= m.min_chars_to_complete() + 8) {
            forced = true;
            m.mask_logits_to_finish(logits.data());
        } else {
            m.mask_logits(logits.data());
        }
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        stats->mask_seconds += dt;
        stats->max_mask_seconds = std::max(stats->max_mask_seconds, dt);
        ++stats->tokens;
        const int32_t t = sampler.sample(logits.data());
        if (is_eog(tok, t)) {
            EXPECT_TRUE(m.is_complete());
            *ended = true;
            stats->forced += forced;
            break;
        }
        m.accept_token(t);
        out += tok.token_to_piece(t);
    }
    return out;
}

size_t utf8_length(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

// A small JSON Schema validator for the keywords the tests use. Appends problems.
void validate(const ojson& v, const ojson& s, const ojson& root, const std::string& path, std::vector<std::string>& errs) {
    auto err = [&](const std::string& m) { errs.push_back(path + ": " + m + " (value " + v.dump() + ")"); };
    if (s.is_boolean()) {
        if (!s.get<bool>()) err("schema false");
        return;
    }
    if (s.contains("$ref")) {
        const std::string ref = s["$ref"];
        validate(v, ref == "#" ? root : root.at(ojson::json_pointer(ref.substr(1))), root, path, errs);
        return;
    }
    if (s.contains("const") && v != s["const"]) err("not the const");
    if (s.contains("enum")) {
        bool found = false;
        for (const ojson& e : s["enum"]) found |= e == v;
        if (!found) err("not in enum");
    }
    for (const char* k : {"anyOf", "oneOf"})
        if (s.contains(k)) {
            size_t ok = 0;
            for (const ojson& sub : s[k]) {
                std::vector<std::string> sub_errs;
                validate(v, sub, root, path, sub_errs);
                ok += sub_errs.empty();
            }
            if (ok == 0) err(std::string("matches no ") + k);
        }
    if (s.contains("type")) {
        std::vector<std::string> types;
        if (s["type"].is_array()) for (const ojson& t : s["type"]) types.push_back(t);
        else types.push_back(s["type"]);
        bool ok = false;
        for (const std::string& t : types)
            ok |= (t == "object" && v.is_object()) || (t == "array" && v.is_array()) || (t == "string" && v.is_string()) ||
                  (t == "integer" && v.is_number_integer()) || (t == "number" && v.is_number()) ||
                  (t == "boolean" && v.is_boolean()) || (t == "null" && v.is_null());
        if (!ok) { err("wrong type"); return; }
    }
    if (v.is_object()) {
        const ojson props = s.value("properties", ojson::object());
        for (const ojson& r : s.value("required", ojson::array()))
            if (!v.contains(r.get<std::string>())) err("missing required " + r.dump());
        for (auto it = v.begin(); it != v.end(); ++it) {
            if (props.contains(it.key())) validate(it.value(), props[it.key()], root, path + "/" + it.key(), errs);
            else if (s.contains("additionalProperties")) validate(it.value(), s["additionalProperties"], root, path + "/" + it.key(), errs);
        }
    }
    if (v.is_array()) {
        if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) err("too few items");
        if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) err("too many items");
        if (s.contains("items"))
            for (size_t i = 0; i < v.size(); ++i) validate(v[i], s["items"], root, path + "/" + std::to_string(i), errs);
    }
    if (v.is_string()) {
        const std::string str = v;
        if (s.contains("minLength") && utf8_length(str) < s["minLength"].get<size_t>()) err("too short");
        if (s.contains("maxLength") && utf8_length(str) > s["maxLength"].get<size_t>()) err("too long");
        if (s.contains("pattern") && !std::regex_search(str, std::regex(s["pattern"].get<std::string>()))) err("pattern mismatch");
        if (s.value("format", "") == "date" && !std::regex_match(str, std::regex(R"(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]))")))
            err("not a date");
    }
    if (v.is_number()) {
        const double x = v.get<double>();
        if (s.contains("minimum") && x < s["minimum"].get<double>()) err("below minimum");
        if (s.contains("maximum") && x > s["maximum"].get<double>()) err("above maximum");
        if (s.contains("exclusiveMinimum") && x <= s["exclusiveMinimum"].get<double>()) err("not above exclusiveMinimum");
        if (s.contains("exclusiveMaximum") && x >= s["exclusiveMaximum"].get<double>()) err("not below exclusiveMaximum");
    }
}

const char* kSchema = R"({
  "$defs": {
    "address": {
      "type": "object",
      "properties": {
        "street": {"type": "string", "maxLength": 20},
        "zip": {"type": "string", "pattern": "^[0-9]{5}(-[0-9]{4})?$"}
      },
      "required": ["street", "zip"],
      "additionalProperties": false
    }
  },
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 24},
    "age": {"type": "integer", "minimum": 0, "maximum": 130},
    "ratio": {"type": "number", "exclusiveMinimum": -1.5, "maximum": 2.75},
    "score": {"type": "number"},
    "active": {"type": "boolean"},
    "role": {"enum": ["admin", "user", "guest \"quoted\""]},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}, "minItems": 1, "maxItems": 4},
    "address": {"$ref": "#/$defs/address"},
    "nickname": {"type": ["string", "null"], "maxLength": 12},
    "quote": {"type": "string", "maxLength": 16},
    "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}, "maxItems": 3}, "maxItems": 3},
    "kind": {"anyOf": [{"const": "x"}, {"type": "integer"}, {"type": "null"}]},
    "day": {"type": "string", "format": "date"},
    "code": {"type": "string", "pattern": "^[A-Z]{2}-\\d{2,3}$"}
  },
  "required": ["name", "age", "ratio", "role", "tags", "address"],
  "additionalProperties": false
})";

}  // namespace

TEST(JsonSchema, RandomOutputsAlwaysValidate) {
    const Tokenizer& tok = llama_vocab();
    const ojson schema = ojson::parse(kSchema);
    auto g = Grammar::from_json_schema(schema);
    RunStats stats;
    int with_escapes = 0, with_optional = 0;
    size_t total_chars = 0;
    for (uint64_t seed = 1; seed <= 100; ++seed) {
        bool ended = false;
        const std::string out = random_run(g, tok, seed, 3000, &ended, &stats);
        total_chars += out.size();
        ASSERT_TRUE(ended) << "no EOG within the budget, seed " << seed << ": " << out;
        ojson v;
        try {
            v = ojson::parse(out);
        } catch (const std::exception& e) {
            FAIL() << "seed " << seed << " does not parse: " << e.what() << "\n" << out;
        }
        std::vector<std::string> errs;
        validate(v, schema, schema, "#", errs);
        EXPECT_TRUE(errs.empty()) << "seed " << seed << ": " << errs[0] << "\n" << out;
        with_escapes += out.find('\\') != std::string::npos;
        with_optional += v.contains("score") || v.contains("quote") || v.contains("matrix");
    }
    // The runs do exercise escapes and optional fields.
    EXPECT_GT(with_escapes, 0);
    EXPECT_GT(with_optional, 0);
    std::printf("[ stats    ] 100 runs, %d tokens, %.1f chars/run, %d with escapes, %d forced to finish; "
                "mask %.3f ms/token avg, %.2f ms max\n",
                stats.tokens, double(total_chars) / 100, with_escapes, stats.forced, 1e3 * stats.mask_seconds / stats.tokens,
                1e3 * stats.max_mask_seconds);
}

TEST(JsonSchema, AnyJsonIsAlwaysAnObject) {
    const Tokenizer& tok = llama_vocab();
    auto g = Grammar::any_json();
    RunStats stats;
    // Random logits rarely pick one of the few tokens that close a string, so strings
    // run long; near the budget the run is steered to finish (mask_logits_to_finish).
    for (uint64_t seed = 1; seed <= 40; ++seed) {
        bool ended = false;
        const std::string out = random_run(g, tok, seed, 600, &ended, &stats);
        ASSERT_TRUE(ended) << "seed " << seed << ": " << out;
        ojson v;
        ASSERT_NO_THROW(v = ojson::parse(out)) << out;
        EXPECT_TRUE(v.is_object()) << out;
    }
    std::printf("[ stats    ] any_json: 40 runs, %d tokens, %d forced to finish; mask %.3f ms/token avg\n", stats.tokens,
                stats.forced, 1e3 * stats.mask_seconds / stats.tokens);
}

TEST(JsonSchema, PropertyOrderRequiredAndOptional) {
    const Tokenizer& tok = llama_vocab();
    auto g = Grammar::from_json_schema(ojson::parse(R"({
      "type": "object",
      "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "boolean"}},
      "required": ["b"]})"));
    auto accepts = [&](const std::string& text) {
        GrammarMatcher m(g, tok);
        try {
            m.accept_bytes(text);
        } catch (const Error&) {
            return false;
        }
        return m.is_complete();
    };
    EXPECT_TRUE(accepts(R"({"b": "x"})"));
    EXPECT_TRUE(accepts(R"({"a": 1, "b": "x"})"));
    EXPECT_TRUE(accepts(R"({"a":1,"b":"x","c":true})"));
    EXPECT_TRUE(accepts("{\n  \"b\": \"x\",\n  \"c\": false\n}\n"));
    EXPECT_FALSE(accepts(R"({})"));                     // b is required
    EXPECT_FALSE(accepts(R"({"b": "x", "a": 1})"));     // order as given
    EXPECT_FALSE(accepts(R"({"b": "x", "d": 1})"));     // no extra keys
    EXPECT_FALSE(accepts(R"({"a": 1,, "b": "x"})"));
    EXPECT_FALSE(accepts(R"({"a": 01, "b": "x"})"));    // JSON numbers have no leading zeros
    EXPECT_FALSE(accepts(R"({"b": "x"}                              )"));  // whitespace is bounded
}

TEST(JsonSchema, FeatureGrammars) {
    const Tokenizer& tok = llama_vocab();
    struct Case { const char* schema; const char* text; bool ok; };
    const Case cases[] = {
        {R"({"type": "string", "pattern": "^a[bc]+\\.d?$"})", R"("abcb.")", true},
        {R"({"type": "string", "pattern": "^a[bc]+\\.d?$"})", R"("ab.dd")", false},
        {R"({"type": "string", "pattern": "b+"})", R"("xxbbyy")", true},  // unanchored: a substring match
        {R"({"type": "string", "pattern": "^\"(x|y){2}$"})", R"("\"xy")", true},
        {R"({"type": "string", "format": "date-time"})", R"("2024-02-29T13:45:00Z")", true},
        {R"({"type": "string", "format": "uuid"})", R"("123e4567-e89b-12d3-a456-426614174000")", true},
        {R"({"type": "string", "format": "uuid"})", R"("123e4567")", false},
        {R"({"type": "string", "minLength": 2, "maxLength": 3})", R"("a")", false},
        {R"({"type": "string", "minLength": 2, "maxLength": 3})", R"("a\n")", true},
        {R"({"type": "string"})", R"("\ud83d\ude00 é")", true},
        {R"({"type": "string"})", R"("\ud83d")", false},  // a lone surrogate escape
        {R"({"type": "integer", "minimum": 0})", "-1", false},
        {R"({"type": "integer", "minimum": 10, "maximum": 20})", "910", false},  // used to be allowed
        {R"({"type": "integer", "minimum": 10, "maximum": 20})", "15", true},
        {R"({"type": "number"})", "-0.5e+10", true},
        {R"({"type": ["integer", "null"]})", "null", true},
        {R"({"type": "integer", "nullable": true})", "null", true},
        {R"({"enum": [1, "two", null, {"x": [true]}]})", R"({"x":[true]})", true},
        {R"({"const": "yes"})", R"("no")", false},
        {R"({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3})", "[1]", false},
        {R"({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3})", "[1, 2, 3]", true},
        {R"({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3})", "[1,2,3,4]", false},
        {R"({"type": "object", "additionalProperties": {"type": "integer"}})", R"({"k": 1, "j": 2})", true},
        {R"({"type": "object", "additionalProperties": {"type": "integer"}})", R"({"k": "s"})", false},
        {R"({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": true})", R"({"a": 1, "z": [null]})", true},
        {R"({"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}}, "required": ["v", "next"]}}, "$ref": "#/$defs/node"})",
         R"({"v": 1, "next": {"v": 2, "next": null}})", true},
        {R"({"definitions": {"n": {"type": "integer"}}, "type": "array", "items": {"$ref": "#/definitions/n"}})", "[1, 2]", true},
        {R"({})", R"([{"a": "b"}, 1.5, true])", true},
        {R"({"type": "object", "properties": {"a": {"allOf": [{"type": "boolean"}]}}, "required": ["a"]})", R"({"a": false})", true},
    };
    for (const Case& c : cases) {
        auto g = Grammar::from_json_schema(ojson::parse(c.schema));
        GrammarMatcher m(g, tok);
        bool ok = true;
        try {
            m.accept_bytes(c.text);
            ok = m.is_complete();
        } catch (const Error&) {
            ok = false;
        }
        EXPECT_EQ(ok, c.ok) << c.schema << " on " << c.text << "\n" << g->source();
    }
}

TEST(JsonSchema, UnsupportedFeaturesAreNamed) {
    struct Case { const char* schema; const char* expect; };
    const Case cases[] = {
        {R"({"type": "string", "not": {"const": "a"}})", "\"not\""},
        {R"({"properties": {"a": {"type": "integer", "multipleOf": 3}}})", "#/properties/a: \"multipleOf\""},
        {R"({"type": "array", "uniqueItems": true})", "\"uniqueItems\": true"},
        {R"({"type": "object", "patternProperties": {"^x": {}}})", "\"patternProperties\""},
        {R"({"allOf": [{"type": "integer"}, {"minimum": 1}]})", "\"allOf\" with more than one schema"},
        {R"({"$ref": "https://example.com/s.json"})", "only local references"},
        {R"({"$ref": "#/$defs/missing"})", "points nowhere"},
        {R"({"type": "string", "pattern": "^(?=a)b$"})", "lookaround"},
        {R"({"type": "string", "pattern": "(a)\\1"})", "backreferences"},
        {R"({"type": "tuple"})", "unknown type \"tuple\""},
        {R"({"type": "array", "prefixItems": [{"type": "integer"}]})", "\"prefixItems\""},
        {R"({"type": "object", "properties": {"a": false}, "required": ["a"]})", "schema false"},
        // Keywords that would be ignored beside another, or have the wrong JSON type.
        {R"({"enum": [1, 2], "minimum": 2})", "\"minimum\" alongside \"enum\""},
        {R"({"$ref": "#/$defs/a", "maxLength": 2, "$defs": {"a": {"type": "string"}}})", "\"maxLength\" alongside \"$ref\""},
        {R"({"anyOf": [{"type": "string"}], "required": ["a"]})", "\"required\" alongside \"anyOf\""},
        {R"({"type": "string", "enum": ["a", 1]})", "does not have the schema's \"type\""},
        {R"({"type": "string", "pattern": "^a+$", "maxLength": 4})", "\"maxLength\" together with \"pattern\""},
        {R"({"type": "string", "format": "date", "minLength": 4})", "\"minLength\" together with \"format\""},
        {R"({"type": "object", "required": [1]})", "\"required\" must hold property names"},
        {R"({"type": "string", "minLength": "3"})", "\"minLength\" must be a non-negative integer"},
        {R"({"type": "array", "maxItems": -1})", "\"maxItems\" must be a non-negative integer"},
        {R"({"type": "string", "maxLength": 1000000000})", "\"maxLength\" is 1000000000"},
        {R"({"type": "string", "pattern": 5})", "\"pattern\" must be a string"},
        {R"({"type": "integer", "minimum": "1"})", "\"minimum\" must be a number"},
        {R"({"type": "integer", "minimum": 5, "maximum": 4})", "minimum/maximum"},
        {R"({"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 1})", "minimum/maximum"},
        {R"({"type": "integer", "minimum": 1e20})", "minimum/maximum"},
        {R"({"type": ["string", 3]})", "\"type\" must hold type names"},
        {R"({"type": "array", "uniqueItems": "yes"})", "\"uniqueItems\" must be a boolean"},
    };
    for (const Case& c : cases) {
        std::string err;
        try {
            Grammar::from_json_schema(ojson::parse(c.schema));
        } catch (const Error& e) {
            err = e.what();
        }
        EXPECT_NE(err.find(c.expect), std::string::npos) << c.schema << "\nerror: " << err;
    }
}

// ---- number bounds ----------------------------------------------------------------------


TEST(JsonSchemaBounds, IntegerRangesAreExact) {
    // Every integer near the bounds, for ranges of every sign and several digit counts.
    std::mt19937_64 rng(7);
    const int64_t edges[] = {-10000001, -1000, -999, -100, -10, -9, -1, 0, 1, 9, 10, 99, 100, 101, 999, 1000, 12345, 99999999};
    int empty = 0;
    for (int round = 0; round < 60; ++round) {
        int64_t lo = edges[rng() % std::size(edges)] + int64_t(rng() % 3) - 1;
        int64_t hi = edges[rng() % std::size(edges)] + int64_t(rng() % 3) - 1;
        if (lo > hi) std::swap(lo, hi);
        const bool x_lo = rng() % 2, x_hi = rng() % 2;  // exclusive bounds
        ojson schema = {{"type", "integer"}};
        schema[x_lo ? "exclusiveMinimum" : "minimum"] = lo;
        schema[x_hi ? "exclusiveMaximum" : "maximum"] = hi;
        const int64_t first = x_lo ? lo + 1 : lo, last = x_hi ? hi - 1 : hi;
        if (first > last) {  // no integer in range: the schema is refused, not turned into an empty grammar
            EXPECT_THROW(Grammar::from_json_schema(schema), Error) << schema.dump();
            ++empty;
            continue;
        }
        auto g = Grammar::from_json_schema(schema);
        std::vector<int64_t> probes = {first - 1, first, first + 1, last - 1, last, last + 1, -first, -last, first * 10, last * 10 + 1};
        for (int k = 0; k < 10; ++k) probes.push_back(first + int64_t(rng() % uint64_t(last - first + 1)));
        for (int64_t n : probes)
            EXPECT_EQ(test::grammar_accepts(g, std::to_string(n)), n >= first && n <= last) << schema.dump() << " on " << n;
        std::string leading_zero = "0";
        leading_zero += std::to_string(std::max<int64_t>(first, 1));
        EXPECT_FALSE(test::grammar_accepts(g, leading_zero)) << leading_zero;
    }
    EXPECT_LT(empty, 20);  // most draws are real ranges
    // One-sided and extreme bounds.
    auto at_least = Grammar::from_json_schema(ojson::parse(R"({"type": "integer", "minimum": 10.5})"));
    EXPECT_FALSE(test::grammar_accepts(at_least, "10"));
    EXPECT_TRUE(test::grammar_accepts(at_least, "11"));
    EXPECT_TRUE(test::grammar_accepts(at_least, "9999999999999999"));
    EXPECT_FALSE(test::grammar_accepts(at_least, "99999999999999999"));  // 17 digits: beyond what is generated
    auto below = Grammar::from_json_schema(ojson::parse(R"({"type": "integer", "exclusiveMaximum": -3})"));
    EXPECT_TRUE(test::grammar_accepts(below, "-4"));
    EXPECT_TRUE(test::grammar_accepts(below, "-1234567"));
    EXPECT_FALSE(test::grammar_accepts(below, "-3"));
    EXPECT_FALSE(test::grammar_accepts(below, "0"));
    auto draft4 = Grammar::from_json_schema(ojson::parse(R"({"type": "integer", "minimum": 0, "exclusiveMinimum": true})"));
    EXPECT_FALSE(test::grammar_accepts(draft4, "0"));
    EXPECT_TRUE(test::grammar_accepts(draft4, "1"));
    auto huge = Grammar::from_json_schema(
        ojson::parse(R"({"type": "integer", "minimum": -9223372036854775808, "maximum": 18446744073709551615})"));
    EXPECT_TRUE(test::grammar_accepts(huge, "-9999999999999999"));
    EXPECT_TRUE(test::grammar_accepts(huge, "42"));
}

TEST(JsonSchemaBounds, NumberRangesNeverAdmitAnOutOfRangeDouble) {
    // Whatever decimal the grammar accepts reads back (as a double, like a validator
    // does) inside the bounds; the bounds' own decimals are in when inclusive, out when
    // exclusive.
    std::mt19937_64 rng(11);
    auto random_double = [&] {
        const double scale[] = {1e-17, 1e-6, 0.1, 1, 10, 1000, 1e9, 1e15};
        double x = double(int64_t(rng() % 2000001) - 1000000) / 1000000.0 * scale[rng() % std::size(scale)];
        return rng() % 4 == 0 ? std::round(x) : x;
    };
    auto shortest = [](double d) {
        char buf[64];
        auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
        return std::string(buf, r.ptr);
    };
    int accepted = 0, refused = 0;
    for (int round = 0; round < 40; ++round) {
        // + 0.0 turns -0.0 (std::round of a small negative) into 0: the grammar writes no "-0".
        double lo = random_double() + 0.0, hi = random_double() + 0.0;
        if (lo > hi) std::swap(lo, hi);
        const bool x_lo = rng() % 2, x_hi = rng() % 2;
        ojson schema = {{"type", "number"}};
        schema[x_lo ? "exclusiveMinimum" : "minimum"] = lo;
        schema[x_hi ? "exclusiveMaximum" : "maximum"] = hi;
        std::shared_ptr<const Grammar> g;
        try {
            g = Grammar::from_json_schema(schema);
        } catch (const Error& e) {
            // Refused only when no decimal of up to 16 fraction digits fits: a range
            // narrower than 1e-16 (or empty), e.g. [1e-18, 5e-18].
            EXPECT_LT(hi - lo, 2e-16) << schema.dump() << " refused: " << e.what();
            ++refused;
            continue;
        }
        std::vector<std::string> probes = {shortest(lo), shortest(hi), shortest((lo + hi) / 2), shortest(lo - 1e-9),
                                           shortest(hi + 1e-9), "0", "-0.5", "1", "0.0000000000000001"};
        for (int k = 0; k < 20; ++k) probes.push_back(shortest(lo + (hi - lo) * double(rng() % 1001) / 1000.0));
        for (const std::string& text : probes) {
            if (text.size() > 40) continue;
            const double x = std::strtod(text.c_str(), nullptr);
            const bool in = (x_lo ? x > lo : x >= lo) && (x_hi ? x < hi : x <= hi);
            if (test::grammar_accepts(g, text)) {
                ++accepted;
                EXPECT_TRUE(in) << schema.dump() << " accepted " << text;
            }
        }
        const std::string lo_text = shortest(lo), hi_text = shortest(hi);
        const auto fraction_digits = [](const std::string& t) { return t.find('.') == std::string::npos ? 0 : t.size() - t.find('.') - 1; };
        if (fraction_digits(lo_text) <= 16 && lo_text.size() < 34) {
            EXPECT_EQ(test::grammar_accepts(g, lo_text), !x_lo) << schema.dump();
        }
        if (fraction_digits(hi_text) <= 16 && hi_text.size() < 34) {
            EXPECT_EQ(test::grammar_accepts(g, hi_text), !x_hi) << schema.dump();
        }
    }
    EXPECT_GT(accepted, 100);
    EXPECT_LT(refused, 10);

    auto positive = Grammar::from_json_schema(ojson::parse(R"({"type": "number", "exclusiveMinimum": 0})"));
    for (const char* zero : {"0", "0.0", "0.0000000000000000", "-0", "-0.5"}) EXPECT_FALSE(test::grammar_accepts(positive, zero)) << zero;
    for (const char* pos : {"0.0000000000000001", "3", "12.5"}) EXPECT_TRUE(test::grammar_accepts(positive, pos)) << pos;
    auto unit = Grammar::from_json_schema(ojson::parse(R"({"type": "number", "minimum": 0, "maximum": 1})"));
    for (const char* in : {"0", "0.5", "1", "1.0000", "0.9999999999999999"}) EXPECT_TRUE(test::grammar_accepts(unit, in)) << in;
    for (const char* out : {"-0.1", "1.0000000000000001", "2", "1e0"}) EXPECT_FALSE(test::grammar_accepts(unit, out)) << out;
}

// Per-token masking time with a schema grammar: a typical output, tokenized by the
// vocabulary itself, masked before every token (a fresh matcher: the first visit of
// each state pays the trie walk).
static void measure_masking(const Tokenizer& tok, const char* label) {
    auto g = Grammar::from_json_schema(ojson::parse(kSchema));
    const std::string text = R"({"name": "Ada Lovelace", "age": 36, "ratio": 0.25, "score": 99.5, "active": true, "role": "admin",
 "tags": ["math", "poetry"], "address": {"street": "12 St James's Sq", "zip": "12345-6789"}, "nickname": null,
 "quote": "\"That brain\"", "matrix": [[1, 2], [3]], "kind": "x", "day": "1815-12-10", "code": "AB-123"})";
    const std::vector<int32_t> ids = tok.encode(text, false);
    std::vector<float> logits(size_t(tok.n_vocab()));
    double total = 0, worst = 0;
    int n = 0;
    GrammarMatcher m(g, tok);
    for (size_t i = 0; i < ids.size(); ++i) {
        int32_t id = ids[i];
        // The SPM encoder's leading space is not part of the output.
        if (i == 0 && tok.token_to_piece(id) == " {") id = tok.find_token("{");
        if (i == 0 && tok.token_to_piece(id) == " ") continue;
        if (tok.is_control(id)) continue;  // BOS
        std::fill(logits.begin(), logits.end(), 0.0f);
        const double t0 = pensieve::test::thread_cpu_seconds();
        m.mask_logits(logits.data());
        const double dt = pensieve::test::thread_cpu_seconds() - t0;
        total += dt;
        worst = std::max(worst, dt);
        ++n;
        ASSERT_NE(logits[size_t(id)], -INFINITY) << "token " << i << " '" << tok.token_to_piece(id) << "'";
        m.accept_token(id);
    }
    EXPECT_TRUE(m.is_complete());
    std::printf("[ stats    ] %s (%d tokens): schema walk of %d tokens: mask %.3f ms/token avg, %.3f ms worst; %zu DFA states\n",
                label, tok.n_vocab(), n, 1e3 * total / n, 1e3 * worst, m.n_states());
    if (pensieve::test::kTimingBoundsApply) {
        EXPECT_LT(total / n, 0.010);  // typical is well under 1 ms
    }
}

TEST(JsonSchema, MaskingSpeedOnLlamaVocab) { measure_masking(llama_vocab(), "llama SPM"); }

TEST(JsonSchema, MaskingSpeedOnByteLevelBpeVocab) {
    // 100k-token byte-level BPE (pieces are raw bytes, many end mid-character).
    auto file = GgufFile::open(shared_dir() + "/vocab/ggml-vocab-deepseek-llm.gguf");
    auto tok = Tokenizer::from_gguf(*file);
    auto t0 = std::chrono::steady_clock::now();
    GrammarMatcher warm(Grammar::any_json(), *tok);  // builds the token trie once
    std::printf("[ stats    ] token trie for %d tokens built in %.1f ms\n", tok->n_vocab(),
                1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    measure_masking(*tok, "deepseek-llm BPE");
}
