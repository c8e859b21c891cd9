// The JSON type every layer above util/ passes around, and how it is written out.
//
// Keys keep the order they came / were written in: tool schemas reach the chat template
// in the client's order (templates print them with tojson), and responses read naturally
// ("id" first).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace pensieve {

using json = nlohmann::ordered_json;

// JSON text for a response or a prompt. Generated text is valid UTF-8 by construction,
// but token pieces reported in logprobs may be fragments of a character: those bytes
// become U+FFFD instead of an exception.
inline std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace pensieve
