// Drafting with a small model that shares the target's vocabulary.
#include <algorithm>
#include <cmath>
#include <optional>

#include "engine/draft_policy.h"
#include "engine/drafter.h"
#include "engine/sampler.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pensieve {

namespace {

// The largest logit of `row` other than at `token` (a tree draft's second choice); -1
// for a vocabulary of one token.
int32_t runner_up(const float* row, int n, int32_t token) {
    if (n < 2) return -1;
    int32_t best = token == 0 ? 1 : 0;
    for (int i = 0; i < n; ++i)
        if (i != token && row[i] > row[best]) best = i;
    return best;
}

class DraftModelDrafter final : public Drafter {
public:
    DraftModelDrafter(Model& draft, const Tokenizer& tokenizer, ThreadPool& pool, const DraftModelOptions& o)
        : model_(draft),
          tokenizer_(tokenizer),
          pool_(pool),
          options_(o),
          backoff_(size_t(o.n_seq)),
          samplers_(size_t(o.n_seq)) {
        if (o.target_cache) return;
        own_cache_.emplace(o.n_layers > 0 ? draft.make_cache_for_layers(o.n_layers, o.n_ctx, o.n_seq)
                                          : draft.make_cache(o.n_ctx, o.n_seq));
    }

    int max_tokens() const override { return options_.max_tokens; }

    void reset(int seq) override {
        if (own_cache_) own_cache_->clear(seq);
        backoff_[size_t(seq)] = Backoff{};
        samplers_[size_t(seq)].reset();
    }

    // (A shared cache is the target's to roll back.)
    void keep(int seq, int n_tokens) override {
        if (own_cache_) own_cache_->truncate(seq, n_tokens);
    }

    // First the draft model catches up on the tokens it has not seen (the prompt, accepted
    // tokens, the pending token) in one batch, then it proposes tokens (greedy, or drawn
    // with the request's sampling), one batched pass per draft position.
    bool propose(std::vector<DraftRequest>& requests) override {
        std::vector<DraftRequest*> rows;  // request of each logits row
        Batch batch;
        KvCache& cache = this->cache();
        for (DraftRequest& r : requests) {
            if (resting(r.seq)) continue;
            const int pos = int(r.context->size());  // position of next_token
            const int have = std::min(cache.length(r.seq), pos);
            cache.truncate(r.seq, have);
            for (int p = have; p < pos; ++p) batch.add((*r.context)[size_t(p)], p, r.seq, false);
            batch.add(r.next_token, pos, r.seq, true);
            rows.push_back(&r);
            prepare_sampler(r);
        }
        if (rows.empty()) return false;
        const std::vector<DraftRequest*> ran = rows;
        const bool ok = run_drafts(batch, rows);
        // The target's cache gets back exactly what it held.
        if (options_.target_cache)
            for (DraftRequest* r : ran) cache.truncate(r->seq, int(r->context->size()));
        if (!ok) {
            // A draft failure only costs the speculation: forget the draft state.
            for (DraftRequest& r : requests) {
                if (own_cache_) own_cache_->clear(r.seq);
                r.draft = Draft{};
            }
            return true;
        }
        for (DraftRequest* r : ran) update_backoff(r->seq, !r->draft.tokens.empty());
        return true;
    }

private:
    KvCache& cache() { return options_.target_cache ? *options_.target_cache : *own_cache_; }

    // After a step where it ran and proposed nothing (every first guess too unsure), the
    // draft model sits out 2, 4, ... up to 16 steps, since its forward pass costs time
    // whether or not it proposes; a proposal resets it.
    struct Backoff {
        int idle_runs = 0;
        int rest = 0;
    };

    bool resting(int seq) {
        Backoff& b = backoff_[size_t(seq)];
        if (b.rest == 0) return false;
        --b.rest;
        return true;
    }

    void update_backoff(int seq, bool proposed) {
        Backoff& b = backoff_[size_t(seq)];
        if (proposed) {
            b.idle_runs = 0;
            return;
        }
        b.idle_runs = std::min(b.idle_runs + 1, 4);
        b.rest = 1 << b.idle_runs;  // 2, 4, 8, 16 steps
    }

    // A request that samples gets drafts drawn from the draft model's distribution with the
    // same top-k / top-p / min-p / temperature (not its penalties: the draft keeps no
    // history), which the target then verifies by speculative sampling; at temperature
    // 0.8-1 that keeps more drafts than a greedy guess, whose chance is only p(guess).
    void prepare_sampler(const DraftRequest& r) {
        std::unique_ptr<Sampler>& s = samplers_[size_t(r.seq)];
        const bool samples = r.sampling && r.sampling->temperature > 0.0f && r.sampling->top_k != 1;
        if (!samples) {
            s.reset();
            return;
        }
        if (s) return;
        SamplingParams p = *r.sampling;
        p.repeat_penalty = 1.0f;
        p.frequency_penalty = p.presence_penalty = 0.0f;
        p.seed = r.seed ^ 0x9e3779b97f4a7c15ull;  // its own stream, fixed by the request's seed
        s = std::make_unique<Sampler>(p, options_.n_vocab);
    }

    // The draft token of one logits row, with its probability q (and q's whole
    // distribution when sampled), and the second choice `alt` with its probability.
    int32_t pick(int seq, const float* row, int n_vocab, float& q, std::vector<TokenProb>* dist, int32_t& alt,
                 float& alt_q) {
        Sampler* s = samplers_[size_t(seq)].get();
        if (!s) {
            const int32_t token = int32_t(std::max_element(row, row + n_vocab) - row);
            alt = runner_up(row, n_vocab, token);
            double sum = 0.0;  // of exp(logit - max): the max is the token's own logit
            for (int i = 0; i < n_vocab; ++i) sum += std::exp(double(row[i] - row[token]));
            q = float(1.0 / sum);
            alt_q = alt < 0 ? 0.0f : float(std::exp(double(row[alt] - row[token])) / sum);
            return token;
        }
        const int32_t token = s->sample(row);
        const std::span<const TokenProb> c = s->last_candidates();
        dist->assign(c.begin(), c.end());
        q = 0.0f;
        alt = -1;
        alt_q = 0.0f;
        for (const TokenProb& t : c) {
            if (t.id == token) q = t.prob;
            else if (t.prob > alt_q) alt = t.id, alt_q = t.prob;
        }
        return token;
    }

    // Runs `batch` (one logits row per entry of rows) and the drafting passes after it;
    // false if a forward pass failed.
    bool run_drafts(Batch& batch, std::vector<DraftRequest*>& rows) {
        const int n_vocab = model_.config().n_vocab;
        std::vector<float> logits;
        std::vector<double> chance(rows.size(), 1.0);  // of each row's draft so far being accepted
        while (!rows.empty()) {
            logits.resize(rows.size() * size_t(n_vocab));
            try {
                std::lock_guard<std::mutex> turn(model_.forward_mutex());
                ForwardOutputs out;
                out.logits = logits.data();
                out.n_layers = options_.n_layers;
                model_.forward(batch, cache(), pool_, out);
            } catch (const std::exception&) {
                return false;
            }
            batch.clear();
            std::vector<DraftRequest*> next_rows;
            std::vector<double> next_chance;
            for (size_t i = 0; i < rows.size(); ++i) {
                DraftRequest& r = *rows[i];
                const float* row = &logits[i * size_t(n_vocab)];
                float p = 0.0f, alt_p = 0.0f;
                int32_t alt = -1;
                std::vector<TokenProb> dist;
                const int32_t token = pick(r.seq, row, n_vocab, p, &dist, alt, alt_p);
                // An unsure draft is usually rejected, and every rejected token costs the
                // target a row of its batch: stop proposing once the draft's own
                // probability of its choice falls below p_min.
                if (p < options_.p_min) continue;
                // The first token is the policy's call (it asked for at least one); only
                // later ones stop on their chance, else a sequence whose first guesses
                // start below the bar never drafts and never learns they are accepted.
                const double all = chance[i] * (r.acceptance ? r.acceptance->chance(p) : 1.0);
                if (all < r.min_chance && !r.draft.tokens.empty()) continue;
                r.draft.tokens.push_back(token);
                r.draft.probs.push_back(p);
                if (!dist.empty()) r.draft.dists.push_back(std::move(dist));
                r.draft.alts.push_back(alt);  // -1: none (a sampled draft with one candidate)
                r.draft.alt_probs.push_back(alt_p);
                if (int(r.draft.tokens.size()) >= r.max_tokens || tokenizer_.is_end_of_generation(token)) continue;
                batch.add(token, cache().length(r.seq), r.seq, true);
                next_rows.push_back(&r);
                next_chance.push_back(all);
            }
            rows.swap(next_rows);
            chance.swap(next_chance);
        }
        return true;
    }

    Model& model_;
    const Tokenizer& tokenizer_;
    ThreadPool& pool_;
    DraftModelOptions options_;
    std::optional<KvCache> own_cache_;  // the draft model's KV, one sequence per slot (unless shared)
    std::vector<Backoff> backoff_;  // per sequence
    std::vector<std::unique_ptr<Sampler>> samplers_;  // per sequence, for requests that sample
};

}  // namespace

std::unique_ptr<Drafter> make_draft_model_drafter(Model& draft, const Tokenizer& tokenizer, ThreadPool& pool,
                                                  const DraftModelOptions& options) {
    if (draft.config().n_vocab != options.n_vocab)
        fail("the draft model's vocabulary (", draft.config().n_vocab, " tokens) differs from the model's (",
             options.n_vocab, ")");
    if (options.n_layers > 0) {
        if (!draft.early_exit())
            fail("drafting from the model's own first layers is not supported for architecture ",
                 draft.config().arch);
        if (options.n_layers >= draft.config().n_layer)
            fail("--draft-layers ", options.n_layers, " must be below the model's ", draft.config().n_layer, " layers");
    }
    return std::make_unique<DraftModelDrafter>(draft, tokenizer, pool, options);
}

}  // namespace pensieve
