// `pensieve bench -m MODEL -p 512 -n 128`: prompt-processing and generation speed,
// measured like other engines' bench tools: pp = one prompt of P tokens from an empty
// cache; tg = N single-token decode steps from an empty cache; each repeated R times,
// reported as mean ± stdev tokens/s. With -d N both run after N tokens already in the
// cache (untimed), to measure attention over a deep context; --cache-type picks the KV
// cache's element type. `pensieve bench --bandwidth`: the machine's memory read bandwidth
// instead (no model), the ceiling of generation speed (util/read_bandwidth.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>

#include "cli/commands.h"
#include "cli/common.h"
#include "model/model.h"
#include "util/error.h"
#include "util/read_bandwidth.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace pensieve {

namespace {

struct BenchOptions {
    ModelOptions model;
    int n_prompt = 512;
    int n_gen = 128;
    int reps = 3;
    int n_batch = 512;
    int depth = 0;
    CacheTypeOptions cache_type;
    bool json = false;
    bool bandwidth = false;
    int bandwidth_mib = 1024;
};

struct Stats {
    double mean = 0, stdev = 0;
};

Stats stats(const std::vector<double>& v) {
    Stats s;
    if (v.empty()) return s;
    for (double x : v) s.mean += x;
    s.mean /= double(v.size());
    if (v.size() > 1) {
        double ss = 0;
        for (double x : v) ss += (x - s.mean) * (x - s.mean);
        s.stdev = std::sqrt(ss / double(v.size() - 1));
    }
    return s;
}

// A cache for `depth` earlier tokens plus `n` timed ones (exactly: a model with 512 learned
// positions benches pp512), with the earlier ones already in.
KvCache filled_cache(Model& model, ThreadPool& pool, const std::vector<int32_t>& earlier, int n, int n_batch,
                     KvType type) {
    KvCache cache = model.make_cache(int(earlier.size()) + n, 1, 0, type);
    std::vector<float> logits(size_t(model.config().n_vocab));
    Batch batch;
    for (size_t s = 0; s < earlier.size(); s += size_t(n_batch)) {
        batch.clear();
        const size_t e = std::min(earlier.size(), s + size_t(n_batch));
        for (size_t i = s; i < e; ++i) batch.add(earlier[i], int(i), 0, i + 1 == e);
        model.forward(batch, cache, pool, logits.data());
    }
    return cache;
}

double time_prompt(Model& model, ThreadPool& pool, KvCache& cache, const std::vector<int32_t>& toks, int n_batch) {
    const int base = cache.length(0);
    std::vector<float> logits(size_t(model.config().n_vocab));
    Batch batch;
    Timer t;
    for (size_t s = 0; s < toks.size(); s += size_t(n_batch)) {
        batch.clear();
        const size_t e = std::min(toks.size(), s + size_t(n_batch));
        for (size_t i = s; i < e; ++i) batch.add(toks[i], base + int(i), 0, i + 1 == e);
        model.forward(batch, cache, pool, logits.data());
    }
    return double(toks.size()) / t.seconds();
}

double time_generation(Model& model, ThreadPool& pool, KvCache& cache, const std::vector<int32_t>& toks) {
    const int base = cache.length(0);
    std::vector<float> logits(size_t(model.config().n_vocab));
    Batch batch;
    Timer t;
    for (size_t i = 0; i < toks.size(); ++i) {
        batch.clear();
        batch.add(toks[i], base + int(i), 0, true);
        model.forward(batch, cache, pool, logits.data());
    }
    return double(toks.size()) / t.seconds();
}

// Best of a few passes: a short pass that another process's burst slowed is noise, the
// best one is what the memory system can deliver now; the median shows the spread.
int bench_bandwidth(const BenchOptions& o) {
    constexpr int kPasses = 7;
    ThreadPool pool(o.model.threads > 0 ? o.model.threads : default_thread_count());
    const size_t bytes = size_t(o.bandwidth_mib) << 20;
    const ReadBandwidth r = measure_read_bandwidth(pool, bytes, kPasses);
    if (o.json) {
        std::printf("{\"threads\": %d, \"bytes\": %zu, \"passes\": %d, \"read_gbs\": %.2f, "
                    "\"read_gbs_median\": %.2f}\n",
                    pool.size(), bytes, kPasses, r.best_gbs, r.median_gbs);
    } else {
        std::printf("read bandwidth, %d threads, %d MiB buffer: %.2f GB/s (best of %d passes; median %.2f)\n",
                    pool.size(), o.bandwidth_mib, r.best_gbs, kPasses, r.median_gbs);
    }
    return 0;
}

int bench(const BenchOptions& o) {
    if (o.bandwidth) return bench_bandwidth(o);
    if (o.model.path.empty()) fail("bench needs a model (-m FILE), or --bandwidth");
    if (o.n_prompt == 0 && o.n_gen == 0) fail("nothing to measure: -p and -n are both 0");
    const KvType type = o.cache_type.resolve();
    LoadedModel m = load(o.model);
    std::mt19937 rng(42);
    std::uniform_int_distribution<int32_t> pick(0, m.model->config().n_vocab - 1);
    auto random_tokens = [&](int n) {
        std::vector<int32_t> v(static_cast<size_t>(n));
        for (auto& t : v) t = pick(rng);
        return v;
    };
    // One short untimed run warms caches and page-faults the weights in.
    {
        KvCache warm = m.model->make_cache(8, 1, 0, type);
        time_generation(*m.model, *m.pool, warm, random_tokens(4));
    }

    std::vector<double> pp, tg;
    size_t kv_position_bytes = 0;
    for (int r = 0; r < o.reps; ++r) {
        if (o.n_prompt > 0) {
            KvCache cache = filled_cache(*m.model, *m.pool, random_tokens(o.depth), o.n_prompt, o.n_batch, type);
            pp.push_back(time_prompt(*m.model, *m.pool, cache, random_tokens(o.n_prompt), o.n_batch));
            kv_position_bytes = cache.position_bytes();
        }
        if (o.n_gen > 0) {
            KvCache cache = filled_cache(*m.model, *m.pool, random_tokens(o.depth), o.n_gen, o.n_batch, type);
            tg.push_back(time_generation(*m.model, *m.pool, cache, random_tokens(o.n_gen)));
            kv_position_bytes = cache.position_bytes();
        }
    }
    const Stats p = stats(pp), g = stats(tg);
    const std::string depth = o.depth > 0 ? " @ d" + std::to_string(o.depth) : "";
    if (o.json) {
        std::printf("{\"model\": \"%s\", \"threads\": %d, \"n_prompt\": %d, \"n_gen\": %d, \"depth\": %d, "
                    "\"cache_type\": \"%s\", \"kv_bytes_per_position\": %zu, \"pp_tps\": %.3f, "
                    "\"pp_stdev\": %.3f, \"tg_tps\": %.3f, \"tg_stdev\": %.3f}\n",
                    o.model.path.c_str(), m.pool->size(), o.n_prompt, o.n_gen, o.depth, kv_type_name(type),
                    kv_position_bytes, p.mean, p.stdev, g.mean, g.stdev);
    } else {
        std::printf("| model | threads | kv | test | tokens/s |\n|---|---:|---|---|---:|\n");
        if (o.n_prompt > 0)
            std::printf("| %s | %d | %s | pp%d%s | %.2f ± %.2f |\n", o.model.path.c_str(), m.pool->size(),
                        kv_type_name(type), o.n_prompt, depth.c_str(), p.mean, p.stdev);
        if (o.n_gen > 0)
            std::printf("| %s | %d | %s | tg%d%s | %.2f ± %.2f |\n", o.model.path.c_str(), m.pool->size(),
                        kv_type_name(type), o.n_gen, depth.c_str(), g.mean, g.stdev);
        const int64_t positions = int64_t(o.depth) + std::max(o.n_prompt, o.n_gen);
        std::printf("\n%s\n", describe_kv_cache(type, kv_position_bytes * size_t(positions), positions).c_str());
    }
    return 0;
}

}  // namespace

Command add_bench_command(CLI::App& root) {
    auto o = std::make_shared<BenchOptions>();
    CLI::App* app = root.add_subcommand("bench", "Measure prompt and generation tokens/s");
    add_model_options(*app, o->model);
    app->get_option("--model")->required(false);  // not for --bandwidth; bench() checks
    app->add_option("-p,--n-prompt", o->n_prompt, "Prompt tokens (0: skip)")->capture_default_str()->check(CLI::Range(0, 1 << 20));
    app->add_option("-n,--n-gen", o->n_gen, "Generated tokens (0: skip)")->capture_default_str()->check(CLI::Range(0, 1 << 20));
    app->add_option("-r,--repetitions", o->reps, "Repetitions")->capture_default_str()->check(CLI::Range(1, 1000));
    app->add_option("-b,--batch-size", o->n_batch, "Prompt tokens per forward pass")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    app->add_option("-d,--depth", o->depth, "Tokens already in the cache before each test (untimed)")
        ->capture_default_str()->check(CLI::Range(0, 1 << 20));
    add_cache_type_options(*app, o->cache_type);
    app->add_flag("--json", o->json, "Print one JSON object");
    app->add_flag("--bandwidth", o->bandwidth, "Measure the machine's memory read bandwidth (GB/s) instead of a model");
    app->add_option("--bandwidth-mib", o->bandwidth_mib, "Buffer for --bandwidth, MiB (much larger than the caches)")
        ->capture_default_str()->check(CLI::Range(1, 1 << 16));
    return {app, [o] { return bench(*o); }};
}

}  // namespace pensieve
