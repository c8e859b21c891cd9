// `pensieve bench -m MODEL -p 512 -n 128`: prompt-processing and generation speed,
// measured like other engines' bench tools: pp = one prompt of P tokens from an empty
// cache; tg = N single-token decode steps from an empty cache; each repeated R times,
// reported as mean ± stdev tokens/s.
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>

#include "cli/commands.h"
#include "cli/common.h"
#include "model/model.h"
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
    bool json = false;
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

double time_prompt(Model& model, ThreadPool& pool, const std::vector<int32_t>& toks, int n_batch) {
    KvCache cache = model.make_cache(int(toks.size()) + 1, 1);
    std::vector<float> logits(size_t(model.config().n_vocab));
    Batch batch;
    Timer t;
    for (size_t s = 0; s < toks.size(); s += size_t(n_batch)) {
        batch.clear();
        const size_t e = std::min(toks.size(), s + size_t(n_batch));
        for (size_t i = s; i < e; ++i) batch.add(toks[i], int(i), 0, i + 1 == e);
        model.forward(batch, cache, pool, logits.data());
    }
    return double(toks.size()) / t.seconds();
}

double time_generation(Model& model, ThreadPool& pool, const std::vector<int32_t>& toks) {
    KvCache cache = model.make_cache(int(toks.size()) + 1, 1);
    std::vector<float> logits(size_t(model.config().n_vocab));
    Batch batch;
    Timer t;
    for (size_t i = 0; i < toks.size(); ++i) {
        batch.clear();
        batch.add(toks[i], int(i), 0, true);
        model.forward(batch, cache, pool, logits.data());
    }
    return double(toks.size()) / t.seconds();
}

int bench(const BenchOptions& o) {
    LoadedModel m = load(o.model);
    std::mt19937 rng(42);
    std::uniform_int_distribution<int32_t> pick(0, m.model->config().n_vocab - 1);
    auto random_tokens = [&](int n) {
        std::vector<int32_t> v(static_cast<size_t>(n));
        for (auto& t : v) t = pick(rng);
        return v;
    };
    // One short untimed run warms caches and page-faults the weights in.
    time_generation(*m.model, *m.pool, random_tokens(4));

    std::vector<double> pp, tg;
    for (int r = 0; r < o.reps; ++r) {
        if (o.n_prompt > 0) pp.push_back(time_prompt(*m.model, *m.pool, random_tokens(o.n_prompt), o.n_batch));
        if (o.n_gen > 0) tg.push_back(time_generation(*m.model, *m.pool, random_tokens(o.n_gen)));
    }
    const Stats p = stats(pp), g = stats(tg);
    if (o.json) {
        std::printf("{\"model\": \"%s\", \"threads\": %d, \"n_prompt\": %d, \"n_gen\": %d, \"pp_tps\": %.3f, "
                    "\"pp_stdev\": %.3f, \"tg_tps\": %.3f, \"tg_stdev\": %.3f}\n",
                    o.model.path.c_str(), m.pool->size(), o.n_prompt, o.n_gen, p.mean, p.stdev, g.mean, g.stdev);
    } else {
        std::printf("| model | threads | test | tokens/s |\n|---|---:|---|---:|\n");
        if (o.n_prompt > 0)
            std::printf("| %s | %d | pp%d | %.2f ± %.2f |\n", o.model.path.c_str(), m.pool->size(), o.n_prompt,
                        p.mean, p.stdev);
        if (o.n_gen > 0)
            std::printf("| %s | %d | tg%d | %.2f ± %.2f |\n", o.model.path.c_str(), m.pool->size(), o.n_gen,
                        g.mean, g.stdev);
    }
    return 0;
}

}  // namespace

Command add_bench_command(CLI::App& root) {
    auto o = std::make_shared<BenchOptions>();
    CLI::App* app = root.add_subcommand("bench", "Measure prompt and generation tokens/s");
    add_model_options(*app, o->model);
    app->add_option("-p,--n-prompt", o->n_prompt, "Prompt tokens (0: skip)")->capture_default_str()->check(CLI::Range(0, 1 << 20));
    app->add_option("-n,--n-gen", o->n_gen, "Generated tokens (0: skip)")->capture_default_str()->check(CLI::Range(0, 1 << 20));
    app->add_option("-r,--repetitions", o->reps, "Repetitions")->capture_default_str()->check(CLI::Range(1, 1000));
    app->add_option("-b,--batch-size", o->n_batch, "Prompt tokens per forward pass")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    app->add_flag("--json", o->json, "Print one JSON object");
    return {app, [o] { return bench(*o); }};
}

}  // namespace pensieve
