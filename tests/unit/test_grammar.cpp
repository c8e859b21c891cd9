// GBNF grammars and the token matcher, on the real 32k llama SPM vocabulary: parse
// errors with positions, exact allowed-token sets against an independent oracle, the
// completion / EOS logic, partial UTF-8 across tokens, special tokens, and random
// sampling that must always end in a sentence of the grammar.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <set>

#include "engine/grammar.h"
#include "engine/grammar_matcher.h"
#include "engine/sampler.h"
#include "gguf/gguf.h"
#include "grammar_checks.h"
#include "test_paths.h"
#include "timing.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

using namespace pensieve;

namespace {

using test::llama_vocab;

// The error message of parsing `text`, or "" if it parsed.
std::string parse_error(const std::string& text) {
    try {
        Grammar::parse_gbnf(text);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// Tokens left open by mask_logits (on zero logits).
std::set<int32_t> allowed_tokens(GrammarMatcher& m, int32_t n_vocab) {
    std::vector<float> logits(size_t(n_vocab), 0.0f);
    m.mask_logits(logits.data());
    std::set<int32_t> out;
    for (int32_t i = 0; i < n_vocab; ++i)
        if (logits[size_t(i)] != -INFINITY) out.insert(i);
    return out;
}

bool is_eog(const Tokenizer& tok, int32_t id) { return tok.is_end_of_generation(id) || id == tok.eos_id(); }

// Random logits -> mask -> sample at temperature 1 from the masked distribution; stops
// at EOG. Returns the output text; *ended says whether EOG came within the budget.
std::string random_run(const std::shared_ptr<const Grammar>& g, const Tokenizer& tok, uint64_t seed, int budget,
                       bool* ended) {
    GrammarMatcher m(g, tok);
    SamplingParams sp;
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sp.seed = seed;
    Sampler sampler(sp, tok.n_vocab());
    std::mt19937_64 rng(seed);
    std::vector<float> logits(size_t(tok.n_vocab()));
    std::string out;
    *ended = false;
    for (int step = 0; step < budget; ++step) {
        for (float& l : logits) l = float(rng() >> 40) * (6.0f / float(1 << 24));  // uniform [0, 6)
        m.mask_logits(logits.data());
        const int32_t t = sampler.sample(logits.data());
        if (is_eog(tok, t)) {
            EXPECT_TRUE(m.is_complete()) << out;
            m.accept_token(t);
            *ended = true;
            break;
        }
        m.accept_token(t);  // throws if the mask let through a token the grammar rejects
        out += tok.token_to_piece(t);
    }
    return out;
}

}  // namespace

TEST(GrammarParse, ErrorsCarryLineAndColumn) {
    struct Case { const char* text; const char* expect; };
    const Case cases[] = {
        {"root ::= \"abc", "line 1:10: unterminated string literal"},
        {"root ::= foo", "line 1:10: undefined rule 'foo'"},
        {"root ::= \"a\"\nroot ::= \"b\"", "line 2:1: rule 'root' is defined twice"},
        {"root = \"a\"", "line 1:6: expected '::='"},
        {"root ::= ( \"a\" ", "line 1:16: missing ')'"},
        {"root ::= [z-a]", "line 1:10: character range is reversed"},
        {"root ::= \"\\q\"", "line 1:11: unknown escape '\\q'"},
        {"root ::= \"a\"{3,1}", "line 1:13: repetition {3,1} has max < min"},
        {"root ::= *", "line 1:10: '*' has nothing to repeat"},
        {"root ::= [^\\x00-\\U0010FFFF]", "line 1:10: character class matches nothing"},
        {"root ::= \"a\" )", "line 1:14: unexpected ')'"},
        {"# comment\nroot ::= x\nx ::= x \"a\" | \"b\"", "line 3:1: rule 'x' is left-recursive"},
        {"root ::= a\na ::= \"x\" a", "line 2:1: rule 'a' can never finish"},
        {"root ::= ( \"a\"? )*", "is left-recursive"},
        {"item ::= \"a\"", "no rule named 'root'"},
        {"", "empty grammar"},
        {"root ::= \"\\x4\"", "line 1:14: expected 2 hex digits"},
        {"root ::= \"é\" bad!", "line 1:17: unexpected '!'"},  // columns count characters
    };
    for (const Case& c : cases) {
        const std::string err = parse_error(c.text);
        EXPECT_NE(err.find(c.expect), std::string::npos) << "grammar: " << c.text << "\nerror: " << err;
    }
}

TEST(GrammarParse, AcceptsLlamaCppSyntax) {
    // Comments, multi-line rules, groups, every repetition form, escapes, classes.
    const char* text = R"(# a json-ish grammar
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9]{1,}){0,1} ws
ws     ::= | " " | "\n" [ \t]{0,20}
alt    ::= "a"
         | "b"   # continued line
dot    ::= .+ "\u00e9" "\U0001F600"
)";
    auto g = Grammar::parse_gbnf(text);
    EXPECT_GT(g->n_rules(), 8);
    GrammarMatcher m(g, llama_vocab());
    m.accept_bytes("{\"a\": [1, 2.5e3, \"x\\n\\u00e9\"], \"b\": {}}");
    EXPECT_TRUE(m.is_complete());
    EXPECT_THROW(m.accept_bytes("}"), Error);
    // Another start rule.
    auto alt = Grammar::parse_gbnf(text, "alt");
    GrammarMatcher ma(alt, llama_vocab());
    ma.accept_bytes("b");
    EXPECT_TRUE(ma.can_only_end());
}

TEST(GrammarParse, Repetitions) {
    struct Case { const char* grammar; const char* text; bool complete; bool valid; };
    const Case cases[] = {
        {"root ::= \"ab\"{2,3}", "abab", true, true},
        {"root ::= \"ab\"{2,3}", "ab", false, true},
        {"root ::= \"ab\"{2,3}", "ababab", true, true},
        {"root ::= \"ab\"{2,3}", "abababa", false, false},
        {"root ::= [0-9]{3}", "123", true, true},
        {"root ::= [0-9]{3}", "1234", false, false},
        {"root ::= [0-9]{2,}", "1", false, true},
        {"root ::= [0-9]{2,}", "123456789", true, true},
        {"root ::= \"x\"+ \"y\"?", "xxxy", true, true},
        {"root ::= \"x\"+ \"y\"?", "y", false, false},
        {"root ::= \"x\"* \"y\"", "y", true, true},
        {"root ::= [^a-c]+", "xyz", true, true},
        {"root ::= [^a-c]+", "xaz", false, false},
        {"root ::= .", "é", true, true},
        {"root ::= [α-ω]+", "αβγ", true, true},
        {"root ::= [α-ω]+", "αa", false, false},
        {"root ::= \"\"", "", true, true},
    };
    for (const Case& c : cases) {
        GrammarMatcher m(Grammar::parse_gbnf(c.grammar), llama_vocab());
        bool valid = true;
        try {
            m.accept_bytes(c.text);
        } catch (const Error&) {
            valid = false;
        }
        EXPECT_EQ(valid, c.valid) << c.grammar << " on " << c.text;
        if (valid) {
            EXPECT_EQ(m.is_complete(), c.complete) << c.grammar << " on " << c.text;
        }
    }
}

TEST(GrammarMatcher, YesNoAllowsExactlyThosePrefixes) {
    const Tokenizer& tok = llama_vocab();
    auto g = Grammar::parse_gbnf(R"(root ::= "yes" | "no")");
    GrammarMatcher m(g, tok);
    std::set<int32_t> expected;
    for (int32_t id = 0; id < tok.n_vocab(); ++id) {
        if (tok.is_control(id)) continue;
        const std::string p = tok.token_to_piece(id);
        if (!p.empty() && (std::string("yes").rfind(p, 0) == 0 || std::string("no").rfind(p, 0) == 0)) expected.insert(id);
    }
    EXPECT_GE(expected.size(), 4u);  // "y", "yes", "n", "no" at least
    EXPECT_EQ(allowed_tokens(m, tok.n_vocab()), expected);
    EXPECT_FALSE(m.is_complete());

    // Spell "yes" with the vocabulary's own tokenization; EOS only at the end.
    const std::vector<int32_t> ids = tok.encode("yes", false);
    ASSERT_FALSE(ids.empty());
    for (size_t i = 0; i < ids.size(); ++i) {
        std::vector<float> logits(size_t(tok.n_vocab()), 0.0f);
        m.mask_logits(logits.data());
        EXPECT_EQ(logits[size_t(tok.eos_id())], -INFINITY);
        // SPM adds a space prefix: the first token is "▁yes", which the grammar rejects.
        if (i == 0 && tok.token_to_piece(ids[0]).front() == ' ') {
            EXPECT_EQ(logits[size_t(ids[0])], -INFINITY);
            m.accept_token(tok.find_token("yes"));
            break;
        }
        EXPECT_EQ(logits[size_t(ids[i])], 0.0f);
        m.accept_token(ids[i]);
    }
    EXPECT_TRUE(m.is_complete());
    EXPECT_TRUE(m.can_only_end());
    const std::set<int32_t> at_end = allowed_tokens(m, tok.n_vocab());
    for (int32_t id : at_end) EXPECT_TRUE(is_eog(tok, id)) << id;
    EXPECT_TRUE(at_end.count(tok.eos_id()));
    EXPECT_THROW(m.accept_token(tok.find_token("s")), Error);
    m.accept_token(tok.eos_id());
    EXPECT_THROW(m.accept_token(tok.find_token("y")), Error);
}

TEST(GrammarMatcher, EosOnlyWhenComplete) {
    const Tokenizer& tok = llama_vocab();
    GrammarMatcher m(Grammar::parse_gbnf(R"(root ::= [0-9]+)"), tok);
    EXPECT_THROW(m.accept_token(tok.eos_id()), Error);
    m.accept_token(tok.find_token("4"));
    EXPECT_TRUE(m.is_complete());
    EXPECT_FALSE(m.can_only_end());  // more digits may follow
    std::vector<float> logits(size_t(tok.n_vocab()), 1.0f);
    m.mask_logits(logits.data());
    EXPECT_EQ(logits[size_t(tok.eos_id())], 1.0f);
    EXPECT_EQ(logits[size_t(tok.find_token("7"))], 1.0f);
    EXPECT_EQ(logits[size_t(tok.find_token("a"))], -INFINITY);
    m.reset();
    EXPECT_FALSE(m.is_complete());
}

TEST(GrammarMatcher, MasksMatchAnIndependentOracle) {
    // A finite language: the allowed tokens after a prefix are exactly those whose piece
    // extends the prefix towards some sentence. Checked at every prefix of every sentence.
    const Tokenizer& tok = llama_vocab();
    auto g = Grammar::parse_gbnf(R"(
root ::= animal " " verb ("!" | "")
animal ::= "cat" | "dog" | "cow" | "caterpillar"
verb ::= "runs" | "eats" | "sleeps")");
    std::vector<std::string> sentences;
    for (const char* a : {"cat", "dog", "cow", "caterpillar"})
        for (const char* v : {"runs", "eats", "sleeps"})
            for (const char* e : {"!", ""}) sentences.push_back(std::string(a) + " " + v + e);
    std::vector<std::string> pieces(size_t(tok.n_vocab()));
    for (int32_t id = 0; id < tok.n_vocab(); ++id)
        if (!tok.is_control(id)) pieces[size_t(id)] = tok.token_to_piece(id);

    std::set<std::string> prefixes;
    for (const std::string& s : sentences)
        for (size_t i = 0; i <= s.size(); ++i) prefixes.insert(s.substr(0, i));
    for (const std::string& prefix : prefixes) {
        GrammarMatcher m(g, tok);
        m.accept_bytes(prefix);
        std::set<int32_t> expected;
        bool complete = false;
        for (const std::string& s : sentences) {
            if (s.rfind(prefix, 0) != 0) continue;
            if (s == prefix) complete = true;
            const std::string rest = s.substr(prefix.size());
            for (int32_t id = 0; id < tok.n_vocab(); ++id) {
                const std::string& p = pieces[size_t(id)];
                if (!p.empty() && rest.rfind(p, 0) == 0) expected.insert(id);
            }
        }
        if (complete)
            for (int32_t id : tok.end_of_generation_ids()) expected.insert(id);
        EXPECT_EQ(m.is_complete(), complete) << prefix;
        EXPECT_EQ(allowed_tokens(m, tok.n_vocab()), expected) << "after '" << prefix << "'";
        for (int32_t id : expected) EXPECT_TRUE(m.is_token_allowed(id)) << prefix << " " << id;
    }
}

TEST(GrammarMatcher, PartialUtf8AcrossTokens) {
    const Tokenizer& tok = llama_vocab();
    // "日" is E6 97 A5; "é" is C3 A9. Byte tokens <0xE6> ... spell characters in pieces.
    auto g = Grammar::parse_gbnf(R"(root ::= "日本" | "h" [é-ê])");
    GrammarMatcher m(g, tok);
    const int32_t e6 = tok.find_token("<0xE6>"), c3 = tok.find_token("<0xC3>"), x97 = tok.find_token("<0x97>"),
                  xa5 = tok.find_token("<0xA5>"), xa9 = tok.find_token("<0xA9>"), xab = tok.find_token("<0xAB>");
    ASSERT_GE(e6, 0);
    EXPECT_TRUE(m.is_token_allowed(e6));
    EXPECT_FALSE(m.is_token_allowed(c3));  // é only after "h"
    EXPECT_FALSE(m.is_token_allowed(x97));  // a lone continuation byte
    m.accept_token(e6);
    EXPECT_FALSE(m.is_complete());
    EXPECT_FALSE(m.is_token_allowed(tok.eos_id()));
    EXPECT_TRUE(m.is_token_allowed(x97));
    EXPECT_FALSE(m.is_token_allowed(xa5));
    m.accept_token(x97);
    m.accept_token(xa5);
    const int32_t hon = tok.find_token("本");
    if (hon >= 0) {
        EXPECT_TRUE(m.is_token_allowed(hon));
        m.accept_token(hon);
        EXPECT_TRUE(m.can_only_end());
    }

    GrammarMatcher h(g, tok);
    h.accept_token(tok.find_token("h"));
    EXPECT_TRUE(h.is_token_allowed(c3));
    h.accept_token(c3);
    EXPECT_TRUE(h.is_token_allowed(xa9));   // é
    EXPECT_FALSE(h.is_token_allowed(xab));  // ë is outside [é-ê]
    h.accept_token(xa9);
    EXPECT_TRUE(h.is_complete());
}

TEST(GrammarMatcher, SpecialTokensNeverAllowed) {
    const Tokenizer& tok = llama_vocab();
    GrammarMatcher m(Grammar::parse_gbnf(R"(root ::= .*)"), tok);  // any text at all
    const std::set<int32_t> allowed = allowed_tokens(m, tok.n_vocab());
    for (int32_t id = 0; id < tok.n_vocab(); ++id)
        if (tok.is_control(id) && !is_eog(tok, id)) {
            EXPECT_FALSE(allowed.count(id)) << id;
        }
    EXPECT_TRUE(allowed.count(tok.eos_id()));  // .* is complete at the start
    ASSERT_GE(tok.bos_id(), 0);
    EXPECT_THROW(m.accept_token(tok.bos_id()), Error);
    // Every ordinary token is allowed by .* except pieces that are not valid UTF-8
    // prefixes, e.g. a lone continuation byte.
    EXPECT_GT(allowed.size(), size_t(tok.n_vocab() - 300));
    EXPECT_FALSE(allowed.count(tok.find_token("<0x80>")));
}

TEST(GrammarMatcher, RejectsDisallowedTokens) {
    const Tokenizer& tok = llama_vocab();
    GrammarMatcher m(Grammar::parse_gbnf(R"(root ::= "a" [0-9])"), tok);
    EXPECT_THROW(m.accept_token(tok.find_token("b")), Error);
    EXPECT_THROW(m.accept_token(-1), Error);
    m.accept_token(tok.find_token("a"));  // the failed attempts left the state alone
    EXPECT_THROW(m.accept_token(tok.find_token("a")), Error);
    m.accept_token(tok.find_token("5"));
    EXPECT_TRUE(m.can_only_end());
}

TEST(GrammarMatcher, RandomSamplingAlwaysEndsInASentence) {
    // An arithmetic-expression grammar with nesting; random logits at temperature 1.
    // Every run must end with EOG at a complete sentence (the nesting is bounded by
    // making deeper levels rarer: each level has fewer alternatives that recurse).
    const Tokenizer& tok = llama_vocab();
    auto g = Grammar::parse_gbnf(R"G(
root ::= expr
expr ::= term (" "? [-+*/] " "? term){0,4}
term ::= [0-9]{1,3} | "(" inner ")"
inner ::= [0-9]{1,3} (" "? [-+*/] " "? [0-9]{1,3}){0,3}
)G");
    int ended_runs = 0;
    for (uint64_t seed = 1; seed <= 30; ++seed) {
        bool ended = false;
        const std::string out = random_run(g, tok, seed, 400, &ended);
        ended_runs += ended;
        GrammarMatcher check(g, tok);
        check.accept_bytes(out);
        EXPECT_TRUE(check.is_complete()) << out;
    }
    EXPECT_EQ(ended_runs, 30);
}

TEST(GrammarMatcher, NeverStuck) {
    // Along random walks, the mask is never empty: some token or EOG always remains
    // (no state the masks lead into is a dead end).
    const Tokenizer& tok = llama_vocab();
    auto g = Grammar::parse_gbnf(R"(
root ::= "<" name ( " " name "=\"" [^"\n]{0,8} "\"" )* ">"
name ::= [a-z] [a-z0-9]{0,5}
)");
    std::mt19937_64 rng(7);
    for (int run = 0; run < 20; ++run) {
        GrammarMatcher m(g, tok);
        for (int step = 0; step < 200; ++step) {
            const std::set<int32_t> allowed = allowed_tokens(m, tok.n_vocab());
            ASSERT_FALSE(allowed.empty());
            auto it = allowed.begin();
            std::advance(it, long(rng() % allowed.size()));
            if (is_eog(tok, *it)) break;
            m.accept_token(*it);
        }
    }
}

// ------------------------------------------------------------------------------------
// Grammars built to stall the matcher: bounded work, a clean refusal past the bound.

TEST(GrammarMatcher, RepeatedGroupsOfEmptyAlternativesExpandEachStackOnce) {
    // What fuzz_gbnf found (corpus: slow-empty-alternatives-repeated), repeated 12 times
    // instead of 6: expanding every path through 81 alternatives per repetition would
    // walk 81^12 paths; expanding each (position, parent) once walks a few thousand.
    std::string empties;
    for (int i = 0; i < 80; ++i) empties += "|";
    auto g = Grammar::parse_gbnf("root ::= ( [a-z]{24} " + empties + " \"-\" ){1,12} [0-9]?\n");
    const double t0 = test::thread_cpu_seconds();
    EXPECT_TRUE(test::grammar_accepts(g, ""));
    EXPECT_TRUE(test::grammar_accepts(g, "abcdefghijklmnopqrstuvwx-1"));
    EXPECT_TRUE(test::grammar_accepts(g, "------------"));
    EXPECT_FALSE(test::grammar_accepts(g, "-------------"));  // 13 repetitions
    EXPECT_FALSE(test::grammar_accepts(g, "abc"));
    GrammarMatcher m(g, llama_vocab());
    std::vector<float> logits(size_t(llama_vocab().n_vocab()), 0.0f);
    m.mask_logits(logits.data());
    const double seconds = test::thread_cpu_seconds() - t0;
    if (test::kTimingBoundsApply) {
        EXPECT_LT(seconds, 1.0);
    }
}

// Every level doubles the stacks: after n "a"s the parser follows 2^n of them (which
// of "b" / "c" closes each level). The matcher must refuse before that stalls it.
static std::shared_ptr<const Grammar> doubling_grammar(int levels) {
    std::string text = "root ::= l0\n";
    for (int i = 0; i < levels; ++i)
        text += cat("l", i, " ::= \"a\" l", i + 1, " \"b\" | \"a\" l", i + 1, " \"c\"\n");
    text += cat("l", levels, " ::= \"z\"\n");
    return Grammar::parse_gbnf(text);
}

TEST(GrammarMatcher, ExponentiallyAmbiguousGrammarIsRefusedNotStalled) {
    auto small = doubling_grammar(6);  // 64 stacks: fine
    EXPECT_TRUE(test::grammar_accepts(small, "aaaaaazbcbcbc"));
    EXPECT_FALSE(test::grammar_accepts(small, "aaaaaazbcbcb"));

    auto g = doubling_grammar(40);
    GrammarMatcher m(g, llama_vocab());
    const double t0 = test::thread_cpu_seconds();
    int accepted = 0;
    try {
        for (; accepted < 40; ++accepted) m.accept_bytes("a");
        ADD_FAILURE() << "2^40 stacks followed without complaint";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("too ambiguous"), std::string::npos) << e.what();
    }
    const double seconds = test::thread_cpu_seconds() - t0;
    EXPECT_GE(accepted, 12) << "4096 stacks are still followed";
    std::printf("refused after %d levels, %.3f s of CPU\n", accepted, seconds);
    EXPECT_LT(accepted, 40);
    if (test::kTimingBoundsApply) {
        EXPECT_LT(seconds, 2.0);
    }
    // A fresh matcher on a shallower prefix still works (the grammar itself is fine).
    GrammarMatcher again(g, llama_vocab());
    EXPECT_NO_THROW(again.accept_bytes("aaaaaaaa"));
}
