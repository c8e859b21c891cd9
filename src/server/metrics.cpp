#include "server/metrics.h"

#include <cstdio>

namespace pensieve::server {

void Metrics::record_response(int status) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++responses_[status];
}

void Metrics::record_generation(const std::string& endpoint) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++generations_[endpoint];
}

namespace {

void metric(std::string& out, const char* name, const char* type, const char* help, double value) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", value);
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + buf + "\n";
}

}  // namespace

std::string Metrics::render(const SchedulerStats* s, size_t open_connections) const {
    std::string out;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        out += "# HELP pensieve_requests_total Generation requests accepted, by endpoint.\n"
               "# TYPE pensieve_requests_total counter\n";
        for (const auto& [endpoint, n] : generations_) {
            out += "pensieve_requests_total{endpoint=\"" + endpoint + "\"} " + std::to_string(n) + "\n";
        }
        if (generations_.empty()) out += "pensieve_requests_total{endpoint=\"all\"} 0\n";
        out += "# HELP pensieve_http_responses_total HTTP responses, by status code.\n"
               "# TYPE pensieve_http_responses_total counter\n";
        for (const auto& [status, n] : responses_)
            out += "pensieve_http_responses_total{code=\"" + std::to_string(status) + "\"} " + std::to_string(n) + "\n";
    }
    metric(out, "pensieve_http_connections_open", "gauge", "Client connections open now.", double(open_connections));
    if (!s) return out;

    metric(out, "pensieve_requests_active", "gauge", "Requests generating now.", s->active);
    metric(out, "pensieve_queue_depth", "gauge", "Requests waiting for a slot.", s->queued);
    metric(out, "pensieve_slots", "gauge", "Requests that can generate at once.", s->n_slots);
    metric(out, "pensieve_requests_finished_total", "counter", "Requests that ran to their end.", double(s->requests_finished));
    metric(out, "pensieve_requests_cancelled_total", "counter", "Requests cancelled (client gone or shutdown).",
           double(s->requests_cancelled));
    metric(out, "pensieve_requests_rejected_total", "counter", "Requests refused because the queue was full.",
           double(s->requests_rejected));
    metric(out, "pensieve_prompt_tokens_total", "counter", "Prompt tokens computed.", double(s->prompt_tokens));
    metric(out, "pensieve_cached_prompt_tokens_total", "counter", "Prompt tokens reused from the prefix cache.",
           double(s->cached_prompt_tokens));
    metric(out, "pensieve_generated_tokens_total", "counter", "Tokens generated.", double(s->generated_tokens));
    metric(out, "pensieve_prompt_tokens_per_second", "gauge", "Prompt throughput over the server's lifetime.",
           s->prompt_seconds > 0 ? double(s->prompt_tokens) / s->prompt_seconds : 0.0);
    // Tokens from decode-only passes over their time; generation inside mixed passes
    // (prompt chunks plus decode tokens) is not separated out.
    metric(out, "pensieve_generation_tokens_per_second", "gauge", "Generation throughput over the server's lifetime.",
           s->decode_seconds > 0 ? double(s->generated_tokens) / (s->decode_seconds + s->prompt_seconds) : 0.0);
    metric(out, "pensieve_kv_cache_usage_ratio", "gauge", "Fraction of KV cache positions holding tokens.",
           s->kv_tokens_capacity > 0 ? double(s->kv_tokens_used) / double(s->kv_tokens_capacity) : 0.0);
    metric(out, "pensieve_prompt_tokens_pending", "gauge",
           "Prompt tokens of running requests not read yet (a long prefill's progress).",
           double(s->prompt_tokens_pending));
    metric(out, "pensieve_kv_cache_tokens", "gauge", "KV cache positions holding tokens.", double(s->kv_tokens_used));
    metric(out, "pensieve_kv_cache_committed_bytes", "gauge",
           "KV cache memory in use: blocks written so far (the reserved pool fills as sequences need it).",
           double(s->kv_bytes_committed));
    out += std::string("# HELP pensieve_kv_cache_bytes KV cache memory reserved, by element type (--cache-type).\n"
                       "# TYPE pensieve_kv_cache_bytes gauge\n"
                       "pensieve_kv_cache_bytes{type=\"") +
           kv_type_name(s->kv_type) + "\"} " + std::to_string(s->kv_bytes) + "\n";
    metric(out, "pensieve_state_bytes_per_sequence", "gauge",
           "Recurrent models (Mamba, RWKV): one sequence's state, whatever its length (0: attention only; "
           "the largest over the models served).", double(s->state_bytes_per_sequence));
    metric(out, "pensieve_state_snapshots", "gauge",
           "Recurrent models: state snapshots held now (the prefix cache resumes conversations from them).",
           double(s->state_snapshots));
    metric(out, "pensieve_state_snapshot_bytes", "gauge", "Recurrent models: memory of the state snapshots held now.",
           double(s->state_snapshot_bytes));
    metric(out, "pensieve_forward_passes_total", "counter", "Batched forward passes run.", double(s->steps));
    metric(out, "pensieve_draft_tokens_total", "counter", "Speculative tokens proposed (prompt lookup or draft model).",
           double(s->draft_tokens));
    metric(out, "pensieve_draft_tokens_accepted_total", "counter", "Speculative tokens the model confirmed.",
           double(s->draft_accepted));
    metric(out, "pensieve_draft_acceptance_ratio", "gauge", "Accepted / proposed speculative tokens.",
           s->draft_tokens > 0 ? double(s->draft_accepted) / double(s->draft_tokens) : 0.0);
    metric(out, "pensieve_draft_tree_leaves_total", "counter",
           "Tree drafts (--draft-tree): second choices verified beside the drafted chain.", double(s->draft_leaves));
    metric(out, "pensieve_draft_tree_leaves_kept_total", "counter",
           "Tree drafts: second choices the model took where the chain was rejected.", double(s->draft_leaves_taken));
    metric(out, "pensieve_tokens_per_pass", "gauge",
           "Tokens generated per sequence and forward pass (1 without speculation; more when drafts are kept).",
           s->sampling_passes > 0 ? double(s->generated_tokens) / double(s->sampling_passes) : 0.0);
    const PrefixCacheStats& p = s->prefix;
    metric(out, "pensieve_prefix_cache_lookups_total", "counter", "Prompts looked up in the prefix cache.", double(p.lookups));
    metric(out, "pensieve_prefix_cache_hit_blocks_total", "counter", "KV blocks reused from RAM.", double(p.hit_blocks));
    metric(out, "pensieve_prefix_cache_disk_hit_blocks_total", "counter", "KV blocks loaded back from --cache-dir.",
           double(p.disk_hit_blocks));
    metric(out, "pensieve_prefix_cache_disk_writes_total", "counter", "KV blocks written to --cache-dir.", double(p.disk_writes));
    metric(out, "pensieve_prefix_cache_disk_rejected_total", "counter", "Cache files ignored because they failed validation.",
           double(p.disk_rejected));
    metric(out, "pensieve_prefix_cache_evicted_blocks_total", "counter", "KV blocks evicted from RAM.", double(p.evicted_blocks));
    metric(out, "pensieve_prefix_cache_blocks", "gauge", "KV blocks the prefix cache holds now.", double(p.cached_blocks));
    return out;
}

std::string render_model_metrics(size_t loaded, uint64_t loads, uint64_t unloads) {
    std::string out;
    metric(out, "pensieve_models_loaded", "gauge", "Models loaded now.", double(loaded));
    metric(out, "pensieve_model_loads_total", "counter", "Models loaded on demand (a request named one not loaded).",
           double(loads));
    metric(out, "pensieve_model_unloads_total", "counter", "Models unloaded (keep-alive expired, or room for another).",
           double(unloads));
    return out;
}

}  // namespace pensieve::server
