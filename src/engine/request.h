// A generation request as the scheduler sees it, and the stream of events it produces.
//
// The server (or any other client of the scheduler) submits RequestParams and gets back
// a RequestStream: a thread-safe queue of events (text deltas, then one final event)
// that the scheduler thread fills and the HTTP thread drains. Either side can end it:
// the consumer by cancel() (client went away), the scheduler by finishing.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <atomic>
#include <variant>
#include <string>
#include <vector>

#include "engine/generate.h"

namespace pensieve {

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

struct FinishEvent {
    std::string reason;        // "stop" (EOS or stop string), "length", "cancelled", "error"
    std::string stop_string;   // which stop string matched, if any
    std::string error;         // when reason == "error"
    std::string tail_text;     // text released at the end (held-back bytes)
    int n_prompt = 0;
    int n_cached = 0;          // prompt tokens whose KV was reused from an earlier request
    int n_generated = 0;
    int dropped_messages = 0;  // RequestParams::dropped_messages, echoed for the usage report
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
