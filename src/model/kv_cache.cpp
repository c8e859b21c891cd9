#include "model/kv_cache.h"

#include "util/error.h"

namespace pensieve {

KvCache::KvCache(int n_layer, int n_ctx, int kv_dim, int n_seq)
    : n_layer_(n_layer), n_ctx_(n_ctx), kv_dim_(kv_dim), n_seq_(n_seq) {
    if (n_layer <= 0 || n_ctx <= 0 || kv_dim <= 0 || n_seq <= 0)
        fail("invalid KV cache shape: ", n_layer, " layers, ", n_ctx, " positions, ", kv_dim,
             " dims, ", n_seq, " sequences");
    const size_t n = size_t(n_layer) * size_t(n_seq) * size_t(n_ctx) * size_t(kv_dim);
    try {
        k_.assign(n, 0);
        v_.assign(n, 0);
    } catch (const std::bad_alloc&) {
        fail("out of memory allocating the KV cache (", 2 * n * sizeof(fp16_t) / (1 << 20),
             " MiB); use a smaller context (-c)");
    }
    lengths_.assign(size_t(n_seq), 0);
}

}  // namespace pensieve
