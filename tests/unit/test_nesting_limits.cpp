// Hostile nesting never crashes. Every recursive reader of outside input (request JSON,
// chat-template values and syntax, JSON schemas, regex patterns, GBNF grammars, the
// grammar matcher's stacks) stops at kMaxNesting (util/nesting.h) with a clear error,
// and input exactly at the limit still works. Before these limits, each "hostile" case
// below overflowed the stack (one 20-600 KB request killed `pensieve serve`).
#include <gtest/gtest.h>

#include <csignal>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "engine/grammar.h"
#include "engine/grammar_matcher.h"
#include "engine/json_schema.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "server/http_server.h"
#include "grammar_checks.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/json_text.h"
#include "util/nesting.h"
#include "util/thread_pool.h"

namespace pensieve {
namespace {

using ojson = nlohmann::ordered_json;

std::string repeat(const std::string& s, int n) {
    std::string out;
    out.reserve(s.size() * size_t(n));
    for (int i = 0; i < n; ++i) out += s;
    return out;
}

std::string brackets(int n) { return repeat("[", n) + repeat("]", n); }

// {"type": "object", "properties": {"a": ...}} n levels deep around a string schema, as text.
std::string object_schema(int n) {
    return repeat(R"({"type": "object", "properties": {"a": )", n) + R"({"type": "string"})" +
           repeat(R"(}, "required": ["a"]})", n);
}
std::string items_schema(int n) {
    return repeat(R"({"type": "array", "minItems": 1, "items": )", n) + R"({"type": "integer"})" + repeat("}", n);
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

testing::AssertionResult error_has(const std::function<void()>& f, const std::string& needle) {
    const std::string err = error_of(f);
    if (err.find(needle) != std::string::npos) return testing::AssertionSuccess();
    return testing::AssertionFailure() << "the error \"" << err.substr(0, 300) << "\" does not say \"" << needle << "\"";
}

using test::llama_vocab;

using test::grammar_accepts;

// ------------------------------------------------------------------------------------
// JSON text

TEST(NestingLimit, JsonTextAtTheLimitParsesOnePastIsRefused) {
    EXPECT_NO_THROW(parse_json_text(brackets(kMaxNesting)));
    try {
        parse_json_text(R"({"a": {"b": )" + brackets(kMaxNesting - 1) + "}}");
        FAIL() << "nesting past the limit was accepted";
    } catch (const JsonTextError& e) {
        EXPECT_TRUE(e.too_deep());
        EXPECT_EQ(e.path(), "a.b");
        EXPECT_EQ(e.top_key(), "a");
    }
    EXPECT_TRUE(error_has([&] { parse_json_text(brackets(300000)); }, "nested deeper than 128"));
    EXPECT_FALSE(try_parse_json_text(brackets(kMaxNesting + 1)).has_value());
}

// ------------------------------------------------------------------------------------
// JSON schema and pattern -> grammar

TEST(NestingLimit, SchemaAtTheLimitWorksOnePastIsRefused) {
    // kMaxNesting levels of subschemas (the root counts), as objects and as arrays.
    auto g = Grammar::from_json_schema(ojson::parse(object_schema(kMaxNesting - 1)));
    EXPECT_TRUE(grammar_accepts(g, repeat(R"({"a": )", kMaxNesting - 1) + R"("x")" + repeat("}", kMaxNesting - 1)));
    EXPECT_FALSE(grammar_accepts(g, repeat(R"({"a": )", kMaxNesting - 2) + R"("x")" + repeat("}", kMaxNesting - 2)));
    auto items = Grammar::from_json_schema(ojson::parse(items_schema(kMaxNesting - 1)));
    EXPECT_TRUE(grammar_accepts(items, repeat("[", kMaxNesting - 1) + "7" + repeat("]", kMaxNesting - 1)));

    EXPECT_TRUE(error_has([&] { Grammar::from_json_schema(ojson::parse(object_schema(kMaxNesting))); }, "nested deeper than 128"));
    EXPECT_TRUE(error_has([&] { Grammar::from_json_schema(ojson::parse(items_schema(kMaxNesting))); }, "nested deeper than 128"));
}

TEST(NestingLimit, SchemasDeeperThanThirtyLevelsGetDistinctRuleNames) {
    // 35 levels used to fail with "rule ... is defined twice": the grammar compiler's
    // helper rules took names the schema converter's rules defined further down.
    for (int depth : {30, 35, 60, 100}) {
        std::shared_ptr<const Grammar> g;
        ASSERT_NO_THROW(g = Grammar::from_json_schema(ojson::parse(items_schema(depth)))) << depth;
        EXPECT_TRUE(grammar_accepts(g, repeat("[", depth) + "1" + repeat("]", depth))) << depth;
        ASSERT_NO_THROW(g = Grammar::from_json_schema(ojson::parse(object_schema(depth)))) << depth;
        EXPECT_TRUE(grammar_accepts(g, repeat(R"({"a":)", depth) + R"("")" + repeat("}", depth))) << depth;
    }
    // The same clash written by hand: "r-1" is generated for r's group and also defined.
    EXPECT_NO_THROW(Grammar::parse_gbnf("root ::= r r-1\nr ::= (\"a\")*\nr-1 ::= \"b\"\n"));
}

TEST(NestingLimit, SchemaReferenceChainsAreBounded) {
    // Each $ref is a shallow JSON object, but following them recurses.
    ojson defs = ojson::object();
    for (int i = 0; i < 10000; ++i) defs[cat("d", i)] = {{"$ref", cat("#/$defs/d", i + 1)}};
    defs["d10000"] = {{"type", "integer"}};
    const ojson schema = {{"$defs", defs}, {"$ref", "#/$defs/d0"}};
    EXPECT_TRUE(error_has([&] { json_schema_to_gbnf(schema); }, "nested deeper than 128"));
}

TEST(NestingLimit, PatternGroupsAtTheLimitWorkOnePastIsRefused) {
    auto pattern_schema = [](int n) {
        return ojson{{"type", "string"}, {"pattern", "^" + repeat("(", n) + "a" + repeat(")", n) + "$"}};
    };
    auto g = Grammar::from_json_schema(pattern_schema(kMaxNesting));
    EXPECT_TRUE(grammar_accepts(g, "\"a\""));
    EXPECT_TRUE(error_has([&] { Grammar::from_json_schema(pattern_schema(kMaxNesting + 1)); }, "nested deeper than 128"));
    EXPECT_TRUE(error_has([&] { Grammar::from_json_schema(pattern_schema(200000)); }, "nested deeper than 128"));
}

// ------------------------------------------------------------------------------------
// GBNF and the matcher

TEST(NestingLimit, GbnfParenthesesAtTheLimitWorkOnePastIsRefused) {
    auto gbnf = [](int n) { return "root ::= " + repeat("(", n) + "\"a\"" + repeat(")", n) + "\n"; };
    EXPECT_TRUE(grammar_accepts(Grammar::parse_gbnf(gbnf(kMaxNesting)), "a"));
    EXPECT_TRUE(error_has([&] { Grammar::parse_gbnf(gbnf(kMaxNesting + 1)); }, "nested deeper than 128"));
    EXPECT_TRUE(error_has([&] { Grammar::parse_gbnf(gbnf(300000)); }, "nested deeper than 128"));
}

TEST(NestingLimit, LongRuleChainsCompileWithoutRecursion) {
    // r0 ::= r1 ... : the left-recursion check follows the whole chain.
    std::string text = "root ::= r0\n";
    const int n = 200000;
    for (int i = 0; i < n; ++i) text += cat("r", i, " ::= r", i + 1, "\n");
    text += cat("r", n, " ::= \"z\"\n");
    auto g = Grammar::parse_gbnf(text);
    EXPECT_TRUE(grammar_accepts(g, "z"));
}

TEST(NestingLimit, MatcherHandlesDeepStacksAndLongNullableChains) {
    // Output nesting is bounded only by max_tokens: 50000 open parentheses, each
    // opening 4 rules, make a stack 200000 deep, and its distance to completion
    // (which used to recurse down the stack) is still computed.
    auto parens = Grammar::parse_gbnf("root ::= \"(\" a \")\" | \"x\"\na ::= b \")\"\nb ::= c \")\"\nc ::= root \")\"\n");
    GrammarMatcher m(parens, llama_vocab());
    for (int i = 0; i < 50; ++i) m.accept_bytes(repeat("(", 1000));  // as tokens come, not all at once
    EXPECT_EQ(m.min_chars_to_complete(), 4 * 50000 + 1);

    // ("a"?){0,60000}: expanding the start state walks 60000 nullable rules.
    auto chain = Grammar::parse_gbnf("root ::= (\"a\"?){0,60000} \"b\"\n");
    EXPECT_TRUE(grammar_accepts(chain, "b"));
    EXPECT_FALSE(grammar_accepts(chain, "c"));
}

// ------------------------------------------------------------------------------------
// Chat templates: values and syntax

std::string render(const std::string& source, const ojson& tools = nullptr) {
    ChatTemplate t(source, "<s>", "</s>");
    return t.render(ojson::array({{{"role", "user"}, {"content", "hi"}}}), tools, false);
}

TEST(NestingLimit, TemplateValuesAtTheLimitRenderOnePastIsRefused) {
    // tools = [[[...]]]: a list counts as one level, so kMaxNesting brackets in all.
    EXPECT_EQ(render("{{ tools | tojson }}", ojson::parse(brackets(kMaxNesting))), brackets(kMaxNesting));
    EXPECT_EQ(render("{{ tools }}", ojson::parse(brackets(kMaxNesting))), brackets(kMaxNesting));
    EXPECT_TRUE(error_has([&] { render("{{ tools }}", ojson::parse(brackets(kMaxNesting + 1))); }, "nested deeper than 128"));
}

TEST(NestingLimit, TemplateSyntaxPastTheLimitIsASyntaxError) {
    const int n = 100000;  // each of these used to overflow the parser, the renderer or the freeing of the tree
    const std::pair<std::string, std::string> hostile[] = {
        {"parentheses", "{{ " + repeat("(", n) + "1" + repeat(")", n) + " }}"},
        {"list literals", "{{ " + brackets(n) + " }}"},
        {"a + b + ...", "{{ 1" + repeat(" + 1", n) + " }}"},
        {"a ~ b ~ ...", "{{ 'a'" + repeat(" ~ 'a'", n) + " }}"},
        {"a < b < ...", "{{ 1" + repeat(" < 1", n) + " }}"},
        {"attributes", "{{ x" + repeat(".a", n) + " }}"},
        {"filters", "{{ x" + repeat(" | trim", n) + " }}"},
        {"not", "{{ " + repeat("not ", n) + "x }}"},
        {"unary minus", "{{ " + repeat("- ", n) + "1 }}"},
        {"if-else", "{{ 1" + repeat(" if x else 1", n) + " }}"},
        {"blocks", repeat("{% if x %}", n) + repeat("{% endif %}", n)},
        {"elif", "{% if x %}" + repeat("{% elif x %}", n) + "{% endif %}"},
    };
    for (const auto& [what, source] : hostile) EXPECT_TRUE(error_has([&] { ChatTemplate(source, "", ""); }, "syntax error")) << what;

    // Well within the limit, the same shapes work.
    EXPECT_EQ(render("{{ " + repeat("(", 50) + "1" + repeat(")", 50) + " }}"), "1");
    EXPECT_EQ(render("{{ 1" + repeat(" + 1", 100) + " }}"), "101");
    EXPECT_EQ(render(repeat("{% if true %}", 60) + "x" + repeat("{% endif %}", 60)), "x");
    EXPECT_EQ(render("{% if false %}{% elif false %}" + repeat("{% elif false %}", 100) + "{% else %}y{% endif %}"), "y");
}

TEST(NestingLimit, TemplateBuiltDeepValuesAreFreedAndRefusedWhenPrinted) {
    // A loop wraps a list 100000 times: freeing it must not recurse.
    const std::string build =
        "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}";
    EXPECT_EQ(render(build + "done"), "done");
    EXPECT_TRUE(error_has([&] { render(build + "{{ ns.x }}"); }, "maximum recursion depth"));
    EXPECT_TRUE(error_has([&] { render(build + "{{ ns.x | tojson }}"); }, "maximum recursion depth"));
    EXPECT_TRUE(error_has([&] { render(build + "{{ ns.x == ns.x[0] }}"); }, "maximum recursion depth"));
    // A namespace holding itself.
    EXPECT_TRUE(error_has([&] { render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}"); }, "maximum recursion depth"));
    // Macros calling macros: bounded as a whole, not per template level (here each call
    // nests 100 list literals, so the evaluation depth limit is what stops it).
    EXPECT_TRUE(error_has([&] { render("{% macro f(n) %}{{ " + repeat("[", 100) + "f(n)" + repeat("]", 100) +
                                       " }}{% endmacro %}{{ f(1) }}"); }, "maximum recursion depth"));
    EXPECT_TRUE(error_has([&] { render("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"); }, "recursion"));
    EXPECT_EQ(render("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% else %}end{% endif %}{% endmacro %}{{ f(100) }}"),
              "end");
}

// ------------------------------------------------------------------------------------
// Requests to the server: 400 in the API's error shape, and the server lives on

struct TestServer {
    TestServer() {
        std::signal(SIGPIPE, SIG_IGN);
        model = load_model(shared_dir() + "/models/stories260K.gguf");
        tokenizer = Tokenizer::from_gguf(model->file());
        pool = std::make_unique<ThreadPool>(1);
        server::ServerOptions o;
        o.host = "127.0.0.1";
        o.port = 0;
        o.log_requests = false;
        o.n_ctx = 512;
        http = std::make_unique<server::HttpServer>(o);
        port = http->bind();
        http->start();
        http->set_model(*model, *tokenizer, *pool, "stories260K.gguf");
    }
    std::pair<int, ojson> post(const std::string& path, const std::string& body) const {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(60, 0);
        auto r = c.Post(path.c_str(), body, "application/json");
        if (!r) return {0, nullptr};
        return {r->status, ojson::parse(r->body, nullptr, false)};
    }
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<ThreadPool> pool;
    std::unique_ptr<server::HttpServer> http;
    int port = 0;
};

TestServer& test_server() {
    static TestServer s;
    return s;
}

const std::string kUser = R"({"role": "user", "content": "hi"})";

void expect_openai_400(const std::pair<int, ojson>& r, const std::string& needle, const std::string& param) {
    EXPECT_EQ(r.first, 400) << r.second.dump();
    ASSERT_TRUE(r.second.contains("error")) << r.second.dump();
    const ojson& e = r.second["error"];
    EXPECT_EQ(e["type"], "invalid_request_error");
    EXPECT_NE(e["message"].get<std::string>().find(needle), std::string::npos) << e.dump();
    EXPECT_EQ(e["param"], param) << e.dump();
}

TEST(HostileRequest, DeepNestingIs400InTheApiShape) {
    TestServer& s = test_server();
    const int n = 20000;
    const std::string deep_obj = repeat(R"({"a": )", n) + "1" + repeat("}", n);
    const std::string chat = "/v1/chat/completions";
    auto body = [&](const std::string& extra) { return R"({"max_tokens": 1, "messages": [)" + kUser + "]" + extra + "}"; };

    expect_openai_400(s.post(chat, body(R"(, "tools": [{"type": "function", "function": {"name": "f", "parameters": )" +
                                        object_schema(n) + "}}]")),
                      "nested deeper than 128", "tools");
    expect_openai_400(s.post(chat, body(R"(, "response_format": {"type": "json_schema", "json_schema": {"schema": )" +
                                        items_schema(n) + "}}")),
                      "nested deeper than 128", "response_format");
    expect_openai_400(s.post(chat, body(R"(, "response_format": {"type": "json_schema", "json_schema": {"schema": )"
                                        R"({"type": "string", "pattern": ")" + repeat("(", n) + "a" + repeat(")", n) +
                                        R"("}}})")),
                      "nested deeper than 128", "response_format");
    expect_openai_400(s.post(chat, body(R"(, "grammar": "root ::= )" + repeat("(", n) + R"(\"a\")" + repeat(")", n) + "\"")),
                      "nested deeper than 128", "grammar");
    // Assistant tool-call arguments, as an object and as a JSON string.
    auto with_call = [&](const std::string& args) {
        return R"({"max_tokens": 1, "messages": [)" + kUser +
               R"(, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": )" +
               args + R"(}}]}, {"role": "tool", "tool_call_id": "c", "content": "ok"}]})";
    };
    expect_openai_400(s.post(chat, with_call(deep_obj)), "nested deeper than 128", "messages");
    expect_openai_400(s.post(chat, with_call("\"" + repeat(R"({\"a\": )", n) + "1" + repeat("}", n) + "\"")),
                      "nested deeper than 128", "messages[1].tool_calls[0]");

    // Anthropic: tool_use input.
    auto r = s.post("/v1/messages", R"({"model": "m", "max_tokens": 1, "messages": [)" + kUser +
                                        R"(, {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": )" +
                                        deep_obj + R"(}]}, {"role": "user", "content": "x"}]})");
    EXPECT_EQ(r.first, 400);
    EXPECT_EQ(r.second["type"], "error");
    EXPECT_EQ(r.second["error"]["type"], "invalid_request_error");
    EXPECT_NE(r.second["error"]["message"].get<std::string>().find("nested deeper than 128"), std::string::npos);

    // A 600 KB body of brackets in a field nobody reads.
    expect_openai_400(s.post(chat, body(R"(, "x": )" + brackets(300000))), "nested deeper than 128", "x");

    // Still serving.
    EXPECT_EQ(s.post(chat, body("")).first, 200);
}

TEST(HostileRequest, GrammarTooAmbiguousToFollowIs400AndTheServerGoesOn) {
    // Each level doubles the stacks the matcher follows (see the GrammarMatcher test of
    // the same grammar); the output is forced to "aaaa...", so the bound is met whatever
    // the model samples. Before the bound, one such request stalled its slot for good.
    TestServer& s = test_server();
    std::string gbnf = "root ::= l0\n";
    for (int i = 0; i < 40; ++i) gbnf += cat("l", i, " ::= \"a\" l", i + 1, " \"b\" | \"a\" l", i + 1, " \"c\"\n");
    gbnf += "l40 ::= \"z\"\n";
    ojson req = {{"max_tokens", 100}, {"messages", ojson::array({ojson::parse(kUser)})}, {"grammar", gbnf}};
    auto r = s.post("/v1/chat/completions", req.dump());
    EXPECT_EQ(r.first, 400) << r.second.dump();
    EXPECT_EQ(r.second["error"]["type"], "invalid_request_error") << r.second.dump();
    EXPECT_NE(r.second["error"]["message"].get<std::string>().find("too ambiguous"), std::string::npos) << r.second.dump();

    // Streamed, the error arrives as an event in the API's shape.
    req["stream"] = true;
    httplib::Client c("127.0.0.1", s.port);
    c.set_read_timeout(60, 0);
    auto streamed = c.Post("/v1/chat/completions", req.dump(), "application/json");
    ASSERT_TRUE(streamed);
    EXPECT_NE(streamed->body.find("too ambiguous"), std::string::npos) << streamed->body;
    EXPECT_NE(streamed->body.find("invalid_request_error"), std::string::npos) << streamed->body;

    EXPECT_EQ(s.post("/v1/chat/completions", R"({"max_tokens": 4, "messages": [)" + kUser + "]}").first, 200);
}

TEST(HostileRequest, BodyNestedExactlyAtTheLimitIsServed) {
    TestServer& s = test_server();
    // The body object is level 1, so the field holds kMaxNesting - 1 levels.
    const std::string ok = R"({"max_tokens": 1, "messages": [)" + kUser + R"(], "x": )" + brackets(kMaxNesting - 1) + "}";
    EXPECT_EQ(s.post("/v1/chat/completions", ok).first, 200);
    const std::string past = R"({"max_tokens": 1, "messages": [)" + kUser + R"(], "x": )" + brackets(kMaxNesting) + "}";
    expect_openai_400(s.post("/v1/chat/completions", past), "nested deeper than 128", "x");
}

TEST(HostileRequest, NumbersOutOfRangeAre400NamingTheField) {
    TestServer& s = test_server();
    const std::string chat = "/v1/chat/completions";
    auto with = [&](const std::string& fields) { return R"({"messages": [)" + kUser + "], " + fields + "}"; };
    // Numbers a double cannot hold (nlohmann's out_of_range used to become a 500).
    expect_openai_400(s.post(chat, with(R"("temperature": 1e400)")), "temperature", "temperature");
    expect_openai_400(s.post(chat, with(R"("max_tokens": -1e999)")), "max_tokens", "max_tokens");
    expect_openai_400(s.post(chat, with(R"("response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "number", "minimum": 1e400}}})")),
                      "response_format.json_schema.schema.minimum", "response_format");
    expect_openai_400(s.post("/v1/completions", R"({"prompt": "x", "top_p": 2e308})"), "top_p", "top_p");
    // Representable, but outside each field's range.
    const std::pair<const char*, const char*> bad[] = {
        {R"("temperature": 2.5)", "temperature"},      {R"("temperature": -0.1)", "temperature"},
        {R"("top_p": 1.5)", "top_p"},                  {R"("top_k": -2)", "top_k"},
        {R"("top_k": 1e10)", "top_k"},                 {R"("min_p": -1)", "min_p"},
        {R"("presence_penalty": 3)", "presence_penalty"}, {R"("frequency_penalty": -2.5)", "frequency_penalty"},
        {R"("repeat_penalty": 0)", "repeat_penalty"},  {R"("repeat_last_n": -2)", "repeat_last_n"},
        {R"("n": 0)", "n"},                            {R"("n": 1000000)", "n"},
        {R"("max_tokens": 0)", "max_tokens"},          {R"("max_tokens": 1e300)", "max_tokens"},
        {R"("max_completion_tokens": 2.5)", "max_completion_tokens"},
        {R"("seed": 1e300)", "seed"},                  {R"("seed": 0.5)", "seed"},
        {R"("logprobs": true, "top_logprobs": 21)", "top_logprobs"},
        {R"("top_logprobs": -1)", "top_logprobs"},     {R"("logit_bias": {"1": 100})", "logit_bias"},
        {R"("max_tokens": 18446744073709551615)", "max_tokens"},
    };
    for (const auto& [field, name] : bad) expect_openai_400(s.post(chat, with(field)), name, name);
    // Larger than the context: a 400 from the scheduler, with no overflow on the way.
    auto r = s.post(chat, with(R"("max_tokens": 2147483647)"));
    EXPECT_EQ(r.first, 400) << r.second.dump();
    EXPECT_NE(r.second.dump().find("context"), std::string::npos) << r.second.dump();
    // Seeds: any integer; negative ones (and -1.0) mean "random".
    for (const char* seed : {"18446744073709551615", "-5", "-1.0", "42.0"})
        EXPECT_EQ(s.post(chat, with(std::string(R"("max_tokens": 1, "seed": )") + seed)).first, 200) << seed;

    // Anthropic: the same rule, in its error shape.
    auto messages = [&](const std::string& field) {
        return R"({"model": "m", "messages": [)" + kUser + "], " + field + "}";
    };
    for (const char* field : {R"("max_tokens": 1, "temperature": 1e400)", R"("max_tokens": 1, "temperature": 1.5)",
                              R"("max_tokens": 1, "top_k": -1)", R"("max_tokens": 1, "top_p": 7)", R"("max_tokens": 1e10)",
                              R"("max_tokens": 0)"}) {
        auto a = s.post("/v1/messages", messages(field));
        EXPECT_EQ(a.first, 400) << field << " " << a.second.dump();
        EXPECT_EQ(a.second["error"]["type"], "invalid_request_error") << field;
    }
}

}  // namespace
}  // namespace pensieve
