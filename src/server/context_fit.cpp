#include "server/context_fit.h"

#include "server/request_parse.h"

namespace pensieve::server {

namespace {

// Room the request needs: its prompt and the tokens it may generate (at least one).
bool fits(const Engine& e, size_t n_prompt, int n_predict) {
    return n_prompt + size_t(n_predict > 0 ? n_predict : 1) <= size_t(e.n_ctx);
}

json without_turns(const json& messages, size_t first, size_t count) {
    json out = json::array();
    for (size_t i = 0; i < messages.size(); ++i)
        if (i < first || i >= first + count) out.push_back(messages[i]);
    return out;
}

}  // namespace

std::string render_chat_prompt(Engine& e, ChatRequest& r, const ServerOptions& o) {
    const bool context_shift = o.context_shift;
    if (r.params.options.n_predict < 0 && o.default_n_predict > 0) r.params.options.n_predict = o.default_n_predict;
    const json tools = r.tools_active() ? r.tools : json(nullptr);
    ChatPrompt full = e.chat_prompt(r.messages, tools);
    std::string prompt = std::move(full.text);
    r.params.prompt = std::move(full.tokens);
    r.params.options.shown_control_tokens = e.shown_control_tokens;
    if (!context_shift || fits(e, r.params.prompt.size(), r.params.options.n_predict)) return prompt;

    // Keep the leading system/developer messages and the last message; binary-search the
    // fewest turns after the system prompt whose removal makes the rest fit.
    size_t first = 0;
    while (first < r.messages.size() && (r.messages[first]["role"] == "system" || r.messages[first]["role"] == "developer"))
        ++first;
    if (r.messages.size() < first + 2) return prompt;  // nothing droppable: the scheduler will refuse it
    size_t lo = 1, hi = r.messages.size() - 1 - first;  // hi: everything but the last message
    std::string best_prompt;
    std::vector<int32_t> best_tokens;
    size_t best = 0;
    while (lo <= hi) {
        const size_t mid = lo + (hi - lo) / 2;
        std::string p;
        bool ok = false;
        try {
            ChatPrompt cut = e.chat_prompt(without_turns(r.messages, first, mid), tools);
            p = std::move(cut.text);
            std::vector<int32_t> t = std::move(cut.tokens);
            ok = fits(e, t.size(), r.params.options.n_predict);
            if (ok) {
                best = mid;
                best_prompt = std::move(p);
                best_tokens = std::move(t);
            }
        } catch (const std::exception&) {
            ok = false;  // a template may reject a cut (e.g. a tool result without its call): drop more
        }
        if (ok) hi = mid - 1;
        else lo = mid + 1;
    }
    if (best == 0) return prompt;  // even the last message alone does not fit: refused downstream
    r.messages = without_turns(r.messages, first, best);
    r.params.prompt = std::move(best_tokens);
    r.params.dropped_messages = int(best);
    return best_prompt;
}

}  // namespace pensieve::server
