#include "server/warm_up.h"

#include <algorithm>
#include <fstream>

#include <httplib.h>

#include "server/api_errors.h"
#include "util/error.h"
#include "util/json_text.h"
#include "util/timer.h"

namespace pensieve::server {

namespace {

const char* const kGenerationPaths[] = {"/v1/chat/completions", "/chat/completions", "/v1/completions",
                                        "/completions", "/v1/messages", "/v1/responses", "/responses"};

bool is_responses(const std::string& path) { return path.find("/responses") != std::string::npos; }

}  // namespace

bool is_generation_path(const std::string& path) {
    return std::find(std::begin(kGenerationPaths), std::end(kGenerationPaths), path) != std::end(kGenerationPaths);
}

std::vector<WarmUpRequest> read_warm_up_file(const std::string& file) {
    std::ifstream in(file);
    if (!in) fail("cannot read the warm-up file ", file);
    std::vector<WarmUpRequest> out;
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        json j;
        try {
            j = parse_json_text(line);
        } catch (const Error& e) {
            fail(file, " line ", n, ": not JSON (", e.what(), ")");
        }
        if (!j.is_object()) fail(file, " line ", n, ": expected a JSON object");
        WarmUpRequest r;
        if (j.contains("path")) {
            if (!j["path"].is_string() || !j.contains("body") || !j["body"].is_object())
                fail(file, " line ", n, ": expected {\"path\": \"/v1/...\", \"body\": {...}}");
            r.path = j["path"].get<std::string>();
            r.body = std::move(j["body"]);
        } else {
            r.path = "/v1/chat/completions";
            r.body = std::move(j);
        }
        if (!is_generation_path(r.path))
            fail(file, " line ", n, ": ", r.path, " is not a generation route (chat/completions, completions, "
                 "messages or responses)");
        out.push_back(std::move(r));
    }
    return out;
}

json one_token_body(const std::string& path, json body) {
    body["stream"] = false;
    body.erase("stream_options");
    if (is_responses(path)) {
        body["max_output_tokens"] = 1;
        body["store"] = false;
        body.erase("previous_response_id");  // not stored on this server (yet)
    } else {
        body["max_tokens"] = 1;
        body.erase("max_completion_tokens");
        if (dialect_for_path(path) != Dialect::Anthropic) body["n"] = 1;  // Anthropic has no n
    }
    return body;
}

PromptUsage prompt_usage(const json& reply) {
    PromptUsage u;
    if (!reply.is_object() || !reply.contains("usage") || !reply["usage"].is_object()) return u;
    const json& usage = reply["usage"];
    auto number = [](const json& o, const char* key) -> long long {
        return o.is_object() && o.contains(key) && o[key].is_number_integer() ? o[key].get<long long>() : 0;
    };
    if (usage.contains("prompt_tokens")) {  // OpenAI chat / completions
        u.prompt = number(usage, "prompt_tokens");
        if (usage.contains("prompt_tokens_details")) u.cached = number(usage["prompt_tokens_details"], "cached_tokens");
    } else if (usage.contains("input_tokens_details")) {  // Responses
        u.prompt = number(usage, "input_tokens");
        u.cached = number(usage["input_tokens_details"], "cached_tokens");
    } else {  // Anthropic: input_tokens are the ones computed now, besides the cached ones
        u.cached = number(usage, "cache_read_input_tokens");
        u.prompt = number(usage, "input_tokens") + u.cached;
    }
    return u;
}

int warm_prefix_cache(const std::string& host, int port, const std::string& api_key,
                      const std::vector<WarmUpRequest>& requests, const std::atomic<bool>* stop) {
    const std::string target = host == "0.0.0.0" || host == "::" || host.empty() ? "127.0.0.1" : host;
    httplib::Client client(target, port);
    client.set_read_timeout(24 * 3600, 0);  // a long prompt on a slow machine takes minutes
    client.set_write_timeout(60, 0);
    httplib::Headers headers{{kWarmUpHeader, "1"}};
    if (!api_key.empty()) headers.emplace("Authorization", "Bearer " + api_key);
    int ok = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
        if (stop && stop->load()) break;
        const WarmUpRequest& r = requests[i];
        Timer timer;
        auto res = client.Post(r.path, headers, dump_json(one_token_body(r.path, r.body)), "application/json");
        if (stop && stop->load()) break;  // cancelled by the shutdown: not a failure to report
        if (!res || res->status != 200) {
            const std::string why = !res ? httplib::to_string(res.error())
                                         : std::to_string(res->status) + " " + res->body.substr(0, 300);
            std::fprintf(stderr, "pensieve: warm-up %zu/%zu (%s) failed: %s\n", i + 1, requests.size(),
                         r.path.c_str(), why.c_str());
            continue;
        }
        const PromptUsage u = prompt_usage(try_parse_json_text(res->body).value_or(json()));
        std::fprintf(stderr, "pensieve: warm-up %zu/%zu (%s): %lld prompt tokens cached (%lld were already) in %.1f s\n",
                     i + 1, requests.size(), r.path.c_str(), u.prompt, u.cached, timer.seconds());
        ++ok;
    }
    return ok;
}

RequestRecorder::RequestRecorder(const std::string& file) : out_(std::fopen(file.c_str(), "a")) {
    if (!out_) fail("cannot open ", file, " to record requests");
}

RequestRecorder::~RequestRecorder() {
    if (out_) std::fclose(out_);
}

void RequestRecorder::record(const std::string& path, const std::string& body) {
    const std::optional<json> j = try_parse_json_text(body);
    if (!j || !j->is_object()) return;
    const std::string line = dump_json(json{{"path", path}, {"body", *j}}) + "\n";
    std::lock_guard<std::mutex> lock(mutex_);
    std::fwrite(line.data(), 1, line.size(), out_);
    std::fflush(out_);
}

}  // namespace pensieve::server
