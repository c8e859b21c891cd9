// Prompt-lookup drafting: no model, just the sequence's own history.
#include <algorithm>

#include "engine/drafter.h"

namespace pensieve {

namespace {

// Draft tokens by prompt lookup: find the most recent earlier occurrence of the last n
// tokens (n = 4, 3, 2) and propose the tokens that followed it. Free to compute, and on
// code edits, summaries and quoted text the model often repeats exactly that.
std::vector<int32_t> lookup_draft(const std::vector<int32_t>& history, int max_draft) {
    std::vector<int32_t> draft;
    const int64_t h = int64_t(history.size());
    for (int n = 4; n >= 2 && draft.empty() && max_draft > 0; --n) {
        if (h < n + 1) continue;
        const int32_t* suffix = history.data() + (h - n);
        for (int64_t j = h - n - 1; j >= 0; --j) {
            if (!std::equal(suffix, suffix + n, history.data() + j)) continue;
            for (int64_t k = j + n; k < h && int(draft.size()) < max_draft; ++k) draft.push_back(history[size_t(k)]);
            break;
        }
    }
    return draft;
}

class LookupDrafter final : public Drafter {
public:
    explicit LookupDrafter(int max_tokens) : max_tokens_(max_tokens) {}
    int max_tokens() const override { return max_tokens_; }

    bool propose(std::vector<DraftRequest>& requests) override {
        for (DraftRequest& r : requests) {
            std::vector<int32_t> history = *r.context;
            history.push_back(r.next_token);
            r.draft.tokens = lookup_draft(history, r.max_tokens);
        }
        return false;
    }

private:
    int max_tokens_;
};

}  // namespace

std::unique_ptr<Drafter> make_lookup_drafter(int max_tokens) { return std::make_unique<LookupDrafter>(max_tokens); }

}  // namespace pensieve
