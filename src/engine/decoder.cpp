#include "engine/decoder.h"

#include <algorithm>
#include <cmath>

#include "tokenizer/tokenizer.h"

namespace pensieve {

namespace {

// log-softmax of one logit row, for logprobs (computed only when a request asks).
std::vector<float> log_softmax(const float* logits, int n) {
    float max_val = *std::max_element(logits, logits + n);
    double sum = 0.0;
    for (int i = 0; i < n; ++i) sum += std::exp(double(logits[i]) - max_val);
    const float log_sum = float(std::log(sum)) + max_val;
    std::vector<float> out(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) out[size_t(i)] = logits[i] - log_sum;
    return out;
}

}  // namespace

SequenceDecoder::SequenceDecoder(const RequestParams& params, const Tokenizer& tokenizer, int32_t n_vocab)
    : tokenizer_(tokenizer),
      options_(params.options),
      n_top_logprobs_(params.n_top_logprobs),
      want_logprobs_(params.want_logprobs),
      n_vocab_(n_vocab),
      sampler_(params.options.sampling, n_vocab),
      stops_(params.options.stop) {
    for (int32_t t : params.prompt) sampler_.accept(t);
    if (options_.grammar) grammar_ = std::make_unique<GrammarMatcher>(options_.grammar, tokenizer_);
}

// Masks a copy: logprobs still come from the model's own distribution. Near the token
// limit the mask also steers towards a complete sentence of the grammar.
const float* SequenceDecoder::apply_grammar(const float* logits) {
    if (!grammar_) return logits;
    masked_.assign(logits, logits + n_vocab_);
    const bool near_limit = options_.n_predict >= 0 &&
                            options_.n_predict - n_generated_ <= int(grammar_->min_chars_to_complete()) + 8;
    if (near_limit) grammar_->mask_logits_to_finish(masked_.data());
    else grammar_->mask_logits(masked_.data());
    return masked_.data();
}

SequenceDecoder::Step SequenceDecoder::next(const float* logits, const DraftToken* proposed) {
    Step step;
    const float* allowed = apply_grammar(logits);
    step.token = proposed && !proposed->q.empty() ? sampler_.sample_speculative(allowed, proposed->token, proposed->q)
                                                  : sampler_.sample(allowed);
    step.draft_accepted = proposed && proposed->token == step.token;

    // A complete grammar allows nothing but end-of-generation: it ends even with ignore_eos.
    if ((!options_.ignore_eos || grammar_) && tokenizer_.is_end_of_generation(step.token)) {
        step.finish = FinishReason::EndOfGeneration;
        return step;
    }
    if (grammar_) grammar_->accept_token(step.token);
    sampler_.accept(step.token);
    ++n_generated_;

    step.emitted = true;
    step.event.token = step.token;
    const bool shown = std::binary_search(options_.shown_control_tokens.begin(), options_.shown_control_tokens.end(),
                                          step.token);
    step.event.text = stops_.feed(utf8_.feed(tokenizer_.token_to_piece(step.token, shown)));
    if (want_logprobs_ || n_top_logprobs_ > 0) add_logprobs(logits, step.event);

    if (stops_.stopped()) step.finish = FinishReason::StopString;
    else if (grammar_ && grammar_->can_only_end()) step.finish = FinishReason::EndOfGeneration;
    else if (options_.n_predict >= 0 && n_generated_ >= options_.n_predict) step.finish = FinishReason::Length;
    return step;
}

void SequenceDecoder::add_logprobs(const float* logits, TokenEvent& ev) const {
    std::vector<float> lp = log_softmax(logits, n_vocab_);
    ev.logprob = lp[size_t(ev.token)];
    const int k = std::min(n_top_logprobs_, int(n_vocab_));
    if (k <= 0) return;
    std::vector<int32_t> ids(static_cast<size_t>(n_vocab_));
    for (int i = 0; i < n_vocab_; ++i) ids[size_t(i)] = i;
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
        return lp[size_t(a)] > lp[size_t(b)] || (lp[size_t(a)] == lp[size_t(b)] && a < b);
    });
    for (int i = 0; i < k; ++i) ev.top.push_back({ids[size_t(i)], lp[size_t(ids[size_t(i)])]});
}

std::string SequenceDecoder::tail() {
    if (stops_.stopped()) return "";
    return stops_.feed(utf8_.flush()) + stops_.flush();
}

}  // namespace pensieve
