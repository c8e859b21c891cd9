// A generation request as the scheduler sees it, and the stream of events it produces.
//
// The server (or any other client of the scheduler) submits RequestParams and gets back
// a RequestStream: a thread-safe queue of events (text deltas, then one final event)
// that the scheduler thread fills and the HTTP thread drains. Either side can end it:
// the consumer by cancel() (client went away), the scheduler by finishing.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/sampler.h"

namespace pensieve {

class Grammar;

struct GenerateOptions {
    int n_predict = -1;                    // < 0: until end of generation or context full
    int n_batch = 512;                     // prompt tokens per forward pass
    SamplingParams sampling;
    std::vector<std::string> stop;         // stop strings (not included in the output)
    bool ignore_eos = false;
    // Constrained output: only token sequences of this grammar (JSON schema, GBNF) are
    // sampled; generation ends when the grammar is complete.
    std::shared_ptr<const Grammar> grammar;
    // Control tokens whose text belongs in the output (a chat syntax's markers, such as
    // gpt-oss's <|channel|>, which the reply parser reads): shown, where other control
    // tokens are dropped. Sorted ids.
    std::vector<int32_t> shown_control_tokens;
};

struct RequestParams {
    std::vector<int32_t> prompt;     // token ids, BOS included as the model wants
    GenerateOptions options;         // n_predict, sampling, stop strings, ignore_eos
    int n_top_logprobs = 0;          // > 0: report this many alternatives per token
    bool want_logprobs = false;
    int dropped_messages = 0;        // set by the caller (context shift); reported back as is
};

struct TopLogprob {
    int32_t token;
    float logprob;
};

// One generated token: its id, the text it releases (may be empty while a UTF-8
// character or a possible stop string is incomplete), and optionally log-probabilities.
struct TokenEvent {
    int32_t token = -1;
    std::string text;
    float logprob = 0.0f;
    std::vector<TopLogprob> top;
};

// Why a request ended. Each API maps these to its own words at its boundary (OpenAI
// finish_reason, Anthropic stop_reason, the CLI's summary line).
enum class FinishReason {
    EndOfGeneration,  // the model's end-of-generation token, or a grammar that is complete
    StopString,       // one of the request's stop strings (FinishEvent::stop_string)
    Length,           // n_predict tokens generated
    ContextFull,      // the sequence filled its context
    Cancelled,        // the client went away, or the scheduler shut down
    Error,            // FinishEvent::error says what failed
};

// The engine's own coarse word for a reason (the CLI's summary line, logs, tests):
// "stop" (end of generation or a stop string), "length" (n_predict or a full context),
// "cancelled", "error".
inline const char* finish_reason_word(FinishReason r) {
    switch (r) {
        case FinishReason::EndOfGeneration:
        case FinishReason::StopString: return "stop";
        case FinishReason::Length:
        case FinishReason::ContextFull: return "length";
        case FinishReason::Cancelled: return "cancelled";
        case FinishReason::Error: return "error";
    }
    return "?";
}
inline bool operator==(FinishReason r, std::string_view word) { return word == finish_reason_word(r); }
inline std::ostream& operator<<(std::ostream& os, FinishReason r) { return os << finish_reason_word(r); }

struct FinishEvent {
    FinishReason reason = FinishReason::EndOfGeneration;
    std::string stop_string;   // which stop string matched, if any
    std::string error;         // when reason == "error"
    int error_status = 500;    // its HTTP status: 400 when the request itself is at fault
    std::string tail_text;     // text released at the end (held-back bytes)
    int n_prompt = 0;
    int n_cached = 0;          // prompt tokens whose KV was reused from an earlier request
    int n_generated = 0;
    int dropped_messages = 0;  // RequestParams::dropped_messages, echoed for the usage report
    int n_passes = 0;          // forward passes that sampled for it (n_generated / n_passes: speculation's gain)
    int n_drafted = 0;         // speculative tokens proposed for it
    int n_draft_accepted = 0;  // ... and kept
    double queue_seconds = 0;
    double prompt_seconds = 0;
    double generate_seconds = 0;
};

class RequestStream {
public:
    using Event = std::variant<TokenEvent, FinishEvent>;

    // Consumer side: the next event, or nullopt after `timeout` with nothing new.
    std::optional<Event> next(std::chrono::milliseconds timeout) {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return std::nullopt;
        Event e = std::move(events_.front());
        events_.pop_front();
        return e;
    }
    // Consumer side: stop generating (the scheduler frees the slot at its next step).
    void cancel() { cancelled_.store(true); }
    bool cancelled() const { return cancelled_.load(); }

    // Producer side (scheduler thread).
    void push(Event e) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            events_.push_back(std::move(e));
        }
        cv_.notify_one();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<Event> events_;
    std::atomic<bool> cancelled_{false};
};

}  // namespace pensieve
