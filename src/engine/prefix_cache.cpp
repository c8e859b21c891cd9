#include "engine/prefix_cache.h"
#include "util/error.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "engine/cache_writer.h"
#include "gguf/gguf.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace pensieve {

namespace {

constexpr int B = KvCache::kBlockSize;
constexpr char kMagic[8] = {'P', 'S', 'V', 'K', 'V', 'B', 'L', 'K'};
// Version 2 added the KV element type (version 1 files held fp16 and are ignored);
// version 3 per-layer memory layouts (a block is whatever KvCache::copy_block_out writes);
// version 4 an optional recurrent state snapshot after the block (most blocks have none).
constexpr uint32_t kVersion = 4;
// Memory the background writer may hold in copies of blocks waiting for the disk.
constexpr size_t kMaxPendingWriteBytes = size_t(256) << 20;
// A temporary file this old belongs to a write that died with its process.
constexpr auto kStaleTemporaryAge = std::chrono::hours(1);

// What precedes a block's tokens and K/V data in its file.
struct DiskHeader {
    char magic[8];
    uint32_t version;
    uint32_t block_size;
    uint32_t n_layer;
    uint32_t layout;     // low bits of KvCache::layout_fingerprint()
    uint64_t model_id;
    uint64_t hash;
    uint64_t parent;
    uint32_t kv_type;    // KvType: a block is only ever loaded into a cache of its own type
    uint32_t position_bytes;  // bytes of one position in every layer
    uint32_t has_snapshot;    // 1: KvCache::snapshot_bytes() of state follow the block
    uint32_t reserved;
};
static_assert(sizeof(DiskHeader) == 64);

uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

std::string hex(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

}  // namespace

uint64_t hash_bytes(const void* data, size_t n, uint64_t seed) {
    const auto* p = static_cast<const uint8_t*>(data);
    uint64_t h = mix(seed ^ (0x9e3779b97f4a7c15ULL + n));
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        h = (h ^ mix(w)) * 0x9e3779b97f4a7c15ULL;
    }
    uint64_t tail = 0;
    for (size_t k = 0; i < n; ++i, ++k) tail |= uint64_t(p[i]) << (8 * k);
    return mix(h ^ mix(tail));
}

uint64_t model_identity(const GgufFile& file) {
    uint64_t h = hash_bytes("pensieve-model", 14, file.file_size());
    auto add = [&](const void* p, size_t n) { h = hash_bytes(p, n, h); };
    // Metadata, serialised simply: enough that any changed key or value changes the id.
    std::function<void(const GgufValue&)> add_value = [&](const GgufValue& v) {
        add(&v.type, sizeof v.type);
        add(&v.u, sizeof v.u);
        add(&v.i, sizeof v.i);
        add(&v.f, sizeof v.f);
        add(v.str.data(), v.str.size());
        for (const GgufValue& e : v.array) add_value(e);
    };
    for (const auto& [key, value] : file.metadata()) {
        add(key.data(), key.size());
        add_value(value);
    }
    // Tensor layout and samples of every tensor's data (start and end), so two random
    // models of the same shape still differ.
    for (const GgufTensor& t : file.tensors()) {
        add(t.name.data(), t.name.size());
        add(t.dims.data(), t.dims.size() * sizeof(int64_t));
        add(&t.type, sizeof t.type);
        const size_t n = std::min<size_t>(t.nbytes, 256);
        add(t.data, n);
        add(t.data + t.nbytes - n, n);
    }
    return h;
}

uint64_t cache_identity(const Model& model, int n_ctx) {
    const uint64_t id = model_identity(model.file());
    const uint64_t variant = model.cache_variant(n_ctx);
    return variant == 0 ? id : hash_bytes(&variant, sizeof variant, id);
}

PrefixCache::PrefixCache(KvCache& kv, uint64_t model_id, std::string disk_dir)
    : kv_(kv), model_id_(model_id), dir_(std::move(disk_dir)) {
    if (!dir_.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(dir_ + "/" + hex(model_id_), ec);
        if (ec) std::fprintf(stderr, "pensieve: warning: cannot create cache directory %s: %s\n",
                             dir_.c_str(), ec.message().c_str());
        remove_stale_temporaries();
        writer_ = std::make_unique<CacheWriter>(kMaxPendingWriteBytes);
    }
}

PrefixCache::~PrefixCache() = default;   // the writer finishes its queue

void PrefixCache::remove_stale_temporaries() const {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto now = fs::file_time_type::clock::now();
    for (const auto& f : fs::directory_iterator(dir_ + "/" + hex(model_id_), ec)) {
        std::error_code fe;
        if (!is_temporary_cache_file(f.path().string())) continue;
        const auto mtime = fs::last_write_time(f.path(), fe);
        if (!fe && now - mtime > kStaleTemporaryAge) fs::remove(f.path(), fe);
    }
}

uint64_t PrefixCache::chain_hash(uint64_t parent, const int32_t* tokens) {
    return hash_bytes(tokens, B * sizeof(int32_t), parent);
}

// f16 blocks are <hash>.kv, other types <hash>.<type>.kv: runs with different cache
// types share a directory without reading (or deleting) each other's files.
std::string PrefixCache::block_path(uint64_t hash) const {
    const std::string type = kv_.type() == KvType::F16 ? "" : std::string(".") + kv_type_name(kv_.type());
    return dir_ + "/" + hex(model_id_) + "/" + hex(hash) + type + ".kv";
}

int PrefixCache::attach_longest_prefix(int seq, const std::vector<int32_t>& tokens, size_t max_blocks) {
    ++stats_.lookups;
    if (kv_.length(seq) != 0) fail("attach_longest_prefix: sequence ", seq, " is not empty");
    return attach_more(seq, tokens, max_blocks);
}

int PrefixCache::attach_more(int seq, const std::vector<int32_t>& tokens, size_t max_blocks) {
    if (!kv_.can_share_prefix()) return 0;  // the model's memory cannot resume from shared blocks
    if (!kv_.can_attach_prefix(seq)) return 0;  // mid-block, or blocks reserved past its length
    const size_t held = size_t(kv_.length(seq)) / B;
    std::vector<int> blocks;  // each holds one extra reference for the duration of the walk
    uint64_t h = model_id_;
    for (size_t i = 0; i < held && (i + 1) * B <= tokens.size(); ++i) h = chain_hash(h, tokens.data() + i * B);
    for (size_t i = held; i < max_blocks && (i + 1) * B <= tokens.size(); ++i) {
        const int32_t* block_tokens = tokens.data() + i * B;
        const uint64_t parent = h;
        h = chain_hash(parent, block_tokens);
        auto it = entries_.find(h);
        if (it != entries_.end() && std::equal(block_tokens, block_tokens + B, it->second.tokens.begin())) {
            it->second.last_used = ++clock_;
            kv_.retain_block(it->second.block);
            blocks.push_back(it->second.block);
            ++stats_.hit_blocks;
            continue;
        }
        if (it != entries_.end() || dir_.empty()) break;  // hash collision, or no disk tier
        const int block = load_block(h, parent, block_tokens);
        if (block < 0) break;
        entries_[h] = Entry{h, parent, std::vector<int32_t>(block_tokens, block_tokens + B), block, ++clock_, true};
        kv_.retain_block(block);
        blocks.push_back(block);
        ++stats_.disk_hit_blocks;
    }
    // A recurrent model resumes from a snapshot: the prefix ends at the last block with one.
    size_t usable = blocks.size();
    while (usable > 0 && !kv_.can_resume_after(blocks[usable - 1])) --usable;
    kv_.attach_prefix(seq, std::vector<int>(blocks.begin(), blocks.begin() + long(usable)));
    for (int b : blocks) kv_.release_block(b);
    return int(usable) * B;
}

void PrefixCache::insert(int seq, const std::vector<int32_t>& tokens) {
    if (!kv_.can_share_prefix()) return;
    const std::vector<int>& table = kv_.block_table(seq);
    const size_t n_full = std::min<size_t>(tokens.size(), size_t(kv_.length(seq))) / B;
    uint64_t h = model_id_;
    for (size_t i = 0; i < n_full && i < table.size(); ++i) {
        const int32_t* block_tokens = tokens.data() + i * B;
        const uint64_t parent = h;
        h = chain_hash(parent, block_tokens);
        auto it = entries_.find(h);
        if (it != entries_.end()) {
            it->second.last_used = ++clock_;
            continue;
        }
        kv_.retain_block(table[i]);
        entries_[h] = Entry{h, parent, std::vector<int32_t>(block_tokens, block_tokens + B), table[i], ++clock_, false};
        ++stats_.inserted_blocks;
        if (writer_) unsaved_.push_back(h);
    }
    write_behind();
}

// Oldest first, as long as the writer's queue has room; a block evicted meanwhile was
// saved by evict_one.
void PrefixCache::write_behind() {
    while (writer_ && !unsaved_.empty()) {
        auto it = entries_.find(unsaved_.front());
        if (it != entries_.end() && !it->second.on_disk) {
            if (!writer_->try_submit(block_path(it->first), block_file(it->second))) return;
            it->second.on_disk = true;   // queued: written within moments (a failure is a miss later)
        }
        unsaved_.pop_front();
    }
}

bool PrefixCache::evict_one() {
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (kv_.block_refs(it->second.block) != 1) continue;  // a sequence still uses it
        if (victim == entries_.end() || it->second.last_used < victim->second.last_used) victim = it;
    }
    if (victim == entries_.end()) return false;
    if (!dir_.empty() && !victim->second.on_disk) save_block(victim->second);
    kv_.release_block(victim->second.block);
    entries_.erase(victim);
    ++stats_.evicted_blocks;
    return true;
}

void PrefixCache::save_all() {
    if (dir_.empty()) return;
    unsaved_.clear();
    for (auto& [h, e] : entries_)
        if (!e.on_disk && save_block(e)) e.on_disk = true;
    writer_->drain();
}

PrefixCacheStats PrefixCache::stats() const {
    PrefixCacheStats s = stats_;
    s.cached_blocks = entries_.size();
    s.disk_writes = disk_writes();
    return s;
}

uint64_t PrefixCache::disk_writes() const { return sync_writes_.load() + (writer_ ? writer_->written() : 0); }

// File: header, tokens, the block's memory in every layer, checksum of all before it.
std::vector<uint8_t> PrefixCache::block_file(const Entry& e) const {
    DiskHeader hd{};
    std::memcpy(hd.magic, kMagic, 8);
    hd.version = kVersion;
    hd.block_size = B;
    hd.n_layer = uint32_t(kv_.n_layer());
    hd.layout = uint32_t(kv_.layout_fingerprint());
    hd.model_id = model_id_;
    hd.hash = e.hash;
    hd.parent = e.parent;
    hd.kv_type = uint32_t(kv_.type());
    hd.position_bytes = uint32_t(kv_.position_bytes());
    hd.has_snapshot = kv_.has_snapshot(e.block) ? 1 : 0;

    const size_t body = sizeof hd + B * sizeof(int32_t) + kv_.block_bytes() + (hd.has_snapshot ? kv_.snapshot_bytes() : 0);
    std::vector<uint8_t> buf(body + sizeof(uint64_t));
    uint8_t* p = buf.data();
    std::memcpy(p, &hd, sizeof hd);
    p += sizeof hd;
    std::memcpy(p, e.tokens.data(), B * sizeof(int32_t));
    p += B * sizeof(int32_t);
    kv_.copy_block_out(e.block, p);
    if (hd.has_snapshot) kv_.copy_snapshot_out(e.block, p + kv_.block_bytes());
    const uint64_t checksum = hash_bytes(buf.data(), body);
    std::memcpy(buf.data() + body, &checksum, sizeof checksum);
    return buf;
}

// A file for a block this process computed is (re)written even if one exists: that one
// may be damaged, and the rename replaces it whole.
bool PrefixCache::save_block(const Entry& e) {
    if (!write_file_atomically(block_path(e.hash), block_file(e))) return false;
    ++sync_writes_;
    return true;
}

// Reads a block file back into a newly allocated block; -1 if absent or invalid.
int PrefixCache::load_block(uint64_t hash, uint64_t parent, const int32_t* tokens) {
    const std::string path = block_path(hash);
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) return -1;
    auto reject = [&](const char* why) {
        std::fprintf(stderr, "pensieve: warning: ignoring cache file %s: %s\n", path.c_str(), why);
        ++stats_.disk_rejected;
        in.close();
        std::error_code ec;
        std::filesystem::remove(path, ec);
        return -1;
    };
    // The header first, so a block of another format or KV type is named as such.
    const size_t size = size_t(in.tellg());
    DiskHeader hd{};
    in.seekg(0);
    if (size < sizeof hd || !in.read(reinterpret_cast<char*>(&hd), sizeof hd)) return reject("too short");
    if (std::memcmp(hd.magic, kMagic, 8) != 0) return reject("not a pensieve cache block");
    if (hd.version != kVersion) return reject("older cache format");
    if (hd.kv_type != uint32_t(kv_.type()) || hd.position_bytes != uint32_t(kv_.position_bytes()))
        return reject("made for another KV cache type");
    if (hd.has_snapshot > 1) return reject("damaged header");
    const size_t body = sizeof hd + B * sizeof(int32_t) + kv_.block_bytes() + (hd.has_snapshot ? kv_.snapshot_bytes() : 0);
    if (size != body + sizeof(uint64_t)) return reject("wrong size (truncated?)");
    std::vector<uint8_t> buf(body + sizeof(uint64_t));
    in.seekg(0);
    if (!in.read(reinterpret_cast<char*>(buf.data()), std::streamsize(buf.size()))) return reject("read failed");
    uint64_t stored;
    std::memcpy(&stored, buf.data() + body, sizeof stored);
    if (hash_bytes(buf.data(), body) != stored) return reject("checksum mismatch");
    if (hd.model_id != model_id_ || hd.block_size != uint32_t(B) || hd.n_layer != uint32_t(kv_.n_layer()) ||
        hd.layout != uint32_t(kv_.layout_fingerprint()) || hd.hash != hash || hd.parent != parent)
        return reject("made for another model or prefix");
    if (std::memcmp(buf.data() + sizeof hd, tokens, B * sizeof(int32_t)) != 0) return reject("tokens differ");

    int block = kv_.allocate_block();
    while (block < 0 && evict_one()) block = kv_.allocate_block();
    if (block < 0) return -1;  // no room now; not the file's fault
    const uint8_t* data = buf.data() + sizeof hd + B * sizeof(int32_t);
    kv_.copy_block_in(block, data);
    if (hd.has_snapshot) kv_.copy_snapshot_in(block, data + kv_.block_bytes());  // no room: not resumable
    return block;
}

}  // namespace pensieve
