// Chat templates: our Jinja interpreter against Python's Jinja2.
//
//  * Golden: every real template in ../shared/templates × every conversation in
//    tests/chat/conversations, with and without add_generation_prompt, must render
//    byte-for-byte like tests/chat/expected/<template>__<conversation>__agp{0,1}.txt, which
//    tests/chat/render_jinja2.py (the oracle: transformers' Jinja2 setup) wrote; where Jinja2
//    raised (.err files), we must raise too (a template's raise_exception message verbatim;
//    for Jinja2's own errors, naming the same things). The templates are discovered: a new
//    file in ../shared/templates gets a test of its own, which fails, naming the command to
//    run, until the oracle has written its outputs (they are generated, never hand-edited).
//  * Language: tests/chat/language_cases.json (made by make_language_cases.py with Jinja2):
//    one small template per construct, filter, test and method.
//  * Live: when /usr/bin/python3 has jinja2 (scripts/setup.sh installs it), both oracles are
//    re-run now and compared directly, so stale expected files cannot hide a difference.
//  * Errors with line numbers, options, GGUF lookup, built-ins, speed, the CLI command.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "chat/chat_format.h"
#include "chat/chat_template.h"
#include "chat/jinja_interp.h"
#include "gguf/gguf.h"
#include "run_pensieve.h"
#include "test_paths.h"
#include "timing.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace {

namespace fs = std::filesystem;
using pensieve::ChatTemplate;
using pensieve::ChatTemplateOptions;
using ojson = nlohmann::ordered_json;

const fs::path kChatDir = fs::path(PENSIEVE_SOURCE_DIR) / "tests" / "chat";
const char* kPython = "/usr/bin/python3";

fs::path templates_dir() { return fs::path(shared_dir()) / "templates"; }

std::string slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// The oracle's strftime_now() date: 2024-09-15 10:30:00 (a Sunday).
std::tm fixed_now() {
    std::tm t{};
    t.tm_year = 2024 - 1900;
    t.tm_mon = 8;
    t.tm_mday = 15;
    t.tm_hour = 10;
    t.tm_min = 30;
    t.tm_wday = 0;
    t.tm_yday = 258;
    return t;
}

ChatTemplateOptions hf_options() {
    ChatTemplateOptions o;
    o.now = fixed_now;
    return o;
}

std::vector<std::string> names_in(const fs::path& dir, const std::string& ext) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().extension() == ext) names.push_back(e.path().stem().string());
    std::sort(names.begin(), names.end());
    return names;
}

struct Conversation {
    std::string name;
    ojson doc;
};

std::vector<Conversation> conversations() {
    std::vector<Conversation> out;
    for (const std::string& n : names_in(kChatDir / "conversations", ".json")) {
        ojson doc = ojson::parse(slurp(kChatDir / "conversations" / (n + ".json")));
        if (doc.is_array()) doc = ojson{{"messages", doc}};
        out.push_back({n, std::move(doc)});
    }
    return out;
}

// The rendering, or "\x01ERROR: <message>" when the template raised.
std::string render(const ChatTemplate& t, const ojson& conv, bool agp) {
    try {
        return t.render(conv.at("messages"), conv.value("tools", ojson()), agp,
                        conv.value("extra_context", ojson::object()));
    } catch (const pensieve::Error& e) {
        return std::string("\x01" "ERROR: ") + e.what();
    }
}

bool is_error(const std::string& r) { return r.rfind("\x01" "ERROR: ", 0) == 0; }

const char* kRegenerate =
    "regenerate the oracle's outputs (never edit them by hand): /usr/bin/python3 tests/chat/render_jinja2.py "
    "--golden ../shared/templates tests/chat/conversations tests/chat/expected";

// The names Jinja2 quotes in an error message ('from_json', 'NoneType', ...).
std::vector<std::string> quoted_names(const std::string& msg) {
    std::vector<std::string> names;
    for (size_t open = msg.find('\''); open != std::string::npos;) {
        const size_t close = msg.find('\'', open + 1);
        if (close == std::string::npos) break;
        names.push_back(msg.substr(open, close - open + 1));
        open = msg.find('\'', close + 1);
    }
    return names;
}

// Where Jinja2 raised, we must raise too. A template's own message (raise_exception, which
// Jinja2 reports as "TemplateError: <message>") reaches users verbatim, so it must match
// exactly; for Jinja2's internal errors ("TypeError: ...", "TemplateRuntimeError: No filter
// named 'x' found.") the wording is Python's, and we only require ours to name the same
// things (every name Jinja2 quotes).
bool same_error(const std::string& got, const std::string& py, const std::string& label) {
    if (!is_error(got)) {
        ADD_FAILURE() << label << ": Jinja2 raised (" << py << ") but we rendered:\n" << got;
        return false;
    }
    const size_t colon = py.find(": ");
    const std::string py_type = colon == std::string::npos ? "" : py.substr(0, colon);
    const std::string py_msg = colon == std::string::npos ? py : py.substr(colon + 2);
    std::vector<std::string> must_contain = quoted_names(py_msg);
    if (py_type == "TemplateError") must_contain = {py_msg};
    for (const std::string& s : must_contain)
        if (got.find(s) == std::string::npos) {
            ADD_FAILURE() << label << ": Jinja2: " << py << "\nours: " << got;
            return false;
        }
    return true;
}

// Compares a rendering with the oracle's files <base>.txt / <base>.err. Returns true when it
// matched; a missing file fails, naming the command that writes it.
bool matches_oracle(const std::string& got, const fs::path& base) {
    const std::string label = base.filename().string();
    if (fs::exists(base.string() + ".err")) {
        std::string py = slurp(base.string() + ".err");
        while (!py.empty() && py.back() == '\n') py.pop_back();
        return same_error(got, py, label);
    }
    if (!fs::exists(base.string() + ".txt")) {
        ADD_FAILURE() << "no oracle output " << base << ".txt/.err: " << kRegenerate;
        return false;
    }
    const std::string want = slurp(base.string() + ".txt");
    if (got == want) return true;
    size_t i = 0;
    while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
    const size_t from = i > 60 ? i - 60 : 0;
    ADD_FAILURE() << label << ": differs from Jinja2 at byte " << i << "\n  Jinja2: "
                  << testing::PrintToString(want.substr(from, 160)) << "\n  ours:   "
                  << testing::PrintToString(got.substr(from, 160));
    return false;
}

// Renders every conversation with and without add_generation_prompt and compares each with
// the oracle's files in expected_dir. A template with no oracle output yet fails (once),
// saying how to write them: it must never pass unchecked.
void expect_template_matches_oracle(const std::string& name, const fs::path& expected_dir) {
    const std::vector<Conversation> convs = conversations();
    ASSERT_FALSE(convs.empty());
    const fs::path first = expected_dir / (name + "__" + convs.front().name + "__agp0");
    ASSERT_TRUE(fs::exists(first.string() + ".txt") || fs::exists(first.string() + ".err"))
        << "template " << name << " has no oracle outputs in " << expected_dir << ": " << kRegenerate;
    ChatTemplate t(slurp(templates_dir() / (name + ".jinja")), "<s>", "</s>", hf_options());
    int matched = 0, total = 0;
    for (const Conversation& c : convs) {
        for (int agp = 0; agp < 2; ++agp) {
            ++total;
            const fs::path base = expected_dir / (name + "__" + c.name + "__agp" + std::to_string(agp));
            matched += matches_oracle(render(t, c.doc, agp), base);
        }
    }
    EXPECT_EQ(matched, total) << name;
}

// ---------------------------------------------------------------------------------------------
// Golden: real templates × conversations

class RealTemplate : public testing::TestWithParam<std::string> {};

TEST_P(RealTemplate, RendersLikeJinja2) {
    expect_template_matches_oracle(GetParam(), kChatDir / "expected");
}

std::vector<std::string> real_template_names() { return names_in(templates_dir(), ".jinja"); }

std::string param_name(const testing::TestParamInfo<std::string>& info) {
    std::string s;
    for (char c : info.param) s += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    return s;
}

INSTANTIATE_TEST_SUITE_P(Golden, RealTemplate, testing::ValuesIn(real_template_names()), param_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RealTemplate);

// ---------------------------------------------------------------------------------------------
// Language cases (each construct), checked against Jinja2's own output

std::vector<std::pair<std::string, pensieve::jinja::Value>> context_of(const ojson& ctx) {
    std::vector<std::pair<std::string, pensieve::jinja::Value>> out;
    for (const auto& [k, v] : ctx.items()) out.emplace_back(k, pensieve::jinja::from_json(v));
    return out;
}

// Renders one language case the way its "env" says.
std::string render_case(const ojson& c) {
    pensieve::jinja::LexOptions lex;
    const bool hf = c.at("env") == "hf";
    lex.trim_blocks = lex.lstrip_blocks = hf;
    pensieve::jinja::RenderOptions ro;
    ro.now = fixed_now;
    ro.hf_tojson = hf;
    try {
        pensieve::jinja::Template t(c.at("template").get<std::string>(), lex, ro);
        return t.render(context_of(c.at("context")));
    } catch (const pensieve::Error& e) {
        return std::string("\x01" "ERROR: ") + e.what();
    }
}

void check_language_cases(const ojson& cases) {
    ASSERT_TRUE(cases.is_array());
    ASSERT_GT(cases.size(), 50u);
    for (const ojson& c : cases) {
        const std::string got = render_case(c);
        const std::string label = c.at("env").get<std::string>() + ": " + c.at("template").get<std::string>();
        if (c.contains("error")) {
            EXPECT_TRUE(is_error(got)) << label << "\n  Jinja2 raised " << c["error"] << " but we gave: " << got;
        } else {
            EXPECT_EQ(got, c.at("expected").get<std::string>()) << label;
        }
    }
}

TEST(Jinja, LanguageCasesMatchJinja2) {
    check_language_cases(ojson::parse(slurp(kChatDir / "language_cases.json")));
}

// ---------------------------------------------------------------------------------------------
// Live oracle: re-run Python's Jinja2 now and compare (skipped when it is not installed)

bool python_has_jinja2() {
    const std::string cmd = std::string(kPython) + " -c 'import jinja2' >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
}

TEST(ChatTemplateLive, RerunJinja2Oracle) {
    if (!python_has_jinja2()) GTEST_SKIP() << kPython << " has no jinja2";
    const fs::path tmp = fs::temp_directory_path() / ("pensieve_chat_oracle_" + std::to_string(::getpid()));
    fs::create_directories(tmp / "expected");
    const std::string cmd = std::string(kPython) + " " + (kChatDir / "render_jinja2.py").string() + " --golden " +
                            templates_dir().string() + " " + (kChatDir / "conversations").string() + " " +
                            (tmp / "expected").string() + " 2>/dev/null && " + kPython + " " +
                            (kChatDir / "make_language_cases.py").string() + " " + (tmp / "lang.json").string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

    for (const std::string& name : real_template_names()) expect_template_matches_oracle(name, tmp / "expected");
    check_language_cases(ojson::parse(slurp(tmp / "lang.json")));
    fs::remove_all(tmp);
}

// ---------------------------------------------------------------------------------------------
// Errors name the template line

std::string error_of(const std::string& source, const ojson& ctx = ojson::object()) {
    try {
        pensieve::jinja::Template t(source);
        t.render(context_of(ctx));
    } catch (const pensieve::Error& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(JinjaErrors, SyntaxErrorsHaveLineNumbers) {
    EXPECT_NE(error_of("a\nb\n{% if x %}\n{% endfor %}").find("line 4"), std::string::npos);
    EXPECT_NE(error_of("a\n{% for x in y %}\nbody\n").find("line 2"), std::string::npos);  // never closed
    EXPECT_NE(error_of("\n\n{{ 1 + }}").find("line 3"), std::string::npos);
    EXPECT_NE(error_of("{{ 'abc }}").find("syntax error at line 1"), std::string::npos);
    EXPECT_NE(error_of("x\n{% include 'other.jinja' %}").find("unsupported tag 'include'"), std::string::npos);
    EXPECT_NE(error_of("{{ (1 }}").find("line 1"), std::string::npos);
    EXPECT_NE(error_of("{# never closed").find("comment"), std::string::npos);
    EXPECT_NE(error_of("{% set %}").find("syntax error"), std::string::npos);
}

TEST(JinjaErrors, RuntimeErrorsHaveLineNumbers) {
    std::string e = error_of("ok\n{{ 'a' + 1 }}");
    EXPECT_NE(e.find("line 2"), std::string::npos) << e;
    EXPECT_NE(e.find("can only concatenate str"), std::string::npos) << e;
    e = error_of("{% if true %}\n\n{{ raise_exception('Roles must alternate') }}{% endif %}");
    EXPECT_NE(e.find("line 3"), std::string::npos) << e;
    EXPECT_NE(e.find("Roles must alternate"), std::string::npos) << e;
    e = error_of("{% macro m() %}\n{{ nope.attr }}\n{% endmacro %}\n{{ m() }}");
    EXPECT_NE(e.find("line 2"), std::string::npos) << e;
    EXPECT_NE(e.find("'nope' is undefined"), std::string::npos) << e;
    EXPECT_NE(error_of("{{ x|nosuchfilter }}").find("no filter named 'nosuchfilter'"), std::string::npos);
    EXPECT_NE(error_of("{{ 1 is nosuchtest }}").find("no test named"), std::string::npos);
    EXPECT_NE(error_of("{{ [1]|map('upper')|tojson }}").find("not JSON serializable"), std::string::npos);
    EXPECT_NE(error_of("{{ x.append(1) }}", {{"x", ojson::array()}}).find("unsafe"), std::string::npos);
    EXPECT_NE(error_of("{% set n = 1 %}{% set n.a = 2 %}").find("non-namespace"), std::string::npos);
    EXPECT_NE(error_of("{% for x in none %}{% endfor %}").find("not iterable"), std::string::npos);
    EXPECT_NE(error_of("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}").find("recursion"), std::string::npos);
}

TEST(JinjaErrors, ChatTemplateErrorsArePensieveErrors) {
    EXPECT_THROW(ChatTemplate("{% if %}", "", ""), pensieve::Error);
    ChatTemplate t("{{ raise_exception('no system role') }}", "", "");
    EXPECT_THROW(t.render(ojson::array(), ojson(), false), pensieve::Error);
    EXPECT_THROW(t.render(ojson::object(), ojson(), false), pensieve::Error);  // messages must be a list
}

// ---------------------------------------------------------------------------------------------
// Options and API

TEST(ChatTemplateApi, ContextVariables) {
    ChatTemplate t("{{ bos_token }}|{{ eos_token }}|{{ tools is none }}|{{ documents is none }}|"
                   "{{ add_generation_prompt }}|{{ messages|length }}|{{ date_string }}",
                   "<B>", "<E>");
    EXPECT_EQ(t.render(ojson::array({{{"role", "user"}, {"content", "x"}}}), ojson(), true,
                       {{"date_string", "1 Jan 2025"}}),
              "<B>|<E>|True|True|True|1|1 Jan 2025");
    EXPECT_EQ(t.render(ojson::array(), ojson::array(), false, {{"bos_token", "override"}}),
              "override|<E>|False|True|False|0|");
}

TEST(ChatTemplateApi, KeyOrderIsKept) {
    ChatTemplate t("{{ tools[0]|tojson }}", "", "");
    const ojson tools = ojson::parse(R"([{"zeta": 1, "alpha": {"b": 2, "a": 1}}])");
    EXPECT_EQ(t.render(ojson::array(), tools, false), R"({"zeta": 1, "alpha": {"b": 2, "a": 1}})");
}

TEST(ChatTemplateApi, Jinja2DefaultOptions) {
    ChatTemplateOptions o;
    o.trim_blocks = o.lstrip_blocks = false;
    o.hf_tojson = false;
    ChatTemplate t("  {% if true %}\nx\n  {% endif %}\n{{ {'b': \"<'&>\", 'a': 'é'}|tojson }}", "", "", o);
    EXPECT_EQ(t.render(ojson::array(), ojson(), false),
              "  \nx\n  \n{\"a\": \"\\u00e9\", \"b\": \"\\u003c\\u0027\\u0026\\u003e\"}");
    o = {};
    o.keep_trailing_newline = true;
    EXPECT_EQ(ChatTemplate("a\n", "", "", o).render(ojson::array(), ojson(), false), "a\n");
    EXPECT_EQ(ChatTemplate("a\n", "", "").render(ojson::array(), ojson(), false), "a");
}

TEST(ChatTemplateApi, StrftimeNowIsInjectable) {
    ChatTemplate t("{{ strftime_now('%d %b %Y') }}", "", "", hf_options());
    EXPECT_EQ(t.render(ojson::array(), ojson(), false), "15 Sep 2024");
    ChatTemplate now("{{ strftime_now('%Y') }}", "", "");
    EXPECT_EQ(now.render(ojson::array(), ojson(), false).size(), 4u);
}

TEST(ChatTemplateApi, Builtins) {
    const auto names = pensieve::builtin_chat_template_names();
    EXPECT_GE(names.size(), 6u);
    const ojson msgs = ojson::parse(R"([{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"}])");
    for (const std::string& n : names) {
        auto src = pensieve::builtin_chat_template(n);
        ASSERT_TRUE(src) << n;
        ChatTemplate t(*src, "<s>", "</s>");
        const std::string out = t.render(msgs, ojson(), true);
        EXPECT_NE(out.find("Bye"), std::string::npos) << n << ": " << out;
        EXPECT_NE(out.find("Be brief."), std::string::npos) << n << ": " << out;
    }
    EXPECT_FALSE(pensieve::builtin_chat_template("nope"));
    ChatTemplate chatml(*pensieve::builtin_chat_template("chatml"), "", "");
    EXPECT_EQ(chatml.render(ojson::array({{{"role", "user"}, {"content", "Hi"}}}), ojson(), true),
              "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    ChatTemplate llama3(*pensieve::builtin_chat_template("llama3"), "<|begin_of_text|>", "");
    EXPECT_EQ(llama3.render(ojson::array({{{"role", "user"}, {"content", " Hi "}}}), ojson(), true),
              "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateApi, FromGguf) {
    pensieve::GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "hi"});
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_string("tokenizer.chat_template", "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}");
    w.set_string("tokenizer.chat_template.tool_use", "tools:{{ tools|length }}");
    const std::vector<uint8_t> bytes = w.to_bytes();
    auto g = pensieve::GgufFile::parse(bytes.data(), bytes.size());
    auto src = pensieve::gguf_chat_template(*g);
    ASSERT_TRUE(src);
    ChatTemplate t(*src, pensieve::gguf_bos_token(*g), pensieve::gguf_eos_token(*g));
    EXPECT_EQ(t.render(ojson::array({{{"role", "user"}, {"content", "hey"}}}), ojson(), false), "<s>hey</s>");
    EXPECT_EQ(pensieve::gguf_chat_template_names(*g), std::vector<std::string>{"tool_use"});
    EXPECT_EQ(*pensieve::gguf_chat_template(*g, "tool_use"), "tools:{{ tools|length }}");
    EXPECT_FALSE(pensieve::gguf_chat_template(*g, "rag"));

    pensieve::GgufWriter bare;
    bare.set_string("general.architecture", "llama");
    const std::vector<uint8_t> b2 = bare.to_bytes();
    auto g2 = pensieve::GgufFile::parse(b2.data(), b2.size());
    EXPECT_FALSE(pensieve::gguf_chat_template(*g2));
    EXPECT_EQ(pensieve::gguf_bos_token(*g2), "");
}

// ---------------------------------------------------------------------------------------------
// Speed: a 50-turn conversation renders in well under a millisecond

TEST(ChatTemplatePerf, FiftyTurns) {
    ojson msgs = ojson::array();
    msgs.push_back({{"role", "system"}, {"content", "You are a helpful assistant."}});
    for (int i = 0; i < 25; ++i) {
        msgs.push_back({{"role", "user"}, {"content", "Question number " + std::to_string(i) + ": tell me more."}});
        msgs.push_back({{"role", "assistant"}, {"content", std::string(400, 'x') + " answer " + std::to_string(i)}});
    }
    for (const char* name : {"meta-llama-Llama-3.1-8B-Instruct", "Qwen-Qwen2.5-7B-Instruct",
                             "mistralai-Mistral-Nemo-Instruct-2407"}) {
        const fs::path file = templates_dir() / (std::string(name) + ".jinja");
        if (!fs::exists(file)) continue;
        ChatTemplate t(slurp(file), "<s>", "</s>", hf_options());
        const std::string first = t.render(msgs, ojson(), true);
        ASSERT_GT(first.size(), 10000u);
        const int reps = 200;
        const double t0 = pensieve::test::thread_cpu_seconds();
        size_t total = 0;
        for (int r = 0; r < reps; ++r) total += t.render(msgs, ojson(), true).size();
        const double us = 1e6 * (pensieve::test::thread_cpu_seconds() - t0) / reps;
        EXPECT_EQ(total, first.size() * reps);
        // Typically ~100-200 us of CPU.
        if (pensieve::test::kTimingBoundsApply) {
            EXPECT_LT(us, 5000.0) << name;
        }
        std::printf("[ perf ] %s: 50 turns in %.0f us\n", name, us);
    }
}

// ---------------------------------------------------------------------------------------------
// `pensieve template` (needs the built binary)

std::string binary() { return pensieve_binary(); }

std::pair<int, std::string> run(const std::string& args) {
    CommandResult r = run_pensieve(args, /*merge_stderr=*/true);
    return {r.status, r.out};
}

TEST(TemplateCommand, PrintsTheRendering) {
    if (!fs::exists(binary())) GTEST_SKIP() << "no binary " << binary();
    const std::string tmpl = (templates_dir() / "Qwen-Qwen2.5-7B-Instruct.jinja").string();
    if (!fs::exists(tmpl)) GTEST_SKIP();
    if (run("template --help").first != 0) GTEST_SKIP() << "binary without the template command";
    const std::string conv = (kChatDir / "conversations" / "tool_call_string_args.json").string();
    auto [status, out] = run("template --template-file " + tmpl + " --messages " + conv +
                             " --add-generation-prompt --bos '<s>' --eos '</s>'");
    EXPECT_EQ(status, 0) << out;
    EXPECT_EQ(out, slurp(kChatDir / "expected" / "Qwen-Qwen2.5-7B-Instruct__tool_call_string_args__agp1.txt"));

    auto [st2, err] = run("template --builtin nosuch --messages " + conv);
    EXPECT_NE(st2, 0);
    EXPECT_NE(err.find("unknown built-in"), std::string::npos) << err;
    auto [st3, out3] = run("template --builtin chatml --messages " + conv);
    EXPECT_EQ(st3, 0) << out3;
    EXPECT_NE(out3.find("<|im_start|>user\nWhat's the weather in Paris?<|im_end|>"), std::string::npos) << out3;
}

// `pensieve template -m MODEL` prints the server's prompt: the same ChatFormatter (for a
// model without a template, the server's built-in ChatML with tools), not the raw template.
TEST(TemplateCommand, PrintsWhatTheServerRenders) {
    const std::string model = shared_dir() + "/models/stories260K.gguf";
    if (!fs::exists(binary()) || !fs::exists(model)) GTEST_SKIP();
    const fs::path conv = kChatDir / "conversations" / "tool_call_string_args.json";
    const CommandResult r =
        run_pensieve("template -m " + model + " --messages " + conv.string() + " --add-generation-prompt");
    const std::string& out = r.out;
    ASSERT_EQ(r.status, 0) << out;

    auto gguf = pensieve::GgufFile::open(model);
    auto tok = pensieve::Tokenizer::from_gguf(*gguf);
    const auto server = pensieve::ChatFormatter::for_model(*gguf, *tok, "");
    const ojson doc = ojson::parse(slurp(conv));
    const std::string want = server.render(doc["messages"], doc.value("tools", ojson()), true);
    EXPECT_EQ(out, want);
    EXPECT_NE(out.find("<tools>"), std::string::npos) << out;  // the built-in template's tool section
}

}  // namespace
