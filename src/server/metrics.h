// Counters for GET /metrics (Prometheus text format). The scheduler keeps the token
// and timing counters; this adds what only the HTTP layer sees: responses by status and
// generation requests by endpoint.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>

#include "engine/scheduler.h"

namespace pensieve::server {

class Metrics {
public:
    void record_response(int status);
    void record_generation(const std::string& endpoint);  // a request accepted by the scheduler

    // The full exposition; stats is null while the model loads.
    std::string render(const SchedulerStats* stats, size_t open_connections = 0) const;

private:
    mutable std::mutex mutex_;
    std::map<int, uint64_t> responses_;             // by HTTP status
    std::map<std::string, uint64_t> generations_;   // by endpoint
};

// Models loaded now, and loads / unloads on demand since start (serve --models-dir).
std::string render_model_metrics(size_t loaded, uint64_t loads, uint64_t unloads);

}  // namespace pensieve::server
