// Responses kept in memory for previous_response_id and GET /v1/responses/{id}: the
// conversation each one ended (its input messages, after those of the response it
// continued, then its own reply) and the response object. Bounded by count and by bytes
// (least recently used out first), so a client storing every response cannot grow the
// server without limit; a response gone from the store is a 404 like one never made.
#pragma once

#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "util/json.h"

namespace pensieve::server {

class ResponseStore {
public:
    struct Entry {
        json conversation;  // OpenAI-shaped messages, the instructions left out
        json response;      // the response object as returned
    };

    ResponseStore(size_t max_entries, size_t max_bytes) : max_entries_(max_entries), max_bytes_(max_bytes) {}

    // `bytes`: the entry's approximate size (its serialised length).
    void put(const std::string& id, Entry entry, size_t bytes) {
        std::lock_guard<std::mutex> lock(mutex_);
        erase_locked(id);
        if (bytes > max_bytes_) return;  // larger than the whole store: not kept
        order_.push_front(id);
        entries_[id] = {std::move(entry), bytes, order_.begin()};
        bytes_ += bytes;
        while (entries_.size() > max_entries_ || bytes_ > max_bytes_) {
            const std::string oldest = order_.back();
            erase_locked(oldest);
        }
    }

    // A copy (the caller may hold it after eviction); marks the entry recently used.
    std::optional<Entry> get(const std::string& id) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = entries_.find(id);
        if (it == entries_.end()) return std::nullopt;
        order_.splice(order_.begin(), order_, it->second.position);
        return it->second.entry;
    }

    bool erase(const std::string& id) {
        std::lock_guard<std::mutex> lock(mutex_);
        return erase_locked(id);
    }

    size_t size() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return entries_.size();
    }

private:
    struct Slot {
        Entry entry;
        size_t bytes;
        std::list<std::string>::iterator position;
    };

    bool erase_locked(const std::string& id) {
        auto it = entries_.find(id);
        if (it == entries_.end()) return false;
        bytes_ -= it->second.bytes;
        order_.erase(it->second.position);
        entries_.erase(it);
        return true;
    }

    const size_t max_entries_;
    const size_t max_bytes_;
    mutable std::mutex mutex_;
    std::list<std::string> order_;  // most recently used first
    std::unordered_map<std::string, Slot> entries_;
    size_t bytes_ = 0;
};

}  // namespace pensieve::server
