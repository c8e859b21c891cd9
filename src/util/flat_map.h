// FlatMap64: a hash map from 64-bit keys to 32-bit values, insert and look-up only, in
// two flat arrays (open addressing, linear probing, power-of-two capacity).
//
// Why not std::unordered_map: it allocates a node per entry. The grammar matcher interns
// up to millions of stack frames per token on ambiguous grammars, and with node maps
// most of that time went to malloc, page faults and freeing the nodes again (perf on
// GrammarMatcher.ExponentiallyAmbiguousGrammarIsRefusedNotStalled: ~30% in the map,
// ~25% in malloc/page faults, ~12% in the destructor).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pensieve {

class FlatMap64 {
public:
    static constexpr uint64_t kEmpty = ~uint64_t(0);  // the one key that cannot be stored

    // The value stored under `key`, inserting `fresh` first when the key is new (then
    // `inserted` is true). The reference is valid until the next insertion.
    uint32_t& get_or_insert(uint64_t key, uint32_t fresh, bool& inserted) {
        if ((size_ + 1) * 2 > keys_.size()) grow();
        size_t i = slot_of(key);
        while (keys_[i] != kEmpty) {
            if (keys_[i] == key) {
                inserted = false;
                return values_[i];
            }
            i = (i + 1) & (keys_.size() - 1);
        }
        keys_[i] = key;
        values_[i] = fresh;
        ++size_;
        inserted = true;
        return values_[i];
    }

    const uint32_t* find(uint64_t key) const {
        if (keys_.empty()) return nullptr;
        for (size_t i = slot_of(key); keys_[i] != kEmpty; i = (i + 1) & (keys_.size() - 1))
            if (keys_[i] == key) return &values_[i];
        return nullptr;
    }

    size_t size() const { return size_; }

    // Empties the map and gives its memory back.
    void clear() {
        keys_ = {};
        values_ = {};
        size_ = 0;
    }

private:
    size_t slot_of(uint64_t key) const {
        // Fibonacci hashing: the multiply spreads keys that differ only in low bits.
        return size_t((key * 0x9E3779B97F4A7C15ull) >> 32) & (keys_.size() - 1);
    }

    void grow() {
        std::vector<uint64_t> old_keys = std::move(keys_);
        std::vector<uint32_t> old_values = std::move(values_);
        const size_t capacity = old_keys.empty() ? 64 : old_keys.size() * 2;
        keys_.assign(capacity, kEmpty);
        values_.assign(capacity, 0);
        size_ = 0;
        bool inserted = false;
        for (size_t i = 0; i < old_keys.size(); ++i)
            if (old_keys[i] != kEmpty) get_or_insert(old_keys[i], old_values[i], inserted);
    }

    std::vector<uint64_t> keys_;
    std::vector<uint32_t> values_;
    size_t size_ = 0;
};

}  // namespace pensieve
