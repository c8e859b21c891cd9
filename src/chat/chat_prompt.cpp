#include "chat/chat_prompt.h"

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pensieve {

namespace {

using ojson = nlohmann::ordered_json;

ojson shield_json(const Tokenizer& tok, const ojson& v, ShieldKinds kinds) {
    if (v.is_string()) return tok.shield_specials(v.get_ref<const std::string&>(), kinds);
    if (v.is_array()) {
        ojson out = ojson::array();
        for (const ojson& e : v) out.push_back(shield_json(tok, e, kinds));
        return out;
    }
    if (v.is_object()) {
        ojson out = ojson::object();
        for (const auto& [k, e] : v.items()) out[tok.shield_specials(k, kinds)] = shield_json(tok, e, kinds);
        return out;
    }
    return v;
}

// BOS first when the model wants it and the text did not already produce it (a template
// usually writes bos_token itself).
void ensure_bos(const Tokenizer& tok, std::vector<int32_t>& ids) {
    const int32_t bos = tok.bos_id();
    if (tok.add_bos() && bos >= 0 && (ids.empty() || ids.front() != bos)) ids.insert(ids.begin(), bos);
}

}  // namespace

ojson shield_messages(const Tokenizer& tok, const ojson& messages) {
    if (!messages.is_array()) return shield_json(tok, messages, ShieldKinds::ALL_SPECIAL);
    ojson out = ojson::array();
    for (const ojson& m : messages) {
        const bool assistant = m.is_object() && m.contains("role") && m["role"] == "assistant";
        out.push_back(shield_json(tok, m, assistant ? ShieldKinds::CONTROL : ShieldKinds::ALL_SPECIAL));
    }
    return out;
}

ChatPrompt make_chat_prompt(const Tokenizer& tok, const ojson& messages, const ojson& tools,
                            const ChatRenderFn& render) {
    std::string rendered;
    try {
        rendered = render(shield_messages(tok, messages), shield_json(tok, tools, ShieldKinds::ALL_SPECIAL));
    } catch (const Error& e) {
        throw Error(Tokenizer::remove_shield_marks(e.what()));
    }
    ChatPrompt p;
    p.tokens = tok.encode_shielded(rendered, /*add_special=*/false);
    ensure_bos(tok, p.tokens);
    p.text = Tokenizer::remove_shield_marks(rendered);
    return p;
}

std::vector<int32_t> tokenize_prompt_text(const Tokenizer& tok, const std::string& text, bool parse_special) {
    std::vector<int32_t> ids = tok.encode(text, /*add_special=*/false, parse_special);
    ensure_bos(tok, ids);
    return ids;
}

}  // namespace pensieve
