// Which models the server has loaded, and loading and unloading them on demand.
//
// `serve -m FILE`: one model, loaded at start and never unloaded; every request reaches
// it whatever model name it sends (clients send "gpt-4o" or "claude-..." by habit).
//
// `serve --models-dir DIR`: the folder's models (server/model_catalog.h), each loaded when
// a request first names it. A loaded model stays while requests use it and for its keep-
// alive after the last one (--keep-alive, or the request's "keep_alive" as the other
// local servers accept it: seconds, "5m", "1h30m"; negative: forever; 0: unload when the
// request ends), then unloads. Loading one more that would pass --max-models or
// --max-ram first unloads the least recently used idle models; when every loaded model
// is busy, the request waits (up to --load-timeout) for one to go idle. Requests for a
// model that is loading wait for it instead of failing. A `-m` model given alongside
// --models-dir is loaded at start, never unloaded, and is the default.
//
// Engines are shared_ptrs: a request holds its engine (its handler, and the tracked
// streams its response reads), so a model unloads only when nothing uses it. The reaper
// thread watches use counts and keep-alives.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/scheduler.h"
#include "server/model_catalog.h"
#include "util/json.h"

namespace pensieve::server {

struct Engine;
struct ServerOptions;

struct HostOptions {
    double keep_alive_seconds = 300;  // idle time before a model unloads (< 0: never)
    uint64_t max_ram_bytes = 0;       // loaded models' weights + KV cache (0: no limit)
    int max_models = 3;               // loaded at once (0: no limit)
    double load_timeout_seconds = 300;// a request's wait for its model to load or for room
    int threads = 0;                  // per model's thread pool (0: one per core)
};

// What a request asks of the host: a model name (empty: the default) and its keep-alive.
struct ModelWish {
    std::string model;
    std::optional<double> keep_alive_seconds;
};

// One model as /v1/models shows it.
struct ModelStatus {
    CatalogEntry entry;
    std::shared_ptr<Engine> engine;   // null when not loaded
    double expires_in_seconds = -1;   // loaded and idle: seconds until it unloads (-1: never / busy)
    bool pinned = false;
};

class ModelHost {
public:
    explicit ModelHost(const ServerOptions& options);
    ~ModelHost();
    ModelHost(const ModelHost&) = delete;
    ModelHost& operator=(const ModelHost&) = delete;

    // `serve -m`: the loaded model, pinned. In single mode (no folder) every name reaches it.
    void pin(std::shared_ptr<Engine> engine, CatalogEntry entry);
    // `serve --models-dir`: starts the reaper.
    void serve_folder(ModelCatalog catalog, HostOptions options);

    // The engine for a request, loading it first when needed. Throws ApiError: 400 no
    // model named and no default, 404 unknown name (the message lists the known ones),
    // 503 still loading / no room after the wait; 500 when the file will not load.
    std::shared_ptr<Engine> acquire(const ModelWish& wish);

    bool ready() const;                          // requests can be answered now
    bool serves_folder() const { return folder_; }
    std::shared_ptr<Engine> pinned() const;      // the -m model once loaded, else null
    std::vector<ModelStatus> list();             // rescans the folder
    // Every loaded engine's stats summed, plus the counters of engines since unloaded
    // (so /metrics counters never go backwards). False when no model is loaded or ever was.
    bool stats(SchedulerStats& out) const;
    size_t loaded_count() const;
    uint64_t loads() const;
    uint64_t unloads() const;

    void shutdown_schedulers();  // cancels what runs (shutdown after the grace period)
    void unload_all();           // at exit: stops the reaper, drops every engine

private:
    struct Slot {
        CatalogEntry entry;
        std::shared_ptr<Engine> engine;
        bool loading = false;
        bool pinned = false;
        std::chrono::steady_clock::time_point last_used;
        double keep_alive = 0;
        uint64_t kv_bytes = 0;  // measured when it was last loaded (0: never loaded)
    };
    using Lock = std::unique_lock<std::mutex>;

    Slot& slot_for(const ModelWish& wish, Lock& lock);
    // Unloads idle models until `slot` fits; false when it cannot yet (all busy).
    bool make_room(const Slot& slot, std::vector<std::shared_ptr<Engine>>& dropped, std::string& why);
    std::shared_ptr<Engine> load(const CatalogEntry& entry);
    void unload(Slot& s, std::vector<std::shared_ptr<Engine>>& dropped, const char* why);
    bool idle(const Slot& s) const;
    void reap_loop();

    const ServerOptions& options_;
    HostOptions host_;
    std::atomic<bool> folder_{false};  // set once, read by every request
    ModelCatalog catalog_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;         // a load ended, a model unloaded or went idle
    std::map<std::string, Slot> slots_;       // by model name
    std::string pinned_name_;
    SchedulerStats retired_;                  // counters of unloaded engines
    bool any_loaded_ever_ = false;
    uint64_t loads_ = 0, unloads_ = 0;
    bool stopping_ = false;
    std::thread reaper_;
};

// A request body's top-level "model" and "keep_alive", read without building the whole
// document (a body that is not JSON gives an empty wish; the route reports the error).
// Throws ApiError 400 for a malformed keep_alive or a "model" that is not a string.
ModelWish model_wish_of_body(const std::string& body);

// "keep_alive" as a request sends it: a number of seconds, or a duration such as "30s",
// "5m", "1h30m", "250ms" (a bare number string is seconds); negative: forever. Throws
// ApiError 400 otherwise.
double parse_keep_alive(const json& value);

}  // namespace pensieve::server
