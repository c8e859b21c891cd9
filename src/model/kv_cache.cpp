#include "model/kv_cache.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "quant/blocks.h"
#include "util/error.h"
#include "util/fp16.h"

namespace pensieve {

const char* kv_type_name(KvType type) {
    switch (type) {
        case KvType::F16: return "f16";
        case KvType::Q8_0: return "q8_0";
    }
    return "?";
}

KvType parse_kv_type(const std::string& name) {
    if (name == "f16") return KvType::F16;
    if (name == "q8_0") return KvType::Q8_0;
    fail("unknown KV cache type '", name, "' (supported: f16, q8_0)");
}

size_t kv_row_bytes(KvType type, int kv_dim) {
    switch (type) {
        case KvType::F16: return size_t(kv_dim) * sizeof(fp16_t);
        case KvType::Q8_0:
            if (kv_dim % QK8_0 != 0)
                fail("a q8_0 KV cache needs the KV width (", kv_dim, ") to be a multiple of ", QK8_0,
                     "; use --cache-type f16");
            return size_t(kv_dim / QK8_0) * sizeof(BlockQ8_0);
    }
    fail("invalid KV cache type ", uint32_t(type));
}

MemoryLayout MemoryLayout::uniform_attention(int n_layer, int kv_dim) {
    MemoryLayout m;
    m.layers.assign(size_t(std::max(n_layer, 0)), LayerMemory::attention(kv_dim, kv_dim));
    return m;
}

bool MemoryLayout::has(LayerMemory::Kind kind) const {
    return std::any_of(layers.begin(), layers.end(), [&](const LayerMemory& l) { return l.kind == kind; });
}

std::string MemoryLayout::describe() const {
    int n_att = 0, n_rec = 0, n_window = 0, window = 0, n_f32 = 0;
    for (const LayerMemory& l : layers) {
        if (l.kind == LayerMemory::Kind::Attention) ++n_att, n_f32 += l.f32 ? 1 : 0;
        if (l.kind == LayerMemory::Kind::Recurrent) ++n_rec;
        if (l.window > 0) ++n_window, window = l.window;
    }
    std::string s;
    if (n_att) s += "paged KV on " + std::to_string(n_att) + " layers";
    if (n_window) s += " (sliding window " + std::to_string(window) + " on " + std::to_string(n_window) + ")";
    if (n_f32) s += " (fp32 rows on " + std::to_string(n_f32) + ")";
    if (n_rec) s += std::string(s.empty() ? "" : ", ") + "recurrent state on " + std::to_string(n_rec) + " layers";
    if (s.empty()) s = "none";
    return s;
}

KvCache::KvCache(const MemoryLayout& layout, int n_ctx, int n_seq, int n_blocks, KvType type)
    : layout_(layout), n_ctx_(n_ctx), n_seq_(n_seq), n_blocks_(n_blocks), type_(type) {
    const int n_layer = int(layout.layers.size());
    if (n_layer <= 0 || n_ctx <= 0 || n_seq <= 0 || n_blocks < 0)
        fail("invalid KV cache shape: ", n_layer, " layers, ", n_ctx, " positions, ", n_seq, " sequences, ",
             n_blocks, " blocks");
    if (layout.max_positions > 0 && n_ctx > layout.max_positions)
        fail("context of ", n_ctx, " positions is longer than the model's ", layout.max_positions,
             " learned positions");
    const int per_seq = (n_ctx + kBlockSize - 1) / kBlockSize;
    if (n_blocks_ == 0) n_blocks_ = per_seq * n_seq;
    size_t offset = 0;
    for (const LayerMemory& l : layout.layers) {
        LayerStore s;
        if (l.kind == LayerMemory::Kind::Attention) {
            if (l.k_dim <= 0 || l.v_dim <= 0 || l.window < 0)
                fail("invalid KV cache shape: ", l.k_dim, " K and ", l.v_dim, " V values");
            s.k_row = l.f32 ? size_t(l.k_dim) * sizeof(float) : kv_row_bytes(type, l.k_dim);
            s.v_row = l.f32 ? size_t(l.v_dim) * sizeof(float) : kv_row_bytes(type, l.v_dim);
        }
        if (l.kind == LayerMemory::Kind::Recurrent && l.state_floats <= 0)
            fail("invalid recurrent state size ", l.state_floats);
        const size_t state = l.kind == LayerMemory::Kind::Recurrent ? size_t(l.state_floats) : 0;
        if (state > 0 && first_recurrent_ < 0) first_recurrent_ = int(layers_.size());
        s.block = kBlockSize * (s.k_row + s.v_row);
        s.offset = offset;
        s.state_offset = state_floats_;
        offset += s.block * size_t(n_blocks_);
        block_bytes_ += s.block;
        state_floats_ += state;
        layers_.push_back(s);
    }
    recurrent_ = state_floats_ > 0;
    // Snapshot slots: the keepers of a full pool, and per sequence its prompt end, its
    // latest block and the one it is leaving.
    const int n_slots = !recurrent_ ? 0 : std::min(n_blocks_, n_blocks_ / kSnapshotEvery + 3 * n_seq + 1);
    try {
        data_ = LazyBuffer(offset);  // zero pages, committed as blocks are first written
        snapshots_ = LazyBuffer(size_t(n_slots) * snapshot_bytes());
        states_.assign(state_floats_ * size_t(n_seq), 0.0f);
    } catch (const std::bad_alloc&) {
        fail("out of memory allocating the ", kv_type_name(type), " KV cache (",
             (offset + size_t(n_slots) * snapshot_bytes()) / (1 << 20),
             " MiB); use a smaller context (-c), fewer parallel slots or --cache-type q8_0");
    }
    refs_.assign(size_t(n_blocks_), 0);
    free_.reserve(size_t(n_blocks_));
    for (int b = n_blocks_ - 1; b >= 0; --b) free_.push_back(b);  // hand out low ids first
    tables_.resize(size_t(n_seq));
    lengths_.assign(size_t(n_seq), 0);
    slots_.resize(size_t(n_slots));
    for (int i = n_slots - 1; i >= 0; --i) free_slots_.push_back(i);
    snapshot_of_.assign(size_t(n_blocks_), -1);
    latest_.assign(size_t(n_seq), -1);
}

void KvCache::on_position_done(int l, int seq, int pos) {
    if (!ends_block(pos)) return;
    const int j = pos / kBlockSize;
    const int block = tables_[size_t(seq)][size_t(j)];
    int slot = snapshot_of_[size_t(block)];
    if (l == first_recurrent_ && slot < 0) slot = take_slot(seq, j);
    if (slot < 0) return;  // the pool is full of pinned snapshots: this block cannot be resumed
    std::copy_n(state(l, seq), layout_.layers[size_t(l)].state_floats, slot_state(l, slot));
}

// The sequence moves on to block j: its previous snapshot goes unless it is kept (a
// shared prefix's snapshot is never the sequence's own: attach_prefix forgets latest_).
int KvCache::take_slot(int seq, int j) {
    const int block = tables_[size_t(seq)][size_t(j)];
    const int prev = latest_[size_t(seq)];
    latest_[size_t(seq)] = -1;
    if (prev >= 0 && snapshot_of_[size_t(prev)] >= 0 && !slots_[size_t(snapshot_of_[size_t(prev)])].keep)
        drop_snapshot(prev);
    const int slot = free_slot();
    if (slot < 0) return -1;
    give_slot(slot, block, keeps_snapshot(j));
    latest_[size_t(seq)] = block;
    return slot;
}

int KvCache::free_slot() {
    if (free_slots_.empty()) {  // the least recently used snapshot no sequence needs now
        int victim = -1;
        for (int s = 0; s < int(slots_.size()); ++s)
            if (!pinned(s) && (victim < 0 || slots_[size_t(s)].used < slots_[size_t(victim)].used)) victim = s;
        if (victim < 0) return -1;
        drop_snapshot(slots_[size_t(victim)].block);
    }
    const int slot = free_slots_.back();
    free_slots_.pop_back();
    slots_touched_ = std::max(slots_touched_, slot + 1);
    return slot;
}

void KvCache::give_slot(int slot, int block, bool keep) {
    slots_[size_t(slot)] = Slot{block, ++clock_, keep};
    snapshot_of_[size_t(block)] = slot;
}

bool KvCache::pinned(int slot) const {
    const Slot& s = slots_[size_t(slot)];
    if (s.used > pass_clock_) return true;
    for (int seq = 0; seq < n_seq_; ++seq) {
        const int full = lengths_[size_t(seq)] / kBlockSize;
        if (full > 0 && tables_[size_t(seq)][size_t(full - 1)] == s.block) return true;
    }
    return false;
}

void KvCache::drop_snapshot(int block) {
    const int slot = snapshot_of_[size_t(block)];
    if (slot < 0) return;
    snapshot_of_[size_t(block)] = -1;
    slots_[size_t(slot)] = Slot{};
    free_slots_.push_back(slot);
}

void KvCache::keep_snapshot(int seq) {
    const int full = lengths_[size_t(seq)] / kBlockSize;
    if (!recurrent_ || full == 0) return;
    const int slot = snapshot_of_[size_t(tables_[size_t(seq)][size_t(full - 1)])];
    if (slot >= 0) slots_[size_t(slot)].keep = true;
}

void KvCache::restore_states(int seq) {
    const int full = lengths_[size_t(seq)] / kBlockSize;
    const int slot = !recurrent_ || full == 0 ? -1 : snapshot_of_[size_t(tables_[size_t(seq)][size_t(full - 1)])];
    if (recurrent_ && full > 0 && slot < 0)
        fail("sequence ", seq, " cannot resume at position ", full * kBlockSize, ": no state snapshot there");
    if (slot >= 0) slots_[size_t(slot)].used = ++clock_;
    for (int l = 0; l < n_layer(); ++l) {
        const int n = layout_.layers[size_t(l)].state_floats;
        if (layout_.layers[size_t(l)].kind != LayerMemory::Kind::Recurrent) continue;
        float* live = state(l, seq);
        if (full == 0) std::fill_n(live, n, 0.0f);
        else std::copy_n(slot_state(l, slot), n, live);
    }
}

bool KvCache::can_truncate_to(int seq, int pos) const {
    if (can_truncate() || pos >= length(seq) || pos <= 0) return true;
    return pos % kBlockSize == 0 && can_resume_after(tables_[size_t(seq)][size_t(pos / kBlockSize - 1)]);
}

int KvCache::allocate_block() {
    if (free_.empty()) return -1;
    const int b = free_.back();
    free_.pop_back();
    refs_[size_t(b)] = 1;
    blocks_touched_ = std::max(blocks_touched_, b + 1);
    return b;
}

void KvCache::release_block(int block) {
    assert(refs_[size_t(block)] > 0);
    if (--refs_[size_t(block)] > 0) return;
    if (recurrent_) drop_snapshot(block);
    free_.push_back(block);
}

bool KvCache::reserve(int seq, int n_positions) {
    if (n_positions > n_ctx_) return false;
    std::vector<int>& table = tables_[size_t(seq)];
    const size_t need = size_t((n_positions + kBlockSize - 1) / kBlockSize);
    if (need <= table.size()) return true;
    if (need - table.size() > free_.size()) return false;
    while (table.size() < need) table.push_back(allocate_block());
    return true;
}

void KvCache::copy_position(int seq, int from, int to) {
    for (int l = 0; l < int(layers_.size()); ++l) {
        const LayerStore& s = layers_[size_t(l)];
        if (s.block == 0) continue;  // recurrent: no rows
        std::memcpy(k_row(l, seq, to), k_row(l, seq, from), s.k_row);
        std::memcpy(v_row(l, seq, to), v_row(l, seq, from), s.v_row);
    }
}

void KvCache::truncate(int seq, int pos) {
    if (pos < 0) pos = 0;
    if (!can_truncate_to(seq, pos))
        fail("this model's recurrent state cannot be rolled back to position ", pos,
             " (only to a block end that kept its state snapshot)");
    const bool shorter = lengths_[size_t(seq)] > pos;
    if (shorter) lengths_[size_t(seq)] = pos;
    std::vector<int>& table = tables_[size_t(seq)];
    const size_t keep = size_t((pos + kBlockSize - 1) / kBlockSize);
    while (table.size() > keep) {
        release_block(table.back());
        table.pop_back();
    }
    if (!shorter && pos != 0) return;
    latest_[size_t(seq)] = -1;  // its snapshot, if any, stays (for the LRU to take)
    restore_states(seq);
}

void KvCache::attach_prefix(int seq, const std::vector<int>& blocks) {
    if (!can_attach_prefix(seq))
        fail("attach_prefix: sequence ", seq, " has ", length(seq), " positions in ", capacity(seq), " reserved");
    std::vector<int>& table = tables_[size_t(seq)];
    for (int b : blocks) {
        retain_block(b);
        table.push_back(b);
    }
    lengths_[size_t(seq)] = capacity(seq);
    latest_[size_t(seq)] = -1;
    restore_states(seq);
}

void KvCache::reserve_batch(const std::vector<int32_t>& seq_ids, const std::vector<int32_t>& positions) {
    std::unordered_map<int, int> next;  // seq -> expected next position
    for (size_t i = 0; i < seq_ids.size(); ++i) {
        const int32_t seq = seq_ids[i], pos = positions[i];
        if (seq < 0 || seq >= n_seq_) fail("sequence id ", seq, " is out of range");
        auto it = next.find(seq);
        const int expected = it == next.end() ? length(seq) : it->second;
        if (pos != expected)
            fail("position ", pos, " of sequence ", seq, " is not the next position (", expected, ")");
        if (pos >= n_ctx_) fail("context is full: position ", pos, " needs a context larger than ", n_ctx_);
        next[seq] = pos + 1;
    }
    pass_clock_ = clock_;  // snapshots taken from here on are this pass's: never evicted in it
    // Every position the batch writes needs a block.
    for (const auto& [seq, end] : next)
        if (!reserve(seq, end))
            fail("the KV cache is full: no free block for position ", end - 1, " of sequence ", seq);
}

void KvCache::commit_batch(const std::vector<int32_t>& seq_ids, const std::vector<int32_t>& positions) {
    for (size_t i = 0; i < seq_ids.size(); ++i)
        lengths_[size_t(seq_ids[i])] = std::max(lengths_[size_t(seq_ids[i])], positions[i] + 1);
}

// A recurrent layer keeps no K/V per block (s.block == 0); a pure recurrent model's pool
// is then never allocated, and memcpy from its null base is undefined even for 0 bytes.
void KvCache::copy_block_out(int block, uint8_t* out) const {
    for (const LayerStore& s : layers_) {
        if (s.block == 0) continue;
        std::memcpy(out, &data_[s.offset + size_t(block) * s.block], s.block);
        out += s.block;
    }
}

void KvCache::copy_block_in(int block, const uint8_t* in) {
    for (const LayerStore& s : layers_) {
        if (s.block == 0) continue;
        std::memcpy(&data_[s.offset + size_t(block) * s.block], in, s.block);
        in += s.block;
    }
}

bool KvCache::copy_snapshot_out(int block, uint8_t* out) const {
    const int slot = recurrent_ ? snapshot_of_[size_t(block)] : -1;
    if (slot < 0) return false;
    std::memcpy(out, &snapshots_[size_t(slot) * snapshot_bytes()], snapshot_bytes());
    return true;
}

bool KvCache::copy_snapshot_in(int block, const uint8_t* in) {
    if (!recurrent_) return false;
    int slot = snapshot_of_[size_t(block)];
    if (slot < 0) {
        slot = free_slot();
        if (slot < 0) return false;
        give_slot(slot, block, false);
    }
    std::memcpy(&snapshots_[size_t(slot) * snapshot_bytes()], in, snapshot_bytes());
    return true;
}

std::string describe_kv_cache(KvType type, size_t bytes, int64_t positions) {
    char buf[192];
    const bool gib = bytes >= (size_t(1) << 30);
    std::snprintf(buf, sizeof buf, "KV cache %s: %.2f %s reserved for %lld positions (%.2f KiB each); memory is "
                  "committed as sequences fill it", kv_type_name(type),
                  double(bytes) / double(gib ? (1 << 30) : (1 << 20)), gib ? "GiB" : "MiB",
                  static_cast<long long>(positions), positions > 0 ? double(bytes) / double(positions) / 1024 : 0.0);
    return buf;
}

uint64_t KvCache::layout_fingerprint() const {
    uint64_t h = 1469598103934665603ULL ^ uint64_t(type_);
    auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ULL; };
    for (const LayerMemory& l : layout_.layers) {
        mix(uint64_t(l.kind));
        mix(uint64_t(l.k_dim));
        mix(uint64_t(l.v_dim));
        mix(uint64_t(l.state_floats));
        mix(uint64_t(l.f32));
    }
    return h;
}

}  // namespace pensieve
