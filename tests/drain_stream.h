// Test helper: reads a scheduler request's events to the end (tokens, text, finish).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <variant>
#include <vector>

#include "engine/request.h"

namespace pensieve::testing_support {

struct Collected {
    std::vector<int32_t> tokens;
    std::string text;
    FinishEvent finish;
};

// Waits up to 60 s per event (a failure, not a hang, if the scheduler stalls).
inline Collected drain(RequestStream& s) {
    Collected c;
    for (;;) {
        auto e = s.next(std::chrono::seconds(60));
        if (!e) {
            ADD_FAILURE() << "timed out waiting for the scheduler";
            return c;
        }
        if (auto* t = std::get_if<TokenEvent>(&*e)) {
            c.tokens.push_back(t->token);
            c.text += t->text;
        } else {
            c.finish = std::get<FinishEvent>(*e);
            c.text += c.finish.tail_text;
            return c;
        }
    }
}

}  // namespace pensieve::testing_support
