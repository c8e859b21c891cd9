#include "server/model_host.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/loaded_model.h"
#include "model/model.h"
#include "server/api_errors.h"
#include "server/server_context.h"
#include "util/error.h"

namespace pensieve::server {

namespace {

using Clock = std::chrono::steady_clock;

// Counters add up; gauges (slots, active, KV) are those of the engines loaded now.
void add_counters(SchedulerStats& to, const SchedulerStats& s) {
    to.requests_started += s.requests_started;
    to.requests_finished += s.requests_finished;
    to.requests_cancelled += s.requests_cancelled;
    to.requests_rejected += s.requests_rejected;
    to.prompt_tokens += s.prompt_tokens;
    to.cached_prompt_tokens += s.cached_prompt_tokens;
    to.generated_tokens += s.generated_tokens;
    to.prompt_seconds += s.prompt_seconds;
    to.decode_seconds += s.decode_seconds;
    to.steps += s.steps;
    to.draft_tokens += s.draft_tokens;
    to.draft_accepted += s.draft_accepted;
    to.draft_model_runs += s.draft_model_runs;
    to.draft_leaves += s.draft_leaves;
    to.draft_leaves_taken += s.draft_leaves_taken;
    to.sampling_passes += s.sampling_passes;
    to.largest_prefill_beside_decode = std::max(to.largest_prefill_beside_decode, s.largest_prefill_beside_decode);
    to.prefix.lookups += s.prefix.lookups;
    to.prefix.hit_blocks += s.prefix.hit_blocks;
    to.prefix.disk_hit_blocks += s.prefix.disk_hit_blocks;
    to.prefix.inserted_blocks += s.prefix.inserted_blocks;
    to.prefix.evicted_blocks += s.prefix.evicted_blocks;
    to.prefix.disk_writes += s.prefix.disk_writes;
    to.prefix.disk_rejected += s.prefix.disk_rejected;
}

void add_gauges(SchedulerStats& to, const SchedulerStats& s) {
    to.n_slots += s.n_slots;
    to.active += s.active;
    to.queued += s.queued;
    to.kv_bytes += s.kv_bytes;
    to.kv_bytes_committed += s.kv_bytes_committed;
    to.kv_type = s.kv_type;
    to.kv_tokens_used += s.kv_tokens_used;
    to.kv_tokens_capacity += s.kv_tokens_capacity;
    to.kv_blocks_free += s.kv_blocks_free;
    to.kv_blocks_active += s.kv_blocks_active;
    to.kv_block_refs_active += s.kv_block_refs_active;
    to.prompt_tokens_pending += s.prompt_tokens_pending;
    to.state_bytes_per_sequence = std::max(to.state_bytes_per_sequence, s.state_bytes_per_sequence);
    to.state_snapshots += s.state_snapshots;
    to.state_snapshot_bytes += s.state_snapshot_bytes;
    to.prefix.cached_blocks += s.prefix.cached_blocks;
}

std::string quoted_list(const std::vector<std::string>& names) {
    std::string s;
    for (size_t i = 0; i < names.size(); ++i) s += (i ? ", \"" : "\"") + names[i] + "\"";
    return s;
}

std::string gib(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(1ull << 30));
    return buf;
}

}  // namespace

double parse_keep_alive(const json& v) {
    auto bad = [] {
        throw ApiError(400, "keep_alive must be a number of seconds or a duration such as \"5m\", \"30s\", \"1h30m\"",
                       "keep_alive");
    };
    if (v.is_number()) {
        const double s = v.get<double>();
        if (!std::isfinite(s)) bad();
        return s;
    }
    if (!v.is_string()) bad();
    const std::string s = v.get<std::string>();
    if (s.empty()) bad();
    size_t pos = 0;
    const bool negative = s[0] == '-';
    if (negative || s[0] == '+') pos = 1;
    double total = 0;
    bool any = false;
    while (pos < s.size()) {
        size_t used = 0;
        double number = 0;
        try {
            number = std::stod(s.substr(pos), &used);
        } catch (const std::exception&) {
            bad();
        }
        if (used == 0 || !std::isfinite(number) || number < 0) bad();
        pos += used;
        double unit = 1;
        if (s.compare(pos, 2, "ms") == 0) unit = 1e-3, pos += 2;
        else if (s.compare(pos, 1, "s") == 0) unit = 1, pos += 1;
        else if (s.compare(pos, 1, "m") == 0) unit = 60, pos += 1;
        else if (s.compare(pos, 1, "h") == 0) unit = 3600, pos += 1;
        else if (pos != s.size() || any) bad();  // a bare number: seconds, and only alone
        total += number * unit;
        any = true;
    }
    if (!any) bad();
    return negative ? -total : total;
}

ModelHost::ModelHost(const ServerOptions& options) : options_(options) {}

ModelHost::~ModelHost() { unload_all(); }

void ModelHost::pin(std::shared_ptr<Engine> engine, CatalogEntry entry) {
    std::lock_guard<std::mutex> lock(mutex_);
    pinned_name_ = entry.name;
    Slot& s = slots_[entry.name];
    s.entry = std::move(entry);
    s.engine = std::move(engine);
    s.pinned = true;
    s.last_used = Clock::now();
    s.kv_bytes = s.engine->scheduler.stats().kv_bytes;
    any_loaded_ever_ = true;
    changed_.notify_all();
}

void ModelHost::serve_folder(ModelCatalog catalog, HostOptions options) {
    std::lock_guard<std::mutex> lock(mutex_);
    catalog_ = std::move(catalog);
    host_ = options;
    folder_ = true;
    if (!reaper_.joinable()) reaper_ = std::thread([this] { reap_loop(); });
}

bool ModelHost::ready() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (folder_) return true;
    auto it = slots_.find(pinned_name_);
    return it != slots_.end() && it->second.engine != nullptr;
}

std::shared_ptr<Engine> ModelHost::pinned() const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = slots_.find(pinned_name_);
    return it == slots_.end() ? nullptr : it->second.engine;
}

bool ModelHost::idle(const Slot& s) const { return s.engine && !s.pinned && s.engine.use_count() == 1; }

ModelHost::Slot& ModelHost::slot_for(const ModelWish& wish, Lock&) {
    if (!folder_) {
        auto it = slots_.find(pinned_name_);
        if (it == slots_.end() || !it->second.engine) throw ApiError(503, "the model is still loading; try again shortly");
        return it->second;
    }
    std::string name = wish.model;
    if (name.empty()) name = pinned_name_.empty() ? catalog_.default_name() : pinned_name_;
    if (name.empty())
        throw ApiError(400, "the request names no model; this server has " + quoted_list(catalog_.names()), "model");
    if (name == pinned_name_) return slots_[pinned_name_];
    CatalogEntry entry;
    if (!catalog_.find(name, entry)) {
        catalog_.rescan();  // a file added since (pensieve pull)
        if (!catalog_.find(name, entry)) {
            const std::vector<std::string> names = catalog_.names();
            throw ApiError(404, "model \"" + name + "\" not found; " +
                                    (names.empty() ? std::string("the models folder holds none")
                                                   : "this server has " + quoted_list(names)),
                           "model");
        }
    }
    Slot& s = slots_[entry.name];
    if (!s.engine && !s.loading) s.entry = entry;  // the file may have changed since
    return s;
}

std::shared_ptr<Engine> ModelHost::acquire(const ModelWish& wish) {
    Lock lock(mutex_);
    Slot& s = slot_for(wish, lock);
    const auto deadline = Clock::now() + std::chrono::duration<double>(host_.load_timeout_seconds);
    for (;;) {
        if (stopping_) throw ApiError(503, "the server is shutting down");
        if (s.engine) {
            s.last_used = Clock::now();
            if (!s.pinned) s.keep_alive = wish.keep_alive_seconds.value_or(host_.keep_alive_seconds);
            return s.engine;
        }
        if (!s.loading) {
            std::vector<std::shared_ptr<Engine>> dropped;
            std::string why;
            const bool room = make_room(s, dropped, why);
            if (!dropped.empty()) {  // engines end (threads joined, memory unmapped) outside the lock
                lock.unlock();
                dropped.clear();
                lock.lock();
                continue;  // things may have changed meanwhile
            }
            if (room) {
                s.loading = true;
                const CatalogEntry entry = s.entry;
                lock.unlock();
                std::shared_ptr<Engine> e;
                std::string error;
                try {
                    e = load(entry);
                } catch (const std::exception& ex) {
                    error = ex.what();
                }
                lock.lock();
                s.loading = false;
                changed_.notify_all();
                if (!e) throw ApiError(500, "model \"" + entry.name + "\" could not be loaded: " + error, "model");
                s.engine = std::move(e);
                s.kv_bytes = s.engine->scheduler.stats().kv_bytes;
                s.last_used = Clock::now();
                ++loads_;
                any_loaded_ever_ = true;
                continue;
            }
            if (changed_.wait_until(lock, deadline) == std::cv_status::timeout)
                throw ApiError(503, "model \"" + s.entry.name + "\" cannot be loaded now: " + why);
            continue;
        }
        if (changed_.wait_until(lock, deadline) == std::cv_status::timeout)
            throw ApiError(503, "model \"" + s.entry.name + "\" is still loading; try again shortly");
    }
}

bool ModelHost::make_room(const Slot& slot, std::vector<std::shared_ptr<Engine>>& dropped, std::string& why) {
    const uint64_t need = slot.entry.bytes + slot.kv_bytes;
    if (host_.max_ram_bytes > 0 && need > host_.max_ram_bytes) {
        why = "it needs " + gib(need) + " but --max-ram is " + gib(host_.max_ram_bytes);
        throw ApiError(503, "model \"" + slot.entry.name + "\" cannot be loaded: " + why, "model");
    }
    for (;;) {
        int loaded = 0;
        uint64_t used = 0;
        for (const auto& [name, s] : slots_)
            if (s.engine || s.loading) {
                ++loaded;
                used += s.entry.bytes + s.kv_bytes;
            }
        const bool count_ok = host_.max_models <= 0 || loaded < host_.max_models;
        const bool ram_ok = host_.max_ram_bytes == 0 || used + need <= host_.max_ram_bytes;
        if (count_ok && ram_ok) return dropped.empty();
        // The least recently used idle model goes first.
        Slot* victim = nullptr;
        for (auto& [name, s] : slots_)
            if (idle(s) && (!victim || s.last_used < victim->last_used)) victim = &s;
        if (!victim) {
            why = count_ok ? "the models loaded (" + gib(used) + ") are busy and --max-ram is " + gib(host_.max_ram_bytes)
                           : "the " + std::to_string(loaded) + " models loaded (--max-models) are busy";
            return false;
        }
        unload(*victim, dropped, "to make room");
    }
}

std::shared_ptr<Engine> ModelHost::load(const CatalogEntry& entry) {
    std::fprintf(stderr, "pensieve: loading model \"%s\" (%s, %s)\n", entry.name.c_str(), entry.path.c_str(),
                 gib(entry.bytes).c_str());
    LoadedModel m = load_model_and_tokenizer(entry.path, host_.threads);
    // The draft model and a --chat-template-file were given for the -m model.
    ServerOptions o = options_;
    o.draft_model = nullptr;
    o.chat_template_source.clear();
    // One -c for a folder of models: each gets at most what it was trained for (models
    // with learned positions cannot go beyond it).
    const int trained = m.model->config().n_ctx_train;
    if (trained > 0 && o.n_ctx > trained) {
        std::fprintf(stderr, "pensieve: \"%s\" was trained for %d positions: its context is %d, not %d\n",
                     entry.name.c_str(), trained, trained, o.n_ctx);
        o.n_ctx = trained;
    }
    return std::make_shared<Engine>(std::move(m), o, entry.name);
}

void ModelHost::unload(Slot& s, std::vector<std::shared_ptr<Engine>>& dropped, const char* why) {
    add_counters(retired_, s.engine->scheduler.stats());
    std::fprintf(stderr, "pensieve: unloading model \"%s\" (%s)\n", s.entry.name.c_str(), why);
    dropped.push_back(std::move(s.engine));
    s.engine = nullptr;
    ++unloads_;
    changed_.notify_all();
}

void ModelHost::reap_loop() {
    Lock lock(mutex_);
    while (!stopping_) {
        changed_.wait_for(lock, std::chrono::milliseconds(100));
        if (stopping_) break;
        std::vector<std::shared_ptr<Engine>> dropped;
        const auto now = Clock::now();
        bool went_idle = false;
        for (auto& [name, s] : slots_) {
            if (!s.engine || s.pinned) continue;
            if (!idle(s)) {
                s.last_used = now;  // in use: its keep-alive counts from the end of the last request
                continue;
            }
            went_idle = true;
            const double idle_for = std::chrono::duration<double>(now - s.last_used).count();
            if (s.keep_alive >= 0 && idle_for >= s.keep_alive) unload(s, dropped, "keep-alive expired");
        }
        // A request waiting for room may go on once a model is idle.
        if (went_idle) changed_.notify_all();
        if (!dropped.empty()) {
            lock.unlock();
            dropped.clear();
            lock.lock();
        }
    }
}

std::vector<ModelStatus> ModelHost::list() {
    if (folder_) catalog_.rescan();
    Lock lock(mutex_);
    std::vector<ModelStatus> out;
    const auto now = Clock::now();
    auto status_of = [&](const Slot& s) {
        ModelStatus m;
        if (s.engine && !s.pinned && idle(s) && s.keep_alive >= 0)  // before the copy below counts as a use
            m.expires_in_seconds = std::max(0.0, s.keep_alive - std::chrono::duration<double>(now - s.last_used).count());
        m.entry = s.entry;
        m.engine = s.engine;
        m.pinned = s.pinned;
        return m;
    };
    if (!pinned_name_.empty() && slots_.count(pinned_name_)) out.push_back(status_of(slots_[pinned_name_]));
    if (!folder_) return out;
    for (const CatalogEntry& e : catalog_.entries()) {
        if (e.name == pinned_name_) continue;
        auto it = slots_.find(e.name);
        if (it != slots_.end()) {
            ModelStatus m = status_of(it->second);
            m.entry = e;
            out.push_back(m);
        } else {
            ModelStatus m;
            m.entry = e;
            out.push_back(m);
        }
    }
    return out;
}

bool ModelHost::stats(SchedulerStats& out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!any_loaded_ever_) return false;
    out = retired_;
    for (const auto& [name, s] : slots_) {
        if (!s.engine) continue;
        const SchedulerStats st = s.engine->scheduler.stats();
        add_counters(out, st);
        add_gauges(out, st);
    }
    return true;
}

size_t ModelHost::loaded_count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t n = 0;
    for (const auto& [name, s] : slots_) n += s.engine != nullptr;
    return n;
}

uint64_t ModelHost::loads() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return loads_;
}

uint64_t ModelHost::unloads() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return unloads_;
}

void ModelHost::shutdown_schedulers() {
    std::vector<std::shared_ptr<Engine>> engines;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& [name, s] : slots_)
            if (s.engine) engines.push_back(s.engine);
    }
    for (auto& e : engines) e->scheduler.shutdown();
}

void ModelHost::unload_all() {
    std::vector<std::shared_ptr<Engine>> dropped;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
        changed_.notify_all();
    }
    if (reaper_.joinable()) reaper_.join();
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [name, s] : slots_)
        if (s.engine) dropped.push_back(std::move(s.engine));
    slots_.clear();
    pinned_name_.clear();
}

}  // namespace pensieve::server
