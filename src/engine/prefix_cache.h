// Prefix cache: KV blocks of earlier prompts, found again by their tokens.
//
// Every full block of a finished sequence is registered under a chain hash: the hash of
// the block's tokens and of the hash of the block before it, so one hash names the whole
// prefix up to and including that block (as in a radix tree over token ids whose edges
// are blocks). A new request walks its prompt block by block and reuses every block
// found, from any earlier request and any slot; it computes only the rest.
//
// The cache holds one reference on each block it knows. Blocks that only the cache holds
// are evicted least-recently-used first when the pool needs room. With a cache directory,
// every new block is also written to disk (content-addressed by model identity, chain
// hash and KV cache type, with a checksum) as soon as its request ends, by a background
// writer (cache_writer.h: atomic renames, bounded queue; what does not fit in the queue
// waits for the next insert, an eviction or shutdown), and read back when a later
// request — or a later run of the server, even after a crash — needs that prefix again.
// Damaged files, and files of another KV cache type (--cache-type), are ignored with a
// warning and removed: a miss, never a wrong answer; computing that prefix again writes
// a good file in its place.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace pensieve {

class KvCache;
class GgufFile;
class Model;
class CacheWriter;

struct PrefixCacheStats {
    uint64_t lookups = 0;
    uint64_t hit_blocks = 0;       // blocks reused from RAM
    uint64_t disk_hit_blocks = 0;  // blocks loaded back from disk
    uint64_t inserted_blocks = 0;
    uint64_t evicted_blocks = 0;
    uint64_t disk_writes = 0;
    uint64_t disk_rejected = 0;    // files that failed validation
    size_t cached_blocks = 0;      // blocks held by the cache now
};

class PrefixCache {
public:
    // model_id: identity of the model file (model_identity()); disk_dir empty: RAM only.
    PrefixCache(KvCache& kv, uint64_t model_id, std::string disk_dir = "");
    ~PrefixCache();   // waits for queued disk writes

    // Attaches to the empty sequence `seq` the longest cached prefix of `tokens`, at most
    // max_blocks blocks; returns the number of positions attached (a multiple of the
    // block size). Counted as a lookup.
    int attach_longest_prefix(int seq, const std::vector<int32_t>& tokens, size_t max_blocks);
    // The same for a sequence that already holds the first kv.length(seq) positions of
    // `tokens`, a whole number of blocks: attaches the cached blocks that follow (at most
    // max_blocks in all), such as those another sequence computed since. 0 if `seq` ends
    // mid-block.
    int attach_more(int seq, const std::vector<int32_t>& tokens, size_t max_blocks);

    // Registers the full blocks of `seq` (whose KV holds `tokens`) so later requests can
    // reuse them. Blocks already known are only marked as used. Called after every
    // prefill step too, so a request that arrives (or a client retry) while a long prompt
    // is being read shares what is already computed.
    void insert(int seq, const std::vector<int32_t>& tokens);

    // Frees one block that only the cache holds (LRU), saving it to disk first when a
    // cache directory is set. False when there is none.
    bool evict_one();

    // Writes every cached block to disk and waits for the writes (at shutdown), if a
    // cache directory is set.
    void save_all();

    PrefixCacheStats stats() const;
    // Blocks written to disk so far; unlike stats(), callable from any thread (the
    // background writer keeps counting while the owner's thread sleeps).
    uint64_t disk_writes() const;
    uint64_t model_id() const { return model_id_; }

private:
    struct Entry {
        uint64_t hash;
        uint64_t parent;
        std::vector<int32_t> tokens;  // the block's tokens (checked on every hit)
        int block;
        uint64_t last_used;
        bool on_disk;
    };

    static uint64_t chain_hash(uint64_t parent, const int32_t* tokens);
    std::string block_path(uint64_t hash) const;
    std::vector<uint8_t> block_file(const Entry& e) const;
    bool save_block(const Entry& e);   // now, on this thread
    void write_behind();               // queues unsaved blocks for the background writer
    void remove_stale_temporaries() const;
    int load_block(uint64_t hash, uint64_t parent, const int32_t* tokens);

    KvCache& kv_;
    uint64_t model_id_;
    std::string dir_;
    std::unordered_map<uint64_t, Entry> entries_;
    std::deque<uint64_t> unsaved_;           // inserted blocks not yet queued for disk
    std::unique_ptr<CacheWriter> writer_;    // with a cache directory
    std::atomic<uint64_t> sync_writes_{0};   // files written by save_block
    uint64_t clock_ = 0;
    PrefixCacheStats stats_;
};

// A 64-bit identity of a model file from its metadata, tensor layout and samples of the
// tensor data: two files give the same id only if they hold the same model.
uint64_t model_identity(const GgufFile& file);
// The key of a model's cache entries: model_identity(), plus Model::cache_variant(n_ctx)
// when it is not 0 (so a LongRoPE model keeps one set of entries per factor choice).
uint64_t cache_identity(const Model& model, int n_ctx);

// Fast non-cryptographic 64-bit hash (checksums, content addresses).
uint64_t hash_bytes(const void* data, size_t n, uint64_t seed = 0);

}  // namespace pensieve
